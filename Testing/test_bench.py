"""`uqseg bench` on the shipped models (CPU, few repeats): every task reports the fields the README quotes, and what
makes the sampling-based uncertainty cheap is there, counted rather than timed: the cxr-landmarks uncertainty run
encodes the image ONCE where its MC-dropout-style baseline runs N full passes, and the mammo-breast one puts the image
through the U-Net once where its baseline puts N copies through. No time is compared or bounded here (CI machines are
shared and noisy: timings are what `uqseg bench` itself reports; the README quotes a quiet-machine run). The shipped
models are committed: one that does not load fails these tests."""

from __future__ import annotations

import math

import numpy as np

import pytest

from uqseg.bench import BENCHES, run_bench

TIMINGS = ("single_pass_ms", "uncertainty_ms", "mc_dropout_ms")


def _timings_are_positive(r: dict, keys) -> None:
    for key in keys:
        assert isinstance(r[key], (int, float)) and math.isfinite(r[key]) and r[key] > 0, (key, r[key])


def test_cxr_bench_encodes_once_where_its_baseline_runs_full_passes(shipped_model, monkeypatch):
    shipped_model("cxr-landmarks")
    from uqseg.cxr import inference
    from uqseg.cxr.hybridgnet import HybridGNet

    inside: list[int] = []  # encodings during each `predict_landmarks` call (single pass, uncertainty run)
    outside = [0]  # encodings outside it: the MC-dropout-style baseline
    depth = [0]
    encode, predict = HybridGNet.encode, inference.predict_landmarks

    def counting_encode(self, x):
        if depth[0]:
            inside[-1] += 1
        else:
            outside[0] += 1
        return encode(self, x)

    def counting_predict(*args, **kwargs):
        inside.append(0)
        depth[0] += 1
        try:
            return predict(*args, **kwargs)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(HybridGNet, "encode", counting_encode)
    monkeypatch.setattr(inference, "predict_landmarks", counting_predict)
    r = run_bench(["cxr-landmarks"], "cpu", repeats=2)["cxr-landmarks"]
    assert r["samples"] == 50 and r["device"] == "cpu"
    _timings_are_positive(r, TIMINGS)
    assert r["ratio"] == pytest.approx(r["uncertainty_ms"] / r["single_pass_ms"], rel=1e-2)
    assert r["mc_dropout_over_uncertainty"] == pytest.approx(r["mc_dropout_ms"] / r["uncertainty_ms"], abs=0.051)
    # the timed predictions (single pass and uncertainty run, warm-ups included): ONE encoding each, the 50 samples
    # are decoded from it
    assert len(inside) >= 2 and all(n == 1 for n in inside), inside
    assert outside[0] > 0 and outside[0] % r["samples"] == 0, outside  # the baseline: 50 encodings per run


def test_breast_bench_puts_the_image_through_the_network_once_where_its_baseline_does_it_n_times(shipped_model,
                                                                                                  monkeypatch):
    shipped_model("mammo-breast")
    shipped_model("mammo-pectoral")  # the bench times the pectoral task on the same image
    from uqseg.mammo import breast
    from uqseg.mammo.breast_model import BreastSegNet

    runs: list[list] = []  # [how predict_breast was called, images through the U-Net during the call]
    forward, features, predict = BreastSegNet.forward, BreastSegNet.features, breast.predict_breast

    def counting(method):
        def wrapper(self, x):
            if runs:
                runs[-1][1] += x.shape[0]
            return method(self, x)
        return wrapper

    def counting_predict(*args, **kwargs):
        kind = "fast" if kwargs.get("fast") else ("shared" if kwargs.get("share_features", True) else "full passes")
        runs.append([kind, 0])
        return predict(*args, **kwargs)

    monkeypatch.setattr(BreastSegNet, "forward", counting(forward))
    monkeypatch.setattr(BreastSegNet, "features", counting(features))
    monkeypatch.setattr(breast, "predict_breast", counting_predict)
    r = run_bench(["mammo-breast"], "cpu", repeats=1)["mammo-breast"]
    assert r["samples"] == 20
    _timings_are_positive(r, TIMINGS + ("pectoral_single_pass_ms",))
    assert r["ratio"] == pytest.approx(r["uncertainty_ms"] / r["single_pass_ms"], rel=1e-2)
    assert r["uncertainty_over_pectoral"] == pytest.approx(r["uncertainty_ms"] / r["pectoral_single_pass_ms"],
                                                           rel=1e-2)
    images = {}
    for kind, n in runs:
        images.setdefault(kind, set()).add(n)
    # every timed run (warm-ups included): the image through the network once (--fast, and the uncertainty run with
    # shared features), N = 20 times for the baseline of full passes
    assert images == {"fast": {1}, "shared": {1}, "full passes": {r["samples"]}}, runs


def test_every_task_with_a_shipped_model_has_a_bench():
    from uqseg.models.registry import list_models, shipped_dirs
    from uqseg.tasks import TASKS

    assert set(BENCHES) <= set(TASKS)
    roots = {d.resolve() for d in shipped_dirs() if d.is_dir()}
    shipped = {m.task for m in list_models() if m.folder.resolve().parent in roots}
    assert shipped, f"no shipped model in {[str(d) for d in shipped_dirs()]}"
    for task in sorted(shipped):
        assert task in TASKS, f"a shipped model for an unknown task {task!r}"
        assert task in BENCHES, f"{task} has a shipped model but no benchmark"


def test_pectoral_bench_times_the_same_pipeline_with_and_without_sigma(shipped_model):
    """The pectoral bench's baseline is the whole pipeline without σ and multimodality — not the network alone — and
    it draws the very boundary the full inference draws (same rows, same mean columns), so the ratio is the cost of
    the uncertainty outputs only."""
    model = shipped_model("mammo-pectoral").model
    from uqseg.io.image import Image
    from uqseg.io.phantoms import mlo_phantom
    from uqseg.mammo.pectoral import predict_pectoral, predict_pectoral_boundary_only

    image, _, _ = mlo_phantom()
    full = predict_pectoral(Image(image), model)
    rows, mean = predict_pectoral_boundary_only(Image(image), model)
    assert rows.size > 100 and (rows == full.rows).all() and (mean == full.mean_col).all()
    flipped = Image(image[:, ::-1].copy())  # chest wall on the other side: the baseline maps back the same way
    rows_f, mean_f = predict_pectoral_boundary_only(flipped, model)
    full_f = predict_pectoral(flipped, model)
    assert (rows_f == full_f.rows).all() and np.allclose(mean_f, full_f.mean_col)

    r = run_bench(["mammo-pectoral"], "cpu", repeats=2)["mammo-pectoral"]
    _timings_are_positive(r, ("single_pass_ms", "uncertainty_ms", "network_ms"))
    assert r["ratio"] == pytest.approx(r["uncertainty_ms"] / r["single_pass_ms"], rel=1e-2)
    # the baseline runs the network itself, once, as the full inference does (counted, not timed: on a shared machine
    # the network pass alone has measured both faster and slower than the whole baseline)
    calls, forward = [], model.forward

    def counted(x):
        calls.append(tuple(x.shape))
        return forward(x)

    model.forward = counted  # the instance attribute: both model(x) and model.decode(x) go through it
    try:
        predict_pectoral_boundary_only(Image(image), model)
        predict_pectoral(Image(image), model)
    finally:
        del model.forward
    assert len(calls) == 2 and calls[0] == calls[1]  # one network pass each, on the same input grid
    assert r["network_ms"] > 0
