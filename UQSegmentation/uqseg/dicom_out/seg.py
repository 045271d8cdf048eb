"""`segmentation.dcm`: a case's `.seg.nrrd` as a DICOM Segmentation (PS3.3 A.51), written with highdicom.

- one segment per segment of the `.seg.nrrd`, in its order, numbered 1..N; label, SNOMED CT category "Anatomical
  Structure" and type from `uqseg.dicom_out.codes` (laterality as the type modifier), algorithm type AUTOMATIC with
  the model as the algorithm (`producer.py`); a segment of unknown name is typed "Tissue" (SCT 85756007);
- BINARY segmentation type; one frame per (segment, source slice) that holds the segment, referencing that source
  instance (Derivation Image / Source Image Sequence); for a CT series one multi-frame object over the whole series;
  empty frames are left out (every frame is kept when the whole result is empty);
- patient, study and Frame of Reference of the source (`source.py`); a new series and instance.
Pixel data equal the `.seg.nrrd` labelmap: frame k of segment s is ``labelmap[k] == label of s``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uqseg.dicom_out.codes import ANATOMICAL_STRUCTURE, LATERALITY, structure_for
from uqseg.dicom_out.producer import SERIES_NUMBERS, Producer
from uqseg.dicom_out.source import DicomSource, check_grid

TISSUE = ("85756007", "Tissue")


def read_seg_nrrd(path: Path):
    """(labelmap [slice, row, col], segments [(label, name)], header) of a Slicer `.seg.nrrd` written by
    `uqseg.io.write.write_segmentation_nrrd` (one layer)."""
    import nrrd

    data, header = nrrd.read(str(path), index_order="C")
    labelmap = data.reshape((-1,) + data.shape[-2:])
    segments = []
    i = 0
    while f"Segment{i}_Name" in header:
        segments.append((int(header[f"Segment{i}_LabelValue"]), header[f"Segment{i}_Name"]))
        i += 1
    return labelmap, segments, header


def nrrd_geometry(header) -> tuple:
    """(spacing (x, y, z), origin, direction) of a 3-D NRRD header (LPS, mm)."""
    dirs = np.asarray(header["space directions"], float)
    spacing = np.linalg.norm(dirs, axis=1)
    return spacing, np.asarray(header["space origin"], float), (dirs / spacing[:, None]).T


def segment_description(number: int, name: str, producer: Producer):
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept

    structure = structure_for(name)
    code, meaning = (structure.code, structure.meaning) if structure else TISSUE
    desc = hd.seg.SegmentDescription(
        segment_number=number, segment_label=name[:64],
        segmented_property_category=CodedConcept(ANATOMICAL_STRUCTURE[0], "SCT", ANATOMICAL_STRUCTURE[1]),
        segmented_property_type=CodedConcept(code, "SCT", meaning),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=producer.algorithm())
    if structure and structure.laterality:
        side = LATERALITY[structure.laterality]
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            CodedConcept(side[0], "SCT", side[1])]
    return desc


def derived_image_fixes(ds, source: DicomSource) -> None:
    """What highdicom leaves out of a derived image of a 2-D projection source (no Image Orientation (Patient)):
    Patient Orientation (Type 2C, General Image) — the source's when it holds two values, else empty."""
    if "ImageOrientationPatient" not in source.first:
        po = source.first.get("PatientOrientation")
        ds.PatientOrientation = list(po) if po is not None and getattr(po, "VM", 0) == 2 else ""


def restore_numpy_float_alias() -> None:
    """highdicom 0.22 — the last release for pydicom 2.4, so the one Slicer 5.10 gets (pydicom 2.4.4 with numpy 2.0)
    — compares the pixel dtype with `np.float_`, an alias of float64 that numpy 2 removed. Restore the alias (the
    same object numpy 1 has) when it is missing; nothing else changes."""
    if not hasattr(np, "float_"):
        np.float_ = np.float64


def build_segmentation(source: DicomSource, seg_nrrd: Path, producer: Producer):
    """The DICOM SEG (a pydicom Dataset) of `seg_nrrd` over `source`; InputError when it is not on the source grid."""
    import highdicom as hd

    restore_numpy_float_alias()

    labelmap, segments, header = read_seg_nrrd(seg_nrrd)
    check_grid(source, labelmap.shape, *nrrd_geometry(header), what=seg_nrrd.name)
    masks = np.stack([labelmap == label for label, _ in segments], axis=-1).astype(np.uint8)  # [slice, r, c, seg]
    seg = hd.seg.Segmentation(
        source_images=source.datasets, pixel_array=masks, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment_description(i, name, producer) for i, (_, name) in enumerate(segments, 1)],
        series_instance_uid=hd.UID(), series_number=SERIES_NUMBERS["segmentation"], sop_instance_uid=hd.UID(),
        instance_number=1, content_description=f"{producer.model_id} segmentation"[:64],
        content_label="SEGMENTATION", omit_empty_frames=bool(masks.any()), **producer.equipment())
    seg.SeriesDescription = f"{producer.model_id} segmentation"[:64]
    derived_image_fixes(seg, source)
    return seg
