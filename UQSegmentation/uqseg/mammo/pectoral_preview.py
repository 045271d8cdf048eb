"""PNG preview of a pectoral-boundary result: the image, the ±σ band (translucent), the mean boundary, and
multimodal rows marked in magenta on the chest-wall margin; the image-level numbers in a caption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage, ImageDraw

from uqseg.io.write import write_png_atomically
from uqseg.transforms.intensity import robust_unit_range

BAND = (0, 200, 255)
MEAN = (255, 220, 0)
MULTI = (255, 0, 255)
MAX_ROWS = 900


def render_pectoral_preview(image: np.ndarray, result, path: Path, caption: str = "") -> Path:
    h, w = image.shape
    scale = min(1.0, MAX_ROWS / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    grey = (robust_unit_range(image) * 255).astype(np.uint8)
    base = PILImage.fromarray(grey).resize(size, PILImage.BILINEAR).convert("RGB")
    overlay = PILImage.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    ys = (result.rows + 0.5) * scale
    lo = (np.minimum(result.mean_col - result.std_col, result.mean_col + result.std_col) + 0.5) * scale
    hi = (np.maximum(result.mean_col - result.std_col, result.mean_col + result.std_col) + 0.5) * scale
    if len(ys) > 1:
        poly = list(zip(lo, ys)) + list(zip(hi[::-1], ys[::-1]))
        draw.polygon(poly, fill=BAND + (90,))
        draw.line(list(zip(lo, ys)), fill=BAND + (200,), width=1)
        draw.line(list(zip(hi, ys)), fill=BAND + (200,), width=1)
        draw.line(list(zip((result.mean_col + 0.5) * scale, ys)), fill=MEAN + (255,), width=2)
    margin_x = size[0] - 8 if result.flipped else 0
    for y, m in zip(ys, result.multimodal):
        if m:
            draw.line([(margin_x, y), (margin_x + 8, y)], fill=MULTI + (255,), width=2)
    out = PILImage.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")
    if caption:
        bar = PILImage.new("RGB", (size[0], 16 * (caption.count("\n") + 1) + 4), (0, 0, 0))
        ImageDraw.Draw(bar).multiline_text((4, 2), caption, fill=(255, 255, 255))
        canvas = PILImage.new("RGB", (size[0], size[1] + bar.size[1]))
        canvas.paste(out, (0, 0))
        canvas.paste(bar, (0, size[1]))
        out = canvas
    return write_png_atomically(path, lambda tmp: out.save(tmp, format="PNG"))
