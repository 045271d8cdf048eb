"""The training recipes of Training/ on the one loop (`uqseg.finetune.loop.fit`), the run folder and the model-card
writer of Training/common.py — in seconds, no full training:

- every recipe (pectoral, cxr, breast, ct) runs a few optimisation steps of its real loss and augmentation on tiny
  synthetic inputs with a tiny network: the weights change and the losses are finite;
- the loop's schedules give the documented learning rates; the augmentation's draws are reproducible;
- the recipes' command lines (train_pectoral, train_cxr, train_breast) run one short epoch on two real images each
  (skipped with the reason when ../shared/data is absent): the run folder holds weights, config, metrics, log.csv;
- the card writer produces the fields the registry reads: a model written with it is found through UQSEG_MODELS and
  its network loads with the registry's integrity checks; a card without them is refused; every exporter uses it.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

TRAINING = Path(__file__).resolve().parents[1] / "Training"


@pytest.fixture(autouse=True)
def training_modules(monkeypatch):
    """Training/ is a folder of scripts (each finds its neighbours because a script's folder is on sys.path): the
    tests import them the same way, for the duration of one test."""
    monkeypatch.syspath_prepend(str(TRAINING))
    torch.set_num_threads(1)


def _changed(before: dict, model) -> int:
    """How many floating-point tensors of the model differ from `before`."""
    after = model.state_dict()
    return sum(1 for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k]))


def _fit(recipe, model, examples, **kw):
    from uqseg.finetune.loop import fit

    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    result = fit(recipe, model, examples, gen=torch.Generator().manual_seed(0), on_epoch=lambda s: seen.append(s.step),
                 **kw)
    assert result["steps"] >= 2 and seen[-1] == result["steps"]
    assert all(math.isfinite(x) for x in result["epoch_loss"])
    assert _changed(before, model) > 0, "no weight changed"
    return result


# --------------------------------------------------------------------------------- every recipe, a few steps
def test_pectoral_recipe_trains():
    from train_pectoral import PectoralTraining

    from uqseg.finetune.loop import ReduceOnPlateau, TensorSet
    from uqseg.mammo.pectoral_model import PectoralHeatmapNet

    torch.manual_seed(0)
    images = torch.rand(4, 1, 512, 256)
    cols = torch.arange(256)[None, :] < torch.linspace(120, 10, 512)[:, None]  # a muscle wedge at the left edge
    masks = cols[None, None].float().expand(4, 1, 512, 256).clone()
    images = torch.where(masks > 0, 0.8, images * 0.5)
    result = _fit(PectoralTraining("nll_laplace", 10.0), PectoralHeatmapNet(width=2), TensorSet(images, masks),
                  epochs=2, lr=1e-3, batch=2, schedule=ReduceOnPlateau(0.5, 8))
    assert set(result["epoch_parts"][0]) == {"loss", "data", "js"}


def test_cxr_recipe_trains():
    from train_cxr import CxrTraining

    from uqseg.finetune.loop import TensorSet, WarmupCosine
    from uqseg.tasks.cxr_landmarks import build_model

    torch.manual_seed(0)
    model = build_model({"input_size": 64, "latent": 8, "widths": [4, 4, 8, 8, 8, 8], "stem": 4, "graph_channels": 4,
                         "fine_channels": 4, "k": 2, "skip": True, "skip_stages": [2, 1], "skip_channels": 4})
    nodes = 0.5 + 0.3 * torch.rand(1, model.template.shape[0], 2).expand(4, -1, -1) - 0.15
    with torch.no_grad():
        model.template.copy_(nodes[0])
    recipe = CxrTraining(1e-5, 1e-2, 0.6, 0.5)
    _fit(recipe, model, TensorSet(torch.rand(4, 1, 64, 64), nodes.clone()), epochs=2, lr=1e-3, batch=2,
         schedule=WarmupCosine(4, 0, 0.05))
    assert recipe.beta == pytest.approx(1e-2)  # annealed to its end by the last epoch (start_epoch hook)


def test_breast_recipe_trains():
    from train_breast import BreastTraining

    from uqseg.finetune.loop import TensorSet, WarmupCosine
    from uqseg.mammo.breast_model import BreastSegNet

    torch.manual_seed(0)
    labels = torch.zeros(2, 120, 60, dtype=torch.long)
    labels[:, 10:110, :40] = 1
    labels[:, 10:50, :12] = 2
    images = labels[:, None].float() * 0.4 + 0.05 * torch.rand(2, 1, 120, 60)
    model = BreastSegNet(width=2, dropout=0.5).to(memory_format=torch.channels_last)
    _fit(BreastTraining((64, 48)), model, TensorSet(images, labels), epochs=2, lr=3e-3, batch=1,
         schedule=WarmupCosine(4, 2, 0.02))


def test_ct_recipe_trains():
    from train_ct import DEFAULT_STRIDES, CtTraining

    from uqseg.ct.losses import LossWeights
    from uqseg.ct.network import StochasticSegNet3d
    from uqseg.finetune.loop import WarmupCosine

    torch.manual_seed(0)
    vol = np.random.default_rng(0).normal(0, 0.1, (12, 48, 48)).astype(np.float32)
    lab = np.zeros(vol.shape, np.uint8)
    lab[3:9, 10:30, 12:34] = 1
    vol[lab == 1] += 0.6
    model = StochasticSegNet3d(classes=2, form="mixture_of_bases", rank=4, bases=2, block=4, filters=(4, 8, 8, 8),
                               strides=DEFAULT_STRIDES)
    train = [(vol, lab, (0, 12))]
    recipe = CtTraining(model, train, (8, 32, 32), np.random.default_rng(0), LossWeights(2), 10.0)
    result = _fit(recipe, model, train, epochs=3, lr=1e-3, batch=1, schedule=WarmupCosine(3, 1, 0.05))
    assert result["steps"] == 3  # one loop epoch is one step of sampled patches
    assert {"ce", "dice", "kl"} <= set(result["epoch_parts"][-1])


# ------------------------------------------------------------------------------------------------ the loop
def test_warmup_cosine_schedule():
    from uqseg.finetune.loop import WarmupCosine

    s = WarmupCosine(total_steps=12, warmup_steps=2, floor=0.02)
    f = [s.factor(k) for k in range(12)]
    assert f[:3] == [0.5, 1.0, 1.0]  # linear warm-up, then the cosine starts at 1
    assert all(a >= b for a, b in zip(f[1:], f[2:]))
    assert f[-1] > 0.02 and s.factor(12) == pytest.approx(0.02)
    opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": 1.0},
                           {"params": [torch.zeros(1, requires_grad=True)], "lr": 10.0}])
    s.start(opt)
    s.before_step(opt, 0)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 5.0]  # every group from its own base


def test_fit_stops_after_max_steps_and_evaluates_then():
    from uqseg.finetune.loop import TensorSet, fit

    class Linear:
        clip_norm = None
        freeze_batchnorm = False

        def optimizer(self, params, lr):
            return torch.optim.SGD(params, lr=lr)

        def loss(self, model, batch, gen, device):
            x, y = batch
            loss = ((model(x) - y) ** 2).mean()
            return loss, {"loss": loss.item()}

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(32, 3)
    evaluated = []
    result = fit(Linear(), model, TensorSet(x, x.sum(1, keepdim=True)), epochs=50, lr=0.1, batch=4,
                 gen=torch.Generator().manual_seed(0), max_steps=19, eval_every=10,
                 evaluate=lambda m, s: evaluated.append(s.epoch) or {})
    assert result["steps"] == 19 and result["epochs"] == 3 and result["stopped"].startswith("max_steps")
    assert evaluated == [3]  # not due by eval_every, but the run ends there
    assert result["epoch_loss"][-1] < result["epoch_loss"][0] / 5  # the loss goes down


def test_augmentation_is_reproducible_and_draws_in_order():
    from uqseg.transforms.augment import jitter_intensity, random_theta

    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        theta = random_theta(3, g, max_deg=10, scale=(0.9, 1.1), shift=0.04, aspect=2.0)
        x = jitter_intensity(torch.full((3, 1, 8, 8), 0.5), g, max_gamma=1.6, contrast=(0.8, 1.2), brightness=0.1,
                             max_noise=0.05)
        return theta, x, g.get_state()

    a, b = draw(0), draw(0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    theta = a[0]
    # a rotation of the picture: with aspect h / w = 2 the off-diagonal terms differ by aspect²
    assert torch.allclose(-theta[:, 0, 1], theta[:, 1, 0] * 4)
    assert (theta[:, :, 2].abs() <= 0.08 + 1e-7).all() and (a[1] >= 0).all() and (a[1] <= 1).all()


# -------------------------------------------------------------------------------------------- the run folder
def test_run_folder_files(tmp_path):
    from common import RunFolder

    run = RunFolder(tmp_path / "run", ["epoch", "loss", "val"], jsonl=True)
    run.log({"epoch": 1, "loss": 0.5}, {"epoch": 1, "val": {"a": 1}})
    run.log({"epoch": 2, "loss": 0.25, "val": 0.9})
    with pytest.raises(KeyError):
        run.log({"epoch": 3, "other": 1})
    run.save_weights({"w": torch.ones(2, 3).t()})  # non-contiguous: saved anyway
    run.write_json("config.json", {"init": tmp_path / "x", "n": 1})
    with open(tmp_path / "run" / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"epoch": "1", "loss": "0.5", "val": ""}, {"epoch": "2", "loss": "0.25", "val": "0.9"}]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["init"] == str(tmp_path / "x")
    assert (tmp_path / "run" / "log.jsonl").read_text().count("\n") == 1


def _check_run(out: Path, val_columns: list[str]) -> dict:
    for name in ("weights.safetensors", "config.json", "metrics.json", "log.csv", "checkpoint.safetensors"):
        assert (out / name).is_file(), name
    with open(out / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(rows[-1][c] != "" for c in val_columns)  # the last epoch is validated
    return json.loads((out / "config.json").read_text())


def test_train_pectoral_command(shared_data, tmp_path):
    import train_pectoral

    train_pectoral.main(["--data", str(shared_data / "mammo_ddsm"), "--out", str(tmp_path / "p"), "--limit", "2",
                         "--epochs", "1", "--batch", "2", "--width", "2", "--threads", "1"])
    config = _check_run(tmp_path / "p", ["val_mae", "val_rmse"])
    assert config["epochs"] == 1 and len(config["train_cases"]) == 2 and len(config["val_cases"]) == 1


def test_train_cxr_command(shared_data, tmp_path):
    import train_cxr

    train_cxr.main(["--data", str(shared_data / "cxr_jsrt"), "--out", str(tmp_path / "c"), "--limit", "2",
                    "--epochs", "1", "--batch", "2", "--size", "64", "--latent", "8", "--threads", "1",
                    "--cache", str(tmp_path / "cache")])
    config = _check_run(tmp_path / "c", ["val_landmark_error_px", "val_dice_lungs"])
    assert config["architecture"]["input_size"] == 64 and len(config["val_cases"]) == 2


def test_train_breast_command(shared_data, tmp_path):
    import train_breast

    train_breast.main(["--data", str(shared_data / "mammo_ddsm"), "--out", str(tmp_path / "b"), "--limit", "2",
                       "--epochs", "1", "--batch", "2", "--patch", "64", "48", "--width", "2", "--threads", "1"])
    config = _check_run(tmp_path / "b", ["val_dice_tissue"])
    assert config["epochs"] == 1 and config["patch"] == [64, 48]


# ------------------------------------------------------------------------------------------- the card writer
def _pectoral_card(tmp_path, **over):
    from common import model_card

    card = model_card(id="test-pectoral-card", version="0.0.1", task="mammo-pectoral", title="t", citation="c",
                      architecture={"width": 2}, preprocessing={}, training={"recipe": "Training/train_pectoral.py"},
                      validation={}, uncertainty={"ood_threshold_grid": 10.0}, license="Apache-2.0")
    card.update(over)
    return card


def test_card_writer_gives_what_the_registry_reads(tmp_path, monkeypatch):
    from common import HARDWARE, write_model
    from safetensors.torch import save_file

    from uqseg.mammo.pectoral_model import PectoralHeatmapNet, pectoral_net_for
    from uqseg.models.registry import find_model, load_network

    weights = tmp_path / "run" / "weights.safetensors"
    weights.parent.mkdir()
    save_file(PectoralHeatmapNet(width=2).state_dict(), str(weights))
    models = tmp_path / "models"
    card_file = write_model(models / "test-pectoral-card", _pectoral_card(tmp_path), weights)
    card = json.loads(card_file.read_text())
    assert card["weights"]["file"] == "weights.safetensors" and len(card["weights"]["sha256"]) == 64
    assert card["training"]["hardware"] == HARDWARE and card["default"] is True
    monkeypatch.setenv("UQSEG_MODELS", str(models))
    found = find_model("mammo-pectoral", "test-pectoral-card@0.0.1")
    assert found.folder == models / "test-pectoral-card"
    net = load_network(found, pectoral_net_for)  # sha256, finite values, exact fit
    assert found.verified_sha256 == card["weights"]["sha256"] and not net.training


@pytest.mark.parametrize("bad, why", [({"id": ""}, "'id'"), ({"id": "a@b"}, "'@'"), ({"architecture": {}}, "architecture"),
                                      ({"default": "yes"}, "default")])
def test_card_writer_refuses_a_card_the_registry_cannot_use(tmp_path, bad, why):
    from common import write_model

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(ValueError, match=why):
        write_model(tmp_path / "m", _pectoral_card(tmp_path, **bad), weights)
    assert not (tmp_path / "m" / "model.json").exists()


@pytest.mark.parametrize("exporter", ["export_pectoral", "export_cxr", "export_breast", "export_ct"])
def test_every_exporter_writes_through_the_card_writer(exporter):
    source = (TRAINING / f"{exporter}.py").read_text()
    assert "model_card(" in source and "write_model(" in source
    assert "model.json\").write_text" not in source and "shutil" not in source


def test_forms_comparison_adds_slices_up_to_the_library_metrics():
    """compare_ct_forms.py keeps per-slice sums so that its bootstrap only adds them up: over all slices they must
    give the library's Dice, NLL, ECE and MCE of the organ region (uqseg.metrics.calibration) — a wrong sum would
    put a wrong number in the card's comparison of the covariance forms."""
    from compare_ct_forms import BINS, metrics, slice_stats
    from scipy import ndimage

    from uqseg.metrics.calibration import segmentation_calibration

    rng = np.random.default_rng(0)
    truth = np.zeros((4, 20, 20), np.uint8)
    truth[:, 5:12, 4:10] = 1
    truth[1:3, 12:16, 12:17] = 2
    logits = rng.normal(0, 1.5, (3, 4, 20, 20)) + 3.0 * np.eye(3)[truth].transpose(3, 0, 1, 2)
    prob = np.exp(logits) / np.exp(logits).sum(0)
    var = rng.random((4, 20, 20))
    rows = slice_stats(prob, var, truth, 3)
    got = metrics(rows, ["liver", "spleen"], stochastic=True)
    label = prob.argmax(0)
    near = ndimage.binary_dilation((truth > 0) | (label > 0), iterations=5)
    want = segmentation_calibration(prob, truth, n_bins=BINS, mask=near)
    for c, organ in ((1, "liver"), (2, "spleen")):
        assert got["dice"][organ] == pytest.approx(want["dice"][c], abs=1e-9)
    assert got["nll_organ_region"] == pytest.approx(want["nll"], rel=1e-6)
    assert got["ece_organ_region"] == pytest.approx(want["ece"], abs=1e-9)
    assert got["mce_organ_region"] == pytest.approx(want["mce"], abs=1e-9)
    assert 0 < got["variance_auroc"] < 1
    # a bootstrap draw that repeats slices weighs them twice
    twice = metrics(rows + rows[:1], ["liver", "spleen"], stochastic=False)
    assert twice["nll_organ_region"] != pytest.approx(got["nll_organ_region"], rel=1e-9)
