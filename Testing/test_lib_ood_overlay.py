"""ct-organs' out-of-distribution overlay in real Slicer MRML (UQSegmentationLib.display.ood), rendered offscreen:
ood.nrrd is loaded with the case, styled in viridis from the summary's OOD threshold with its own legend, left hidden
until asked for; `show_ct_overlay` swaps it with the variance in the slice views' foreground and swaps the legends;
tissue below the threshold shows the background, tissue above it is coloured."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer", reason="real Slicer MRML (slicer-core) is not installed")

from slicer_readback import ijk_to_ras  # noqa: E402
from UQSegmentationLib import colormap_rgb, load_results, nodes_io  # noqa: E402
from UQSegmentationLib.display.ood import OOD_TITLE, show_ct_overlay  # noqa: E402
from UQSegmentationLib.display.views import set_slice_layers  # noqa: E402
from UQSegmentationLib.render import SliceViewRenderer  # noqa: E402
from uqseg.io.write import write_json, write_segmentation_nrrd, write_volume_nrrd  # noqa: E402

SPACING = (1.5, 1.5, 3.0)
ORIGIN = (-90.0, -70.0, 10.0)
THRESHOLD = 10.0


@pytest.fixture
def red(mrml_scene):
    view = SliceViewRenderer(mrml_scene.scene, mrml_scene.app_logic, size=(400, 600))
    yield view
    view.close()


@pytest.fixture
def ood_case(tmp_path):
    """A body with an organ; the OOD map is above the threshold (15..25) in the right half only."""
    nz, ny, nx = 12, 80, 120
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(float)
    body = ((x - 60) / 58) ** 2 + ((y - 40) / 38) ** 2 < 1
    image = np.where(body, 40.0, -1000.0).astype(np.float32)
    organ = ((x - 40) / 15) ** 2 + ((y - 40) / 12) ** 2 < 1
    ood = np.where(x >= 60, 15 + 10 * (x - 60) / 60, 4.0).astype(np.float32) * body
    variance = (0.01 * organ).astype(np.float32)
    write_volume_nrrd(tmp_path / "ct.nrrd", image, SPACING, ORIGIN)
    d = tmp_path / "case"
    write_segmentation_nrrd(d / "segmentation.seg.nrrd", organ.astype(np.uint8),
                            [{"name": "liver", "label": 1, "color": (0.87, 0.5, 0.35)}], SPACING, ORIGIN)
    write_volume_nrrd(d / "variance.nrrd", variance, SPACING, ORIGIN)
    write_volume_nrrd(d / "ood.nrrd", ood, SPACING, ORIGIN)
    write_json(d / "summary.json", {"task": "ct-organs", "case": "case", "ood": True,
                                    "ood_map": {"threshold": THRESHOLD},
                                    "files": {"segmentation": "segmentation.seg.nrrd", "variance": "variance.nrrd",
                                              "ood": "ood.nrrd"}})
    return {"input": tmp_path / "ct.nrrd", "dir": d, "ood": ood}


def test_ood_overlay_loads_hidden_swaps_with_the_variance_and_colours_only_above_the_threshold(
        mrml_scene, red, ood_case, tmp_path):
    scene = mrml_scene.scene
    volume = nodes_io.load_volume(scene, ood_case["input"], "ct")
    result = load_results(scene, ood_case["dir"], volume)
    ood_node, variance = result.nodes.get("ood"), result.overlay
    assert ood_node is not None and result.nodes["ood_legend"].GetTitleText().startswith(OOD_TITLE)
    # loaded, styled, not shown: the variance stays the overlay and its legend the visible one
    assert red.composite_node.GetForegroundVolumeID() == variance.GetID()
    assert result.nodes["legend"].GetVisibility() and not result.nodes["ood_legend"].GetVisibility()
    display = ood_node.GetDisplayNode()
    assert display.GetApplyThreshold() and display.GetLowerThreshold() == pytest.approx(THRESHOLD)

    assert show_ct_overlay(scene, result.nodes, "ood")
    assert red.composite_node.GetForegroundVolumeID() == ood_node.GetID()
    assert result.nodes["ood_legend"].GetVisibility() and not result.nodes["legend"].GetVisibility()

    red.fit(volume)
    out = Path(os.environ.get("UQSEG_RENDER_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    on = red.save_png(out / "ct_ood_red.png").astype(float)
    set_slice_layers(scene, foreground=None)
    background = red.save_png(out / "ct_ood_background_red.png").astype(float)
    set_slice_layers(scene, foreground=ood_node, foreground_opacity=0.6)
    k = int(round((np.linalg.inv(ijk_to_ras(volume)) @ np.array([*red.slice_node.GetSliceToRAS().MultiplyPoint(
        (0, 0, 0, 1))[:3], 1.0]))[2]))
    m = ijk_to_ras(volume)

    def pixel(ix, iy):
        r, c = red.world_to_pixel((m @ np.array([ix, iy, k, 1.0]))[:3])[0]
        return int(round(r)), int(round(c))

    # OOD 19.3 (above) and 4 (below the threshold); x = 86, not under the legend's labels at the right of the view
    inside, outside = pixel(86, 40), pixel(30, 40)
    assert np.abs(on[inside] - background[inside]).max() > 40, "the out-of-distribution tissue is not coloured"
    assert np.abs(on[outside] - background[outside]).max() <= 2, "in-distribution tissue is tinted"
    hi = float(ood_case["ood"].max())
    expected = 0.6 * np.array(colormap_rgb("viridis", ood_case["ood"][k, 40, 86] / hi)) * 255 + 0.4 * background[inside]
    assert np.abs(on[inside] - expected).max() < 30

    assert show_ct_overlay(scene, result.nodes, "variance")
    assert red.composite_node.GetForegroundVolumeID() == variance.GetID()
    assert result.nodes["legend"].GetVisibility() and not result.nodes["ood_legend"].GetVisibility()
    with pytest.raises(ValueError):
        show_ct_overlay(scene, result.nodes, "entropy")
