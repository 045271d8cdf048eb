"""Broken, tampered or shadowing models, and inputs or `--samples` too big for the machine: refused with one line.

`CASES` (below, as data) is the list of input classes; `docs/hostile-inputs.md` ("Models and resources") and the
README table "input class → what the user gets" are written from it. Each case makes a model folder (a copy of a
shipped model, damaged one way) in UQSEG_MODELS and/or an input, runs `uqseg predict` in-process and asserts one of:
- refused: exit 2, exactly one stderr line ``error: <path>: <reason>`` where <path> is what `names` says (the model
  folder, the weights file or the input) and the reason holds the `expect` words; no traceback, no case folder;
- processed: exit 0, nothing on stderr, a summary.json per input (with the checks of `expect`).
Inputs that make the memory estimate huge are SMALL files whose header (spacing) or whose size against a small
`UQSEG_MEMORY_LIMIT` does it: nothing of the estimated size is ever allocated, and each case takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cli_run import run_cli, stderr_lines

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "Resources" / "Models"
CT_SAMPLE = REPO / "Resources" / "SampleData" / "ct-abdomen" / "ct.nii.gz"
REFUSED, PROCESSED = "refused", "processed"
PECTORAL = "mammo-pectoral-hhr"
PECTORAL_SHIPPED_VERSION = json.loads((SHIPPED / PECTORAL / "model.json").read_text())["version"]


@dataclass(frozen=True)
class Case:
    task: str
    input_class: str  # what the README table calls it
    made: str  # how the model folder / input is made
    outcome: str  # REFUSED or PROCESSED
    names: str  # refused: what the error line names first: "model folder", "weights file" or "input"
    expect: tuple  # refused: words of the reason; processed: names of checks in CHECKS
    gets: str  # what the user gets, as a short phrase
    model: str = ""  # name of the function in MODEL_MAKERS that writes the model folder ("" = shipped models only)
    inputs: str = "mammo_png"  # name of the function in INPUT_MAKERS that writes the input(s)
    args: tuple = ()  # extra CLI arguments; "{model}" is replaced by the made model's id
    env: tuple = ()  # (name, value) environment variables for the run


CASES = [
    # ---------------------------------------------------------------------------------------------------- models
    Case("mammo-pectoral", "model card without sha256", "copy of the shipped pectoral model, weights altered, "
         "`weights.sha256` removed from the card", REFUSED, "weights file", ("no weights.sha256", "refused"),
         "refused at load: the card has no weights.sha256, its weights cannot be checked", "no_sha256",
         args=("--model", "{model}")),
    Case("mammo-pectoral", "weights that do not match the card's sha256", "copy of the shipped pectoral model, one "
         "byte of the weights flipped", REFUSED, "weights file", ("does not match the model card", "corrupt or replaced"),
         "refused at load: sha256 does not match the model card (corrupt or replaced weights)", "tampered",
         args=("--model", "{model}")),
    Case("mammo-pectoral", "user model with a shipped model's id and version", "verbatim copy of the shipped "
         "pectoral model in UQSEG_MODELS", REFUSED, "model folder", ("same id and version", "shipped model"),
         "refused: it could pass for the shipped model (whatever --model says)", "shadow_same_version"),
    Case("mammo-pectoral", "user model with a shipped model's id and another version, not picked explicitly",
         "copy of the shipped pectoral model with version 1.1.0, run with the task's default model", REFUSED,
         "model folder", ("reuses the id of the shipped model", f"--model {PECTORAL}@1.1.0"),
         "refused: pick it with --model id@version (or the shipped one with its version)", "shadow_other_version"),
    Case("mammo-pectoral", "user model with a shipped model's id and another version, picked as id@version",
         "the same folder, run with --model mammo-pectoral-hhr@1.1.0", PROCESSED, "", ("user_model_recorded",),
         "used; summary.json records model id, version, source 'user', folder and sha256", "shadow_other_version",
         args=("--model", f"{PECTORAL}@1.1.0")),
    Case("mammo-pectoral", "model card without architecture", "copy of the shipped pectoral model, `architecture` "
         "removed from the card", REFUSED, "model folder", ("no 'architecture'",),
         "refused at load: the network cannot be built", "no_architecture", args=("--model", "{model}")),
    Case("mammo-pectoral", "architecture that cannot build the network", "card with `architecture.width` "
         "\"eight\"", REFUSED, "model folder", ("cannot build the mammo-pectoral network",),
         "refused at load: the card's architecture cannot build the network", "bad_architecture",
         args=("--model", "{model}")),
    Case("mammo-pectoral", "weights of the wrong shape", "card saying width 16 over the shipped width-8 weights",
         REFUSED, "model folder", ("do not fit the network", "of another shape"),
         "refused at load: the weights do not fit the network (tensors of another shape)", "wrong_shape",
         args=("--model", "{model}")),
    Case("mammo-pectoral", "weights with unexpected keys", "the shipped weights plus one extra tensor",
         REFUSED, "model folder", ("do not fit the network", "unexpected tensor"),
         "refused at load: the weights do not fit the network (unexpected tensors)", "unexpected_key",
         args=("--model", "{model}")),
    Case("mammo-pectoral", "weights with a corrupted header (a tensor renamed)", "one letter of a tensor name in the "
         "safetensors header changed, the card's sha256 updated to the damaged file", REFUSED, "model folder",
         ("do not fit the network", "unexpected", "missing"),
         "refused at load: the weights do not fit the network (unexpected and missing tensors)", "renamed_in_header",
         args=("--model", "{model}")),
    Case("mammo-pectoral", "weights with an unreadable header", "the safetensors header's opening brace "
         "overwritten, the card's sha256 updated to the damaged file", REFUSED, "weights file",
         ("unreadable safetensors file",), "refused at load: unreadable safetensors file", "garbled_header",
         args=("--model", "{model}")),
    Case("mammo-pectoral", "another task's weights", "the cxr-landmarks weights under a pectoral card (sha256 "
         "updated)", REFUSED, "model folder", ("do not fit the network", "unexpected", "missing"),
         "refused at load: the weights do not fit the network", "other_task_weights", args=("--model", "{model}")),
    Case("mammo-pectoral", "weights holding NaN", "every floating-point tensor of the shipped weights set to NaN "
         "(sha256 updated)", REFUSED, "weights file", ("NaN or infinite", "refused"),
         "refused at load: weight tensors hold NaN or infinite values", "nan_weights", args=("--model", "{model}")),
    Case("ct-organs", "ct-organs weights with an infinite value", "one value of the shipped ct-organs weights set "
         "to +inf (sha256 updated)", REFUSED, "weights file", ("NaN or infinite",),
         "refused at load: weight tensors hold NaN or infinite values", "inf_weights_ct", inputs="ct_small_a",
         args=("--model", "{model}")),
    # ------------------------------------------------------------------------------------------------- resources
    Case("cxr-landmarks", "--samples above the task's cap", "--samples 100000 on a 360 x 400 chest phantom",
         REFUSED, "input", ("--samples 100000", "10000"),
         "refused before processing: --samples above the documented cap (cxr-landmarks 10000)", "",
         inputs="chest_png", args=("--samples", "100000")),
    Case("ct-organs", "CT whose header spacing makes the working grid enormous", "8 x 48 x 48 voxels of HU with "
         "100 mm voxels declared (a 4.8 m x 4.8 m x 0.8 m box: a working grid of 10^9 voxels at 2 mm), "
         "UQSEG_MEMORY_LIMIT=16G", REFUSED, "input", ("working memory", "working grid", "check the voxel spacing"),
         "refused before processing: the estimated working memory and the limit, check the voxel spacing",
         "", inputs="ct_100mm_voxels", env=(("UQSEG_MEMORY_LIMIT", "16G"),)),
    Case("ct-organs", "CT with 10 mm voxels declared over 512 x 512 pixels", "512 x 512 x 8 voxels of HU with 10 mm "
         "voxels (5 m field of view), UQSEG_MEMORY_LIMIT=8G", REFUSED, "input", ("working memory", "limit of 8.0 GiB"),
         "refused before processing: the estimated working memory and the limit", "", inputs="ct_10mm_512",
         env=(("UQSEG_MEMORY_LIMIT", "8G"),)),
    Case("mammo-breast", "mammogram too large for the memory available", "a 1500 x 1000 mammogram phantom with "
         "UQSEG_MEMORY_LIMIT=256M (what a 141-Mpx PNG is on a machine with about 6 GB free)", REFUSED, "input",
         ("working memory", "UQSEG_MEMORY_LIMIT=256M"), "refused before processing: the estimate and the limit",
         "", inputs="mammo_png_large", env=(("UQSEG_MEMORY_LIMIT", "256M"),)),
    Case("ct-organs", "--samples 1 on two CT cases", "two 10 x 96 x 96 crops of the CT sample, --samples 1",
         PROCESSED, "", ("one_kept_sample", "labels_in_segments"),
         "both cases written; one kept sample each (labels all belong to segments); variance 0 from one sample",
         "", inputs="ct_small_two", args=("--samples", "1")),
]


# ------------------------------------------------------------------------------------------------ model folders
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_model(models: Path, name: str, src: str = PECTORAL, keep_id: bool = False) -> tuple[Path, dict]:
    folder = models / name
    shutil.copytree(SHIPPED / src, folder)
    card = json.loads((folder / "model.json").read_text())
    if not keep_id:
        card["id"], card["default"] = name, False
    return folder, card


def _save(folder: Path, card: dict, resha: bool = True) -> str:
    if resha:
        card["weights"]["sha256"] = _sha(folder / "weights.safetensors")
    (folder / "model.json").write_text(json.dumps(card))
    return card["id"]


def _edit_tensors(folder: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    path = folder / "weights.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def _edit_bytes(folder: Path, edit) -> None:
    path = folder / "weights.safetensors"
    data = bytearray(path.read_bytes())
    edit(data)
    path.write_bytes(bytes(data))


def no_sha256(models: Path) -> str:
    folder, card = _copy_model(models, "pec-no-sha256")
    _edit_bytes(folder, lambda b: b.__setitem__(len(b) - 100, b[len(b) - 100] ^ 0xFF))
    card["weights"].pop("sha256")
    return _save(folder, card, resha=False)


def tampered(models: Path) -> str:
    folder, card = _copy_model(models, "pec-tampered")
    _edit_bytes(folder, lambda b: b.__setitem__(len(b) - 100, b[len(b) - 100] ^ 0xFF))
    return _save(folder, card, resha=False)


def shadow_same_version(models: Path) -> str:
    folder, card = _copy_model(models, PECTORAL, keep_id=True)
    return _save(folder, card, resha=False)


def shadow_other_version(models: Path) -> str:
    folder, card = _copy_model(models, "pectoral-v1.1", keep_id=True)
    card["version"] = "1.1.0"
    return _save(folder, card, resha=False)


def no_architecture(models: Path) -> str:
    folder, card = _copy_model(models, "pec-no-architecture")
    card.pop("architecture")
    return _save(folder, card)


def bad_architecture(models: Path) -> str:
    folder, card = _copy_model(models, "pec-bad-architecture")
    card["architecture"]["width"] = "eight"
    return _save(folder, card)


def wrong_shape(models: Path) -> str:
    folder, card = _copy_model(models, "pec-wrong-shape")
    card["architecture"]["width"] = 16
    return _save(folder, card)


def unexpected_key(models: Path) -> str:
    import torch

    folder, card = _copy_model(models, "pec-unexpected-key")
    _edit_tensors(folder, lambda t: t.__setitem__("extra.weight", torch.zeros(3)))
    return _save(folder, card)


def _header_span(b: bytearray) -> tuple[int, int]:
    n = int.from_bytes(bytes(b[:8]), "little")
    return 8, 8 + n


def renamed_in_header(models: Path) -> str:
    folder, card = _copy_model(models, "pec-renamed-in-header")

    def rename(b):
        start, end = _header_span(b)
        at = bytes(b[start:end]).find(b".weight")
        b[start + at + 1] = ord("W")

    _edit_bytes(folder, rename)
    return _save(folder, card)


def garbled_header(models: Path) -> str:
    folder, card = _copy_model(models, "pec-garbled-header")
    _edit_bytes(folder, lambda b: b.__setitem__(8, ord("X")))
    return _save(folder, card)


def other_task_weights(models: Path) -> str:
    folder, card = _copy_model(models, "pec-cxr-weights")
    shutil.copy(SHIPPED / "cxr-hybridgnet-vae" / "weights.safetensors", folder / "weights.safetensors")
    return _save(folder, card)


def nan_weights(models: Path) -> str:
    import torch

    folder, card = _copy_model(models, "pec-nan")

    def to_nan(tensors):
        for k, t in tensors.items():
            if t.is_floating_point():
                tensors[k] = torch.full_like(t, float("nan"))

    _edit_tensors(folder, to_nan)
    return _save(folder, card)


def inf_weights_ct(models: Path) -> str:
    folder, card = _copy_model(models, "ct-inf", src="ct-organs-mob")

    def one_inf(tensors):
        k = sorted(n for n, t in tensors.items() if t.is_floating_point())[0]
        tensors[k].view(-1)[0] = float("inf")

    _edit_tensors(folder, one_inf)
    return _save(folder, card)


MODEL_MAKERS = {f.__name__: f for f in (no_sha256, tampered, shadow_same_version, shadow_other_version,
                                        no_architecture, bad_architecture, wrong_shape, unexpected_key,
                                        renamed_in_header, garbled_header, other_task_weights, nan_weights,
                                        inf_weights_ct)}


# ------------------------------------------------------------------------------------------------------ inputs
def mammo_png(d: Path) -> list:
    from uqseg.io.phantoms import write_phantom_png

    return [write_phantom_png(d / "mlo.png", shape=(240, 120))[0]]


def mammo_png_large(d: Path) -> list:
    from uqseg.io.phantoms import write_phantom_png

    return [write_phantom_png(d / "big_mlo.png", shape=(1500, 1000))[0]]


def chest_png(d: Path) -> list:
    from PIL import Image as PILImage

    yy, xx = np.mgrid[0:400, 0:360]
    lungs = ((np.abs(xx - 180) > 30) & (np.abs(xx - 180) < 150) & (yy > 50) & (yy < 350)).astype(float)
    pixels = (200 - 120 * lungs + 10 * np.random.default_rng(0).normal(size=lungs.shape)).clip(0, 255)
    PILImage.fromarray(pixels.astype(np.uint8)).save(d / "chest.png")
    return [d / "chest.png"]


def _ct_volume(path: Path, shape_zyx, spacing_xyz) -> Path:
    """A small HU volume (air around a water-like body with some bone) of `shape_zyx` voxels of `spacing_xyz` mm."""
    import SimpleITK as sitk

    z, y, x = shape_zyx
    zz, yy, xx = np.mgrid[0:z, 0:y, 0:x]
    body = ((yy - y / 2) ** 2 / (0.4 * y) ** 2 + (xx - x / 2) ** 2 / (0.45 * x) ** 2) < 1
    hu = np.where(body, 40.0, -1000.0)
    hu[body & (np.abs(yy - y * 0.7) < max(1, y // 20)) & (np.abs(xx - x / 2) < max(1, x // 20))] = 700.0
    image = sitk.GetImageFromArray(hu.astype(np.int16))
    image.SetSpacing([float(s) for s in spacing_xyz])
    sitk.WriteImage(image, str(path))
    return path


def ct_100mm_voxels(d: Path) -> list:
    return [_ct_volume(d / "ct_100mm.nii.gz", (8, 48, 48), (100.0, 100.0, 100.0))]


def ct_10mm_512(d: Path) -> list:
    return [_ct_volume(d / "ct_10mm.nii.gz", (8, 512, 512), (10.0, 10.0, 10.0))]


def _ct_crop(path: Path, x0: int) -> Path:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.ReadImage(str(CT_SAMPLE))[x0: x0 + 96, 60:156, 6:16], str(path))
    return path


def ct_small_a(d: Path) -> list:
    return [_ct_crop(d / "crop_a.nii.gz", 40)]


def ct_small_two(d: Path) -> list:
    return [_ct_crop(d / "crop_a.nii.gz", 40), _ct_crop(d / "crop_b.nii.gz", 100)]


INPUT_MAKERS = {f.__name__: f for f in (mammo_png, mammo_png_large, chest_png, ct_100mm_voxels, ct_10mm_512,
                                        ct_small_a, ct_small_two)}


# ------------------------------------------------------------------------------------- checks of processed cases
def user_model_recorded(summaries: list, models: Path) -> None:
    (s,) = summaries
    folder = models / "pectoral-v1.1"
    m = s["model"]
    assert (m["id"], m["version"], m["source"]) == (PECTORAL, "1.1.0", "user"), m
    assert Path(m["folder"]).resolve() == folder.resolve(), m
    assert m["sha256"] == _sha(folder / "weights.safetensors"), m


def one_kept_sample(summaries: list, models: Path) -> None:
    assert len(summaries) == 2
    for s in summaries:
        assert s["samples"] == 1 and s["files"]["samples"] == ["sample_0.seg.nrrd"], s["files"]


def labels_in_segments(summaries: list, models: Path) -> None:
    import nrrd  # pynrrd, an engine dependency

    for s in summaries:
        folder = Path(s["_folder"])
        for name in ["segmentation.seg.nrrd"] + s["files"]["samples"]:
            data, header = nrrd.read(str(folder / name))
            labels = {int(v) for k, v in header.items() if k.endswith("_LabelValue")}
            assert set(np.unique(data).tolist()) <= labels | {0}, (name, np.unique(data))


CHECKS = {f.__name__: f for f in (user_model_recorded, one_kept_sample, labels_in_segments)}


# ---------------------------------------------------------------------------------------------------- helpers
@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """An empty UQSEG_MODELS folder and an empty user cache (so that nothing of the machine's cache interferes)."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("UQSEG_MODELS", str(models))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("UQSEG_MEMORY_LIMIT", raising=False)
    return models


# ------------------------------------------------------------------------------------------------------ the cases
def test_every_case_has_its_makers_and_a_unique_id():
    ids = [case.input_class for case in CASES]
    assert len(ids) == len(set(ids))
    for case in CASES:
        assert case.outcome in (REFUSED, PROCESSED)
        assert not case.model or case.model in MODEL_MAKERS
        assert case.inputs in INPUT_MAKERS
        if case.outcome == REFUSED:
            assert case.names in ("model folder", "weights file", "input") and case.expect
        else:
            assert set(case.expect) <= set(CHECKS)


@pytest.mark.parametrize("case", CASES, ids=[case.input_class for case in CASES])
def test_hostile_model_or_resource(case: Case, models_dir, tmp_path, monkeypatch):
    if case.inputs.startswith("ct_small") and not CT_SAMPLE.is_file():
        pytest.skip("the CT sample is not in this checkout")
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    model_id = MODEL_MAKERS[case.model](models_dir) if case.model else ""
    inputs = tmp_path / "in"
    inputs.mkdir()
    paths = INPUT_MAKERS[case.inputs](inputs)
    out = tmp_path / "out"
    args = [a.replace("{model}", model_id) for a in case.args]
    t0 = time.perf_counter()
    rc, _, err = run_cli(["predict", "--task", case.task, *paths, "--out", out, "--device", "cpu", *args])
    seconds = time.perf_counter() - t0
    assert "Traceback" not in err, err
    summaries = sorted(out.glob("*/summary.json")) if out.exists() else []
    if case.outcome == REFUSED:
        lines = stderr_lines(err)
        assert rc == 2, (rc, err)
        assert len(lines) == 1, err
        if case.names == "input":
            named = str(paths[0])
        else:  # the one model folder this case made
            (folder,) = list(models_dir.iterdir())
            named = str(folder / "weights.safetensors") if case.names == "weights file" else str(folder)
        assert lines[0].startswith(f"error: {named}: "), (named, lines[0])
        for word in case.expect:
            assert word in lines[0], (word, lines[0])
        assert summaries == [], "a refused case left a case folder"
        assert seconds < 20, f"refusing took {seconds:.1f} s"
        return
    assert rc == 0 and stderr_lines(err) == [], err
    assert len(summaries) == len(paths), list(out.iterdir())
    loaded = []
    for path in summaries:
        s = json.loads(path.read_text())
        s["_folder"] = str(path.parent)
        loaded.append(s)
    for check in case.expect:
        CHECKS[check](loaded, models_dir)


# ------------------------------------------------------------------------------------- registry rules, one by one
def test_shadowing_user_model_is_refused_by_plain_id_and_default(models_dir):
    from uqseg.models.registry import ModelError, find_model

    shadow_other_version(models_dir)
    for name in (None, PECTORAL):
        with pytest.raises(ModelError) as error:
            find_model("mammo-pectoral", name)
        assert str(error.value).startswith(str(models_dir / "pectoral-v1.1")), error.value
    shipped = find_model("mammo-pectoral", f"{PECTORAL}@{PECTORAL_SHIPPED_VERSION}")
    assert (shipped.source, shipped.version) == ("shipped", PECTORAL_SHIPPED_VERSION)
    user = find_model("mammo-pectoral", f"{PECTORAL}@1.1.0")
    assert (user.source, user.folder) == ("user", models_dir / "pectoral-v1.1")
    with pytest.raises(ModelError, match="no version '9.9'"):
        find_model("mammo-pectoral", f"{PECTORAL}@9.9")


def test_same_version_copy_is_refused_even_by_id_at_version(models_dir):
    from uqseg.models.registry import ModelError, find_model

    shadow_same_version(models_dir)
    with pytest.raises(ModelError, match="same id and version"):
        find_model("mammo-pectoral", f"{PECTORAL}@{PECTORAL_SHIPPED_VERSION}")


def test_user_models_with_their_own_ids_are_unaffected(models_dir):
    """A fine-tuned model (its own id) is still found by id; the task's default stays the shipped one."""
    from uqseg.models.registry import find_model

    folder, card = _copy_model(models_dir, "pec-ft1")
    _save(folder, card)
    assert find_model("mammo-pectoral", "pec-ft1").folder == folder
    assert find_model("mammo-pectoral").id == PECTORAL


def test_models_command_lists_refused_models_with_the_reason(models_dir):
    shadow_same_version(models_dir)
    shadow_other_version(models_dir)
    rc, out, err = run_cli(["models"])
    assert rc == 0, err
    lines = [line for line in out.splitlines() if PECTORAL in line]
    assert len(lines) == 3, out
    assert any("[refused: same id and version" in line for line in lines), out
    assert any(f"only as --model {PECTORAL}@1.1.0" in line for line in lines), out
    assert any(line.endswith("[shipped]") for line in lines), out


def test_shipped_models_load_and_record_their_sha256(models_dir):
    from uqseg.models.registry import find_model
    from uqseg.tasks import TASKS

    for task in TASKS:
        card = find_model(task)
        if not card.weights_path.is_file():
            continue
        TASKS[task].load(card, "cpu")
        assert card.source == "shipped" and card.sha256 == card["weights"]["sha256"] == card.verified_sha256


# -------------------------------------------------------------------------------------------- resources, directly
def _fake_image(shape, spacing, meta=None):
    """What the estimates read (shape, spacing, geometry, meta), without an array of that size."""
    return types.SimpleNamespace(shape=tuple(shape), spacing=tuple(spacing), origin=(0.0, 0.0, 0.0),
                                 direction=np.eye(3), meta=dict(meta or {}), ndim=len(shape))


def test_ct_estimate_follows_the_header_spacing():
    from uqseg.resources import estimate

    card = {"preprocessing": {"spacing_mm": 2.0}}
    normal = estimate("ct-organs", _fake_image((300, 512, 512), (0.8, 0.8, 1.5)), card)
    huge = estimate("ct-organs", _fake_image((300, 512, 512), (10.0, 10.0, 10.0)), card)
    assert 1e9 < normal.bytes < 8e9, normal  # a clinical abdomen CT: a few GB
    assert huge.bytes > 100e9, huge  # the 10 mm header: hundreds of GB, refused anywhere
    assert "1496 x 2556 x 2556" in huge.detail


def test_mammogram_estimate_grows_with_pixels_not_with_a_silly_spacing():
    from uqseg.resources import estimate

    meta = {"spacing_source": "PixelSpacing"}
    full = estimate("mammo-breast", _fake_image((4096, 3328), (0.07, 0.07), meta))
    silly = estimate("mammo-breast", _fake_image((4096, 3328), (50.0, 50.0), meta))
    png141 = estimate("mammo-breast", _fake_image((14142, 10000), (1.0, 1.0), {"spacing_source": "default"}))
    assert silly.bytes <= full.bytes < 2e9  # a 50 mm spacing falls back to the 240 mm long side
    assert 4e9 < png141.bytes < 8e9, png141  # measured 4.5 GB (the issue)


def test_sample_caps_and_memory_limit(monkeypatch):
    from uqseg.resources import (SAMPLE_CAPS, SamplesError, check_samples, memory_limit, parse_bytes)

    assert parse_bytes("4G") == 4 << 30 and parse_bytes("512M") == 512 << 20 and parse_bytes("1000") == 1000
    with pytest.raises(ValueError):
        parse_bytes("lots")
    monkeypatch.setenv("UQSEG_MEMORY_LIMIT", "3G")
    assert memory_limit() == (3 << 30, "UQSEG_MEMORY_LIMIT=3G")
    monkeypatch.delenv("UQSEG_MEMORY_LIMIT")
    limit, source = memory_limit()
    assert limit > 0 and source
    for task, cap in SAMPLE_CAPS.items():
        check_samples(task, cap)
        with pytest.raises(SamplesError, match=f"--samples {cap + 1}"):
            check_samples(task, cap + 1, "x.png")
    check_samples("mammo-pectoral", 10**9)  # no sampling: no cap


def test_cxr_sampling_in_chunks_gives_the_same_positions():
    """`sample_positions` decodes DECODE_CHUNK latents at a time; the positions equal one batch's."""
    import torch

    from uqseg.cxr.inference import DECODE_CHUNK, sample_latents, sample_positions
    from uqseg.models.registry import find_model
    from uqseg.tasks import TASKS

    model = TASKS["cxr-landmarks"].load(find_model("cxr-landmarks"), "cpu")
    x = torch.rand(1, 1, model.input_size, model.input_size, generator=torch.Generator().manual_seed(1))
    n = DECODE_CHUNK + 100
    pos, mode, _ = sample_positions(model, x, n, seed=3)
    with torch.inference_mode():
        mu, logvar, feats = model.encode(x)
        whole = model.decode(torch.cat([mu, sample_latents(mu, logvar, n, 3)]), feats)[0]
    assert pos.shape == (n, 120, 2)
    assert torch.equal(pos, whole[1:]) and torch.equal(mode, whole[0])
