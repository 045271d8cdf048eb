"""Every task's outputs on the shipped sample data are unchanged (Testing/golden/sample_outputs.json).

Runs `uqseg predict` for the four tasks on `Resources/SampleData` (CPU, seed 0; ~1 min) and compares every file it
writes with the recorded fingerprints (`output_fingerprints.py` says what is compared and how to record them again
after an intended change). A refactoring of the engine must leave this passing.
"""

from __future__ import annotations

import json

import pytest

import output_fingerprints


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(output_fingerprints.GOLDEN.read_text())


@pytest.mark.parametrize("task", sorted(output_fingerprints.TASK_INPUTS))
def test_outputs_on_the_sample_data_are_unchanged(task, golden, tmp_path):
    now = output_fingerprints.fingerprint_folder(output_fingerprints.run_task(task, tmp_path / task))
    assert output_fingerprints.differences(golden[task], now) == []


def test_the_comparison_sees_a_changed_voxel_node_and_number(golden):
    """The fingerprints are not blind: one label voxel, a float map off by 0.1 %, a summary number off by 0.1 %, a
    boundary row moved by 0.01 px, a landmark moved by 0.01 px and a preview block darker by 2 grey levels are each
    reported — while float32 noise of another processor (1e-7 relative, a flipped last printed decimal) is not."""
    task = golden["ct-organs"]
    changed = json.loads(json.dumps(task))
    seg = next(name for name, entry in changed.items() if name.endswith("segmentation.seg.nrrd"))
    changed[seg]["sha256"] = "0" * 64
    variance = next(name for name, entry in changed.items() if name.endswith("variance.nrrd"))
    changed[variance]["stats"][0] *= 1 + 1e-3
    summary = next(name for name in changed if name.endswith("summary.json"))
    changed[summary]["values"]["image_uncertainty"] *= 1 + 1e-3
    preview = next(name for name in changed if name.endswith("preview.png"))
    changed[preview]["block_means"][3][4][0] -= 2
    problems = output_fingerprints.differences(task, changed)
    assert any("label data changed" in p for p in problems)
    assert any("float data changed" in p for p in problems)
    assert any("image_uncertainty" in p for p in problems)
    assert any("pixels changed" in p for p in problems)

    pectoral = golden["mammo-pectoral"]
    boundary = next(name for name in pectoral if name.endswith("boundary.csv"))
    header = pectoral[boundary]["rows"][0]
    moved = json.loads(json.dumps(pectoral))
    moved[boundary]["rows"][200][header.index("mean_col")] = repr(float(moved[boundary]["rows"][200][
        header.index("mean_col")]) + 0.01)
    assert any("row 200" in p for p in output_fingerprints.differences(pectoral, moved))

    cxr = golden["cxr-landmarks"]
    landmarks = next(name for name in cxr if name.endswith("landmarks.csv"))
    header = cxr[landmarks]["rows"][0]
    noisy, nudged = json.loads(json.dumps(cxr)), json.loads(json.dumps(cxr))
    x = float(cxr[landmarks]["rows"][5][header.index("mean_x")])
    noisy[landmarks]["rows"][5][header.index("mean_x")] = f"{x * (1 + 1e-7) + 1e-3:.3f}"
    nudged[landmarks]["rows"][5][header.index("mean_x")] = repr(x + 1e-2)
    assert output_fingerprints.differences(cxr, noisy) == []
    assert any("row 5" in p for p in output_fingerprints.differences(cxr, nudged))
