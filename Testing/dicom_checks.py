"""Helpers of the DICOM-out tests: Debian's dicom3tools validator and reading SEG / Parametric Map frames back onto
the source grid. Torch-free; used by test_dicom_out.py and test_pacs_roundtrip.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np


#: The warnings dciodvfy may give on the objects, each with why it is left (README, "DICOM out").
KNOWN_WARNINGS = {
    # the source study has no Study Date / Time / ID (the CBIS-DDSM, NEMA and CT samples): copied as they are, empty
    "study date/time/id": r"Missing attribute or value that would be needed to build DICOMDIR - Study (Date|Time|ID)$",
    # the source's Patient's / Referring Physician's Name has one component ("Anonymous", "ward"): copied unchanged
    "person name": r"Value dubious for this VR - \(0x00(10,0x0010\) PN Patient's|08,0x0090\) PN Referring Physician's) "
                   r"Name .*Retired Person Name form$",
    # Parametric Map Image / Frame Type value 4 QUANTITY: defined by PS3.3 C.8.32.3 for this IOD, unknown to dciodvfy
    "quantity": r"Unrecognized defined term <QUANTITY> for value 4 of attribute <(Image|Frame) Type>$",
    # Parametric Map Laterality of an unpaired part (chest, abdomen): empty, because absent is an error (Type 2C)
    "laterality": r"is only permitted to be empty when actually unknown.*attribute <Laterality>$",
}


def unexplained_warnings(warnings: list[str]) -> list[str]:
    return [w for w in warnings if not any(re.search(p, w) for p in KNOWN_WARNINGS.values())]


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
