"""SNOMED CT codes of the structures the tasks segment, for the DICOM objects (`seg.py`, `sr.py`): the same codes as
the Slicer terminology entries of `UQSegmentationLib/display/terminology.py` (which may not import the engine at
module level; Testing/test_dicom_out.py checks that the two agree).

Codes as in DICOM PS3.16: CID 7150/7151 anatomic structures, CID 6116 muscular anatomy (pectoralis major 60005003);
laterality (CID 244) is a modifier of the structure, as the Slicer general anatomy list and dcmqi write it. The
segmented property category of every structure is "Anatomical Structure" (SCT 123037004).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

ANATOMICAL_STRUCTURE = ("123037004", "Anatomical Structure")
LATERALITY = {"R": ("24028007", "Right"), "L": ("7771000", "Left")}


class Structure(NamedTuple):
    code: str  # SNOMED CT concept id
    meaning: str  # its code meaning
    laterality: Optional[str] = None  # "R" / "L" (a modifier of the structure), None when unpaired


#: segment ID or name (lower case, spaces as "_") → structure
STRUCTURES = {
    "breast": Structure("76752008", "Breast"),
    "pectoral": Structure("60005003", "Pectoralis major muscle"),
    "pectoral_muscle": Structure("60005003", "Pectoralis major muscle"),
    "right_lung": Structure("39607008", "Lung", "R"),
    "left_lung": Structure("39607008", "Lung", "L"),
    "heart": Structure("80891009", "Heart"),
    "liver": Structure("10200004", "Liver"),
    "spleen": Structure("78961009", "Spleen"),
    "stomach": Structure("69695003", "Stomach"),
    "pancreas": Structure("15776009", "Pancreas"),
    "aorta": Structure("15825003", "Aorta"),
    "right_kidney": Structure("64033007", "Kidney", "R"),
    "left_kidney": Structure("64033007", "Kidney", "L"),
    "kidney_right": Structure("64033007", "Kidney", "R"),  # TotalSegmentator's names (ct-organs-mob 2.0.0)
    "kidney_left": Structure("64033007", "Kidney", "L"),
    "pulmonary_artery": Structure("81040000", "Pulmonary artery"),
}


def structure_for(name: str) -> Optional[Structure]:
    """The structure of a segment ID or name (case and spaces ignored), None when unknown."""
    return STRUCTURES.get(name.lower().replace(" ", "_")) if name else None
