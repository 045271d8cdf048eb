"""Region thresholds for the model cards: the DEFAULT_PERCENTILE of each shipped model's validation
distribution of the uncertainty its regions are searched in, through the full inference pipeline.

- mammo-pectoral-hhr: boundary σ in 256-grid columns over the predicted muscle grid rows of the 10 val images
  (the PNGs loaded as `uqseg predict` loads them);
- cxr-hybridgnet-vae: node std ½(σx + σy) in px of a 512-pixel square over the 120 nodes of the 21 val images
  (N = 50 latent samples, seed 0, the task defaults);
- mammo-breast-mcd: predictive entropy (nats) on the input grid over the pixels the model labels breast or
  pectoral on the 10 val images (N = 20 MC samples, seed 0).
Prints the card fields as JSON; --write adds them to the cards' `uncertainty` sections (nothing else changes).
Names among pectoral / cxr / breast restrict the run to those models.

    python Training/region_thresholds.py [--write] [pectoral] [cxr] [breast]
"""
import json, sys, time
from pathlib import Path
import numpy as np, torch
REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(2)
from uqseg.correction.thresholds import DEFAULT_PERCENTILE, card_threshold_fields
from uqseg.io import load_image
from uqseg.models.registry import find_model
DATA = REPO.parent / "shared" / "data"

def pectoral():
    from datasets.ddsm_pectoral import list_cases, split
    from uqseg.mammo.pectoral import predict_pectoral
    from uqseg.tasks.mammo_pectoral import MammoPectoralTask
    card = find_model("mammo-pectoral"); model = MammoPectoralTask().load(card, "cpu")
    _, val = split(list_cases(DATA / "mammo_ddsm"))
    vals = []
    for n in val:
        r = predict_pectoral(load_image(DATA / "mammo_ddsm" / "images" / n), model)
        vals.append(np.sqrt(r.grid_var[r.grid_muscle]))
    return card, card_threshold_fields(vals, DEFAULT_PERCENTILE, units="grid columns (boundary σ on the 256-column network grid; × boundary_grid.col_scale(width) for input pixels)",
        rule=f"{DEFAULT_PERCENTILE:g}th percentile of the boundary σ over the predicted muscle grid rows of the {len(val)} validation images (full inference on the PNGs as uqseg predict loads them); the card's row_sigma_threshold_grid_p90 is the same percentile over the rows where the REFERENCE has muscle, which adds the faded lower ends the model does not call muscle (large σ)")

def cxr():
    from datasets.jsrt_landmarks import list_cases
    from uqseg.cxr.inference import REF_SIDE, predict_landmarks
    from uqseg.tasks.cxr_landmarks import CxrLandmarksTask
    card = find_model("cxr-landmarks"); model = CxrLandmarksTask().load(card, "cpu")
    val = list_cases(DATA / "cxr_jsrt")["val"]
    vals = []
    with torch.no_grad():
        for n in val:
            r = predict_landmarks(load_image(DATA / "cxr_jsrt" / "images" / f"{n}.png"), model, "cpu", samples=50, seed=0)
            vals.append(r.node_std / r.frame.size * REF_SIDE)
    return card, card_threshold_fields(vals, DEFAULT_PERCENTILE, units="px of a 512-pixel square (node std ½(std_x + std_y); × max(H, W) / 512 for input pixels)",
        rule=f"{DEFAULT_PERCENTILE:g}th percentile of the node std over the 120 nodes of the {len(val)} validation images (N = 50 latent samples, seed 0)")

def breast():
    from datasets.ddsm_breast import list_cases, split
    from uqseg.mammo.breast import predict_breast
    from uqseg.tasks.mammo_breast import MammoBreastTask
    card = find_model("mammo-breast"); model = MammoBreastTask().load(card, "cpu")
    _, val = split(list_cases(DATA / "mammo_ddsm"))
    vals = []
    with torch.no_grad():
        for n in val:
            r = predict_breast(load_image(DATA / "mammo_ddsm" / "images" / n), model, samples=20, seed=0)
            vals.append(r.entropy[r.label > 0])
    f = card_threshold_fields(vals, DEFAULT_PERCENTILE, units="nats (predictive entropy of the mean softmax, input grid)",
        rule=f"{DEFAULT_PERCENTILE:g}th percentile of the predictive entropy over the pixels labelled breast or pectoral on the input grid of the {len(val)} validation images (N = 20 MC samples, seed 0)")
    return card, f

if __name__ == "__main__":
    out = {}
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    for name, fn in (("pectoral", pectoral), ("cxr", cxr), ("breast", breast)):
        if only and name not in only:
            continue
        t0 = time.time(); card, fields = fn(); out[card.id] = (card, fields)
        print(card.id, json.dumps(fields, indent=1, ensure_ascii=False), f"{time.time()-t0:.0f}s", flush=True)
    if "--write" in sys.argv:
        for mid, (card, fields) in out.items():
            path = card.folder / "model.json"
            data = json.loads(path.read_text())
            data["uncertainty"].update(fields)
            # the export scripts' own conventions: export_cxr.py writes UTF-8, the mammography ones ASCII escapes
            path.write_text(json.dumps(data, indent=2, ensure_ascii=card.task != "cxr-landmarks"))
