"""`uqseg predict --task mammo-pectoral`: the command-line contract of docs/cli-contract.md, checked from the outside.

What a user (or the project's evaluation) sees: exit codes, one-line errors on stderr, the files of each case folder,
queue.csv, the orientation of the boundary on real left and right MLO mammograms, a mirror round trip, and the
geometry of the written .seg.nrrd / .mrk.json as Slicer itself reads them back (slicer-core).

The model may be retrained: nothing here depends on its exact numbers, only on robust sanity bounds. `predict` runs
once per input set (module-scoped fixtures) and the tests share its outputs; the main batch runs as a real
subprocess (so that stderr is the process's own), the others in-process through `uqseg.cli.main`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slicer_readback import segment_mask_on_own_grid
from uqseg.cli import main as cli_main
from uqseg.io.phantoms import mlo_phantom, write_png

TASK = "mammo-pectoral"
CASE_FILES = ("summary.json", "boundary.csv", "pectoral.seg.nrrd", "boundary.mrk.json", "preview.png")
BOUNDARY_HEADER = ["row", "mean_col", "std_col", "multimodal"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The anisotropic phantom NRRD: column spacing, row spacing (mm) and an origin (LPS mm), all unlike the defaults, so
# that a swapped or forgotten spacing/origin in the written geometry shows.
MM_SPACING = (0.5, 0.7)
MM_ORIGIN = (12.0, -30.0)
DDSM_CASE = "A_0003_1.RIGHT_MLO.png"  # the first DDSM image of the shared data (chest wall on the left)
GOOD_CASES = ("phantom", "ddsm", "rmlo", "lmlo", "phantom_mm")


# --------------------------------------------------------------------------------------------------------- helpers
def run_inprocess(args: list[str]) -> tuple[int, str, str]:
    """`uqseg.cli.main(args)` with stdout/stderr captured: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli_main(args)
        except SystemExit as exc:  # argparse errors
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def case_of(path: Path) -> str:
    """The case folder name a user expects: the file name without its extension."""
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an input, read independently of uqseg."""
    if path.suffix.lower() == ".png":
        from PIL import Image as PILImage

        with PILImage.open(path) as im:
            return im.size[1], im.size[0]
    if path.suffix.lower() == ".nrrd":
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        return reader.GetSize()[1], reader.GetSize()[0]
    import pydicom

    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    return int(ds.Rows), int(ds.Columns)


def read_boundary(case_dir: Path) -> tuple[list[str], np.ndarray]:
    """(header, array N×4 of row, mean_col, std_col, multimodal)."""
    with open(case_dir / "boundary.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    data = np.array([[float(v) for v in r] for r in body], dtype=float).reshape(-1, 4)
    return header, data


def read_mask(case_dir: Path) -> np.ndarray:
    """The muscle mask [row, col] of pectoral.seg.nrrd (one 2-D slice), read with SimpleITK."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "pectoral.seg.nrrd")))
    arr = np.asarray(arr)
    if arr.ndim == 3:
        assert arr.shape[0] == 1, arr.shape
        arr = arr[0]
    return arr != 0


def expected_mask(boundary: np.ndarray, shape: tuple[int, int], chest_wall: str) -> np.ndarray:
    """Muscle iff on the chest-wall side of mean_col in a row listed in boundary.csv; no muscle elsewhere."""
    h, w = shape
    cols = np.arange(w)[None, :]
    mean = np.full(h, np.nan)
    mean[boundary[:, 0].astype(int)] = boundary[:, 1]
    with np.errstate(invalid="ignore"):
        m = cols > mean[:, None] if chest_wall == "right" else cols < mean[:, None]
    return m & np.isfinite(mean)[:, None]


# --------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def batch(tmp_path_factory, request, shipped_model, shared_file):
    """One `uqseg predict` subprocess over: a phantom PNG, a real DDSM PNG, a corrupt bad.png (in the middle), the
    real RMLO and LMLO DICOMs, and an anisotropic chest-wall-right phantom NRRD. A case whose data is absent is left
    out of the run, with its reason in `missing`: its own tests skip, naming what is missing."""
    shipped_model(TASK)  # the committed model must load: its ModelError fails every test here
    d = tmp_path_factory.mktemp("pectoral_batch")
    inputs = d / "inputs"
    inputs.mkdir()
    cases: dict[str, dict] = {}  # key -> {path, chest_wall}
    missing: dict[str, str] = {}

    image, truth, _ = mlo_phantom()
    cases["phantom"] = {"path": write_png(inputs / "phantom.png", image, bits=8), "chest_wall": "left", "truth": truth}

    try:  # DDSM PNGs are stored with the chest wall on the left (this one: the README's table)
        cases["ddsm"] = {"path": shared_file(f"mammo_ddsm/images/{DDSM_CASE}"), "chest_wall": "left"}
    except pytest.skip.Exception as skipped:
        missing["ddsm"] = skipped.msg

    try:
        dicoms = request.getfixturevalue("mammograms_dicom")
    except pytest.skip.Exception as skipped:
        missing["rmlo"] = missing["lmlo"] = skipped.msg
    else:
        cases["rmlo"] = {"path": dicoms["rmlo"], "chest_wall": "right"}
        cases["lmlo"] = {"path": dicoms["lmlo"], "chest_wall": "left"}

    import SimpleITK as sitk

    mirrored_phantom, truth, _ = mlo_phantom(seed=3, chest_wall="right")
    itk = sitk.GetImageFromArray(np.clip(np.rint(mirrored_phantom), 0, 255).astype(np.uint8))
    itk.SetSpacing(MM_SPACING)
    itk.SetOrigin(MM_ORIGIN)
    nrrd_path = inputs / "phantom_mm.nrrd"
    sitk.WriteImage(itk, str(nrrd_path))
    cases["phantom_mm"] = {"path": nrrd_path, "chest_wall": "right", "truth": truth}

    bad = inputs / "bad.png"
    bad.write_text("this is not a PNG file\n")
    good = [c["path"] for c in cases.values()]
    argv_inputs = good[: len(good) // 2] + [bad] + good[len(good) // 2:]

    out = d / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "uqseg.cli", "predict", "--task", TASK, *map(str, argv_inputs), "--out", str(out),
         "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )
    for c in cases.values():
        c["dir"] = out / case_of(Path(c["path"]))
        c["shape"] = image_size(Path(c["path"]))
    return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "out": out, "bad": bad,
            "cases": cases, "inputs": argv_inputs, "missing": missing}


def _case(batch, key):
    if key not in batch["cases"]:
        pytest.skip(f"case {key}: {batch['missing'][key]}")
    return batch["cases"][key]


@pytest.fixture(scope="module", params=["ddsm", "phantom"])
def mirror_run(batch, tmp_path_factory, request):
    """The DDSM PNG, and the phantom PNG, mirrored left-right with numpy, each through `predict` on its own."""
    from PIL import Image as PILImage

    key = request.param
    src = Path(_case(batch, key)["path"])
    d = tmp_path_factory.mktemp("pectoral_mirror")
    with PILImage.open(src) as im:
        arr = np.asarray(im)
    mirrored = d / f"{case_of(src)}_mirrored.png"
    PILImage.fromarray(np.ascontiguousarray(arr[:, ::-1])).save(mirrored)
    rc, _, err = run_inprocess(["predict", "--task", TASK, str(mirrored), "--out", str(d / "out"),
                                "--device", "cpu"])
    return {"key": key, "rc": rc, "stderr": err, "dir": d / "out" / case_of(mirrored), "shape": arr.shape[:2]}


# ------------------------------------------------------------------------------------------- 1. batch contract
def test_batch_exit_code_and_one_line_error(batch):
    assert batch["rc"] == 2, batch["stderr"]
    assert "Traceback" not in batch["stderr"], batch["stderr"]
    lines = stderr_lines(batch["stderr"])
    assert len(lines) == 1, f"expected exactly one stderr line, got:\n{batch['stderr']}"
    assert lines[0].startswith(f"error: {batch['bad']}: "), lines[0]
    assert len(lines[0]) > len(f"error: {batch['bad']}: ") + 5, "the error line gives no reason"
    # the bad file sits in the middle: the inputs after it were processed too
    assert batch["inputs"].index(batch["bad"]) not in (0, len(batch["inputs"]) - 1)
    assert not (batch["out"] / "bad").exists(), "a folder was left for the bad input"


@pytest.mark.parametrize("key", GOOD_CASES)
def test_batch_case_folder_complete(batch, key):
    from uqseg.models.registry import find_model

    default_model = find_model(TASK, None)
    case = _case(batch, key)
    d = case["dir"]
    assert d.is_dir(), f"{key}: no case folder {d.name} in {sorted(p.name for p in batch['out'].iterdir())}"
    for name in CASE_FILES:
        assert (d / name).is_file() and (d / name).stat().st_size > 0, f"{key}: {name} missing or empty"

    s = json.loads((d / "summary.json").read_text())
    assert s["task"] == TASK
    assert s["model"]["id"] == default_model.id and isinstance(s["model"]["version"], str) \
        and s["model"]["version"]
    assert s["device"] == "cpu"
    assert isinstance(s["timings_ms"], dict) and s["timings_ms"]
    assert all(isinstance(v, (int, float)) and v >= 0 for v in s["timings_ms"].values()), s["timings_ms"]
    u = s["image_uncertainty"]
    assert isinstance(u, float) and math.isfinite(u) and u > 0, f"{key}: image_uncertainty {u!r}"
    assert isinstance(s["multimodal"], bool) and isinstance(s["ood"], bool)
    files = s["files"]
    names = set(files.values()) if isinstance(files, dict) else set(files)
    assert {"boundary.csv", "pectoral.seg.nrrd", "boundary.mrk.json", "preview.png"} <= names, files
    assert all((d / n).is_file() for n in names), f"{key}: summary names files that are not there: {files}"

    h, w = case["shape"]
    header, b = read_boundary(d)
    assert header == BOUNDARY_HEADER
    assert len(b) >= 2, f"{key}: no pectoral boundary found"
    rows, mean, std, multi = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    assert np.all(rows == np.round(rows)) and np.all(np.diff(rows) > 0), f"{key}: rows not strictly increasing"
    assert rows.min() >= 0 and rows.max() < h, f"{key}: rows outside [0, {h})"
    assert np.all((mean >= 0) & (mean < w)), f"{key}: mean_col outside [0, {w}): {mean.min()}..{mean.max()}"
    assert np.all(np.isfinite(std) & (std > 0)), f"{key}: std_col not > 0"
    assert set(np.unique(multi)) <= {0.0, 1.0}
    assert s["multimodal"] == bool(multi.any()), f"{key}: summary multimodal disagrees with boundary.csv"
    # the uncertainty is the boundary's σ (input pixels): within the range of the per-row σ
    assert std.min() - 1e-3 <= u <= std.max() + 1e-3

    raw = (d / "preview.png").read_bytes()
    assert raw.startswith(PNG_SIGNATURE)
    from PIL import Image as PILImage

    with PILImage.open(d / "preview.png") as im:
        im.load()
        assert im.size[0] > 0 and im.size[1] > 0


def test_batch_queue_ranks_successful_cases(batch):
    q = batch["out"] / "queue.csv"
    assert q.is_file()
    with open(q, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], [r for r in rows[1:] if r]
    assert header[:2] == ["case", "image_uncertainty"], header
    expected = {c["dir"].name: json.loads((c["dir"] / "summary.json").read_text())["image_uncertainty"]
                for c in batch["cases"].values()}
    names = [r[0] for r in body]
    assert sorted(names) == sorted(expected), f"queue lists {names}, expected {sorted(expected)}"
    assert "bad" not in names and not any("bad.png" in ",".join(r) for r in body)
    values = [float(r[1]) for r in body]
    assert values == sorted(values, reverse=True), f"queue not sorted by image_uncertainty, highest first: {values}"
    for name, value in zip(names, values):
        assert value == pytest.approx(expected[name], abs=1e-3)


@pytest.mark.parametrize("key", ["phantom", "phantom_mm", "ddsm"])
def test_boundary_is_near_the_known_one(batch, shared_file, key):
    """Sanity of the whole chain where the boundary is known: the phantoms' drawn one, the DDSM manual label."""
    case = _case(batch, key)
    h, w = case["shape"]
    if "truth" in case:
        truth = case["truth"]
    else:  # DDSM
        from PIL import Image as PILImage

        label_path = shared_file(f"mammo_ddsm/labels/{DDSM_CASE}")
        muscle = np.asarray(PILImage.open(label_path)) == 3
        counts = muscle.sum(axis=1).astype(float)  # chest wall left: count = ceil(boundary)
        truth = np.where(counts > 0, counts - 0.5, np.nan)
    _, b = read_boundary(case["dir"])
    rows = b[:, 0].astype(int)
    common = np.isfinite(truth[rows])
    assert common.sum() >= 0.5 * np.isfinite(truth).sum(), f"{key}: the boundary misses most of the muscle"
    err = np.median(np.abs(b[common, 1] - truth[rows[common]]))
    assert err < 0.1 * w, f"{key}: median |mean_col - truth| = {err:.1f} px (W={w})"


# ------------------------------------------------------------------------------------------------ 2. orientation
@pytest.mark.parametrize("key", ["rmlo", "lmlo", "phantom", "phantom_mm", "ddsm"])
def test_boundary_and_mask_on_the_chest_wall_side(batch, key):
    case = _case(batch, key)
    h, w = case["shape"]
    _, b = read_boundary(case["dir"])
    rows, mean = b[:, 0].astype(int), b[:, 1]
    upper = mean[: max(1, len(mean) // 2)]  # the upper half of the muscle rows
    # Real full-field DICOMs: every upper row on the chest-wall half. The 480-wide DDSM and phantom images have
    # muscles reaching ~0.45-0.55 W at the very top (DDSM A_0003's manual label: 263 of 480), so there the median.
    upper = upper if key in ("rmlo", "lmlo") else np.median(upper)
    if case["chest_wall"] == "right":
        assert np.all(upper > w / 2), f"{key}: upper boundary not in the right half: min {np.min(upper):.1f}, W={w}"
    else:
        assert np.all(upper < w / 2), f"{key}: upper boundary not in the left half: max {np.max(upper):.1f}, W={w}"
    assert rows[0] < 0.15 * h, f"{key}: the muscle should start at the top of an MLO view (first row {rows[0]})"

    mask = read_mask(case["dir"])
    assert mask.shape == (h, w), f"{key}: segmentation grid {mask.shape} is not the input's {(h, w)}"
    edge = w - 1 if case["chest_wall"] == "right" else 0
    far = 0 if case["chest_wall"] == "right" else w - 1
    assert mask[rows, edge].mean() >= 0.95, f"{key}: the muscle does not touch the chest-wall edge column"
    assert not mask[:, far].any(), f"{key}: muscle on the edge opposite the chest wall"
    outside = np.ones(h, bool)
    outside[rows] = False
    assert not mask[outside].any(), f"{key}: muscle in rows that boundary.csv does not list"


def test_mirror_round_trip(batch, mirror_run):
    assert mirror_run["rc"] == 0, mirror_run["stderr"]
    original = batch["cases"][mirror_run["key"]]
    _, w = original["shape"]
    _, a = read_boundary(original["dir"])
    _, m = read_boundary(mirror_run["dir"])
    assert abs(a[0, 0] - m[0, 0]) <= 2 and abs(a[-1, 0] - m[-1, 0]) <= 2, \
        f"rows differ: {a[0, 0]:.0f}..{a[-1, 0]:.0f} vs mirrored {m[0, 0]:.0f}..{m[-1, 0]:.0f}"
    common, ia, im = np.intersect1d(a[:, 0], m[:, 0], return_indices=True)
    assert len(common) >= 0.9 * min(len(a), len(m))
    diff = np.abs(m[im, 1] - ((w - 1) - a[ia, 1]))
    assert np.median(diff) < 2, f"mirrored mean_col is not W-1-mean_col: median |diff| {np.median(diff):.2f} px"
    np.testing.assert_allclose(m[im, 2], a[ia, 2], rtol=0.05, atol=0.5, err_msg="σ changed under mirroring")


# ------------------------------------------------------------------------------- 3. geometry read back by Slicer
@pytest.mark.parametrize("key", ["rmlo", "phantom", "phantom_mm"])
def test_files_read_back_through_slicer(mrml_scene, batch, key):
    case = _case(batch, key)
    slicer = mrml_scene.slicer
    d = case["dir"]
    h, w = case["shape"]
    _, b = read_boundary(d)
    spacing = MM_SPACING if key == "phantom_mm" else (1.0, 1.0)
    origin = MM_ORIGIN if key == "phantom_mm" else (0.0, 0.0)

    # --- segmentation
    seg_node = mrml_scene.segmentations_logic.LoadSegmentationFromFile(str(d / "pectoral.seg.nrrd"), False)
    assert seg_node is not None
    segmentation = seg_node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    segment_id = segmentation.GetNthSegmentID(0)
    assert segmentation.GetSegment(segment_id).GetName() == "pectoral_muscle"
    mask, matrix = segment_mask_on_own_grid(slicer, seg_node, segment_id, (1, h, w))
    assert mask.any()
    expected_ijk_to_ras = np.eye(4)
    expected_ijk_to_ras[:3, :3] = np.diag([-spacing[0], -spacing[1], 1.0])
    expected_ijk_to_ras[:2, 3] = [-origin[0], -origin[1]]
    np.testing.assert_allclose(matrix, expected_ijk_to_ras, atol=1e-6)
    expected = expected_mask(b, (h, w), case["chest_wall"])
    per_row = (mask[0] != expected).sum(axis=1)
    worst = int(per_row.argmax())
    assert per_row.max() <= 1, f"{key}: row {worst} of the segment differs from boundary.csv by {per_row.max()} px"

    # --- curve
    node_id = mrml_scene.markups_logic.LoadMarkups(str(d / "boundary.mrk.json"))
    assert node_id
    node = mrml_scene.scene.GetNodeByID(node_id)
    assert node.GetClassName() == "vtkMRMLMarkupsCurveNode", node.GetClassName()  # an open curve
    ras = slicer.util.arrayFromMarkupsControlPoints(node, world=True)
    assert ras.ndim == 2 and len(ras) >= 2
    lps = ras * np.array([-1.0, -1.0, 1.0])
    col = (lps[:, 0] - origin[0]) / spacing[0]
    row = (lps[:, 1] - origin[1]) / spacing[1]
    np.testing.assert_allclose(lps[:, 2], 0.0, atol=1e-6)
    np.testing.assert_allclose(row, np.round(row), atol=0.01, err_msg="control points are not on pixel rows")
    by_row = {int(r): (mc, sc) for r, mc, sc, _ in b}
    idx = np.round(row).astype(int)
    missing = [r for r in idx if r not in by_row]
    assert not missing, f"{key}: control points on rows not in boundary.csv: {missing[:5]}"
    np.testing.assert_allclose(col, [by_row[r][0] for r in idx], atol=0.01,
                               err_msg="control points are not at mean_col of their row")
    assert idx[0] - b[0, 0] <= 1 and b[-1, 0] - idx[-1] <= 1, "the curve does not span the whole boundary"

    measurement = node.GetMeasurement("std")
    assert measurement is not None, "no `std` measurement on the curve"
    values = measurement.GetControlPointValues()
    assert values is not None and values.GetNumberOfTuples() == len(ras)
    std = np.array([values.GetValue(k) for k in range(values.GetNumberOfTuples())])
    np.testing.assert_allclose(std, [by_row[r][1] * spacing[0] for r in idx], atol=1e-3,
                               err_msg="per-point std is not std_col × column spacing")


# --------------------------------------------------------------------------------------------- 4. CC refused
def test_cc_view_refused(mammograms_dicom, tmp_path):
    rcc = mammograms_dicom["rcc"]
    out = tmp_path / "out"
    rc, _, err = run_inprocess(["predict", "--task", TASK, str(rcc), "--out", str(out), "--device", "cpu"])
    assert rc == 2
    lines = stderr_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: {rcc}: "), lines[0]
    assert "cranio-caudal" in lines[0] and "MLO" in lines[0], lines[0]
    left = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not left, f"files left behind for a refused case: {left}"
    assert not (out / case_of(rcc)).exists()


# ------------------------------------------------------------------------------- 5. volumes and empty folders
def test_3d_volume_refused(tmp_path):
    import SimpleITK as sitk

    path = tmp_path / "volume.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 40, 50), np.uint8)), str(path))
    out = tmp_path / "out"
    rc, _, err = run_inprocess(["predict", "--task", TASK, str(path), "--out", str(out), "--device", "cpu"])
    assert rc == 2
    lines = stderr_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: {path}: ") and "3-D volume" in lines[0], lines[0]
    assert not (out / "volume").exists()


def test_folder_without_images_refused(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here\n")
    rc, _, err = run_inprocess(["predict", "--task", TASK, str(folder), "--out", str(tmp_path / "out"),
                                "--device", "cpu"])
    assert rc == 2
    lines = stderr_lines(err)
    assert len(lines) == 1 and lines[0].startswith(f"error: {folder}"), err


# ---------------------------------------------------------------------------------- 6. not a mammogram
def test_chest_xray_is_flagged(tmp_path, shared_file):
    path = shared_file("cxr_jsrt/images/JPCLN001.png")
    out = tmp_path / "out"
    rc, _, err = run_inprocess(["predict", "--task", TASK, str(path), "--out", str(out), "--device", "cpu"])
    assert rc == 0, err
    s = json.loads((out / "JPCLN001" / "summary.json").read_text())
    assert s["ood"] or s["multimodal"], f"a chest X-ray was not flagged: {s}"


# ---------------------------------------------------------------------------------------------- 7. models
def test_models_lists_the_pectoral_model():
    rc, out, err = run_inprocess(["models"])
    assert rc == 0, err
    lines = [line for line in out.splitlines() if "mammo-pectoral-hhr" in line]
    assert lines and TASK in lines[0].split(), out


def test_unknown_model_is_a_one_line_error(tmp_path):
    image, _, _ = mlo_phantom(shape=(64, 32))
    path = write_png(tmp_path / "p.png", image)
    rc, _, err = run_inprocess(["predict", "--task", TASK, str(path), "--out", str(tmp_path / "out"),
                                "--model", "nonexistent"])
    assert rc == 2
    lines = stderr_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ") and "nonexistent" in lines[0], lines[0]
    assert not (tmp_path / "out" / "p").exists()
