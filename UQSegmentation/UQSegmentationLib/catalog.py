"""Which tasks the engine offers (`uqseg.tasks.TASKS`), read without importing torch into Slicer.

The GUI lists the tasks of the engine's registry, so a task added there appears in Slicer without GUI changes.
Importing `uqseg.tasks` imports the networks and therefore torch, which Slicer's own process does not otherwise
need (the models run in a child process) and which may not even be installed before the first Apply. So the
registry is read from the source: `uqseg/tasks/__init__.py` names the task classes in ``TASKS = {t.id: t for t in
(ClassA(), ClassB())}`` and imports each from its module; each class states `id`, `description` and `ndim` as
literals. When that reading fails (the registry was written another way) the registry is imported after all.
A test checks that both ways give the same list.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ENGINE_DIR = Path(__file__).resolve().parent.parent / "uqseg"


@dataclass(frozen=True)
class TaskInfo:
    id: str
    description: str
    ndim: int


def _class_literals(module_file: Path, class_name: str) -> Optional[TaskInfo]:
    tree = ast.parse(module_file.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            values = {}
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                    try:
                        values[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                    except ValueError:
                        pass
            if {"id", "ndim"} <= values.keys():
                return TaskInfo(str(values["id"]), str(values.get("description", "")), int(values["ndim"]))
    return None


def read_registry(engine_dir: Path = ENGINE_DIR) -> list[TaskInfo]:
    """Tasks in registry order, read from the engine's source. Raises ValueError when the source is not as expected."""
    init = engine_dir / "tasks" / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    imported = {}  # class name -> module file
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("uqseg.tasks."):
            module_file = engine_dir.joinpath(*node.module.split(".")[1:]).with_suffix(".py")
            for alias in node.names:
                imported[alias.asname or alias.name] = module_file
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "TASKS" for t in targets):
                calls = [c for c in ast.walk(node.value) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)]
                names = [c.func.id for c in calls if c.func.id in imported]
                tasks = [_class_literals(imported[n], n) for n in names]
                if names and all(tasks):
                    return tasks
    raise ValueError(f"{init}: TASKS is not a literal list of imported task classes")


def task_catalog(engine_dir: Path = ENGINE_DIR) -> list[TaskInfo]:
    """The engine's tasks: from the source when possible, else by importing `uqseg.tasks` (needs torch)."""
    try:
        return read_registry(engine_dir)
    except (OSError, SyntaxError, ValueError):
        from uqseg.tasks import TASKS

        return [TaskInfo(t.id, getattr(t, "description", ""), int(t.ndim)) for t in TASKS.values()]
