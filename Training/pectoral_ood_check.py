"""Does a mammo-pectoral model still flag images it cannot read? The acceptance check every candidate passes before it
replaces the shipped model (issue 19: the strong-augmentation candidate failed it).

    python Training/pectoral_ood_check.py --weights runs/X/weights.safetensors --eval runs/X/eval --out runs/X/ood.json

Inputs that are not mammograms, through the full inference pipeline: the first 5 JSRT chest X-rays of
../shared/data/cxr_jsrt, the slices at ¼, ½ and ¾ of the TotalSegmentator CT crop (ct_totalseg) and 3 images of
uniform noise (960 × 480, seed 0). An image is flagged when it is multimodal or its image uncertainty (grid columns)
exceeds the candidate's own `ood_threshold_grid` (evaluate_pectoral.py's evaluation.json: 1.5 × the largest
validation image's). The shipped model flags all of them; a candidate that lets one through is not shipped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from common import DATA, print_json
from uqseg.io import load_image
from uqseg.io.image import Image
from uqseg.mammo.pectoral import predict_pectoral
from uqseg.mammo.pectoral_model import PectoralHeatmapNet


def inputs(data: Path):
    for p in sorted((data / "cxr_jsrt" / "images").glob("*"))[:5]:
        yield f"chest X-ray {p.name}", load_image(p)
    import SimpleITK as sitk

    ct = data / "ct_totalseg" / "pulmonary_report__models__ct_cropped.nii.gz"
    vol = sitk.GetArrayFromImage(sitk.ReadImage(str(ct))).astype(np.float32)
    for q in (1, 2, 3):
        z = q * vol.shape[0] // 4
        yield f"CT slice {z} of {ct.name}", Image(vol[z])
    rng = np.random.default_rng(0)
    for i in range(3):
        yield f"uniform noise {i}", Image(rng.uniform(0, 255, (960, 480)).astype(np.float32))


def check(model, threshold: float, data: Path) -> dict:
    rows = []
    for name, image in inputs(data):
        r = predict_pectoral(image, model)
        rows.append({"input": name, "image_uncertainty_grid": round(float(r.image_uncertainty_grid), 2),
                     "multimodal": bool(r.is_multimodal),
                     "flagged": bool(r.is_multimodal or r.image_uncertainty_grid > threshold)})
    return {"ood_threshold_grid": round(threshold, 3), "flagged": sum(r["flagged"] for r in rows),
            "inputs": len(rows), "passed": all(r["flagged"] for r in rows), "per_input": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--eval", type=Path, required=True, help="evaluate_pectoral.py's folder for these weights")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = PectoralHeatmapNet(width=args.width)
    model.load_state_dict(load_file(str(args.weights)))
    model.eval()
    threshold = json.loads((args.eval / "evaluation.json").read_text())["ood_threshold_grid"]
    with torch.no_grad():
        result = {"weights": str(args.weights), **check(model, threshold, args.data)}
    print_json(result, args.out)


if __name__ == "__main__":
    main()
