"""The `uqseg` command.

    uqseg predict --task TASK INPUT [INPUT ...] --out DIR [--model ID] [--device auto|cpu|cuda|mps]
                  [--samples N] [--seed S] [--fast]
    uqseg demo [--out DIR] [--device D]          run the tasks on the real sample data installed with the project
    uqseg bench [--task T ...] [--device D] [--json]
    uqseg finetune --task TASK --corrections DIR --out MODELS_DIR [--model ID] [--epochs N] [--lr X]
                   [--batch B] [--device D] [--seed S]   fine-tune on corrected cases → MODELS_DIR/<id>-ft<N>/
    uqseg models                                  list the models on the search path
    uqseg review DIR [--port P] [--host 127.0.0.1]   review results in a web browser (uqseg/review.py; `web` extra)
    uqseg review --task TASK IMAGES... --out DIR [...]  run the task first, then review
    uqseg export-dicom CASE_DIR SOURCE            a finished case's DICOM objects over its source DICOM
    uqseg batch --task TASK INPUT --out DIR [--address ADDR] [--workers N] [--device D] [--per-case-files]
                                                  a data set on Ray into Parquet tables, resumable (uqseg.batch)

`predict` (the batch driver `uqseg.tasks.run.run_cases`, contract in docs/cli-contract.md) writes DIR/<case>/
(files per the task contract + summary.json), and DIR/queue.csv when more than one case
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
from pathlib import Path

from uqseg.console import predict, progress
from uqseg.errors import InputError
from uqseg.models.registry import ModelError

__all__ = ["build_parser", "main", "predict", "progress"]


def cmd_predict(args) -> int:
    from uqseg.interrupts import Interrupted, handled
    from uqseg.dicom_out.pacs import PacsError
    from uqseg.io.outdir import OutputError

    try:
        with handled():
            summaries, errors = predict(args.task, args.inputs, Path(args.out), args.model, args.device,
                                        args.samples, args.seed, fast=args.fast, dicom=args.dicom,
                                        from_pacs=args.from_pacs, study=args.study, to_pacs=args.to_pacs,
                                        pacs_timeout=args.pacs_timeout)
    except (OutputError, PacsError) as e:  # the output folder or the PACS is unusable: nothing was done
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except Interrupted as e:  # SIGTERM/SIGINT/SIGHUP: finished cases are complete, the current one was discarded
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    return 2 if errors else 0


def cmd_export_dicom(args) -> int:
    from uqseg.dicom_out.write_case import export_case

    try:
        files = export_case(Path(args.case), Path(args.source))
    except (InputError, OSError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    print(" ".join(str(Path(args.case) / f) for f in files.values()), flush=True)
    return 0


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


def cmd_review(args) -> int:
    from uqseg.review import run_review

    return run_review(args)


def build_parser() -> argparse.ArgumentParser:
    from uqseg.tasks import TASK_TABLE

    task_ids = sorted(info.id for info in TASK_TABLE)
    ap = argparse.ArgumentParser(prog="uqseg", description="Uncertainty-aware segmentation (UQSegmentation engine)")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="run a task on images and write results with their uncertainty")
    p.add_argument("--task", required=True, choices=task_ids)
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image file(s) or folder(s)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None, help="model id, or id@version (default: the task's default model; a user "
                   "model that reuses a shipped model's id only as id@version)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--samples", type=int, default=None, help="number of samples for sampling-based tasks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true",
                   help="one deterministic pass, no sampling-based uncertainty (sampling tasks, e.g. mammo-breast)")
    p.add_argument("--dicom", action="store_true", help="also write DICOM SEG, Parametric Map (and SR) per case "
                   "(DICOM inputs only)")
    p.add_argument("--from-pacs", metavar="AE@HOST:PORT", default=None, help="fetch the --study from this DICOM peer "
                   "(C-GET) and run on its images instead of INPUT")
    p.add_argument("--study", metavar="UID", default=None, help="Study Instance UID to fetch with --from-pacs")
    p.add_argument("--to-pacs", metavar="AE@HOST:PORT", default=None, help="C-STORE each case's DICOM objects to this "
                   "peer (implies --dicom)")
    p.add_argument("--pacs-timeout", type=float, default=None, metavar="S", help="seconds to wait for a DICOM peer "
                   "(default 30)")
    p.set_defaults(func=cmd_predict)
    x = sub.add_parser("export-dicom", help="write a finished case's DICOM objects over the DICOM it was predicted "
                       "from (file or series folder)")
    x.add_argument("case", help="case folder of uqseg predict")
    x.add_argument("source", help="the source DICOM file or series folder")
    x.set_defaults(func=cmd_export_dicom)
    d = sub.add_parser("demo", help="run every task on the real sample data installed with the project")
    d.add_argument("--out", default="demo-output")
    d.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    d.set_defaults(func=cmd_demo)
    b = sub.add_parser("bench", help="time single-pass vs uncertainty inference per task")
    b.add_argument("--task", action="append", choices=task_ids, help="task(s) to time (default: all)")
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
    from uqseg.batch.command import add_parser as add_batch_parser

    add_batch_parser(sub, task_ids)
    m = sub.add_parser("models", help="list the models on the search path")
    m.set_defaults(func=cmd_models)
    r = sub.add_parser("review", help="review results in a web browser (loopback by default; needs the web extra)")
    r.add_argument("inputs", nargs="+", metavar="DIR_OR_IMAGE", help="a uqseg predict output folder, or with --task "
                   "the images to run the task on first")
    r.add_argument("--task", choices=task_ids, default=None, help="run this task on the images first (into --out)")
    r.add_argument("--out", default=None, help="with --task: the output folder to write and then review")
    r.add_argument("--model", default=None)
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    r.add_argument("--samples", type=int, default=None)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--fast", action="store_true")
    r.add_argument("--port", type=int, default=8080)
    r.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    r.add_argument("--allow-remote", action="store_true", help="needed for a --host other than loopback: the page "
                   "has no login and writes corrections into the folder")
    r.add_argument("--who", default=None, help="the name shown to other reviewers for a browser session that gives no "
                   "?who=NAME (numbered: NAME #1, NAME #2, ...)")
    r.add_argument("--idle-minutes", type=float, default=30.0, help="stop a browser session's own process after "
                   "this long without an open page (default 30)")
    r.add_argument("--max-sessions", type=int, default=8, help="at most this many browser sessions, each a process "
                   "of its own, at once (default 8)")
    r.set_defaults(func=cmd_review)
    return ap


def main(argv=None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "predict" and bool(args.inputs) == bool(args.from_pacs):
        parser.error("predict: give INPUT or --from-pacs with --study (not both)")
    if args.command == "predict" and args.study and not args.from_pacs:
        parser.error("predict: --study is for --from-pacs")
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
