"""The ct-organs out-of-distribution score (uqseg.ct.ood): the cells' intensity-context descriptors, the k-th
nearest-neighbour distance (Sun et al. 2022), the cross-fitted threshold, the voxel map, its file, and the map inside
predict_ct."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uqseg.ct.ood import (CELL, HU_EDGES, SCALES, ContextKnn, context_descriptors, fit_context_knn, knn_distance,
                          ood_map, organ_ood_fractions)


def _abdomen_like(rng, shape=(24, 64, 64), organ_hu=60.0) -> np.ndarray:
    """Air outside an elliptic body of fat (−100 HU) holding a soft-tissue organ (organ_hu), with 15 HU noise."""
    z, y, x = np.mgrid[:shape[0], :shape[1], :shape[2]]
    body = ((y - shape[1] / 2) / (shape[1] * 0.45)) ** 2 + ((x - shape[2] / 2) / (shape[2] * 0.45)) ** 2 < 1
    organ = ((y - shape[1] / 2) / (shape[1] * 0.25)) ** 2 + ((x - shape[2] / 2) / (shape[2] * 0.2)) ** 2 < 1
    hu = np.where(body, -100.0, -1000.0)
    hu = np.where(organ, organ_hu, hu)
    return (hu + rng.normal(0, 15, shape)).astype(np.float32)


def test_descriptor_is_the_square_rooted_tissue_histogram_of_each_cell_and_its_context():
    hu = np.full((4, 8, 16), -1000.0, np.float32)  # two cells along x: air | half fat, half soft tissue
    hu[:, :, 8:12] = -100.0
    hu[:, :, 12:] = 60.0
    desc, body = context_descriptors(hu)
    n = len(HU_EDGES) + 1
    assert desc.shape == (1, 1, 2, n * len(SCALES)) and body.tolist() == [[[False, True]]]
    own = desc[0, 0, 1, :n] ** 2  # the cell itself (scale 1 x 1 x 1): fractions per bin
    fat, soft = np.digitize(-100.0, HU_EDGES), np.digitize(60.0, HU_EDGES)
    assert own[fat] == pytest.approx(0.5) and own[soft] == pytest.approx(0.5) and own.sum() == pytest.approx(1.0)
    assert (desc[0, 0, 0, :n] ** 2)[0] == pytest.approx(1.0)  # the air cell: all in the air bin
    wide = desc[0, 0, 1, n:2 * n] ** 2  # 1 x 3 x 3 context sees the air cell too
    assert 0 < wide[0] < 1 and wide.sum() == pytest.approx(1.0, abs=1e-5)


def test_knn_distance_is_the_distance_to_the_kth_nearest_bank_row():
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(200, 5)).astype(np.float32)
    q = rng.normal(size=(7, 5)).astype(np.float32)
    want = np.sort(np.linalg.norm(q[:, None] - bank[None], axis=2), axis=1)[:, 3]
    assert np.allclose(knn_distance(q, torch.from_numpy(bank), 4), want, atol=1e-5)


def test_unknown_tissue_scores_above_the_cross_fitted_threshold_and_known_tissue_below():
    """Fit on two 'patients' of the same anatomy; a third of that anatomy stays below the threshold, a body where the
    organ is bone-dense (an anatomy never seen) and an MR-like remap light up; the threshold is the 99th percentile of
    cross-fitted training scores, so a training cell is never its own neighbour."""
    rng = np.random.default_rng(1)
    train = [(_abdomen_like(rng), None), (_abdomen_like(rng), None)]
    knn = fit_context_knn(train, k=10, percentile=99.0)
    assert knn.threshold > 0 and knn.percentile == 99.0 and knn.bank.shape[1] == (len(HU_EDGES) + 1) * len(SCALES)
    known = _abdomen_like(rng)
    unknown = _abdomen_like(rng, organ_hu=700.0)
    mr_like = np.where(known < -500, known, 250 - 2 * np.abs(known + 100)).astype(np.float32)
    body = lambda hu: hu > -500
    assert (ood_map(known, knn)[body(known)] > knn.threshold).mean() < 0.05
    assert (ood_map(unknown, knn)[unknown > 500] > knn.threshold).mean() > 0.9
    assert (ood_map(mr_like, knn)[body(mr_like)] > knn.threshold).mean() > 0.5


def test_held_out_voxels_are_not_in_the_bank():
    rng = np.random.default_rng(2)
    hu = _abdomen_like(rng, shape=(24, 64, 64))
    keep = np.ones(hu.shape, bool)
    keep[12:] = False
    full = fit_context_knn([(hu, None)])
    half = fit_context_knn([(hu, keep)])
    assert len(half.bank) == pytest.approx(len(full.bank) / 2, abs=2)


def test_map_is_on_the_working_grid_and_cell_scores_are_upsampled():
    rng = np.random.default_rng(3)
    hu = _abdomen_like(rng, shape=(10, 30, 26))
    knn = fit_context_knn([(_abdomen_like(rng), None)])
    m = ood_map(hu, knn)
    assert m.shape == hu.shape and m.dtype == np.float32 and np.isfinite(m).all() and m.min() >= 0
    assert CELL == (4, 8, 8)


def test_organ_fractions_and_file_round_trip(tmp_path):
    ood = np.zeros((2, 4, 4), np.float32)
    ood[:, :2] = 5.0
    label = np.zeros((2, 4, 4), np.uint8)
    label[:, :3, :2] = 1  # 8 of its 12 voxels lie where ood = 5
    fr = organ_ood_fractions(ood, label, ["liver", "spleen"], threshold=2.0)
    assert fr == {"liver": pytest.approx(8 / 12, abs=1e-4), "spleen": None}
    d = (len(HU_EDGES) + 1) * len(SCALES)
    g = ContextKnn(torch.randn(30, d), k=7, threshold=0.75, percentile=99.0)
    g.save(tmp_path / "ood.safetensors")
    back = ContextKnn.load(tmp_path / "ood.safetensors")
    assert torch.equal(back.bank, g.bank) and back.k == 7 and back.threshold == 0.75 and back.percentile == 99.0
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(Exception):
        ContextKnn.load(tmp_path / "bad.safetensors")


def test_a_bank_of_another_descriptor_is_refused(tmp_path):
    """A bank fitted with other context scales (e.g. a model folder of an older version) has distances that mean
    nothing against this code's descriptors: loading it names the file and what differs, instead of a wrong map."""
    from safetensors.torch import save_file

    import uqseg.ct.ood as ood

    d = (len(HU_EDGES) + 1) * len(SCALES)
    old = {"bank": torch.randn(30, d - 9), "k": torch.tensor([10]), "threshold": torch.tensor([0.8]),
           "cell": torch.tensor(CELL), "hu_edges": torch.tensor(HU_EDGES, dtype=torch.float32),
           "scales": torch.tensor(SCALES[:-1])}
    save_file(old, str(tmp_path / "old.safetensors"))
    with pytest.raises(ValueError, match=r"old\.safetensors: made with another context descriptor \(scales"):
        ContextKnn.load(tmp_path / "old.safetensors")
    save_file({k: v for k, v in old.items() if k != "scales"}, str(tmp_path / "unversioned.safetensors"))
    with pytest.raises(ValueError, match="scales none"):
        ContextKnn.load(tmp_path / "unversioned.safetensors")
    assert ood.descriptor_size() == d


def test_predict_ct_writes_the_ood_map_on_the_input_grid_without_changing_the_probabilities():
    from uqseg.ct.inference import predict_ct
    from uqseg.ct.network import StochasticSegNet3d
    from uqseg.io.image import Image

    torch.manual_seed(0)
    net = StochasticSegNet3d(classes=2, form="mixture_of_bases", rank=8, bases=2, filters=(4, 8, 8),
                             strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]]).eval()
    rng = np.random.default_rng(0)
    hu = _abdomen_like(rng, shape=(10, 30, 26))
    img = Image(hu, spacing=(1.5, 1.5, 2.5), origin=(0, 0, 0), direction=np.eye(3), meta={"modality": "CT"})
    base = predict_ct(img, net, 2.0, (-250, 350), ["organ"], samples=4)
    knn = fit_context_knn([(_abdomen_like(rng), None)])
    pred = predict_ct(img, net, 2.0, (-250, 350), ["organ"], samples=4, ood=knn)
    assert base.ood is None and pred.ood.shape == img.shape and pred.work_ood.shape == pred.grid.shape
    assert np.allclose(pred.work_probability, base.work_probability, atol=1e-6)
    assert np.isfinite(pred.ood).all() and pred.ood.min() >= 0
    assert np.allclose(pred.work_ood, ood_map(pred.work_hu, knn))


def test_the_card_s_ood_statistics_are_checked_like_the_weights(tmp_path):
    """Missing, replaced, outside the model folder or unreadable OOD statistics: one ModelError naming the file."""
    import json
    import shutil
    from pathlib import Path

    from uqseg.models.registry import ModelCard, ModelError
    from uqseg.tasks.ct_organs import load_ood

    src = Path(__file__).resolve().parents[1] / "Resources" / "Models" / "ct-organs-mob"
    folder = tmp_path / "m"
    shutil.copytree(src, folder)
    card = json.loads((folder / "model.json").read_text())
    assert load_ood(ModelCard(folder, card, source="test")).threshold == card["ood"]["threshold"]

    def refusal(spec, setup=None) -> str:
        if setup:
            setup()
        with pytest.raises(ModelError) as e:
            load_ood(ModelCard(folder, {**card, "ood": {**card["ood"], **spec}}, source="test"))
        return str(e.value)

    assert "lies outside the model folder" in refusal({"file": "../ood.safetensors"})
    assert "OOD statistics file missing" in refusal({"file": "none.safetensors"})
    assert "corrupt or replaced OOD statistics" in refusal({"sha256": "0" * 64})
    # a card that does not fingerprint its bank: refused, never read unchecked
    assert "has no ood.sha256: its OOD statistics cannot be checked" in refusal({"sha256": None})
    assert "a malformed ood.sha256" in refusal({"sha256": "abc"})
    (folder / "bad.safetensors").write_bytes(b"not a safetensors file")
    from uqseg.models.registry import sha256_of

    bad = {"file": "bad.safetensors", "sha256": sha256_of(folder / "bad.safetensors")}
    assert "cannot be read as OOD statistics" in refusal(bad)

