"""`measurements.dcm`: the pectoral boundary (mammo-pectoral) or the lung and heart contours (cxr-landmarks) with their
per-point uncertainty, as a DICOM TID 1500 Measurement Report in a Comprehensive 3D SR (PS3.16 TID 1500 / 1410 / 300),
written with highdicom. Mirrors `boundary.csv` / `landmarks.csv`.

Why TID 1500: it is the report viewers read (OHIF's measurement panel and Slicer's QuantitativeReporting show its
planar ROIs with their outline on the image and their measurements); a bare Comprehensive 3D SR tree with SCOORD3D
content would need a patient frame of reference these projection images do not have, and no viewer lists it.

Content, per structure: one Planar ROI group (TID 1410) — tracking identifier (the structure's name and a UID),
finding type (its SNOMED CT code, `codes.py`), the model as the algorithm — whose region is the image-plane
outline on the source image (SCOORD, 2-D pixel coordinates of the source image, PS3.3 C.18.6.1.1: the top-left
corner of the first pixel is (0, 0), so a pixel-centre index i is i + 0.5): the mean boundary as an open POLYLINE
through the (≤ 60) curve points of `boundary.mrk.json` (mammo-pectoral), each organ's closed ring of nodes as a
closed POLYLINE (cxr-landmarks); its measurement (TID 300) is the mean σ / node std over the structure; and one
measurement group (TID 1501, "<structure> points": TID 1410 allows no coordinates on its measurements) with one
measurement per point, that point as its SCOORD POINT (`Source`): σ of the boundary at that row (mammo-pectoral,
along the row, in columns), ½(std_x + std_y) of that node (cxr-landmarks). Every measurement is a "Standard
Deviation" (SCT 386136009) in input pixels (UCUM {pixels}; the units of the CSV files).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from uqseg.dicom_out.codes import ANATOMICAL_STRUCTURE, structure_for
from uqseg.dicom_out.producer import SERIES_NUMBERS, Producer
from uqseg.dicom_out.source import DicomSource

STANDARD_DEVIATION = ("386136009", "Standard Deviation")
PIXELS = ("{pixels}", "pixels")
#: procedure reported (TID 1500 row 3) per task: SNOMED CT
PROCEDURES = {"mammo-pectoral": ("71651007", "Mammography"), "cxr-landmarks": ("399208008", "Plain chest X-ray")}
MAX_CURVE_POINTS = 60


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def curve_point_indices(n: int, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """The rows of a boundary that become curve points (as `boundary.mrk.json`: first and last always)."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(int))


def structures(task_id: str, case_dir: Path) -> list[tuple[str, np.ndarray, np.ndarray, bool]]:
    """[(name, points (N, 2) pixel-centre (col, row), σ per point in pixels, closed)] of the case's files."""
    if task_id == "mammo-pectoral":
        rows = _rows(Path(case_dir) / "boundary.csv")
        if len(rows) < 2:
            return []
        k = curve_point_indices(len(rows))
        pts = np.array([[float(rows[i]["mean_col"]), float(rows[i]["row"])] for i in k])
        return [("pectoral_muscle", pts, np.array([float(rows[i]["std_col"]) for i in k]), False)]
    rows = _rows(Path(case_dir) / "landmarks.csv")
    out = []
    for organ in dict.fromkeys(r["organ"] for r in rows):
        ring = [r for r in rows if r["organ"] == organ]
        pts = np.array([[float(r["mean_x"]), float(r["mean_y"])] for r in ring])
        std = np.array([0.5 * (float(r["std_x"]) + float(r["std_y"])) for r in ring])
        out.append((organ, pts, std, True))
    return out


def point_measurement(name, value: float, unit, algorithm, point, ref):
    """A TID 300 measurement inferred from one image point: the NUM item with an SCOORD POINT child (purpose
    "Source", SCT 260753009, INFERRED FROM) that selects from the source image — what highdicom ≥ 0.23 builds with
    `CoordinatesForMeasurement`, built here from the content items highdicom 0.22 (Slicer 5.8) has too."""
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept

    measurement = hd.sr.Measurement(name=name, value=value, unit=unit, algorithm_id=algorithm)
    scoord = hd.sr.ScoordContentItem(name=CodedConcept("260753009", "SCT", "Source"),
                                     graphic_type=hd.sr.GraphicTypeValues.POINT, graphic_data=np.array([point]),
                                     relationship_type=hd.sr.RelationshipTypeValues.INFERRED_FROM)
    scoord.ContentSequence = [ref]
    measurement[0].ContentSequence.append(scoord)
    return measurement


def build_measurement_report(task_id: str, case_dir: Path, source: DicomSource, producer: Producer):
    """The TID 1500 report (a pydicom Dataset, Comprehensive 3D SR) of the case's contours over its source image."""
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept
    from pydicom.sr.codedict import codes

    image = source.first
    ref = hd.sr.SourceImageForRegion(referenced_sop_class_uid=image.SOPClassUID,
                                     referenced_sop_instance_uid=image.SOPInstanceUID)
    algorithm = hd.sr.AlgorithmIdentification(name=producer.model_id[:64], version=producer.model_version[:64])
    sd, px = CodedConcept(*STANDARD_DEVIATION[:1], "SCT", STANDARD_DEVIATION[1]), CodedConcept(PIXELS[0], "UCUM",
                                                                                               PIXELS[1])
    groups = []
    for name, pts, std, closed in structures(task_id, case_dir):
        graphic = pts + 0.5  # pixel-centre indices → SCOORD image coordinates
        if closed:
            graphic = np.vstack([graphic, graphic[:1]])
        structure = structure_for(name)
        finding = (CodedConcept(structure.code, "SCT", structure.meaning) if structure
                   else CodedConcept(ANATOMICAL_STRUCTURE[0], "SCT", ANATOMICAL_STRUCTURE[1]))
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=name.replace("_", " ")),
            referenced_region=hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=graphic,
                                                source_image=ref),
            finding_type=finding, algorithm_id=algorithm,
            measurements=[hd.sr.Measurement(name=sd, value=float(np.mean(std)), unit=px, algorithm_id=algorithm)]))
        points = [point_measurement(sd, float(s), px, algorithm, p, ref) for p, s in zip(pts + 0.5, std)]
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{name.replace('_', ' ')} points"),
            finding_type=finding, algorithm_id=algorithm, measurements=points))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=producer.model_id[:64], manufacturer_name="UQSegmentation",
            model_name=producer.model_id[:64]))
    procedure = PROCEDURES[task_id]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=CodedConcept(procedure[0], "SCT", procedure[1]), imaging_measurements=groups or None,
        title=codes.cid7021.ImagingMeasurementReport)
    sr = hd.sr.Comprehensive3DSR(
        evidence=source.datasets, content=report[0], series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBERS["measurements"], sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="UQSegmentation", is_complete=True)
    sr.SeriesDescription = f"{producer.model_id} measurements"[:64]
    return sr
