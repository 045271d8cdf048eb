"""Load the results of one case (a folder written by `uqseg predict`) into the scene, whatever the task.

`load_results(scene, case_dir, input_volume_node=None)` reads ``summary.json``, looks its ``task`` up in
`TASK_LOADERS` (task id → loader) and lets that loader build the nodes. A new task plugs in by registering a loader
(`register_task_loader`), without any GUI change. A loader is called as

    loader(scene, case_dir, summary, input_volume_node, folder_item) -> dict role → node

and puts each node it creates into the result folder (see `hierarchy.NodeCollector`).

Around the loader: the previous result for the same task and input is removed first (re-running replaces, never
duplicates); a new subject-hierarchy folder "<input name> — <task>" is created under the input's study; the input
volume becomes the background of the slice views; if the loader fails, the folder and everything in it are
removed and the error propagates (nothing is left half-loaded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import hierarchy
from .display.band import load_pectoral_results
from .display.node_colormap import load_cxr_results
from .display.variance import load_breast_results, load_ct_results
from .display.views import set_slice_layers
from .flags import shown_flags

Loader = Callable[..., dict]

#: task id → loader. Extend with `register_task_loader`.
TASK_LOADERS: dict[str, Loader] = {
    "mammo-pectoral": load_pectoral_results,
    "mammo-breast": load_breast_results,
    "cxr-landmarks": load_cxr_results,
    "ct-organs": load_ct_results,
}


def register_task_loader(task_id: str, loader: Loader) -> None:
    """Register (or replace) the loader of a task id."""
    if not callable(loader):
        raise TypeError("loader must be callable")
    TASK_LOADERS[str(task_id)] = loader


def supported_tasks() -> list[str]:
    return sorted(TASK_LOADERS)


@dataclass
class ResultNodes:
    """What `load_results` built for one case."""

    task: str
    case_dir: Path
    summary: dict
    folder_item: int
    scene: Any = None
    input_volume: Any = None
    nodes: dict = field(default_factory=dict)

    @property
    def case(self) -> str:
        return self.summary.get("case") or self.case_dir.name

    @property
    def image_uncertainty(self) -> float | None:
        value = self.summary.get("image_uncertainty")
        return float(value) if value is not None else None

    @property
    def flags(self) -> list[str]:
        return shown_flags(self.summary)

    @property
    def overlay(self):
        return self.nodes.get("overlay")

    def all_nodes(self) -> list:
        """Every data node in the result folder (display nodes such as legends excluded)."""
        return hierarchy.folder_data_nodes(self.scene, self.folder_item)


def read_summary(case_dir) -> dict:
    case_dir = Path(case_dir)
    path = case_dir / "summary.json"
    if not path.is_file():
        raise ValueError(f"{case_dir}: not a result folder (no summary.json)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: unreadable summary ({error})") from None
    if not isinstance(summary, dict) or not summary.get("task"):
        raise ValueError(f"{path}: no 'task' in the summary")
    return summary


def load_results(scene, case_dir, input_volume_node=None) -> ResultNodes:
    """Load a case folder's results into `scene`, replacing earlier results of the same task and input."""
    case_dir = Path(case_dir)
    summary = read_summary(case_dir)
    task = summary["task"]
    loader = TASK_LOADERS.get(task)
    if loader is None:
        raise ValueError(f"{case_dir}: task {task!r} has no loader; known tasks: {', '.join(supported_tasks())}")
    case = summary.get("case") or case_dir.name
    summary.setdefault("case", case)

    previous = hierarchy.find_results(scene, task, input_volume_node, case)
    if previous:
        hierarchy.remove_results(scene, previous)
    folder = hierarchy.create_results_folder(scene, task, input_volume_node, case, str(case_dir))
    try:
        nodes = loader(scene, case_dir, summary, input_volume_node, folder)
    except BaseException:
        hierarchy.remove_results(scene, folder)
        raise
    if input_volume_node is not None:
        set_slice_layers(scene, background=input_volume_node)
    return ResultNodes(task=task, case_dir=case_dir, summary=summary, folder_item=folder, scene=scene,
                       input_volume=input_volume_node, nodes=nodes)
