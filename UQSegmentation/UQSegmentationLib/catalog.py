"""Which tasks the engine offers, read without importing torch into Slicer.

The GUI lists the engine's tasks, so a task added to the engine appears in Slicer without GUI changes. The list is
the engine's torch-free task table (`uqseg/tasks/table.py`: id, input dimension, description, implementation),
loaded here from the engine folder next to the module (the models themselves run in a child process, and torch may
not even be installed before the first Apply).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

ENGINE_DIR = Path(__file__).resolve().parent.parent / "uqseg"


@dataclass(frozen=True)
class TaskInfo:
    id: str
    description: str
    ndim: int


def task_catalog(engine_dir: Path = ENGINE_DIR) -> list[TaskInfo]:
    """The tasks of `engine_dir/tasks/table.py`, in table order (that file imports nothing of the engine)."""
    table_file = Path(engine_dir) / "tasks" / "table.py"
    spec = importlib.util.spec_from_file_location("_uqseg_task_table", table_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module while the class is created
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return [TaskInfo(info.id, info.description, int(info.ndim)) for info in module.TASK_TABLE]
