"""`uqseg bench` on the shipped models (CPU, few repeats): every task reports the fields the README quotes, and the
sampling-based uncertainty is far cheaper than its MC-dropout-style baseline of full passes. Absolute times and the
ratio limits are not asserted here (CI machines are shared and noisy); the README quotes a quiet-machine run."""

from __future__ import annotations

import pytest

from uqseg.bench import BENCHES, run_bench
from uqseg.models.registry import ModelError, find_model


def _require(task: str) -> None:
    try:
        find_model(task)
    except ModelError as error:
        pytest.skip(f"no model for {task}: {error}")


def test_cxr_bench_encode_once_beats_full_passes():
    _require("cxr-landmarks")
    r = run_bench(["cxr-landmarks"], "cpu", repeats=2)["cxr-landmarks"]
    assert r["samples"] == 50 and r["device"] == "cpu"
    assert r["ratio"] == pytest.approx(r["uncertainty_ms"] / r["single_pass_ms"], rel=1e-2)
    assert r["mc_dropout_ms"] > 5 * r["uncertainty_ms"]  # 50 encodings vs one


def test_breast_bench_shared_features_beat_full_passes():
    _require("mammo-breast")
    r = run_bench(["mammo-breast"], "cpu", repeats=1)["mammo-breast"]
    assert r["samples"] == 20
    assert r["single_pass_ms"] < r["uncertainty_ms"] < r["mc_dropout_ms"]
    assert r["pectoral_single_pass_ms"] > 0 and r["uncertainty_over_pectoral"] > 0


def test_every_task_with_a_model_has_a_bench():
    from uqseg.tasks import TASKS

    assert set(BENCHES) <= set(TASKS)
    for task in TASKS:
        try:
            find_model(task)
        except ModelError:
            continue
        assert task in BENCHES, f"{task} has a model but no benchmark"
