"""The parts of pydicom's pixel API that differ between pydicom 2.4 and pydicom 3, behind one interface.

3D Slicer bundles pydicom 2.4.4 up to Slicer 5.10 (Python 3.9 in 5.8, where pydicom 3 cannot be installed) and
pydicom 3.0 from Slicer 5.12 on; the engine runs with whichever the application has. Every other module of the engine
imports the pixel functions from here, never from `pydicom.pixels` (pydicom ≥ 3 only) or
`pydicom.pixel_data_handlers` (deprecated in 3, removed in 4).

- `stored_pixels(ds)`: the decoded pixel array — stored values for grey images, RGB for colour images whatever their
  Photometric Interpretation (pydicom 3 converts YBR to RGB by default; pydicom 2.4 returns YBR as stored, so it is
  converted here).
- `apply_modality_lut(arr, ds)`, `apply_color_lut(arr, ds)`: PS3.3 C.11.1 / C.7.6.3.1.5, the same function in both
  versions, only at another import path.
- `decoder_status(syntax)`: whether a decoder for a compressed transfer syntax is installed, and what to install
  when none is (pydicom 3: the decoder registry; pydicom 2.4: the pixel data handlers and pylibjpeg's plugins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

#: The installed pydicom's major version (2 or 3).
PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])

if PYDICOM_MAJOR >= 3:
    from pydicom.pixels import apply_color_lut, apply_modality_lut
else:  # pydicom 2.4
    from pydicom.pixel_data_handlers.util import apply_color_lut, apply_modality_lut, convert_color_space

__all__ = ["PYDICOM_MAJOR", "DecoderStatus", "apply_color_lut", "apply_modality_lut", "decoder_status",
           "stored_pixels"]


def stored_pixels(ds: Dataset) -> np.ndarray:
    """The decoded Pixel Data: ``[rows, cols]``, ``[frames, rows, cols]``, or with a trailing RGB axis for colour.

    YBR_FULL / YBR_FULL_422 data comes back as RGB with both pydicom versions. Decoder errors propagate as
    pydicom raises them (the loaders turn them into `InputError`).
    """
    array = ds.pixel_array
    if PYDICOM_MAJOR < 3:
        photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
        if int(ds.get("SamplesPerPixel", 1)) == 3 and photometric.startswith("YBR_FULL"):
            array = convert_color_space(array, photometric, "RGB")
    return array


@dataclass(frozen=True)
class DecoderStatus:
    """Can the installed pydicom decode `syntax`?

    supported: some decoder for this syntax exists at all (installed or not);
    available: one is installed and usable now;
    missing: when not available, what the known decoders lack (package names), '' otherwise.
    """

    supported: bool
    available: bool
    missing: str = ""


def decoder_status(syntax: UID) -> DecoderStatus:
    """Whether pixel data compressed as `syntax` can be decoded here (native syntaxes are always available)."""
    syntax = UID(str(syntax))
    if not syntax.is_compressed:
        return DecoderStatus(True, True)
    if PYDICOM_MAJOR >= 3:
        from pydicom.pixels import get_decoder

        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            return DecoderStatus(False, False)
        if decoder.is_available:
            return DecoderStatus(True, True)
        return DecoderStatus(True, False, "; ".join(decoder.missing_dependencies))
    return _decoder_status_pydicom2(syntax)


def _decoder_status_pydicom2(syntax: UID) -> DecoderStatus:
    """pydicom 2.4: a handler supports the syntax and has its dependencies; pylibjpeg needs the plugin for it."""
    from pydicom import config

    handlers = [h for h in config.pixel_data_handlers if h.supports_transfer_syntax(syntax)]
    if not handlers:
        return DecoderStatus(False, False)
    missing = []
    for handler in handlers:
        usable = handler.is_available()
        if usable and handler.HANDLER_NAME == "pylibjpeg":
            plugins = ((handler._OPENJPEG_SYNTAXES, "HAVE_OPENJPEG", "pylibjpeg-openjpeg"),
                       (handler._LIBJPEG_SYNTAXES, "HAVE_LIBJPEG", "pylibjpeg-libjpeg"),
                       (handler._RLE_SYNTAXES, "HAVE_RLE", "pylibjpeg-rle"))
            for syntaxes, flag, package in plugins:
                if syntax in syntaxes and not getattr(handler, flag):
                    usable = False
                    missing.append(f"{handler.HANDLER_NAME}: {package}")
        elif not usable:
            needs = ", ".join(name for _url, name in getattr(handler, "DEPENDENCIES", {}).values())
            if handler.HANDLER_NAME == "pylibjpeg":
                needs = "pylibjpeg and its plugin for this syntax"
            missing.append(f"{handler.HANDLER_NAME}: {needs or 'its library'}")
        if usable:
            return DecoderStatus(True, True)
    return DecoderStatus(True, False, "; ".join(missing))
