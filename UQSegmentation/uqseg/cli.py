"""The `uqseg` command.

    uqseg predict --task TASK INPUT [INPUT ...] --out DIR [--model ID] [--device auto|cpu|cuda|mps]
                  [--samples N] [--seed S] [--fast]
    uqseg demo [--out DIR] [--device D]          run the tasks on the real sample data installed with the project
    uqseg bench [--task T ...] [--device D] [--json]
    uqseg finetune --task TASK --corrections DIR --out MODELS_DIR [--model ID] [--epochs N] [--lr X]
                   [--batch B] [--device D] [--seed S]   fine-tune on corrected cases → MODELS_DIR/<id>-ft<N>/
    uqseg models                                  list the models on the search path

`predict` writes DIR/<case>/ (files per the task contract + summary.json), and DIR/queue.csv when more than one case
was processed. A bad input prints one line `error: <file>: <reason>` on stderr; the other inputs are still processed
and the exit status is 2. An unusable DIR (a file, on /proc or /sys, an input folder or inside one, not writable) is
refused with `error: <DIR>: <reason>` (exit 2) before any work. Each case is built in a hidden staging folder in DIR
and moved to DIR/<case> in one rename, so a case folder is complete or absent (after a full disk, SIGTERM, SIGINT,
kill -9 or a concurrent run into the same DIR); see uqseg/io/outdir.py and docs/hostile-inputs.md. SIGTERM/SIGINT
end the run with one line and exit status 128 + the signal number. Progress lines `PROGRESS <0..1> <message>` go
to stdout (the Slicer module reads them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from uqseg.errors import InputError
from uqseg.models.registry import ModelError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom", ".nrrd", ".nii", ".mha", ".mhd", ""}


def progress(fraction: float, message: str) -> None:
    print(f"PROGRESS {fraction:.3f} {message}", flush=True)


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


def predict(task_id: str, inputs: list[str], out: Path, model_id=None, device="auto", samples=None, seed=0,
            quiet=False, fast=False) -> tuple[list[dict], list[str]]:
    """Run one task on every case. Returns (summaries of the cases that worked, error lines).

    The output folder is checked first (`uqseg.io.outdir.OutputError`, before any work). Each case is written into
    this run's hidden staging folder in `out` and moved to out/<case> in one rename once its summary.json is
    written, so out/<case> is complete or absent; queue.csv is rewritten after every finished case. A case whose
    files cannot be written (disk full, ...) is dropped whole with one error line and the others go on."""
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
    from uqseg.tasks import TASKS

    task = TASKS[task_id]
    dev = resolve_device(device)
    torch.manual_seed(seed)
    np.random.seed(seed)
    card = find_model(task_id, model_id)
    t0 = time.perf_counter()
    model = task.load(card, dev)
    load_model_ms = (time.perf_counter() - t0) * 1000
    summaries, errors = [], []
    paths = []
    for raw in inputs:
        try:
            paths += collect_cases([raw], task.ndim)
        except InputError as e:
            errors.append(f"error: {e}")
            print(errors[-1], file=sys.stderr, flush=True)
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
                t1 = time.perf_counter()
                check_case(task_id, image, card, samples, fast)  # working memory, --samples cap (uqseg.resources)
                stage = "write"
                summary = task.run(image, model, case_dir,
                                   {"card": card, "device": dev, "samples": samples, "seed": seed, "fast": fast})
                t2 = time.perf_counter()
                summary = {
                    "case": name,
                    "input": str(path),
                    **summary,
                    "model": {"id": card.id, "version": card.version, "source": card.source, "folder": str(card.folder),
                              "sha256": card.sha256},
                    "device": str(dev),
                    "timings_ms": {"load_model": round(load_model_ms, 1), "load_input": round((t1 - t0) * 1000, 1),
                                   "predict_and_write": round((t2 - t1) * 1000, 1)},
                    "input_geometry": {"shape": list(image.shape), "spacing_mm": list(image.spacing),
                                       "spacing_source": image.meta.get("spacing_source"),
                                       "modality": image.meta.get("modality"), "view": image.meta.get("view"),
                                       "laterality": image.meta.get("laterality")},
                }
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
                    errors.append(f"error: {e}")
                elif stage == "read":
                    errors.append(f"error: {path}: cannot be read ({os_error_reason(e)})")
                else:
                    errors.append(describe_write_failure(out, name, path, e))
                print(errors[-1], file=sys.stderr, flush=True)
                continue
            except BaseException:
                staging.discard(name)
                raise
            current = None
            for note in notes:
                errors.append(note)
                print(note, file=sys.stderr, flush=True)
            if not quiet:
                u = summary.get("image_uncertainty")
                flags = [f for f in ("multimodal", "ood") if summary.get(f)]
                print(f"{name}: image_uncertainty={'n/a' if u is None else f'{u:.4g}'} "
                      f"flags={','.join(flags) or '-'} -> {out / name}", flush=True)
        interrupts.check()
        if len(paths) > 1 and not queue_ok:
            try:
                with interrupts.deferred(), folder_lock(out):
                    write_queue(out, summaries, keep_existing=True)
            except OSError as e:
                errors.append(f"error: {out / 'queue.csv'}: cannot be written ({os_error_reason(e)})")
                print(errors[-1], file=sys.stderr, flush=True)
            interrupts.check()
    except interrupts.Interrupted as e:
        e.detail = (f"{len(summaries)} of {len(paths)} cases finished and are complete in {out}"
                    + (f"; the unfinished case {current} was discarded" if current else ""))
        raise
    finally:
        staging.close()
    progress(1.0, "done")
    return summaries, errors


def cmd_predict(args) -> int:
    from uqseg.interrupts import Interrupted, handled
    from uqseg.io.outdir import OutputError

    try:
        with handled():
            summaries, errors = predict(args.task, args.inputs, Path(args.out), args.model, args.device,
                                        args.samples, args.seed, fast=args.fast)
    except OutputError as e:  # the output folder is unusable: nothing was done
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except Interrupted as e:  # SIGTERM/SIGINT/SIGHUP: finished cases are complete, the current one was discarded
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    return 2 if errors else 0


def cmd_models(args) -> int:
    from uqseg.models.registry import list_models

    for m in list_models():
        print(f"{m.task:16s} {m.id:28s} v{m.version:8s} {m.folder}  [{m.status}]")
    return 0


def cmd_demo(args) -> int:
    from uqseg.demo import run_demo

    return run_demo(Path(args.out), args.device)


def cmd_bench(args) -> int:
    from uqseg.bench import run_bench

    results = run_bench(args.task, args.device, repeats=args.repeats)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for task, r in results.items():
            print(task + ": " + ", ".join(f"{k}={v}" for k, v in r.items()))
    return 0


def cmd_finetune(args) -> int:
    from uqseg.finetune.errors import FinetuneError
    from uqseg.finetune.run import run_finetune

    try:
        out = run_finetune(args.task, args.corrections, args.out, model_id=args.model, epochs=args.epochs, lr=args.lr,
                           batch=args.batch, device=args.device, seed=args.seed, report=progress,
                           note=lambda m: print(m, flush=True))
    except (FinetuneError, InputError, OSError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    ft = out["card"]["fine_tuning"]
    print(f"{out['id']} (version {out['version']}): {len(ft['cases'])} cases, {len(ft['skipped'])} skipped, "
          f"loss {ft['loss_before']['loss']:.4f} -> {ft['loss_after']['loss']:.4f} -> {out['folder']}", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from uqseg.tasks import TASKS

    ap = argparse.ArgumentParser(prog="uqseg", description="Uncertainty-aware segmentation (UQSegmentation engine)")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="run a task on images and write results with their uncertainty")
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image file(s) or folder(s)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None, help="model id, or id@version (default: the task's default model; a user "
                   "model that reuses a shipped model's id only as id@version)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--samples", type=int, default=None, help="number of samples for sampling-based tasks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true",
                   help="one deterministic pass, no sampling-based uncertainty (sampling tasks, e.g. mammo-breast)")
    p.set_defaults(func=cmd_predict)
    d = sub.add_parser("demo", help="run every task on the real sample data installed with the project")
    d.add_argument("--out", default="demo-output")
    d.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    d.set_defaults(func=cmd_demo)
    b = sub.add_parser("bench", help="time single-pass vs uncertainty inference per task")
    b.add_argument("--task", action="append", choices=sorted(TASKS), help="task(s) to time (default: all)")
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)
    from uqseg.finetune.run import DEFAULT_BATCH, DEFAULT_EPOCHS, RECIPES

    f = sub.add_parser("finetune", help="fine-tune a model on a folder of corrected cases (writes a new model)")
    f.add_argument("--task", required=True, choices=sorted(RECIPES))
    f.add_argument("--corrections", required=True, help="corrections folder (as written by the correction tools)")
    f.add_argument("--out", required=True, help="models folder to write <id>-ft<N>/ into (use it as UQSEG_MODELS)")
    f.add_argument("--model", default=None, help="model id to start from (default: the task's default model)")
    f.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    f.add_argument("--lr", type=float, default=None,
                   help="learning rate (default per task: pectoral 1e-4, cxr and breast 3e-5)")
    f.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    f.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(func=cmd_finetune)
    m = sub.add_parser("models", help="list the models on the search path")
    m.set_defaults(func=cmd_models)
    return ap


def main(argv=None) -> int:
    import warnings

    args = build_parser().parse_args(argv)
    # stderr holds one line per refused input and nothing else: library warnings (numpy's RuntimeWarning, pydicom's
    # UserWarning for a file cut short, Pillow's DecompressionBombWarning, ...) are dropped — the loaders refuse such
    # inputs with their own line and uqseg.io.input_checks reports NaN pixels in summary.json — unless asked for with
    # python -W or PYTHONWARNINGS. ITK's own warning printer (it writes to stderr directly) is switched off too.
    with warnings.catch_warnings():
        if not sys.warnoptions:
            warnings.simplefilter("ignore")
            if args.command != "models":
                import SimpleITK

                SimpleITK.ProcessObject.SetGlobalWarningDisplay(False)
        try:
            return args.func(args)
        except (ModelError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
