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
    """The fingerprints are not blind: one label voxel, one float, one summary number changed are each reported."""
    task = golden["ct-organs"]
    changed = json.loads(json.dumps(task))
    seg = next(name for name, entry in changed.items() if name.endswith("segmentation.seg.nrrd"))
    changed[seg]["sha256"] = "0" * 64
    variance = next(name for name, entry in changed.items() if name.endswith("variance.nrrd"))
    changed[variance]["stats"][0] *= 1 + 1e-5
    summary = next(name for name in changed if name.endswith("summary.json"))
    changed[summary]["values"]["image_uncertainty"] *= 1 + 1e-7
    problems = output_fingerprints.differences(task, changed)
    assert any("label data changed" in p for p in problems)
    assert any("float data changed" in p for p in problems)
    assert any("image_uncertainty" in p for p in problems)
