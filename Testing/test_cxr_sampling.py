"""cxr-landmarks sampling: the reparameterised latent draws, encode-once / one-batch decoding, and the per-node
mean and (population) std mapped to input pixels. A small random HybridGNet (64 × 64 input) keeps this fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uqseg.cxr.hybridgnet import HybridGNet, kl_divergence
from uqseg.cxr.inference import predict_landmarks, sample_latents, sample_positions
from uqseg.cxr.preprocess import network_input
from uqseg.errors import InputError
from uqseg.io.image import Image
from uqseg.cxr.phantom import chest_phantom


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = HybridGNet(input_size=64, skip=True).eval()
    with torch.no_grad():  # a decoder that reacts to z clearly
        m.head.weight.normal_(std=0.05)
        m.pos_coarse.weight.normal_(std=0.05)
        m.pos_fine.weight.normal_(std=0.05)
    return m


def _set_sigma(model, sigma: float):
    with torch.no_grad():
        model.logvar_head.weight.zero_()
        model.logvar_head.bias.fill_(2 * np.log(sigma))


def test_latent_draws_have_the_posterior_moments():
    mu = torch.tensor([[0.5, -1.0, 2.0]])
    logvar = torch.log(torch.tensor([[0.25, 1.0, 4.0]]))
    z = sample_latents(mu, logvar, 20000, seed=3)
    assert z.shape == (20000, 3)
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([0.5, 1.0, 2.0]), atol=0.04, rtol=0)
    torch.testing.assert_close(sample_latents(mu, logvar, 20000, seed=3), z)  # seeded, reproducible
    assert not torch.equal(sample_latents(mu, logvar, 20000, seed=4), z)


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    zero = torch.zeros(4, 8)
    assert kl_divergence(zero, zero).item() == pytest.approx(0.0)
    assert kl_divergence(zero + 1, zero).item() == pytest.approx(0.5)  # ½ μ² per dimension
    assert kl_divergence(zero, zero + 1).item() > 0


def test_encode_once_and_decode_in_one_batch(model, monkeypatch):
    calls = {"encode": 0, "decode": []}
    enc, dec = model.encode, model.decode

    def encode(x):
        calls["encode"] += 1
        return enc(x)

    def decode(z, feats=None):
        calls["decode"].append(z.shape[0])
        return dec(z, feats)

    monkeypatch.setattr(model, "encode", encode)
    monkeypatch.setattr(model, "decode", decode)
    image, _ = chest_phantom((96, 80))
    predict_landmarks(Image(image), model, samples=17)
    assert calls == {"encode": 1, "decode": [18]}  # 17 samples + the decoding of μ, one batch


def test_mean_and_std_are_the_sample_moments_in_input_pixels(model):
    _set_sigma(model, 0.5)
    image, _ = chest_phantom((90, 120))  # non-square: padded to 120 × 120, pad_top 15
    result = predict_landmarks(Image(image), model, samples=30, seed=7)
    x, frame = network_input(image, model.input_size)
    pos, mode, sigma = sample_positions(model, x, 30, seed=7)
    pos = pos.double().numpy()
    np.testing.assert_allclose(result.mean, pos.mean(0) * 120 - 0.5 - np.array([0, 15]), atol=1e-6)
    np.testing.assert_allclose(result.std, pos.std(0) * 120, atol=1e-6)
    np.testing.assert_allclose(result.latent_sigma, 0.5, rtol=1e-5)
    assert result.image_uncertainty == pytest.approx(result.std.mean())
    assert result.image_uncertainty_ref == pytest.approx(result.std.mean() / 120 * 512)
    assert result.samples == 30 and result.mean.shape == (120, 2)


def test_deterministic_pass_is_the_decoding_of_the_latent_mean(model):
    """The single pass `uqseg bench` compares with: the same pipeline, z = μ, no std."""
    _set_sigma(model, 0.5)
    image, _ = chest_phantom((90, 120))
    sampled = predict_landmarks(Image(image), model, samples=30, seed=7)
    single = predict_landmarks(Image(image), model, deterministic=True)
    np.testing.assert_allclose(single.mean, sampled.mode, atol=1e-5)
    assert single.samples == 0 and not single.std.any() and single.mean.shape == (120, 2)
    np.testing.assert_allclose(single.latent_sigma, 0.5, rtol=1e-5)


def test_std_follows_the_latent_sigma(model):
    image, _ = chest_phantom((64, 64))
    stds = []
    for sigma in (1e-8, 1e-2, 2e-2):
        _set_sigma(model, sigma)
        stds.append(predict_landmarks(Image(image), model, samples=50, seed=1).std.mean())
    assert stds[0] < 0.05 * stds[2]
    assert stds[2] / stds[1] == pytest.approx(2.0, rel=0.1)  # locally linear decoder: std ∝ σ


def test_bad_inputs(model):
    with pytest.raises(ValueError, match="at least 2"):
        predict_landmarks(Image(np.random.rand(64, 64).astype(np.float32)), model, samples=1)
    with pytest.raises(InputError, match="at least 32 pixels"):
        predict_landmarks(Image(np.random.rand(20, 64).astype(np.float32)), model)
    with pytest.raises(InputError, match="no contrast"):
        predict_landmarks(Image(np.full((64, 64), 7, np.float32)), model)


def test_a_few_optimisation_steps_reduce_the_loss():
    torch.manual_seed(0)
    m = HybridGNet(input_size=64, skip=True)
    x = torch.rand(2, 1, 64, 64)
    target = torch.rand(2, 120, 2) * 0.2 + 0.4
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        pos, mu, logvar, inter = m(x)
        loss = torch.mean((pos - target) ** 2) + 1e-3 * kl_divergence(mu, logvar) + 0.5 * (
            torch.mean((inter[0] - m.pool(target)) ** 2) + torch.mean((inter[1] - target) ** 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < losses[0], losses


def test_autograd_works_after_an_inference_mode_prediction(model):
    """The sparse Chebyshev operator is cached on first use; created under torch.inference_mode() (as
    `predict_landmarks` runs) it must still serve a later pass with gradients (fine-tuning, corrections)."""
    image, _ = chest_phantom((64, 64))
    predict_landmarks(Image(image), model, samples=4)
    x, _ = network_input(image, model.input_size)
    pos, mu, logvar, _ = model(x, sample=False)
    pos.sum().backward()
    assert model.head.weight.grad is not None and torch.isfinite(model.head.weight.grad).all()
    model.zero_grad()
