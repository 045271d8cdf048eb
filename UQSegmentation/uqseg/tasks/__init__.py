"""The tasks `uqseg predict` knows: the contract in `base.py`, the list in `table.py`, the batch driver in `run.py`.

- `TASK_TABLE` / `task_info(id)`: which tasks exist (plain data; importing this package does not import torch);
- `get_task(id)`: the task object (imports its module, and so torch, on first use);
- `TASKS`: the same as a read-only mapping id → task object, loaded lazily;
- `RunOptions`, `CaseResult`, `Task`, `run_case`: the contract (`base.py`).

Adding a task = a module with a class implementing `base.Task` + one row in `table.TASK_TABLE`; the CLI, the batch
driver and the Slicer module pick it up.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from uqseg.tasks.base import CaseResult, RunOptions, Task, run_case
from uqseg.tasks.table import TASK_TABLE, TaskInfo, task_info

_LOADED: dict = {}


def get_task(task_id: str) -> Task:
    """The task object for `task_id` (one per process); KeyError naming the known tasks for an unknown id."""
    if task_id not in _LOADED:
        module_name, class_name = task_info(task_id).implementation.split(":")
        _LOADED[task_id] = getattr(importlib.import_module(module_name), class_name)()
    return _LOADED[task_id]


class _LazyTasks(Mapping):
    """id → task object, in table order; a task's module is imported when it is first looked up."""

    def __getitem__(self, task_id: str) -> Task:
        return get_task(task_id)

    def __iter__(self):
        return iter(info.id for info in TASK_TABLE)

    def __len__(self) -> int:
        return len(TASK_TABLE)


TASKS = _LazyTasks()

__all__ = ["TASKS", "TASK_TABLE", "CaseResult", "RunOptions", "Task", "TaskInfo", "get_task", "run_case",
           "task_info"]
