"""Review status of the uncertain regions of a case, kept in the module's parameter node (saved with the scene).

The parameter node is Slicer's `vtkMRMLScriptedModuleNode` singleton of the module (what
`ScriptedLoadableModuleLogic.getParameterNode()` returns, tagged "UQSegmentation"; the GUI's parameterNodeWrapper
wraps the same node). One parameter per reviewed case,

    "UQSegmentation.Review:<task>/<case>"  →  JSON {"format": 1, "status": {"<region id>": "accepted", ...},
                                                   "current": <region id or null>, "threshold": <value>,
                                                   "regions": <number of regions>}

Parameters are written to the .mrml file (the node's `parameters` attribute), so statuses survive saving and
re-opening the scene (Testing/test_lib_review.py round-trips a scene through its XML). Region ids are the ranks of
`uqseg.correction.regions` (1 = most uncertain), stable for the same result and threshold; when a case is reviewed
again with another threshold the regions differ, and `ReviewState.reset_if_changed` starts over.
Statuses: "unreviewed" (default, never stored), "accepted", "corrected" (`uqseg.correction.save.STATUSES`).
"""

from __future__ import annotations

import json

MODULE_NAME = "UQSegmentation"
PREFIX = "UQSegmentation.Review:"
STATUSES = ("unreviewed", "accepted", "corrected")
UNREVIEWED = STATUSES[0]


def find_or_create_parameter_node(scene, module_name: str = MODULE_NAME):
    """The module's parameter node (the `vtkMRMLScriptedModuleNode` singleton tagged `module_name`), created as
    Slicer's ScriptedLoadableModuleLogic creates it when the scene has none."""
    import slicer

    node = scene.GetSingletonNode(module_name, "vtkMRMLScriptedModuleNode")
    if node is not None:
        return node
    node = slicer.vtkMRMLScriptedModuleNode()
    node.SetSingletonTag(module_name)
    node.SetModuleName(module_name)
    node.SetName(scene.GenerateUniqueName(module_name))
    return scene.AddNode(node)


def case_key(task: str, case: str) -> str:
    return f"{task}/{case}"


class ReviewState:
    """Statuses and the current region of one case, read from and written to the parameter node at every change."""

    def __init__(self, parameter_node, key: str) -> None:
        self.node = parameter_node
        self.key = key

    @property
    def parameter(self) -> str:
        return PREFIX + self.key

    # -------------------------------------------------------------------------------------------- storage
    def _load(self) -> dict:
        text = self.node.GetParameter(self.parameter) or ""
        if not text:
            return {"format": 1, "status": {}, "current": None, "threshold": None, "regions": None}
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError(f"parameter {self.parameter!r} of {self.node.GetName()} is not JSON: {text[:80]!r}")
        data.setdefault("status", {})
        data.setdefault("current", None)
        return data

    def _save(self, data: dict) -> None:
        self.node.SetParameter(self.parameter, json.dumps(data, sort_keys=True))

    # -------------------------------------------------------------------------------------------- status
    def status(self, region_id: int) -> str:
        return self._load()["status"].get(str(int(region_id)), UNREVIEWED)

    def statuses(self) -> dict[int, str]:
        """{region id: status} of the regions with a status other than "unreviewed"."""
        return {int(k): v for k, v in self._load()["status"].items()}

    def set_status(self, region_id: int, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        data = self._load()
        if status == UNREVIEWED:
            data["status"].pop(str(int(region_id)), None)
        else:
            data["status"][str(int(region_id))] = status
        self._save(data)

    def set_statuses(self, statuses: dict) -> None:
        """Replace every status at once ({region id: status}; "unreviewed" entries are dropped)."""
        for s in statuses.values():
            if s not in STATUSES:
                raise ValueError(f"status must be one of {STATUSES}, got {s!r}")
        data = self._load()
        data["status"] = {str(int(k)): v for k, v in statuses.items() if v != UNREVIEWED}
        self._save(data)

    def counts(self, region_ids) -> dict[str, int]:
        st = self.statuses()
        out = {s: 0 for s in STATUSES}
        for rid in region_ids:
            out[st.get(int(rid), UNREVIEWED)] += 1
        return out

    # -------------------------------------------------------------------------------------------- position
    @property
    def current(self) -> int | None:
        value = self._load().get("current")
        return None if value is None else int(value)

    @current.setter
    def current(self, region_id: int | None) -> None:
        data = self._load()
        data["current"] = None if region_id is None else int(region_id)
        self._save(data)

    # -------------------------------------------------------------------------------------------- identity
    def reset_if_changed(self, threshold: float, n_regions: int) -> bool:
        """Start over (no statuses, no current region) when the stored threshold or region count differ from these;
        store them. True when the stored state was discarded."""
        data = self._load()
        same = data.get("threshold") is None or (
            abs(float(data["threshold"]) - float(threshold)) <= 1e-9 * max(1.0, abs(float(threshold)))
            and data.get("regions") == int(n_regions))
        discarded = not same and bool(data["status"] or data["current"] is not None)
        if not same:
            data = {"format": 1, "status": {}, "current": None}
        data["threshold"], data["regions"] = float(threshold), int(n_regions)
        self._save(data)
        return discarded

    def clear(self) -> None:
        self.node.UnsetParameter(self.parameter)
