"""The model replica of `uqseg batch`: a Ray actor that loads the task's model ONCE and predicts batches of cases.

Ray Data constructs one `CaseReplica` per worker (`map_batches(CaseReplica, concurrency=N, num_cpus=… / num_gpus=…)`,
`uqseg.batch.command`) and calls it with batches of cases (`uqseg.batch.manifest.BatchCase` fields as an Arrow
table); it returns one row per case (`uqseg.batch.tables.REPLICA_SCHEMA`). Everything a case runs is the task
contract (`uqseg.tasks.base`) that `uqseg predict` runs — `load_image`, the resource checks
(`uqseg.resources.check_case`), `task.predict`, then `task.summarise` (nothing written) or, with --per-case-files,
`task.write` into the `uqseg predict` folder layout through a staging folder opened for the case and removed
before its row is returned (`uqseg.io.outdir.CaseStaging`: the case folder appears complete or not at all,
queue.csv is merged under the folder lock; Ray ends actors without finalisers, so nothing may outlive a case). The same seed is set
as `run_cases` sets it, and every task draws its samples from its own seeded generator per case, so a case's
numbers do not depend on the replica, the batch or the order it runs in. They are those of `uqseg predict` run with
the same number of torch threads (`--cpus-per-worker`; `OMP_NUM_THREADS` for predict): with another thread count
the CPU kernels add in another order and a std can differ in its last written decimal (1e-4 px).

A case that fails — a refused or unreadable input, a file that cannot be written, any exception of the model code —
becomes a row with `status = "error"` and the one-line reason, as `uqseg predict` prints it; it never stops the run.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from uqseg.batch.tables import DETAIL_TABLES, REPLICA_SCHEMA, case_row
from uqseg.errors import InputError


class CaseReplica:
    """One model replica. Arguments: the task id, the model as `id@version` and the sha256 of its weights (checked:
    every replica must run the model the driver resolved), the device name (`cpu`, `cuda`, `auto`), the settings
    (samples, seed, fast), `per_case_out` (the output folder for --per-case-files, else None) and `threads` (torch's
    CPU threads: the CPUs Ray gave the replica)."""

    def __init__(self, task_id: str, model_ref: str, model_sha256: str, device: str, samples, seed: int, fast: bool,
                 per_case_out: str | None = None, threads: int = 1):
        import numpy as np
        import SimpleITK
        import torch

        from uqseg.device import resolve_device
        from uqseg.models.registry import ModelError, find_model
        from uqseg.tasks import get_task
        from uqseg.tasks.base import RunOptions

        SimpleITK.ProcessObject.SetGlobalWarningDisplay(False)  # as `uqseg predict`: reasons go into the rows
        torch.set_num_threads(int(threads))
        self.task_id, self.task = task_id, get_task(task_id)
        self.device = resolve_device(device)
        torch.manual_seed(seed)
        np.random.seed(seed)
        self.card = find_model(task_id, model_ref)
        if self.card.sha256 != model_sha256:
            raise ModelError(f"{self.card.folder}: model {model_ref} on {socket.gethostname()} has weights sha256 "
                             f"{self.card.sha256}, the driver's has {model_sha256}: install the same model everywhere")
        t0 = time.perf_counter()
        self.model = self.task.load(self.card, self.device)
        self.load_model_ms = (time.perf_counter() - t0) * 1000
        self.options = RunOptions(card=self.card, device=self.device, samples=samples, seed=seed, fast=fast)
        self.settings = {"samples": samples, "seed": seed, "fast": bool(fast)}
        self.detail = DETAIL_TABLES[task_id]
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.out = Path(per_case_out) if per_case_out else None

    def __call__(self, batch):
        import pyarrow as pa

        rows = [self.run_case(case) for case in batch.to_pylist()]
        return pa.Table.from_pylist(rows, schema=REPLICA_SCHEMA)

    def run_case(self, case: dict) -> dict:
        """One case → its row (module docstring); never raises for a problem of the case."""
        from uqseg.io.load import load_image
        from uqseg.io.outdir import OutputError, describe_write_failure, os_error_reason
        from uqseg.resources import check_case

        path = case["input_path"]
        summary = details = error = None
        load_ms = predict_ms = None
        stage = "read"
        t0 = time.perf_counter()
        try:
            if case.get("read_error"):
                raise InputError(path, case["read_error"])
            image = load_image(Path(path), ndim=self.task.ndim)
            t1 = time.perf_counter()
            load_ms = (t1 - t0) * 1000
            check_case(self.task_id, image, self.card, self.options.samples, self.options.fast)
            stage = "predict"
            if self.out is None:
                result = self.task.predict(image, self.model, self.options)
                summary = self.task.summarise(result)
            else:
                stage = "write"
                result, summary = self.write_case(case["case_id"], path, image, t0, t1)
            details = self.detail.rows(result, summary)
            predict_ms = (time.perf_counter() - t1) * 1000
        except (InputError, OutputError) as e:
            error = f"error: {e}"
        except OSError as e:
            error = (f"error: {path}: cannot be read ({os_error_reason(e)})" if stage == "read" else
                     describe_write_failure(self.out or Path("."), case["case_id"], path, e))
        except Exception as e:  # a bug or a resource failure in the model code: this case's row, not the run's end
            error = f"error: {path}: {type(e).__name__}: {e}".splitlines()[0]
        if error is not None:
            summary = details = None
        return case_row({"case_id": case["case_id"], "input_path": path, "sha256": case["sha256"]}, self.task_id,
                        self.card, self.settings, summary, error, device=str(self.device), worker=self.worker,
                        load_input_ms=None if load_ms is None else round(load_ms, 1),
                        predict_ms=None if predict_ms is None else round(predict_ms, 1),
                        finished_at=datetime.now(timezone.utc), details=details)

    def write_case(self, name: str, path: str, image, t0: float, t1: float):
        """--per-case-files: predict, write the task's files and summary.json into the staging folder, move the case
        folder into place and merge queue.csv (as `uqseg.tasks.run.run_cases` does). Returns (result, summary)."""
        from uqseg.io.write import write_json
        from uqseg.tasks.run import case_summary, write_queue

        from uqseg.io.outdir import CaseStaging

        # One staging folder per case, closed before the case's row is returned: Ray ends its actors without running
        # finalisers, so a staging folder kept for the replica's lifetime was left behind in `out`.
        staging = CaseStaging(self.out).open()
        try:
            case_dir = staging.case_dir(name)
            result = self.task.predict(image, self.model, self.options)
            summary = self.task.write(result, case_dir)
            t2 = time.perf_counter()
            full = case_summary(name, path, summary, self.card, self.device, image, {
                "load_model": round(self.load_model_ms, 1), "load_input": round((t1 - t0) * 1000, 1),
                "predict_and_write": round((t2 - t1) * 1000, 1)})
            write_json(case_dir / "summary.json", full)
            staging.commit(name, lambda: write_queue(self.out, [full], keep_existing=True, newest=full))
        finally:
            staging.close()  # removes whatever of the case was not committed
        return result, summary
