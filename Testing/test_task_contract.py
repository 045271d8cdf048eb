"""The task contract (`uqseg/tasks/base.py`), the torch-free task table and the batch driver (`uqseg/tasks/run.py`).

Checked: every task of the table implements the contract with the table's id / ndim / description; the table, the
task package and the CLI's parser import no torch (the Slicer module lists the tasks in its own process); the batch
driver reports progress, per-case errors and finished cases through its callbacks and writes queue.csv, on a real
model and real images; no engine module imports the CLI, and no task module imports another task.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "UQSegmentation" / "uqseg"


def test_every_task_implements_the_contract_as_the_table_says():
    from uqseg.tasks import TASK_TABLE, TASKS, get_task, task_info

    assert [info.id for info in TASK_TABLE] == list(TASKS)
    for info in TASK_TABLE:
        task = get_task(info.id)
        assert task is TASKS[info.id]  # one object per process
        assert (task.id, task.ndim, task.description) == (info.id, info.ndim, info.description)
        for method in ("load", "predict", "write", "summarise"):
            assert callable(getattr(task, method)), f"{info.id} lacks {method}"
    with pytest.raises(KeyError, match="known: mammo-pectoral"):
        task_info("no-such-task")


def test_the_task_list_and_the_driver_import_no_torch():
    code = ("import sys; import uqseg.tasks, uqseg.tasks.run, uqseg.cli; "
            "print(sorted(uqseg.tasks.TASKS)); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    tasks, torch_loaded = out.stdout.strip().splitlines()
    assert "ct-organs" in tasks and torch_loaded == "False"


def test_batch_driver_reports_progress_cases_and_errors(tmp_path):
    """One real MLO sample and one constant image (refused by the input checks): the good case is written and
    reported, the bad one is one error line naming its file, progress runs from 0 to 1, queue.csv lists the case."""
    from uqseg.tasks.run import run_cases

    sample = REPO / "Resources" / "SampleData" / "mammo-mlo" / "mlo.dcm"
    constant = tmp_path / "inputs" / "flat.png"
    constant.parent.mkdir()
    PILImage.fromarray(np.full((300, 200), 128, np.uint8)).save(constant)
    progress, cases, errors = [], [], []
    report = run_cases("mammo-pectoral", [str(sample), str(constant)], tmp_path / "out", device="cpu",
                       on_progress=lambda f, m: progress.append((f, m)),
                       on_case=lambda summary, case_dir: cases.append((summary["case"], case_dir)),
                       on_error=errors.append)
    assert [s["case"] for s in report.summaries] == ["mlo"] and cases == [("mlo", tmp_path / "out" / "mlo")]
    assert (tmp_path / "out" / "mlo" / "summary.json").is_file() and not (tmp_path / "out" / "flat").exists()
    assert report.errors == errors and len(errors) == 1 and str(constant) in errors[0]
    assert errors[0].startswith("error: ") and "contrast" in errors[0]
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    queue = (tmp_path / "out" / "queue.csv").read_text().splitlines()
    assert queue[0].startswith("case,") and [line.split(",")[0] for line in queue[1:]] == ["mlo"]


def _imports(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_import_cycles_between_front_ends_and_tasks():
    for path in ENGINE.rglob("*.py"):
        rel = path.relative_to(ENGINE).as_posix()
        names = _imports(path)
        if rel != "__main__.py":
            assert "uqseg.cli" not in names, f"{rel} imports the CLI (front ends use uqseg.tasks.run / uqseg.console)"
        if rel.startswith("tasks/") and rel not in ("tasks/__init__.py", "tasks/run.py"):
            others = {n for n in names if n.startswith("uqseg.tasks.") and n not in ("uqseg.tasks.base",
                                                                                      "uqseg.tasks.table")}
            assert others == set(), f"{rel} imports another task module: {others}"
