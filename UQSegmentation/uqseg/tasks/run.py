"""The batch driver: one task over many cases, into one output folder. The CLI, the demo, the benchmark and other
front ends (a web app, a batch engine) call `run_cases`; nothing here prints.

Cases: each INPUT file is a case; a folder is one case for a 3-D task (a DICOM series) or a folder of 2-D cases
(`collect_cases`). Case folder names come from the file names, made safe and unique (`unique_names`). Output layout
and guarantees (staging, queue.csv, interruption): `docs/cli-contract.md` and `docs/hostile-inputs.md`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from uqseg.errors import InputError
from uqseg.tasks import get_task, task_info
from uqseg.tasks.base import RunOptions, run_case

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom", ".nrrd", ".nii", ".mha", ".mhd", ""}


def case_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".seg.nrrd", ".nrrd", ".nii", ".mha", ".mhd", ".png", ".jpg", ".jpeg", ".tif", ".tiff",
                   ".dcm", ".dicom"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def collect_cases(inputs: list[str], ndim: int) -> list[Path]:
    """Each INPUT file is a case; a folder is one case for 3-D tasks (a DICOM series) or a folder of 2-D cases."""
    cases: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir() and ndim == 2:
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                           and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InputError(p, "is a folder with no image files in it (PNG, JPEG, TIFF, DICOM, NRRD, NIfTI, MHA)")
            cases.extend(files)
        else:
            cases.append(p)
    return cases


def unique_names(paths: list[Path], out: Path | None = None, inputs=()) -> list[str]:
    """One case folder name per path: the file name without its extension, made safe (stays inside --out) and
    unique ignoring case; see `uqseg.io.outdir.unique_case_names`."""
    from uqseg.io.outdir import unique_case_names

    return unique_case_names([case_name(p) for p in paths], out, inputs)


QUEUE_COLUMNS = ["case", "image_uncertainty", "multimodal", "ood", "status"]


def write_queue(out: Path, summaries: list[dict], keep_existing: bool = False, newest: dict | None = None) -> Path:
    """Write out/queue.csv (atomically): one row per case, most uncertain first.

    keep_existing (call it under `uqseg.io.outdir.folder_lock`): merge with the existing queue.csv, keeping its rows
    whose case folder has summary.json; for a case in both, the file's row wins (whoever last moved a case folder
    into place also wrote its row, e.g. a concurrent run that replaced it), except for `newest`, the case just
    moved into place by this run. Cases of `summaries` missing from the file are added."""
    import csv

    from uqseg.io.write import write_csv

    def row(s):
        return [s["case"], "" if s.get("image_uncertainty") is None else round(s["image_uncertainty"], 4),
                int(bool(s.get("multimodal"))), int(bool(s.get("ood"))), s.get("status", "ok")]

    rows = {s["case"]: row(s) for s in summaries}
    if keep_existing and (out / "queue.csv").is_file():
        try:
            with open(out / "queue.csv", newline="", encoding="utf-8") as fh:
                old = list(csv.reader(fh))
        except (OSError, UnicodeDecodeError):
            old = []
        if old and old[0] == QUEUE_COLUMNS:
            for r in old[1:]:
                if len(r) == len(QUEUE_COLUMNS) and r[0].strip(".") and not set(r[0]) & set("/\\:") \
                        and (out / r[0] / "summary.json").is_file():
                    rows[r[0]] = r
    if newest is not None:
        rows[newest["case"]] = row(newest)

    def key(r):
        try:
            u = float(r[1])
        except (TypeError, ValueError):
            u = float("nan")
        return (u != u, 0.0 if u != u else -u)  # no value (or NaN) last

    return write_csv(out / "queue.csv", QUEUE_COLUMNS, sorted(rows.values(), key=key))


def case_summary(name: str, path, summary: dict, card, device, image, timings_ms: dict) -> dict:
    """summary.json of a case: the task's summary with the case, input, model, device, timings (ms) and the input's
    geometry (what `run_cases` writes; `uqseg batch --per-case-files` writes the same)."""
    return {
        "case": name,
        "input": str(path),
        **summary,
        "model": {"id": card.id, "version": card.version, "source": card.source, "folder": str(card.folder),
                  "sha256": card.sha256},
        "device": str(device),
        "timings_ms": timings_ms,
        "input_geometry": {"shape": list(image.shape), "spacing_mm": list(image.spacing),
                           "spacing_source": image.meta.get("spacing_source"),
                           "modality": image.meta.get("modality"), "view": image.meta.get("view"),
                           "laterality": image.meta.get("laterality")},
    }


@dataclass
class RunReport:
    """What a run did: the summaries of the cases that worked (in input order) and one line per problem."""

    summaries: list = field(default_factory=list)
    errors: list = field(default_factory=list)


def run_cases(task_id: str, inputs: list, out: Path, *, model_id=None, device="auto", samples=None, seed=0,
              fast=False, on_progress: Callable[[float, str], None] | None = None,
              on_case: Callable[[dict, Path], None] | None = None,
              on_error: Callable[[str], None] | None = None, dicom: bool = False, from_pacs: str | None = None,
              study: str | None = None, to_pacs: str | None = None, pacs_timeout: float | None = None) -> RunReport:
    """Run task `task_id` on every case of `inputs` (files, or folders: see `collect_cases`) into `out`.

    The output folder is checked first (`uqseg.io.outdir.OutputError`, before any work; `ModelError` when the model
    cannot be found or loaded). Each case is written into this run's hidden staging folder in `out` and moved to
    out/<case> in one rename once its summary.json is written, so out/<case> is complete or absent; queue.csv is
    rewritten after every finished case (when the run has several cases or out already has one). A case that fails
    (a refused input, a file that cannot be written) is dropped whole with one error line and the others go on.
    Callbacks: `on_progress(fraction 0..1, message)` before each case and at the end; `on_case(summary, case_dir)`
    after each finished case; `on_error(line)` for each problem line (also collected in the report).
    `uqseg.interrupts.Interrupted` propagates when the run is interrupted (the finished cases stay complete).

    DICOM out (`uqseg.dicom_out`): `dicom` also writes each case's DICOM objects into its staging folder before its
    summary (`write_dicom_objects`), so they are in out/<case> or the case is absent; a case not read from DICOM is
    refused. `from_pacs` ("AE@host:port") with `study` (Study Instance UID) fetches its image series (C-GET) into a
    temporary folder (removed at the end) and runs on its images instead of `inputs`; `to_pacs` C-STOREs each
    finished case's DICOM objects (implies `dicom`); a store failure is one problem line listing what arrived.
    `pacs_timeout` (s, default `uqseg.dicom_out.pacs.DEFAULT_TIMEOUT_S`). An unusable peer raises `PacsError`.
    """
    dicom = bool(dicom or to_pacs)
    fetched, labels = None, {}
    if from_pacs:
        import tempfile

        from uqseg.dicom_out.pacs import DEFAULT_TIMEOUT_S, fetch_study, parse_peer

        if not study:
            raise ValueError("--from-pacs needs --study <Study Instance UID>")
        parse_peer(from_pacs)
        if to_pacs:
            parse_peer(to_pacs)
        from uqseg.io.outdir import check_output_folder

        check_output_folder(out, inputs)  # before the fetch: an unusable --out fails first
        fetched = Path(tempfile.mkdtemp(prefix="uqseg-pacs-"))
        try:
            series = fetch_study(from_pacs, study, fetched, pacs_timeout or DEFAULT_TIMEOUT_S)
        except BaseException:
            import shutil

            shutil.rmtree(fetched, ignore_errors=True)
            raise
        ndim = task_info(task_id).ndim
        inputs = [str(s) for s in series] if ndim == 3 else [str(f) for s in series for f in sorted(s.iterdir())]
        # summary.json's "input" names what was fetched (the temporary folder is gone after the run)
        labels = {p: f"{from_pacs} study {study} " + (f"series {Path(p).name}" if ndim == 3 else
                                                       f"instance {Path(p).stem}") for p in inputs}
    try:
        return _run_cases(task_id, inputs, out, model_id=model_id, device=device, samples=samples, seed=seed,
                          fast=fast, on_progress=on_progress, on_case=on_case, on_error=on_error, dicom=dicom,
                          to_pacs=to_pacs, pacs_timeout=pacs_timeout, labels=labels)
    finally:
        if fetched is not None:
            import shutil

            shutil.rmtree(fetched, ignore_errors=True)


def _run_cases(task_id, inputs, out, *, model_id, device, samples, seed, fast, on_progress, on_case, on_error, dicom,
               to_pacs, pacs_timeout, labels) -> RunReport:
    from uqseg import interrupts
    from uqseg.io.outdir import (CaseStaging, OutputError, check_output_folder, describe_write_failure, folder_lock,
                                 os_error_reason, remove_stale_staging)

    out = check_output_folder(out, inputs)
    remove_stale_staging(out)
    import numpy as np
    import torch

    from uqseg.device import resolve_device
    from uqseg.io.load import load_image
    from uqseg.io.write import write_json
    from uqseg.models.registry import find_model
    from uqseg.resources import check_case

    task = get_task(task_id)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    np.random.seed(seed)
    card = find_model(task_id, model_id)
    t0 = time.perf_counter()
    model = task.load(card, dev)
    load_model_ms = (time.perf_counter() - t0) * 1000
    options = RunOptions(card=card, device=dev, samples=samples, seed=seed, fast=fast)
    progress = on_progress or (lambda fraction, message: None)
    report = RunReport()
    summaries, errors = report.summaries, report.errors

    def problem(line: str) -> None:
        errors.append(line)
        if on_error is not None:
            on_error(line)

    paths = []
    for raw in inputs:
        try:
            paths += collect_cases([raw], task.ndim)
        except InputError as e:
            problem(f"error: {e}")
    names = unique_names(paths, out, inputs)
    staging = CaseStaging(out).open()
    current = None
    queue_ok = False
    try:
        for i, (path, name) in enumerate(zip(paths, names)):
            interrupts.check()
            current, stage = name, "read"
            progress(i / max(1, len(paths)), f"{name}")
            try:
                case_dir = staging.case_dir(name)
                t0 = time.perf_counter()
                image = load_image(path, ndim=task.ndim)
                if dicom:
                    from uqseg.dicom_out.source import refuse_unless_dicom

                    refuse_unless_dicom(image)  # before any work: no invented patient or study
                t1 = time.perf_counter()
                check_case(task_id, image, card, samples, fast)  # working memory, --samples cap (uqseg.resources)
                stage = "write"
                summary = run_case(task, image, model, case_dir, options)
                if dicom:
                    from uqseg.dicom_out.producer import Producer
                    from uqseg.dicom_out.source import source_of
                    from uqseg.dicom_out.write_case import write_dicom_objects

                    summary.setdefault("files", {})["dicom"] = write_dicom_objects(
                        task_id, case_dir, source_of(image), Producer.for_card(card))
                t2 = time.perf_counter()
                summary = case_summary(name, labels.get(str(path), str(path)), summary, card, dev, image, {
                    "load_model": round(load_model_ms, 1), "load_input": round((t1 - t0) * 1000, 1),
                    "predict_and_write": round((t2 - t1) * 1000, 1)})
                write_json(case_dir / "summary.json", summary)

                def update_queue(s=summary):
                    nonlocal queue_ok
                    queue_ok = False
                    write_queue(out, summaries, keep_existing=True, newest=s)
                    queue_ok = True

                with interrupts.deferred():  # moved into place and counted, or neither
                    notes = staging.commit(name, update_queue if len(paths) > 1 or (out / "queue.csv").is_file()
                                           else None)
                    summaries.append(summary)
            except (InputError, OutputError, OSError) as e:
                staging.discard(name)
                if isinstance(e, (InputError, OutputError)):
                    problem(f"error: {e}")
                elif stage == "read":
                    problem(f"error: {path}: cannot be read ({os_error_reason(e)})")
                else:
                    problem(describe_write_failure(out, name, path, e))
                continue
            except BaseException:
                staging.discard(name)
                raise
            current = None
            for note in notes:
                problem(note)
            if to_pacs:
                from uqseg.dicom_out.pacs import DEFAULT_TIMEOUT_S, PacsError, store_files

                try:
                    store_files(to_pacs, [out / name / f for f in summary["files"]["dicom"].values()],
                                pacs_timeout or DEFAULT_TIMEOUT_S)
                except PacsError as e:
                    problem(f"error: {e} (case {name})")
            if on_case is not None:
                on_case(summary, out / name)
        interrupts.check()
        if len(paths) > 1 and not queue_ok:
            try:
                with interrupts.deferred(), folder_lock(out):
                    write_queue(out, summaries, keep_existing=True)
            except OSError as e:
                problem(f"error: {out / 'queue.csv'}: cannot be written ({os_error_reason(e)})")
            interrupts.check()
    except interrupts.Interrupted as e:
        e.detail = (f"{len(summaries)} of {len(paths)} cases finished and are complete in {out}"
                    + (f"; the unfinished case {current} was discarded" if current else ""))
        raise
    finally:
        staging.close()
    progress(1.0, "done")
    return report
