"""Detached fragments of a predicted organ (uqseg.ct.fragments; issue 18's pelvis check): a confident wrong island
of "liver" far from the liver is reported in summary.json and raised as the `detached_fragments` flag — which a
reader sees in the Slicer status line — while a one-piece organ, a piece under 1 ml and the `ood` decision are left
alone. Volumes on the 2 mm working grid (8 µl a voxel), centroids in LPS mm."""

from __future__ import annotations

import numpy as np
import pytest

from uqseg.ct.fragments import main_body, organ_fragments

ORGANS = ["liver", "spleen", "kidney_left"]
SPACING = (2.0, 2.0, 2.0)  # x, y, z mm
ORIGIN = (-100.0, -50.0, 300.0)  # LPS mm of voxel (0, 0, 0)


def _labels() -> np.ndarray:
    lab = np.zeros((30, 40, 40), np.uint8)  # (z, y, x)
    lab[2:12, 2:12, 2:12] = 1  # liver main body: 1000 voxels = 8 ml
    lab[20:26, 30:36, 30:36] = 1  # detached: 216 voxels = 1.728 ml, centre (z, y, x) = (22.5, 32.5, 32.5)
    lab[20:23, 2:5, 2:5] = 1  # detached: 27 voxels = 0.216 ml (< 1 ml: not reported)
    lab[12:18, 12:18, 12:18] = 1  # touches the main body only at one corner voxel -> its own piece (1.728 ml)
    lab[2:8, 25:31, 2:8] = 2  # spleen in one piece
    return lab


def test_a_detached_piece_is_reported_with_its_volume_and_lps_centroid():
    parts = organ_fragments(_labels(), ORGANS, SPACING, ORIGIN)
    assert set(parts) == {"liver", "spleen"}  # the kidney has no voxel
    liver = parts["liver"]
    assert liver["main_ml"] == 8.0
    assert [f["ml"] for f in liver["fragments"]] == [1.73, 1.73] and liver["fragments_ml"] == 3.46
    far = next(f for f in liver["fragments"] if f["slices"] == [20, 25])
    assert far["centroid_lps_mm"] == [-100.0 + 32.5 * 2, -50.0 + 32.5 * 2, 300.0 + 22.5 * 2]
    corner = next(f for f in liver["fragments"] if f["slices"] == [12, 17])
    assert corner["centroid_lps_mm"] == [-100.0 + 14.5 * 2, -50.0 + 14.5 * 2, 300.0 + 14.5 * 2]
    assert parts["spleen"] == {"main_ml": 1.73, "fragments": [], "fragments_ml": 0}


def test_the_point_of_a_curved_sliver_lies_on_it_though_its_centroid_does_not():
    lab = np.zeros((10, 40, 40), np.uint8)
    lab[1:9, 2:14, 2:14] = 1  # main body: 1152 voxels
    lab[4:6, 32:38, 2:38] = 1  # an L-shaped sliver (792 voxels): a bar along x ...
    lab[4:6, 2:38, 32:38] = 1  # ... and one along y; its centroid (y, x ~ 27, 27) is outside it
    frag = organ_fragments(lab, ORGANS, SPACING, ORIGIN)["liver"]["fragments"][0]
    cx, cy, _ = ((np.array(frag["centroid_lps_mm"]) - ORIGIN) / SPACING)
    assert lab[4, int(round(cy)), int(round(cx))] == 0  # the centroid is not on the sliver
    px, py, pz = ((np.array(frag["point_lps_mm"]) - ORIGIN) / SPACING).round().astype(int)
    assert lab[pz, py, px] == 1 and (py >= 32 or px >= 32)  # the point is, and not on the main body


def test_the_main_body_is_the_largest_piece_wherever_it_lies():
    lab = _labels()
    lab[2:12, 2:12, 2:12] = 0  # remove the big block: now the two 216-voxel pieces tie, the first in scan order wins
    body = main_body(lab == 1)
    assert body.sum() == 216 and body[12:18, 12:18, 12:18].all()
    parts = organ_fragments(lab, ORGANS, SPACING, ORIGIN)["liver"]
    assert parts["main_ml"] == 1.73 and [f["slices"] for f in parts["fragments"]] == [[20, 25]]


def test_min_ml_is_a_volume_not_a_voxel_count():
    lab = _labels()
    # 64 µl a voxel: the 27-voxel piece is 1.7 ml
    coarse = organ_fragments(lab, ORGANS, (4.0, 4.0, 4.0), ORIGIN)["liver"]
    assert sorted(f["ml"] for f in coarse["fragments"]) == [1.73, 13.82, 13.82]


@pytest.fixture(scope="module")
def sample_prediction():
    """The shipped model's fast prediction on the shipped CT sample (training patient A, downsampled)."""
    from uqseg.demo import ct_sample_dir
    from uqseg.io.load import load_image
    from uqseg.models.registry import find_model
    from uqseg.tasks.ct_organs import CtOrgansTask, predict_organs

    card = find_model("ct-organs")
    model = CtOrgansTask().load(card, "cpu")
    pred = predict_organs(load_image(ct_sample_dir() / "ct.nii.gz", ndim=3), model, card, "cpu", fast=True)
    return card, pred


def test_the_shipped_models_wrong_island_on_the_sample_is_flagged(sample_prediction):
    """On the sample (training patient A) the shipped model labels a ~7 ml island of "liver" on the patient's left
    that lies outside the reference liver, with low variance and low OOD — confident and wrong. It is reported and
    flagged; the main body is the liver."""
    from uqseg.ct.fragments import organ_components
    from uqseg.demo import ct_sample_dir
    from uqseg.io.load import load_image
    from uqseg.tasks.ct_organs import summarise

    card, pred = sample_prediction
    s = summarise(pred, card)
    liver = s["organs"]["liver"]
    assert liver["volume_ml"] > 500 and 5.0 < liver["fragments"][0]["ml"] < 9.0
    assert liver["fragments"][0]["centroid_lps_mm"][0] > 50  # x > 0: patient's left, where the liver is not
    assert "detached_fragments" in s["flags"] and "liver: " in s["flag_details"]["detached_fragments"]
    assert not s["ood"]  # training anatomy: the flag is not an OOD finding
    reference = load_image(ct_sample_dir() / "liver.nii.gz", ndim=3).array > 0
    comps, sizes = organ_components(pred.label == pred.organs.index("liver") + 1)
    order = np.argsort(sizes)[::-1]
    assert reference[comps == order[0] + 1].mean() > 0.9
    assert reference[comps == order[1] + 1].mean() < 0.05


def test_an_island_of_liver_far_from_the_liver_is_reported_where_it_lies_and_not_ood(sample_prediction):
    """A further 'confident wrong island': liver label put into a corner far from the liver (what the A-only model
    did on patient B's pelvis). The summary lists it with its volume and LPS centroid, the flag names the organ and
    the count, `ood` stays as it was, and the Slicer status line shows the finding."""
    from dataclasses import replace

    from UQSegmentationLib.logic import describe_summary
    from uqseg.tasks.ct_organs import summarise

    card, pred = sample_prediction
    before = summarise(pred, card)
    liver = pred.organs.index("liver") + 1
    lab = pred.work_label.copy()
    zz, yy, xx = np.nonzero(lab == liver)
    assert yy.max() + 12 < lab.shape[1] - 1
    lab[0:5, -6:-1, 1:9] = liver  # 200 voxels, away from the liver; on the 2 mm grid 1.6 ml
    s = summarise(replace(pred, work_label=lab), card)
    frag = s["organs"]["liver"]["fragments"]
    assert len(frag) == len(before["organs"]["liver"]["fragments"]) + 1
    new = next(f for f in frag if f not in before["organs"]["liver"]["fragments"])
    assert new["ml"] == pytest.approx(200 * np.prod(pred.grid.spacing) / 1000, abs=0.01)
    ox, oy, oz = pred.grid.origin
    sx, sy, sz = pred.grid.spacing
    ny = lab.shape[1]
    assert new["centroid_lps_mm"] == pytest.approx([ox + 4.5 * sx, oy + (ny - 4) * sy, oz + 2 * sz], abs=0.1)
    assert new["slices"] == [0, 4]
    n = len(frag)
    assert f"liver: {n} detached fragment{'s' if n > 1 else ''}" in s["flag_details"]["detached_fragments"]
    assert s["ood"] == before["ood"]
    line = describe_summary(s, 1.0)
    assert "detached_fragments" in line and f"liver: {n} detached fragment" in line


def test_the_console_line_of_uqseg_predict_names_the_flag(tmp_path, capsys):
    """`uqseg predict` prints one line per case; the fragment finding is on it beside ood / multimodal."""
    from uqseg.console import predict
    from uqseg.demo import ct_sample_dir

    summaries, errors = predict("ct-organs", [str(ct_sample_dir() / "ct.nii.gz")], tmp_path, device="cpu", fast=True)
    assert not errors and "detached_fragments" in summaries[0]["flags"]
    line = next(x for x in capsys.readouterr().out.splitlines() if "image_uncertainty=" in x)
    assert "flags=detached_fragments" in line


def test_slicer_shows_the_findings_the_engine_raises():
    from UQSegmentationLib.flags import FINDING_FLAGS as shown
    from UQSegmentationLib.flags import shown_flags as lib_shown
    from uqseg.io.input_checks import FINDING_FLAGS, shown_flags

    assert tuple(shown) == tuple(FINDING_FLAGS)
    for summary in ({"ood": True, "multimodal": True, "flags": ["detached_fragments", "nan_pixels"]},
                    {"ood": False, "flags": ["spacing_from_default"]}, {}):
        assert lib_shown(summary) == shown_flags(summary)
