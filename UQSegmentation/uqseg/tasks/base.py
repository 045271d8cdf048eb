"""The task contract: what every `uqseg predict` task implements, and the options one run passes to it.

A task (one module in `uqseg/tasks/`, one row in `uqseg.tasks.table.TASK_TABLE`) is a class with
- `id`, `ndim`, `description`: as in its table row (`TaskInfo`);
- `load(card, device) -> model`: the network of a model card (`uqseg.models.registry.ModelCard`) with its verified
  weights, on `device` (a `torch.device`);
- `predict(image, model, options) -> CaseResult`: one case, nothing written — checks the input (refusals raise
  `uqseg.errors.InputError`), runs the model, decodes the uncertainty, maps every result back onto the input's own
  pixel grid;
- `write(result, case_dir) -> dict`: writes the task's files (`docs/cli-contract.md`) into `case_dir` and returns the
  summary (the driver adds the case, input, model, device and timings and writes it as summary.json).
- `summarise(result) -> dict`: the same summary without writing anything (and without its `files` entry) — what
  `uqseg batch` (`uqseg.batch`) stores as a table row when no per-case files are asked for.
`run_case(task, image, model, case_dir, options)` is predict + write. The batch driver for many cases
(`uqseg.tasks.run.run_cases`) is what the CLI, the demo, the benchmark and other front ends call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

try:  # Python ≥ 3.8
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object


@dataclass(frozen=True)
class RunOptions:
    """What one run of a task uses for every case.

    card: the model card (`ModelCard`) the model was loaded from; device: the torch.device it runs on;
    samples: number of samples for sampling-based uncertainty (None: the task's default; 0 means `fast`);
    seed: the random seed (the same seed gives the same outputs); fast: one deterministic pass, no sampling.
    """

    card: Any
    device: Any
    samples: Optional[int] = None
    seed: int = 0
    fast: bool = False


@dataclass
class CaseResult:
    """What a task predicted for one case, before anything is written.

    image: the input as the model saw it (after the input checks: non-finite pixels filled), on its own geometry;
    prediction: the task's typed result (e.g. `PectoralResult`, `BreastResult`, the cxr and CT results), in the
    input's pixel coordinates; checks: the input findings (`uqseg.io.input_checks.CheckedInput`);
    options: the run's options; extra: summary entries computed while predicting (e.g. a cross-check with another
    model), merged into the summary by `write`.
    """

    image: Any
    prediction: Any
    checks: Any
    options: RunOptions
    extra: dict = field(default_factory=dict)


class Task(Protocol):
    id: str
    ndim: int
    description: str

    def load(self, card: Any, device: Any) -> Any: ...

    def predict(self, image: Any, model: Any, options: RunOptions) -> CaseResult: ...

    def write(self, result: CaseResult, case_dir: Path) -> dict: ...

    def summarise(self, result: CaseResult) -> dict: ...


def run_case(task: Task, image: Any, model: Any, case_dir: Path, options: RunOptions) -> dict:
    """Predict one case and write its files into `case_dir`; returns the task's summary."""
    return task.write(task.predict(image, model, options), Path(case_dir))
