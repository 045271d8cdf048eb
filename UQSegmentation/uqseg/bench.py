"""`uqseg bench`: per task, in one process on the same input, the median of `repeats` runs after a warm-up of
one deterministic forward pass (`single_pass_ms`) and of the task's full uncertainty inference at its default
number of samples (`uncertainty_ms`), their ratio, the MC-dropout baseline where it applies, and peak memory.

mammo-pectoral: the uncertainty comes from the same single pass (row moments of the heatmap, Eq. 1), so both timings
run the whole pipeline (orientation, pass, decoding, mapping back to the input) and differ only by the uncertainty
outputs (σ per row, multimodality); the network pass alone is reported as `network_ms`. Input: the project's synthetic
960 × 480 MLO phantom, so the benchmark needs no data.
Tasks whose model is not installed are skipped (reported as {"skipped": reason}).
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Optional

import torch

try:
    import resource  # POSIX only
except ImportError:  # Windows
    resource = None


def _median_ms(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def _alternating_medians_ms(single, uncertainty, repeats: int, sync, *more) -> tuple[float, ...]:
    """Medians (ms) of `repeats` runs of each after one warm-up each; the functions alternate, so that a change of
    machine load affects every median alike. Returns (single, uncertainty, *more)."""
    fns = (single, uncertainty, *more)
    times = [[] for _ in fns]
    for fn in fns:
        fn()
        sync()
    for _ in range(repeats):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            sync()
            t.append((time.perf_counter() - t0) * 1000)
    return tuple(round(statistics.median(t), 2) for t in times)


def process_peak_memory_mb() -> Optional[float]:
    """This process's peak resident memory in MiB: `getrusage` where the `resource` module exists (POSIX), else
    psutil's peak working set (Windows) when psutil is installed, else None."""
    if resource is not None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (2**20 if sys.platform == "darwin" else 1024), 1)  # macOS: bytes; Linux: KiB
    try:
        import psutil
    except ImportError:
        return None
    peak = getattr(psutil.Process().memory_info(), "peak_wset", None)  # only Windows has it
    return None if peak is None else round(peak / 2**20, 1)


def _peak_memory_mb(dev: torch.device) -> Optional[float]:
    """Peak memory of the run in MiB: CUDA allocations on a GPU, the process's peak resident memory otherwise."""
    if dev.type == "cuda":
        return round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return process_peak_memory_mb()


def bench_mammo_pectoral(dev: torch.device, repeats: int) -> dict:
    """The same pipeline with and without its uncertainty outputs (as for cxr-landmarks): `single_pass_ms` =
    `predict_pectoral_boundary_only` (orientation, network, mean boundary, mapping back), `uncertainty_ms` =
    `predict_pectoral` (the same + σ per row, multimodality, the row distributions), timed alternately;
    `network_ms` = the network pass alone, for reference, in the same alternation (a load change on a shared machine
    then moves all three alike)."""
    from uqseg.io.image import Image
    from uqseg.io.phantoms import mlo_phantom
    from uqseg.mammo.pectoral import network_input, predict_pectoral, predict_pectoral_boundary_only
    from uqseg.models.registry import find_model
    from uqseg.tasks import TASKS

    task = TASKS["mammo-pectoral"]
    model = task.load(find_model("mammo-pectoral"), dev)
    image, _, _ = mlo_phantom()
    img = Image(image)
    x = network_input(image).to(dev)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    def network():
        with torch.no_grad():
            model(x)

    single_ms, unc_ms, network_ms = _alternating_medians_ms(lambda: predict_pectoral_boundary_only(img, model, dev),
                                                            lambda: predict_pectoral(img, model, dev), repeats, sync,
                                                            network)
    return {"single_pass_ms": single_ms, "uncertainty_ms": unc_ms, "samples": 1,
            "ratio": round(unc_ms / single_ms, 3), "network_ms": network_ms, "mc_dropout_ms": None,
            "peak_memory_mb": _peak_memory_mb(dev), "input": "synthetic MLO phantom 960x480", "device": str(dev)}


def bench_cxr_landmarks(dev: torch.device, repeats: int) -> dict:
    """cxr-landmarks (CheXmask-U), all three through the same pipeline (preprocessing of the 512 × 512 input,
    network, positions mapped back to input pixels), so that only the way of getting the uncertainty differs:
    `single_pass_ms` = `predict_landmarks(deterministic=True)`, one deterministic prediction (input checks,
    preprocessing, encode, decode z = μ); `uncertainty_ms` = `predict_landmarks` at N = 50 (ONE encoding, the 50 latent samples decoded in one batch, per-node mean / std); `mc_dropout_ms` = the
    cost of MC-dropout-style inference at N = 50: 50 full passes (encoder + decoder) one after the other, then the
    same moments (dropout masks would not change the cost). Input: the synthetic 512 × 512 chest phantom. The
    single and uncertainty runs alternate (medians of `repeats` each after a warm-up)."""
    import numpy as np

    from uqseg.cxr.inference import DEFAULT_SAMPLES, check_input, predict_landmarks
    from uqseg.cxr.phantom import chest_phantom
    from uqseg.cxr.preprocess import network_input
    from uqseg.io.image import Image
    from uqseg.models.registry import find_model
    from uqseg.tasks import TASKS

    model = TASKS["cxr-landmarks"].load(find_model("cxr-landmarks"), dev)
    image, _ = chest_phantom()
    img = Image(image)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    def single():
        return predict_landmarks(img, model, dev, deterministic=True)

    @torch.inference_mode()
    def mc_passes():
        check_input(img)
        x, frame = network_input(np.nan_to_num(np.asarray(image, dtype=np.float32)), model.input_size)
        x = x.to(dev)
        outs = []
        for _ in range(DEFAULT_SAMPLES):
            mu, logvar, feats = model.encode(x)
            outs.append(model.decode(model.reparameterise(mu, logvar), feats)[0][0])
        pos = torch.stack(outs).double().cpu().numpy()
        return frame.from_normalised(pos.mean(0)), np.std(pos, axis=0) * frame.size

    def uncertainty():
        return predict_landmarks(img, model, dev, samples=DEFAULT_SAMPLES)

    single_ms, unc_ms = _alternating_medians_ms(single, uncertainty, repeats, sync)
    mc_ms = _median_ms(mc_passes, repeats, sync)
    return {"single_pass_ms": single_ms, "uncertainty_ms": unc_ms, "samples": DEFAULT_SAMPLES,
            "ratio": round(unc_ms / single_ms, 3), "mc_dropout_ms": mc_ms,
            "mc_dropout_over_uncertainty": round(mc_ms / unc_ms, 1), "peak_memory_mb": _peak_memory_mb(dev),
            "input": "synthetic chest phantom 512x512", "device": str(dev)}


def bench_mammo_breast(dev: torch.device, repeats: int) -> dict:
    """mammo-breast (Verboom et al.), all through `predict_breast` (preprocessing to 0.4 mm, network, post-processing,
    maps back to input pixels): `single_pass_ms` = `--fast`, one deterministic pass; `uncertainty_ms` = N = 20
    MC-dropout samples as the task runs them (the network up to the dropout once, dropout + classifier 20×, batched);
    `mc_dropout_ms` = the literal baseline, 20 full forward passes (batched 5 at a time, same masks, same numbers);
    `pectoral_single_pass_ms` = the mammo-pectoral task's full inference on the same image, whose uncertainty comes
    from its one pass. Input: the synthetic 960 × 480 MLO phantom read as 0.2 mm pixels (192 × 96 mm)."""
    from uqseg.io.image import Image
    from uqseg.io.phantoms import mlo_phantom
    from uqseg.mammo.breast import predict_breast
    from uqseg.mammo.mc_dropout import DEFAULT_SAMPLES
    from uqseg.mammo.pectoral import predict_pectoral
    from uqseg.models.registry import find_model
    from uqseg.tasks import TASKS

    model = TASKS["mammo-breast"].load(find_model("mammo-breast"), dev)
    pectoral = TASKS["mammo-pectoral"].load(find_model("mammo-pectoral"), dev)
    image, _, _ = mlo_phantom()
    img = Image(image, spacing=(0.2, 0.2), meta={"modality": "MG", "view": "MLO",
                                                          "spacing_source": "benchmark"})
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    single_ms = _median_ms(lambda: predict_breast(img, model, dev, fast=True), repeats, sync)
    unc_ms = _median_ms(lambda: predict_breast(img, model, dev, samples=DEFAULT_SAMPLES), repeats, sync)
    mc_ms = _median_ms(lambda: predict_breast(img, model, dev, samples=DEFAULT_SAMPLES, share_features=False),
                       repeats, sync)
    pect_ms = _median_ms(lambda: predict_pectoral(img, pectoral, dev), repeats, sync)
    return {"single_pass_ms": single_ms, "uncertainty_ms": unc_ms, "samples": DEFAULT_SAMPLES,
            "ratio": round(unc_ms / single_ms, 3), "mc_dropout_ms": mc_ms,
            "mc_dropout_over_single": round(mc_ms / single_ms, 2),
            "pectoral_single_pass_ms": pect_ms, "uncertainty_over_pectoral": round(unc_ms / pect_ms, 2),
            "peak_memory_mb": _peak_memory_mb(dev), "input": "synthetic MLO phantom 960x480 at 0.2 mm",
            "device": str(dev)}


def ct_bench_volume(size: int = 128):
    """A size³ CT volume of real content at 2 mm: the shipped sample CT (Resources/SampleData/ct-abdomen, a
    downsampled TotalSegmentator test series) resampled to 2 mm, centre-cropped to size × size in-plane and mirrored
    along z to `size` slices; identity direction, so it is the model's working grid itself."""
    import numpy as np

    from uqseg.ct.preprocess import to_working_grid, working_grid
    from uqseg.demo import ct_sample_dir
    from uqseg.io.image import Image
    from uqseg.io.load import load_image

    ct = load_image(ct_sample_dir() / "ct.nii.gz", ndim=3)
    grid = working_grid(ct, 2.0)
    hu = to_working_grid(ct, grid)
    z, y, x = hu.shape
    y0, x0 = max(0, (y - size) // 2), max(0, (x - size) // 2)
    hu = hu[:, y0:y0 + size, x0:x0 + size]
    reps = int(np.ceil(size / z))
    stack = np.concatenate([hu if i % 2 == 0 else hu[::-1] for i in range(reps)])[:size]
    origin = tuple(float(o) for o in np.asarray(grid.origin) + np.array([x0, y0, 0]) * 2.0)
    return Image(np.ascontiguousarray(stack, np.float32), spacing=(2.0, 2.0, 2.0), origin=origin,
                 meta={"modality": "CT", "path": "benchmark volume"})


def bench_ct_organs(dev: torch.device, repeats: int) -> dict:
    """ct-organs (Kampen, Aspe et al.), both through `predict_ct` on the same 128³ volume (`ct_bench_volume`):
    `single_pass_ms` = one deterministic pass (softmax of μ, samples = 0); `uncertainty_ms` = the predictive moments
    at k = 30 (Eq. 13-14: the closed form where the logit noise is small, samples of the task's covariance form drawn
    in logit space from ONE network pass per window elsewhere; `uqseg.ct.mc_estimate`), entropy, mapping back;
    `with_kept_samples_ms` = the same with the DEFAULT_KEEP sampled label maps of a default `uqseg predict` (tiles
    where a sample could change a label are sampled for them). The two alternate (medians of `repeats` each after a warm-up). No MC-dropout baseline applies
    (the network has no dropout); `mc_passes_ms` = the cost k full passes would have, k × the network pass."""
    from uqseg.ct.inference import DEFAULT_SAMPLES
    from uqseg.models.registry import find_model
    from uqseg.tasks import TASKS
    from uqseg.tasks.ct_organs import DEFAULT_KEEP, predict_organs

    task = TASKS["ct-organs"]
    card = find_model("ct-organs")
    model = task.load(card, dev)
    image = ct_bench_volume()
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    info = {}

    def single():
        return predict_organs(image, model, card, dev, samples=0)

    def uncertainty():
        info["pred"] = predict_organs(image, model, card, dev, samples=DEFAULT_SAMPLES, keep=0)

    def with_kept_samples():
        predict_organs(image, model, card, dev, samples=DEFAULT_SAMPLES, keep=DEFAULT_KEEP)

    single_ms, unc_ms, kept_ms = _alternating_medians_ms(single, uncertainty, repeats, sync, with_kept_samples)
    pred = info["pred"]
    return {"single_pass_ms": single_ms, "uncertainty_ms": unc_ms, "samples": DEFAULT_SAMPLES,
            "ratio": round(unc_ms / single_ms, 3), "with_kept_samples_ms": kept_ms, "kept_samples": DEFAULT_KEEP,
            "ratio_with_kept_samples": round(kept_ms / single_ms, 3), "mc_dropout_ms": None,
            "mc_passes_ms": round(DEFAULT_SAMPLES * single_ms, 1), "active_fraction": pred.active_fraction,
            "form": card["architecture"]["form"], "classes": card["architecture"]["classes"],
            "peak_memory_mb": _peak_memory_mb(dev), "input": "128^3 at 2 mm from the shipped CT sample",
            "device": str(dev)}


BENCHES = {"mammo-pectoral": bench_mammo_pectoral, "cxr-landmarks": bench_cxr_landmarks,
           "mammo-breast": bench_mammo_breast, "ct-organs": bench_ct_organs}


def run_bench(tasks, device: str = "auto", repeats: int = 5) -> dict:
    from uqseg.device import resolve_device

    dev = resolve_device(device)
    from uqseg.models.registry import ModelError, find_model

    out = {}
    for t in tasks or sorted(BENCHES):
        try:
            find_model(t)
        except ModelError as e:
            out[t] = {"skipped": f"no installed model: {e}"}
            continue
        out[t] = BENCHES[t](dev, repeats)
    return out
