"""`uncertainty.dcm`: a task's uncertainty map (`uncertainty_maps.py`) as a DICOM Parametric Map (PS3.3 A.75),
written with highdicom.

- float32 pixel data (Float Pixel Data), frame k on source slice k, equal to the map bit for bit;
- one Real World Value Mapping (PS3.3 C.7.6.16.2.11): identity (slope 1, intercept 0) over the map's value range,
  with the unit of the model card's definition (UCUM: nats, pixels, "1" for probability²), the LUT label and
  explanation saying what the value is;
- a window over the map's range with VOI LUT Function LINEAR_EXACT (widths below 1 are only valid with it);
- patient, study and Frame of Reference of the source; a new series.
A 2-D projection image (CR, a digitised mammogram) has no patient geometry (no Frame of Reference, Image Position /
Orientation (Patient)), but the Parametric Map IOD requires them (Plane Position and Plane Orientation functional
groups are mandatory). For such a source the map gets a Frame of Reference of its own, derived from the source's
SOP Instance UID (so every map of one image shares it), whose plane is the image's pixel grid: the first pixel at
(0, 0, 0), rows along +x, columns along +y, the source's Pixel Spacing (else Imager Pixel Spacing, else 1 mm), a
nominal 1 mm slice thickness.
It references the source image (Derivation Image Sequence, Spatial Locations Preserved YES) like any other.
"""

from __future__ import annotations

import copy

import numpy as np

from uqseg.dicom_out.producer import SERIES_NUMBERS, Producer
from uqseg.dicom_out.seg import derived_image_fixes
from uqseg.dicom_out.source import DicomSource
from uqseg.dicom_out.uncertainty_maps import UNITS, UncertaintyMap
from uqseg.errors import InputError


def pixel_grid_frame(source: DicomSource) -> list:
    """Copies of the source headers with a Frame of Reference of the pixel grid (module docstring) when they have no
    patient geometry; the headers themselves otherwise."""
    import pydicom

    first = source.first
    if "FrameOfReferenceUID" in first and "ImagePositionPatient" in first and "ImageOrientationPatient" in first:
        return source.datasets
    spacing = first.get("PixelSpacing") or first.get("ImagerPixelSpacing") or [1.0, 1.0]
    frame = pydicom.uid.generate_uid(entropy_srcs=[str(first.SOPInstanceUID), "uqseg pixel grid"])
    out = []
    for ds in source.datasets:
        ds = copy.deepcopy(ds)
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [0.0, 0.0, 0.0]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [float(s) for s in spacing]
        ds.SliceThickness = 1.0  # Pixel Measures needs one for a VOLUME frame: nominal, a projection has none
        out.append(ds)
    return out


def build_parametric_map(source: DicomSource, umap: UncertaintyMap, producer: Producer):
    """The Parametric Map (a pydicom Dataset) of `umap` over `source`."""
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept

    values = np.ascontiguousarray(umap.values, dtype=np.float32)
    want = (1,) + tuple(source.image.shape) if source.image.ndim == 2 else tuple(source.image.shape)
    if values.shape != want:
        raise InputError(source.path, f"{umap.source_file} has shape {values.shape}, the source DICOM {want}")
    if not np.all(np.isfinite(values)):
        raise InputError(source.path, f"{umap.source_file} holds values that are not finite numbers")
    lo, hi = float(values.min()), float(values.max())
    code, meaning = UNITS[umap.units]
    mapping = hd.pm.RealWorldValueMapping(lut_label=umap.label[:16], lut_explanation=umap.explanation[:64],
                                          unit=CodedConcept(code, "UCUM", meaning), value_range=(lo, hi),
                                          slope=1.0, intercept=0.0)
    width = max(hi - lo, 1e-6)
    import warnings

    with warnings.catch_warnings():  # window_center / width: deprecated in highdicom ≥ 0.23, the only way in 0.22
        warnings.simplefilter("ignore")
        pm = hd.pm.ParametricMap(
            pixel_grid_frame(source), values, hd.UID(), SERIES_NUMBERS["uncertainty"], hd.UID(), 1,
            contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
            window_center=lo + width / 2, window_width=width,
            content_label="UNCERTAINTY", content_description=umap.explanation[:64], **producer.equipment())
    for item in pm.SharedFunctionalGroupsSequence[0].get("FrameVOILUTSequence", []):
        item.VOILUTFunction = "LINEAR_EXACT"
    pm.SeriesDescription = f"{producer.model_id} {umap.label.lower()}"[:64]
    derived_image_fixes(pm, source)
    # General Series Laterality (Type 2C; the map has no Frame Anatomy with a Frame Laterality): the source's, or empty
    pm.Laterality = source.first.get("Laterality", "") or ""
    return pm
