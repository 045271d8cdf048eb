"""Plain pictures (PNG, JPEG, TIFF, BMP, GIF) read with Pillow into an `Image`, and a small PNG writer.

What the loader returns:
- `array`: float32 ``[row, col]`` in the file's own value range: 0..255 for 8-bit files, 0..65535 for 16-bit files
  (no rescaling). Colour pictures (RGB, RGBA, palette, CMYK, ...) become grey by luminance (ITU-R BT.601 weights
  0.299 R + 0.587 G + 0.114 B, in float, not rounded); an alpha channel is ignored. A multi-page file (TIFF stack,
  animated GIF/PNG) becomes a volume ``[page, row, col]``.
- geometry: pictures carry no physical size we trust, so `spacing` is (1, 1) (one "mm" per pixel) with
  ``meta["spacing_source"] = "default"``; origin (0, 0, 0), identity direction.
- `meta`: modality "OT", bits (8 or 16; 32 for 32-bit integer/float TIFFs), photometric "MONOCHROME2" (bright = high),
  format (Pillow's name, e.g. "PNG"), colour ("grey" or the Pillow mode it was converted from), spacing_source, path.
Pixels are returned in the file's storage order; EXIF orientation tags are not applied.
A picture with more pixels than Pillow's decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`, 89.5 million by
default — ten times a large mammogram) is refused before it is decoded, with its size in the reason.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from uqseg.errors import InputError
from uqseg.io.image import Image

# ITU-R BT.601 luma weights (the ones Pillow's own "L" conversion uses), applied in float.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """Luminance of an ``[..., 3]`` (or ``[..., 4]``, alpha ignored) colour array, float32, same value range."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.shape[-1] not in (3, 4):
        raise ValueError(f"expected 3 or 4 colour components in the last axis, got shape {rgb.shape}")
    r, g, b = (rgb[..., i] for i in range(3))
    return (LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b).astype(np.float32)


def _frame_to_grey(frame: PILImage.Image) -> tuple[np.ndarray, int, str]:
    """One Pillow frame → (float32 grey array, bits, colour description)."""
    mode = frame.mode
    if mode == "L":
        return np.asarray(frame, dtype=np.float32), 8, "grey"
    if mode == "1":
        return np.asarray(frame.convert("L"), dtype=np.float32), 8, "grey"
    if mode == "LA":
        return np.asarray(frame.getchannel("L"), dtype=np.float32), 8, "grey"
    if mode in _SIXTEEN_BIT_MODES:
        return np.asarray(frame).astype(np.float32), 16, "grey"
    if mode == "I":
        values = np.asarray(frame)
        bits = 16 if values.size and values.min() >= 0 and values.max() <= 65535 else 32
        return values.astype(np.float32), bits, "grey"
    if mode == "F":
        return np.asarray(frame, dtype=np.float32), 32, "grey"
    # Colour of any kind (RGB, RGBA, P, PA, CMYK, YCbCr, ...): via 8-bit RGB, then luminance.
    return rgb_to_grey(np.asarray(frame.convert("RGB"))), 8, mode


def _too_large(path: Path, pixels: int, width: int = 0, height: int = 0) -> InputError:
    millions = pixels / 1e6
    size = f"is {width} x {height} pixels ({millions:.1f} million)" if width else f"has {millions:.1f} million pixels"
    return InputError(path, f"{size}, more than Pillow's decompression-bomb limit of "
                            f"{PILImage.MAX_IMAGE_PIXELS / 1e6:.1f} million: too large to read safely; downsample it "
                            "first")


def load_picture(path: str | Path) -> Image:
    """Read a PNG/JPEG/TIFF/BMP/GIF file as a grey `Image` (see the module docstring for values and meta).

    Raises `InputError` (with the path) when Pillow cannot identify the content or the file is truncated/corrupt.
    """
    path = Path(path)
    file_format = path.suffix.lstrip(".").upper() or "picture"
    try:
        with warnings.catch_warnings():  # the size is checked below, with a reason instead of a warning
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            picture = PILImage.open(path)
        with picture:
            file_format = picture.format or file_format
            width, height = picture.size
            if PILImage.MAX_IMAGE_PIXELS and width * height > PILImage.MAX_IMAGE_PIXELS:
                raise _too_large(path, width * height, width, height)
            frames, bits, colour = [], 8, "grey"
            for index in range(getattr(picture, "n_frames", 1)):
                picture.seek(index)
                picture.load()
                array, bits, colour = _frame_to_grey(picture)
                frames.append(array)
    except UnidentifiedImageError:
        raise InputError(path, "not an image file: Pillow cannot identify its content") from None
    except PILImage.DecompressionBombError as error:
        found = re.search(r"\((\d+) pixels\)", str(error))
        raise _too_large(path, int(found.group(1)) if found else 0) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InputError(path, f"corrupt or truncated {file_format} file: {error}") from None

    if len(frames) > 1 and len({f.shape for f in frames}) != 1:
        raise InputError(path, "multi-page picture whose pages differ in size")
    array = frames[0] if len(frames) == 1 else np.stack(frames)
    spacing = (1.0,) * array.ndim
    meta = {
        "modality": "OT",
        "photometric": "MONOCHROME2",
        "bits": bits,
        "format": file_format,
        "colour": colour,
        "spacing_source": "default",
        "path": str(path),
    }
    return Image(array=np.ascontiguousarray(array, dtype=np.float32), spacing=spacing, meta=meta)


def write_png(path: str | Path, array: np.ndarray, bits: int = 8) -> Path:
    """Write a 2-D grey array as an 8- or 16-bit PNG: values are rounded and clipped to 0..255 or 0..65535.

    The values are written as they are (no rescaling), so a 0..255 image written with ``bits=16`` stays 0..255.
    Returns the path written.
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"write_png writes 2-D arrays, got shape {array.shape}")
    if bits == 8:
        pixels = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    elif bits == 16:
        pixels = np.clip(np.rint(array), 0, 65535).astype(np.uint16)
    else:
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    path = Path(path)
    PILImage.fromarray(pixels).save(path, format="PNG")
    return path
