"""ct-organs' detached fragments in real Slicer MRML (UQSegmentationLib.display.fragments): the summary's fragment
centroids (LPS mm, from uqseg.ct.fragments) become a locked point list in the case's folder, each point inside its
island of the loaded segmentation in Slicer's RAS frame — not mirrored — labelled with organ and volume; a case
without fragments gets no point list."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("slicer", reason="real Slicer MRML (slicer-core) is not installed")

from slicer_readback import ijk_to_ras  # noqa: E402
from UQSegmentationLib import load_results, nodes_io  # noqa: E402
from UQSegmentationLib.display.fragments import FRAGMENTS_TITLE  # noqa: E402
from uqseg.ct.fragments import organ_fragments  # noqa: E402
from uqseg.io.write import write_json, write_segmentation_nrrd, write_volume_nrrd  # noqa: E402

SPACING = (1.5, 2.0, 3.0)  # x, y, z mm
ORIGIN = (-90.0, -70.0, 10.0)  # LPS mm


def _case(tmp_path, island: bool):
    nz, ny, nx = 12, 60, 80
    label = np.zeros((nz, ny, nx), np.uint8)
    label[2:10, 10:40, 5:35] = 1  # the liver, on the patient's right (small LPS x)
    if island:
        # a detached "liver" island on the patient's left, posterior: 7 x 15 x 15 voxels, centre (6, 47, 67)
        label[3:10, 40:55, 60:75] = 1
    image = np.where(label > 0, 60.0, 0.0).astype(np.float32)
    write_volume_nrrd(tmp_path / "ct.nrrd", image, SPACING, ORIGIN)
    d = tmp_path / ("island" if island else "clean")
    write_segmentation_nrrd(d / "segmentation.seg.nrrd", label,
                            [{"name": "liver", "label": 1, "color": (0.87, 0.5, 0.35)}], SPACING, ORIGIN)
    write_volume_nrrd(d / "variance.nrrd", np.zeros(label.shape, np.float32), SPACING, ORIGIN)
    parts = organ_fragments(label, ["liver"], SPACING, ORIGIN)["liver"]
    write_json(d / "summary.json", {"task": "ct-organs", "case": d.name, "ood": False,
                                    "organs": {"liver": {"volume_ml": 1.0, **parts}},
                                    "files": {"segmentation": "segmentation.seg.nrrd", "variance": "variance.nrrd"}})
    return tmp_path / "ct.nrrd", d, label


def ijk_of(volume, ras) -> np.ndarray:
    return (np.linalg.inv(ijk_to_ras(volume)) @ np.array([*ras, 1.0]))[:3]


def test_each_fragment_is_a_locked_point_inside_its_island_in_ras(mrml_scene, tmp_path):
    scene = mrml_scene.scene
    ct, case, label = _case(tmp_path, island=True)
    volume = nodes_io.load_volume(scene, ct, "ct")
    result = load_results(scene, case, volume)
    node = result.nodes["fragments"]
    assert node.GetName() == f"island {FRAGMENTS_TITLE}" and node.GetLocked()
    assert node.GetNumberOfControlPoints() == 1
    assert np.allclose(ijk_of(volume, node.GetNthControlPointPosition(0)), (67, 47, 6), atol=1e-3)
    organ, ml, unit = node.GetNthControlPointLabel(0).split()
    assert (organ, unit) == ("liver", "ml")
    assert float(ml) == pytest.approx(15 * 15 * 7 * 1.5 * 2.0 * 3.0 / 1000, abs=0.01)
    ras = node.GetNthControlPointPosition(0)
    ijk = np.linalg.inv(ijk_to_ras(volume)) @ np.array([*ras, 1.0])
    i, j, k = (int(round(v)) for v in ijk[:3])
    assert (k, j, i) == (6, 47, 67), "the point is not at the island's centre (mirrored or off-grid?)"
    assert label[k, j, i] == 1 and label[k, 10:40, 5:35].sum() > 0 and not (10 <= j < 40 and 5 <= i < 35)
    assert node in result.all_nodes()  # in the case's folder: removed with it, nothing left behind


def test_no_point_list_without_fragments(mrml_scene, tmp_path):
    scene = mrml_scene.scene
    ct, case, _ = _case(tmp_path, island=False)
    result = load_results(scene, case, nodes_io.load_volume(scene, ct, "ct"))
    assert "fragments" not in result.nodes
    assert scene.GetNodesByClass("vtkMRMLMarkupsFiducialNode").GetNumberOfItems() == 0
