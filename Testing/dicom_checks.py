"""Helpers of the DICOM-out tests: Debian's dicom3tools validator and reading SEG / Parametric Map frames back onto
the source grid. Torch-free; used by test_dicom_out.py and test_pacs_roundtrip.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) of `dciodvfy` (dicom3tools) on one file. Fails (never skips) when it is not installed:
    `.ci/run` installs it (apt-get install dicom3tools)."""
    exe = shutil.which("dciodvfy")
    assert exe, "dciodvfy not found: apt-get install -y dicom3tools (.ci/run installs it)"
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    lines = (out.stdout + out.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]


def _group(ds, per_frame_item, keyword):
    """A functional group of one frame: its per-frame item, else the shared one (a group the same for every frame)."""
    if keyword in per_frame_item:
        return per_frame_item[keyword].value[0]
    return ds.SharedFunctionalGroupsSequence[0][keyword].value[0]


def seg_labelmap(seg, source_uids: list[str], shape: tuple) -> np.ndarray:
    """A SEG (pydicom Dataset) read back as a labelmap [slice, row, col]: frame f of segment s sets the pixels of
    the source slice its Derivation Image Sequence references to s (segments must not overlap)."""
    frames = seg.pixel_array.reshape((-1,) + tuple(shape[-2:]))
    out = np.zeros(shape, np.int32)
    for f, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = int(_group(seg, item, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        ref = _group(seg, item, "DerivationImageSequence").SourceImageSequence[0].ReferencedSOPInstanceUID
        k = source_uids.index(ref)
        assert not np.any(out[k][frames[f] > 0]), "segments overlap"
        out[k][frames[f] > 0] = number
    return out


def pm_values(pm, source_uids: list[str], shape: tuple) -> np.ndarray:
    """A Parametric Map's Float Pixel Data read back as [slice, row, col] in source-slice order."""
    frames = np.frombuffer(pm.FloatPixelData, dtype="<f4").reshape((-1,) + tuple(shape[-2:]))
    out = np.full(shape, np.nan, np.float32)
    for f, item in enumerate(pm.PerFrameFunctionalGroupsSequence):
        ref = _group(pm, item, "DerivationImageSequence").SourceImageSequence[0].ReferencedSOPInstanceUID
        out[source_uids.index(ref)] = frames[f]
    return out
