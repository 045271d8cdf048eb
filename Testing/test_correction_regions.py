"""Uncertain regions (uqseg.correction.regions) and their thresholds (uqseg.correction.thresholds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from uqseg.correction.regions import (COMPONENT, CXR_ARC, PECTORAL_ROWS, component_regions, cxr_regions,
                                      pectoral_regions, ring_arcs)
from uqseg.correction.thresholds import (card_threshold_fields, region_threshold, validation_percentile)
from uqseg.cxr.graph import node_organs, organ_slices

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------- pectoral
def test_pectoral_runs_from_sigma_or_multimodal_ranked_by_integrated_sigma():
    rows = np.arange(100, 130)
    std = np.full(30, 2.0)
    std[3:6] = 10.0  # run A: 3 rows of σ 10 → Σσ 30
    std[15:25] = 6.0  # run B: 10 rows of σ 6 → Σσ 60 (lower peak, more in total)
    multi = np.zeros(30, bool)
    multi[27:29] = True  # run C: multimodal with a small σ → Σσ 4
    mean = np.linspace(200.0, 150.0, 30)
    regions = pectoral_regions(rows, std, multi, mean, threshold=5.0)
    assert [r.kind for r in regions] == [PECTORAL_ROWS] * 3
    assert [r.members for r in regions] == [tuple(range(115, 125)), (103, 104, 105), (127, 128)]
    assert [r.id for r in regions] == [1, 2, 3]
    assert regions[0].integrated == pytest.approx(60.0) and regions[1].peak == pytest.approx(10.0)
    assert regions[2].details == {"multimodal_rows": 2, "sigma_rows": 0}
    a = regions[1]
    assert a.bbox_min[0] == 103 and a.bbox_max[0] == 105
    assert a.bbox_min[1] == pytest.approx(mean[3:6].min() - 10.0) and a.bbox_max[1] == pytest.approx(mean[3] + 10.0)
    assert a.centre == pytest.approx((104.0, mean[3:6].mean()))


def test_pectoral_gap_in_row_numbers_splits_a_run_and_min_rows_drops_short_ones():
    rows = np.array([10, 11, 12, 20, 21])
    regions = pectoral_regions(rows, np.full(5, 9.0), np.zeros(5, bool), np.zeros(5), threshold=1.0)
    assert sorted(r.members for r in regions) == [(10, 11, 12), (20, 21)]
    assert [r.members for r in pectoral_regions(rows, np.full(5, 9.0), np.zeros(5, bool), np.zeros(5), 1.0,
                                                min_rows=3)] == [(10, 11, 12)]


# -------------------------------------------------------------------------------------------------- chest X-ray
def test_ring_arcs_wrap_around_the_first_node():
    above = np.zeros(10, bool)
    above[[8, 9, 0, 1, 4]] = True
    assert ring_arcs(above) == [[4], [8, 9, 0, 1]]
    assert ring_arcs(np.ones(5, bool)) == [[0, 1, 2, 3, 4]]
    assert ring_arcs(np.zeros(5, bool)) == []


def test_cxr_arc_wraps_within_its_organ_and_never_joins_the_next_organ():
    organs = node_organs()
    sl = organ_slices()
    std = np.ones(120)
    right = np.arange(sl["right_lung"].start, sl["right_lung"].stop)
    left = np.arange(sl["left_lung"].start, sl["left_lung"].stop)
    std[right[[42, 43, 0, 1]]] = 5.0  # wraps around the right lung's first node
    std[left[0]] = 9.0  # the next node in the stacked array, but another ring
    std[sl["heart"]] = 3.0  # the whole heart ring
    pos = np.stack([np.arange(120) * 2.0, 500 - np.arange(120.0)], axis=1)  # (x, y)
    regions = cxr_regions(std, organs, pos, threshold=2.0)
    by_organ = {r.organ: r for r in regions}
    assert set(by_organ) == {"right_lung", "left_lung", "heart"} and all(r.kind == CXR_ARC for r in regions)
    rl = by_organ["right_lung"]
    assert rl.members == (42, 43, 0, 1) and rl.details["wraps"] and not rl.details["whole_ring"]
    assert by_organ["left_lung"].members == (44,)
    assert by_organ["heart"].size == 26 and by_organ["heart"].details["whole_ring"]
    # ranking: heart Σ = 78, right lung 20, left lung 9
    assert [r.organ for r in regions] == ["heart", "right_lung", "left_lung"]
    # box and centre in (row, col) = (y, x)
    ys, xs = pos[[42, 43, 0, 1], 1], pos[[42, 43, 0, 1], 0]
    assert rl.bbox_min == (ys.min(), xs.min()) and rl.bbox_max == (ys.max(), xs.max())
    assert rl.centre == pytest.approx((ys.mean(), xs.mean()))


# ---------------------------------------------------------------------------------------------------- components
def test_components_26_connected_ranked_tiny_dropped_volume_from_xyz_spacing():
    u = np.zeros((20, 30, 40))
    u[2:5, 2:5, 2:5] = 1.0  # 27 voxels of 1.0 → Σ 27
    u[10:12, 10:12, 10:12] = 5.0  # 8 voxels of 5 → Σ 40: first
    u[12, 12, 12] = 5.0  # touches the previous cube only at a corner: 26-connected → same region
    u[18, 28, 38] = 9.0  # a single voxel: dropped by min_voxels
    spacing = (0.5, 1.0, 2.0)  # x = col, y = row, z = slice → voxel volume 1 mm³
    res = component_regions(u, 0.5, spacing, min_voxels=5)
    assert [r.kind for r in res.regions] == [COMPONENT, COMPONENT]
    first, second = res.regions
    assert first.size == 9 and first.volume_mm3 == pytest.approx(9.0) and first.peak == 5.0
    assert first.integrated == pytest.approx(45.0) and first.details["sum_voxels"] == pytest.approx(45.0)
    assert first.bbox_min == (10, 10, 10) and first.bbox_max == (12, 12, 12)
    assert second.size == 27 and second.centre == pytest.approx((3.0, 3.0, 3.0))
    assert res.mask(1).sum() == 9 and res.mask(2)[3, 3, 3] and res.labels[18, 28, 38] == 0
    # anisotropic spacing: the same voxels hold twice the volume along z = slice when z doubles
    res2 = component_regions(u, 0.5, (0.5, 1.0, 4.0), min_voxels=5)
    assert res2.regions[0].volume_mm3 == pytest.approx(18.0)
    # a volume threshold in mm³ drops the 9 mm³ region
    assert [r.size for r in component_regions(u, 0.5, spacing, min_voxels=5, min_volume_mm3=10).regions] == [27]


def test_components_2d_use_8_connectivity():
    u = np.zeros((10, 10))
    u[2, 2] = u[3, 3] = u[4, 4] = 1.0  # a diagonal line: one component with 8-connectivity
    res = component_regions(u, 0.5, (1.0, 1.0), min_voxels=1)
    assert len(res.regions) == 1 and res.regions[0].size == 3


def test_long_band_is_cut_into_regions_a_viewer_can_jump_to():
    u = np.zeros((20, 120))
    u[5:8, 10:110] = np.linspace(1.0, 2.0, 100)  # one thin band, 100 px long; most uncertain at its right end
    u[15, 0] = 3.0
    whole = component_regions(u, 0.5, (0.5, 0.5), min_voxels=5)  # 0.5 mm pixels: the band is 50 mm long
    assert len(whole.regions) == 1 and whole.regions[0].details["peak_at"] == (5, 109)
    cut = component_regions(u, 0.5, (0.5, 0.5), min_voxels=5, max_extent_mm=12.5)  # cells of 25 pixels
    assert len(cut.regions) == 5  # columns 10-24, 25-49, 50-74, 75-99, 100-109
    assert {r.details["component"] for r in cut.regions} == {whole.regions[0].details["component"]}
    assert cut.regions[0].bbox_min == (5, 75) and cut.regions[0].bbox_max == (7, 99)  # most integrated piece
    for r in cut.regions:
        assert cut.labels[r.details["peak_at"]] == r.id and cut.mask(r.id).sum() == r.size
    assert sum(r.size for r in cut.regions) == whole.regions[0].size


# ---------------------------------------------------------------------------------------------------- thresholds
def test_threshold_precedence_caller_card_fallback():
    card = {"uncertainty": {"region_threshold": 8.0, "region_threshold_percentile": 90.0,
                            "region_threshold_units": "grid columns"}}
    values = np.arange(101.0)
    assert region_threshold(card, values, override=3.0).as_dict() == {"value": 3.0, "source": "caller",
                                                                      "percentile": None, "units": None}
    t = region_threshold(card, values, scale=2.5, units="input px")
    assert (t.value, t.source, t.percentile, t.units) == (20.0, "model card", 90.0, "input px")
    f = region_threshold({"uncertainty": {}}, values, fallback_percentile=75)
    assert (f.value, f.source, f.percentile) == (75.0, "case percentile", 75.0)
    with pytest.raises(ValueError):
        region_threshold(None)


def test_validation_percentile_pools_images_and_drops_nan():
    per_image = [np.array([1.0, 2.0, np.nan]), np.array([3.0, 4.0, 5.0, np.inf])]
    assert validation_percentile(per_image, 50) == 3.0
    fields = card_threshold_fields(per_image, 50, units="u", rule="r")
    assert fields == {"region_threshold": 3.0, "region_threshold_percentile": 50.0, "region_threshold_units": "u",
                      "region_threshold_rule": "r", "region_threshold_values": 5}


@pytest.mark.parametrize("model_id,low,high", [("mammo-pectoral-hhr", 2.0, 20.0), ("cxr-hybridgnet-vae", 3.0, 20.0),
                                               ("mammo-breast-mcd", 0.5, 1.1)])
def test_shipped_cards_carry_a_region_threshold(model_id, low, high):
    card = json.loads((REPO / "Resources" / "Models" / model_id / "model.json").read_text())
    unc = card["uncertainty"]
    assert low < unc["region_threshold"] < high
    assert unc["region_threshold_percentile"] == 90.0 and unc["region_threshold_units"] and unc["region_threshold_rule"]
    t = region_threshold(card)
    assert t.source == "model card" and t.value == unc["region_threshold"]
