"""cxr-landmarks coordinate frames: input pixel-centre (x, y) ↔ the normalised centred square the network sees,
through padding and resizing, and the shared landmark JSON's corner-origin convention."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from uqseg.cxr.hybridgnet import HybridGNet
from uqseg.cxr.inference import predict_landmarks
from uqseg.cxr.landmarks_io import read_landmarks, to_json_coordinates
from uqseg.cxr.preprocess import SquareFrame, network_input
from uqseg.cxr.rasterise import LABELS, fill_polygon, labelmap
from uqseg.metrics import dice
from uqseg.io.image import Image

SHAPES = [(512, 512), (300, 500), (501, 300), (1955, 1841), (33, 40)]


@pytest.mark.parametrize("shape", SHAPES)
def test_square_frame_round_trip(shape):
    f = SquareFrame(*shape)
    h, w = shape
    assert f.size == max(h, w) and 0 <= f.pad_top <= f.size - h and 0 <= f.pad_left <= f.size - w
    assert abs((f.size - h - f.pad_top) - f.pad_top) <= 1 and abs((f.size - w - f.pad_left) - f.pad_left) <= 1
    xy = np.random.default_rng(0).uniform(-0.5, [w - 0.5, h - 0.5], size=(50, 2))
    np.testing.assert_allclose(f.from_normalised(f.to_normalised(xy)), xy, atol=1e-9)
    # the image's outer edges land on the padded square's edges
    uv = f.to_normalised(np.array([[-0.5, -0.5], [w - 0.5, h - 0.5]]))
    np.testing.assert_allclose(uv * f.size, [[f.pad_left, f.pad_top], [f.pad_left + w, f.pad_top + h]])
    assert f.std_to_pixels(0.01) == pytest.approx(0.01 * f.size)


@pytest.mark.parametrize("shape", [(300, 500), (501, 300), (256, 256)])
def test_a_bright_spot_lands_where_the_frame_says(shape):
    """A Gaussian blob at a known input position, through percentile scaling, padding and the antialiased resize."""
    h, w = shape
    x0, y0 = 0.61 * w, 0.37 * h
    yy, xx = np.mgrid[0:h, 0:w]
    img = 10 + 200 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 6.0**2))
    t, frame = network_input(img.astype(np.float32), 128)
    a = t[0, 0].numpy().astype(np.float64)
    a = np.where(a > 0.2 * a.max(), a, 0.0)
    gy, gx = np.mgrid[0:128, 0:128]
    centroid = np.array([(a * gx).sum(), (a * gy).sum()]) / a.sum()
    expected = frame.to_normalised([x0, y0]) * 128 - 0.5  # grid pixel-centre index of the blob
    np.testing.assert_allclose(centroid, expected, atol=0.15)


class _FixedDecoder(HybridGNet):
    """Decodes every latent to fixed normalised positions plus 0.01 · z₀ (so σ_u = 0.01 σ_z on every coordinate)."""

    def __init__(self, positions: torch.Tensor):
        super().__init__(input_size=64)
        self.fixed = positions

    def decode(self, z, feats=None):
        return self.fixed[None].expand(z.shape[0], -1, -1) + 0.01 * z[:, :1, None], []


@pytest.mark.parametrize("shape", [(300, 500), (501, 300)])
def test_predictions_map_back_to_the_input_pixels(shape):
    h, w = shape
    rng = np.random.default_rng(1)
    truth = rng.uniform([0, 0], [w - 1, h - 1], size=(120, 2))
    frame = SquareFrame(h, w)
    model = _FixedDecoder(torch.tensor(frame.to_normalised(truth), dtype=torch.float32)).eval()
    with torch.no_grad():
        model.logvar_head.weight.zero_()
        model.logvar_head.bias.fill_(0.0)  # σ_z = 1
        model.mu_head.weight.zero_()
        model.mu_head.bias.zero_()  # μ = 0
    image = Image(rng.uniform(0, 255, size=shape).astype(np.float32))
    r = predict_landmarks(image, model, samples=4000, seed=0)
    np.testing.assert_allclose(r.mean, truth, atol=5 * 0.01 * frame.size / np.sqrt(4000))  # 5 standard errors
    np.testing.assert_allclose(r.std, 0.01 * frame.size, rtol=0.05)
    np.testing.assert_allclose(r.mode, truth, atol=1e-3 * frame.size / 100)


def test_landmark_json_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    data = {"image": "images/X.png", "split": "val", "right_lung": rng.uniform(0, 512, (44, 2)).round(2).tolist(),
            "left_lung": rng.uniform(0, 512, (50, 2)).round(2).tolist(),
            "heart": rng.uniform(0, 512, (26, 2)).round(2).tolist()}
    path = tmp_path / "X.json"
    path.write_text(json.dumps(data))
    nodes, meta = read_landmarks(path)
    assert nodes.shape == (120, 2) and meta["split"] == "val"
    np.testing.assert_allclose(nodes[:44], np.array(data["right_lung"]) - 0.5)
    back = to_json_coordinates(nodes)
    for organ in ("right_lung", "left_lung", "heart"):
        np.testing.assert_allclose(back[organ], data[organ], atol=1e-9)
    bad = dict(data, heart=data["heart"][:25])
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="heart must be 26"):
        read_landmarks(path)


def test_fill_polygon_uses_pixel_centres():
    square = np.array([[1.5, 1.5], [4.5, 1.5], [4.5, 3.5], [1.5, 3.5]])  # covers centres x 2..4, y 2..3
    m = fill_polygon(square, (6, 7))
    expected = np.zeros((6, 7), bool)
    expected[2:4, 2:5] = True
    assert np.array_equal(m, expected)
    assert not fill_polygon(square + 100, (6, 7)).any()


@pytest.mark.parametrize("name", ["JPCLN001", "JPCLN076", "JPCLN152", "JPCNN072"])  # every 60th, in sorted order
def test_shared_rings_fill_to_the_scr_masks(shared_file, name):
    """The corner-origin convention of the shared JSON: its filled rings reproduce the SCR masks."""
    from PIL import Image as PILImage

    path, mask_path = shared_file(f"cxr_jsrt/landmarks/{name}.json"), shared_file(f"cxr_jsrt/masks/{name}.png")
    nodes, _ = read_landmarks(path)
    mask = np.asarray(PILImage.open(mask_path))
    lm = labelmap(nodes, mask.shape)
    for organ, k in LABELS.items():
        assert dice(lm == k, mask == k) > 0.985, (name, organ)
