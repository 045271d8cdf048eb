"""`uqseg batch`: one task over a data set on Ray, into partitioned Parquet tables; resumable and fault-tolerant.

    uqseg batch --task T INPUT --out DIR [--address ADDR] [--workers N] [--cpus-per-worker C]
                [--device auto|cpu|cuda] [--model ID[@VERSION]] [--samples N] [--seed S] [--fast]
                [--per-case-files] [--batch-size B] [--part-rows R]

1. INPUT → cases with their sha256 (`manifest.py`); DIR is opened and locked, and the cases already in its tables for
   the same model version and settings are skipped (`parquet_parts.py`).
2. Ray: `--address ADDR`, else `RAY_ADDRESS`, else a local Ray instance started in this process (the embedded
   default: `pip install "uqseg[batch]"` and go). On a cluster the inputs (and DIR, with --per-case-files) must be
   reachable under the same paths from every node (a shared file system), and uqseg with the same models installed.
3. Ray Data streams the cases (`ray.data.from_items`) through `--workers` model replicas (`replica.CaseReplica`, an
   actor pool: `map_batches(..., compute=ActorPoolStrategy(size=N))`, each replica with `--cpus-per-worker` CPUs, or one GPU with
   `--device cuda` / `auto` on a cluster that has GPUs), `--batch-size` cases per call. Ray Data restarts a replica
   whose process or node died and retries its batch (actors with max_restarts / max_task_retries = -1, its
   default), so every case comes back exactly once.
4. This process receives the rows (`iter_batches`) and writes them as parts of at most `--part-rows` cases (or every
   60 s), each atomically (`parquet_parts.py`); the progress bar counts them (`progress.py`).
Ray's own native log lines of this process go to DIR/.ray-driver.log, so that stderr holds the progress and one line
per problem. Exit status 0 when every case of INPUT has an `ok` row, 2 when a row holds an error (one line each on stderr, as
`uqseg predict` prints them) or the input, DIR or the model cannot be used (one line, nothing done), 130 on Ctrl-C
(what was written stays; a rerun goes on from there).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

INSTALL_HINT = "pip install \"uqseg[batch]\" (Ray Data and pyarrow)"
FLUSH_SECONDS = 60.0
#: where Ray's native log lines of this process go (hidden: Parquet readers skip it)
RAY_LOG_NAME = ".ray-driver.log"


def add_parser(sub, task_ids) -> None:
    """The `batch` subcommand of the `uqseg` parser."""
    b = sub.add_parser("batch", help="run a task over a data set on Ray into Parquet tables (resumable)")
    b.add_argument("--task", required=True, choices=task_ids)
    b.add_argument("input", metavar="INPUT", help="a folder, a quoted glob, or a .csv / .parquet manifest with a "
                                                  "'path' column")
    b.add_argument("--out", required=True, help="output folder (its tables: DIR/cases/, DIR/<detail>/)")
    b.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    b.add_argument("--workers", type=int, default=None,
                   help="model replicas (default: the cluster's CPUs / --cpus-per-worker, or its GPUs)")
    b.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs (torch threads) per CPU replica")
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: GPU replicas when the cluster has GPUs, else CPU")
    b.add_argument("--model", default=None, help="model id or id@version (default: the task's default model)")
    b.add_argument("--samples", type=int, default=None)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--fast", action="store_true")
    b.add_argument("--per-case-files", action="store_true",
                   help="also write DIR/<case>/ with the task's files and summary.json (the uqseg predict layout)")
    b.add_argument("--batch-size", type=int, default=8, help="cases per replica call (default 8)")
    b.add_argument("--part-rows", type=int, default=256, help="cases per Parquet part (default 256)")
    b.set_defaults(func=cmd_batch)


def cmd_batch(args) -> int:
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        print(f"error: uqseg batch needs {e.name or 'ray'}, which is not installed: {INSTALL_HINT}", file=sys.stderr)
        return 2
    from uqseg.errors import InputError
    from uqseg.io.outdir import OutputError
    from uqseg.models.registry import ModelError

    try:
        return run_batch(args)
    except (InputError, OutputError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except (ray.exceptions.RayError, ConnectionError) as e:
        print(f"error: {args.address or os.environ.get('RAY_ADDRESS') or 'ray'}: "
              f"{str(e).strip().splitlines()[0]}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted: the parts written so far are complete; rerun the same command to finish",
              file=sys.stderr, flush=True)
        return 130


def start_ray(address: str | None):
    """Connect to `address` / RAY_ADDRESS, or start a local Ray instance. Returns (context, started_here)."""
    import ray

    env = {k: os.environ[k] for k in ("UQSEG_MODELS", "UQSEG_MEMORY_LIMIT") if k in os.environ}
    kwargs = dict(logging_level=logging.ERROR, log_to_driver=False, ignore_reinit_error=True,
                  runtime_env={"env_vars": env} if env else None)
    if address or os.environ.get("RAY_ADDRESS"):
        return ray.init(address=address, **kwargs), False
    return ray.init(include_dashboard=None, **kwargs), True


@contextlib.contextmanager
def native_stderr_to(path: Path):
    """Send what native code writes to file descriptor 2 (Ray's C++ core logs, e.g. a warning at error level for
    every actor pool with restarts, ray#53727 — the restart works, Testing/test_batch_ray.py kills a replica) into
    `path`, while Python's `sys.stderr` (the progress bar, the one line per problem) stays on the real stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(python_stderr, "encoding", None))
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def replica_resources(args, cluster: dict) -> tuple[str, int, dict]:
    """(device, workers, Ray resources per replica) from --device / --workers and the cluster's resources."""
    from uqseg.errors import InputError

    gpus, cpus = int(cluster.get("GPU", 0)), cluster.get("CPU", 1)
    if args.device == "cuda" and gpus == 0:
        raise InputError("--device cuda", "the Ray cluster has no GPUs")
    if args.device == "cuda" or (args.device == "auto" and gpus > 0):
        return "cuda", args.workers or gpus, {"num_gpus": 1}
    per = max(0.01, float(args.cpus_per_worker))
    return "cpu", args.workers or max(1, int(cpus // per)), {"num_cpus": per}


def run_batch(args) -> int:
    import pyarrow as pa
    import ray
    from ray.data import DataContext

    from uqseg.batch.manifest import collect
    from uqseg.batch.parquet_parts import BatchOutput, done_key
    from uqseg.batch.progress import ProgressBar
    from uqseg.batch.replica import CaseReplica
    from uqseg.batch.tables import split_replica_batch
    from uqseg.models.registry import find_model
    from uqseg.tasks import task_info

    task = task_info(args.task)
    cases, notes = collect(args.input, task.ndim)
    for note in notes:
        print(note, file=sys.stderr)
    card = find_model(args.task, args.model)
    key = lambda c: done_key(c.sha256, c.input_path, card.id, card.version, args.samples, args.seed, args.fast)  # noqa
    output = BatchOutput(args.out, args.task, [args.input]).open()
    started_ray = False
    new_errors = 0
    ray_log = contextlib.ExitStack()
    try:
        done = output.done_keys()
        todo = [c for c in cases if key(c) not in done]
        print(f"{len(cases)} cases in {args.input}; {len(cases) - len(todo)} already in {output.out} "
              f"(model {card.id} {card.version}); {len(todo)} to do", flush=True)
        if todo:
            ray_log.enter_context(native_stderr_to(output.out / RAY_LOG_NAME))
            ctx, started_ray = start_ray(args.address)
            device, workers, resources = replica_resources(args, ray.cluster_resources())
            threads = max(1, int(args.cpus_per_worker))
            dashboard = getattr(ctx, "dashboard_url", None)
            print(f"Ray: {'a local instance' if started_ray else ctx.address_info.get('address')}; {workers} "
                  f"{device} replica(s) of {card.id} {card.version}"
                  + (f"; dashboard http://{dashboard}" if dashboard else ""), flush=True)
            data_context = DataContext.get_current()
            data_context.enable_progress_bars = False
            data_context.print_on_execution_start = False
            logging.getLogger("ray.data").setLevel(logging.ERROR)
            items = [asdict(c) for c in todo]
            ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / args.batch_size))
            ds = ds.map_batches(
                CaseReplica, batch_size=args.batch_size, batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                fn_constructor_kwargs=dict(task_id=args.task, model_ref=f"{card.id}@{card.version}",
                                           model_sha256=card.sha256, device=device, samples=args.samples,
                                           seed=args.seed, fast=args.fast, threads=threads,
                                           per_case_out=str(output.out.absolute()) if args.per_case_files else None),
                **resources)
            bar = ProgressBar(len(cases), already_done=len(cases) - len(todo))
            pending_cases, pending_details, last_flush = [], [], time.monotonic()

            def flush():
                nonlocal pending_cases, pending_details, last_flush
                if pending_cases:
                    output.write_part(pa.concat_tables(pending_cases), pa.concat_tables(pending_details))
                pending_cases, pending_details, last_flush = [], [], time.monotonic()

            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                case_rows, detail_rows = split_replica_batch(batch, args.task)
                for line in case_rows.column("error").to_pylist():
                    if line:
                        new_errors += 1
                        print(("\n" if bar.tty else "") + line, file=sys.stderr, flush=True)
                bar.errors = new_errors
                bar.update(case_rows.num_rows)
                pending_cases.append(case_rows)
                pending_details.append(detail_rows)
                if (sum(t.num_rows for t in pending_cases) >= args.part_rows
                        or time.monotonic() - last_flush >= FLUSH_SECONDS):
                    flush()
            flush()
            bar.finish()
    finally:
        output.close()
        if started_ray:
            ray.shutdown()
        ray_log.close()
    table = output.read_cases(["input_sha256", "input_path", "model_id", "model_version", "samples", "seed", "fast",
                               "status"])
    wanted = {key(c) for c in cases}
    cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
    failed = sum(1 for row in zip(*cols) if row[-1] != "ok" and done_key(*row[:-1]) in wanted)
    print(f"{output.out}: {len(cases)} cases, {failed} with an error; tables {output.cases_dir} and "
          f"{output.detail_dir}", flush=True)
    return 2 if failed else 0
