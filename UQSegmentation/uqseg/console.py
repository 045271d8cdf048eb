"""`uqseg predict` on a terminal: the batch driver with the CLI's output (used by the `uqseg` command and the demo).

Output protocol (the Slicer module reads stdout): ``PROGRESS <fraction 0..1> <message>`` lines, one line per
finished case (``<case>: image_uncertainty=... flags=... -> <folder>``) on stdout; one line per problem on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path


def progress(fraction: float, message: str) -> None:
    print(f"PROGRESS {fraction:.3f} {message}", flush=True)


def predict(task_id: str, inputs: list[str], out: Path, model_id=None, device="auto", samples=None, seed=0,
            quiet=False, fast=False, **dicom_options) -> tuple[list[dict], list[str]]:
    """`uqseg predict` in this process: `uqseg.tasks.run.run_cases` with the CLI's output — PROGRESS lines and one
    line per finished case on stdout (unless `quiet`), problem lines on stderr. Returns (summaries, error lines).
    `dicom_options`: run_cases' dicom, from_pacs, study, to_pacs, pacs_timeout."""
    from uqseg.io.input_checks import shown_flags
    from uqseg.tasks.run import run_cases

    def case_line(summary: dict, case_dir: Path) -> None:
        if not quiet:
            u = summary.get("image_uncertainty")
            flags = shown_flags(summary)
            print(f"{summary['case']}: image_uncertainty={'n/a' if u is None else f'{u:.4g}'} "
                  f"flags={','.join(flags) or '-'} -> {case_dir}", flush=True)

    report = run_cases(task_id, inputs, out, model_id=model_id, device=device, samples=samples, seed=seed, fast=fast,
                       on_progress=progress, on_case=case_line,
                       on_error=lambda line: print(line, file=sys.stderr, flush=True), **dicom_options)
    return report.summaries, report.errors
