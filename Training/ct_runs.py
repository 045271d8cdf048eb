"""A trained ct-organs run folder (train_ct.py's `config.json` + `weights.safetensors`) as a model ready for
inference. Needs only torch and safetensors (no SimpleITK), so the GPU machine can import it."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from uqseg.ct.network import StochasticSegNet3d, load_weights


def load_run(run: Path, device="cpu") -> tuple[StochasticSegNet3d, dict]:
    """(model in eval mode on `device`, the run's config)."""
    cfg = json.loads((Path(run) / "config.json").read_text())
    a = cfg["architecture"]
    model = StochasticSegNet3d(classes=a["classes"], form=a["form"], rank=a["rank"], bases=a["bases"],
                               block=a["block"], filters=tuple(a["filters"]), strides=a["strides"],
                               log_var_min=a["log_var_range"][0], log_var_max=a["log_var_range"][1])
    load_weights(model, load_file(str(Path(run) / "weights.safetensors")))
    return model.to(device).eval(), cfg
