"""Standard terminology (SNOMED CT, as Slicer's terminology entries) for the segments the project's tasks produce.

A segment loaded from a result keeps the terminology its file carries; a segment without one (or with the generic
"Tissue" entry Slicer assigns to untagged segments) gets the entry of its ID/name from `TERMS` (when known), in the
serialised form Slicer stores in the segment tag ``TerminologyEntry`` ("<context>~<category>~<type>~<type
modifier>~<anatomic context>~<region>~<region modifier>", each code as "scheme^value^meaning"). Codes: SNOMED CT
as in DICOM PS3.16 (CID 7151 anatomic structures, CID 6116 muscular anatomy: pectoralis major 60005003), with the
laterality as the type modifier, as the Slicer general anatomy list does. Unknown names are left alone.

`load_case_segmentation` loads a result's segmentation.seg.nrrd with these entries filled in, for the loaders whose
segmentation is optional and drawn the same for every segment (cxr-landmarks, mammo-breast, ct-organs).
"""

from __future__ import annotations

from pathlib import Path

_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
_ANATOMY = "SCT^123037004^Anatomical Structure"
_ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
_RIGHT = "SCT^24028007^Right"
_LEFT = "SCT^7771000^Left"


def entry(code: str, meaning: str, modifier: str = "^^") -> str:
    """A Slicer terminology entry string for an anatomical structure (SNOMED CT code)."""
    return f"{_CONTEXT}~{_ANATOMY}~SCT^{code}^{meaning}~{modifier}~{_ANATOMIC_CONTEXT}~^^~^^"


#: segment ID or name (lower case) → terminology entry
TERMS = {
    "breast": entry("76752008", "Breast"),
    "pectoral": entry("60005003", "Pectoralis major muscle"),
    "pectoral_muscle": entry("60005003", "Pectoralis major muscle"),
    "right_lung": entry("39607008", "Lung", _RIGHT),
    "left_lung": entry("39607008", "Lung", _LEFT),
    "heart": entry("80891009", "Heart"),
    "liver": entry("10200004", "Liver"),
    "spleen": entry("78961009", "Spleen"),
    "stomach": entry("69695003", "Stomach"),
    "pancreas": entry("15776009", "Pancreas"),
    "aorta": entry("15825003", "Aorta"),
    "right_kidney": entry("64033007", "Kidney", _RIGHT),
    "left_kidney": entry("64033007", "Kidney", _LEFT),
    "kidney_right": entry("64033007", "Kidney", _RIGHT),  # TotalSegmentator's names (ct-organs-mob 2.0.0)
    "kidney_left": entry("64033007", "Kidney", _LEFT),
}

TAG = "TerminologyEntry"
#: category~type of the entry Slicer gives a segment that has none ("Tissue"); replaced like a missing one
GENERIC = "~SCT^85756007^Tissue~SCT^85756007^Tissue~"


def is_generic(term: str) -> bool:
    return GENERIC in term


def term_for(segment_id: str, name: str | None = None) -> str | None:
    for key in (segment_id, name):
        if key and key.lower().replace(" ", "_") in TERMS:
            return TERMS[key.lower().replace(" ", "_")]
    return None


def apply_default_terminology(segmentation_node) -> int:
    """Give segments without a terminology entry the standard one for their ID/name; returns how many changed."""
    segmentation = segmentation_node.GetSegmentation()
    changed = 0
    for k in range(segmentation.GetNumberOfSegments()):
        sid = segmentation.GetNthSegmentID(k)
        segment = segmentation.GetSegment(sid)
        current = segment.GetTerminology() if hasattr(segment, "GetTerminology") else None
        if current is None:
            import vtk

            value = vtk.reference("")
            current = value.get() if segment.GetTag(TAG, value) else ""
        if current and not is_generic(current):
            continue
        term = term_for(sid, segment.GetName())
        if term is None:
            continue
        if hasattr(segment, "SetTerminology"):
            segment.SetTerminology(term)
        else:
            segment.SetTag(TAG, term)
        changed += 1
    return changed


def load_case_segmentation(out, case_dir, files: dict, name: str, input_volume_node, fill_opacity: float,
                           outline_opacity: float):
    """The case's segmentation (``files["segmentation"]``, default segmentation.seg.nrrd), when the file exists, as
    role "segmentation" of `out` (the loader's `NodeCollector`), named `name`: standard terminology filled in
    (`apply_default_terminology`), on the input volume's geometry when one is given, every segment drawn in the
    slice views with the 2-D fill and outline opacities given. Returns the node, or None without the file."""
    from .. import nodes_io

    seg_path = Path(case_dir) / files.get("segmentation", "segmentation.seg.nrrd")
    if not seg_path.is_file():
        return None
    seg = out.add("segmentation", nodes_io.load_segmentation(out.scene, seg_path, name))
    apply_default_terminology(seg)
    if input_volume_node is not None:
        seg.SetReferenceImageGeometryParameterFromVolumeNode(input_volume_node)
    display = seg.GetDisplayNode()
    display.SetAllSegmentsOpacity2DFill(fill_opacity)
    display.SetAllSegmentsOpacity2DOutline(outline_opacity)
    return seg
