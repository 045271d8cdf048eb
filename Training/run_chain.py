"""The chain of training runs behind a run folder: each stage started (`--init`) from the previous stage's weights.

`init_chain(run)` → [(run folder, its config.json), ...], the first stage first. A stage's config names its start
weights under `init_key` (a path to `<previous run>/weights.safetensors`, or null for a stage from scratch); the
model exporters turn the chain into the `training.stages` list of a model card.
"""

from __future__ import annotations

import json
from pathlib import Path


def init_chain(run: Path, init_key=lambda config: config.get("init")) -> list[tuple[Path, dict]]:
    chain = []
    while run is not None:
        config = json.loads((run / "config.json").read_text())
        chain.append((run, config))
        init = init_key(config)
        run = Path(init).parent if init else None
    return chain[::-1]
