"""The tasks `uqseg predict` knows. Each task module defines a class with:

- `id` (the task id of the CLI contract), `ndim` (2 or 3: what its inputs must be), `description`;
- `load(card, device) -> model` — the network with its shipped weights;
- `run(image, model, out_dir, options) -> dict` — predicts one case, writes the contract's files into `out_dir` and
  returns the summary (which the CLI completes with timings and writes as summary.json).

Adding a task = adding a module here and registering it in TASKS; the CLI and the Slicer module pick it up.
"""

from __future__ import annotations

from uqseg.tasks.ct_organs import CtOrgansTask
from uqseg.tasks.cxr_landmarks import CxrLandmarksTask
from uqseg.tasks.mammo_breast import MammoBreastTask
from uqseg.tasks.mammo_pectoral import MammoPectoralTask

TASKS = {t.id: t for t in (MammoPectoralTask(), MammoBreastTask(), CxrLandmarksTask(), CtOrgansTask())}
