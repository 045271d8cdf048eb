"""The tasks the engine offers, as plain data: importable without torch (the Slicer module lists them from here).

Each row names the task's id (the `--task` of `uqseg predict`), what its inputs must be (`ndim` 2: one 2-D image per
case; 3: a volume, or a DICOM series folder, per case), a one-line description for menus, and the class that
implements the task contract (`uqseg.tasks.base.Task`) as ``module:Class`` — imported only when the task is used
(`uqseg.tasks.get_task`). Adding a task = a module with that class + one row here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskInfo:
    """One task: its id, input dimension (2 or 3), a description, and where its implementation lives."""

    id: str
    ndim: int
    description: str
    implementation: str  # "module:Class"


TASK_TABLE: tuple = (
    TaskInfo("mammo-pectoral", 2, "pectoral-muscle boundary with a ±σ uncertainty band (MLO mammograms)",
             "uqseg.tasks.mammo_pectoral:MammoPectoralTask"),
    TaskInfo("mammo-breast", 2,
             "background / breast / pectoral segmentation with MC-dropout entropy (CC and MLO, raw or processed)",
             "uqseg.tasks.mammo_breast:MammoBreastTask"),
    TaskInfo("cxr-landmarks", 2, "lungs and heart as landmark rings with per-node std (frontal chest X-rays)",
             "uqseg.tasks.cxr_landmarks:CxrLandmarksTask"),
    TaskInfo("ct-organs", 3,
             "CT organs: stochastic segmentation (Mixture-of-Bases covariance) with voxel predictive variance",
             "uqseg.tasks.ct_organs:CtOrgansTask"),
)


def task_info(task_id: str) -> TaskInfo:
    """The row of `task_id`; KeyError naming the known tasks otherwise."""
    for info in TASK_TABLE:
        if info.id == task_id:
            return info
    raise KeyError(f"unknown task {task_id!r}; known: {', '.join(i.id for i in TASK_TABLE)}")


def task_identity(task_id: str) -> tuple[str, int, str]:
    """(id, ndim, description) of `task_id`'s row: a task class's attributes (`uqseg.tasks.base.Task`), as
    ``id, ndim, description = task_identity("...")`` in its body."""
    info = task_info(task_id)
    return info.id, info.ndim, info.description
