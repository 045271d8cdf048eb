"""The DICOM objects of one case, written into its (staging) folder from the files the task just wrote there.

`write_dicom_objects` is what the batch driver (`uqseg.tasks.run.run_cases` with ``dicom=True``) calls after the
task's files are in the case's staging folder and before summary.json: the objects land in the case folder with
everything else, or the case is dropped whole (an error leaves no case folder). `export_case` does the same for a
finished case folder and its source DICOM (the Slicer module's "Export to DICOM", `uqseg export-dicom`).

Files (each written atomically):
- `segmentation.dcm`: DICOM SEG of the task's `.seg.nrrd` (`seg.py`);
- `uncertainty.dcm`: Parametric Map of the task's uncertainty (`uncertainty_maps.py`, `parametric_map.py`);
- `measurements.dcm` (mammo-pectoral, cxr-landmarks): TID 1500 measurement report of the boundary / contours
  with their σ / std (`sr.py`).
"""

from __future__ import annotations

from pathlib import Path

from uqseg.dicom_out.producer import Producer
from uqseg.dicom_out.source import DicomSource, source_of

#: the `.seg.nrrd` each task writes
SEGMENTATION_FILES = {"mammo-pectoral": "pectoral.seg.nrrd", "mammo-breast": "segmentation.seg.nrrd",
                      "cxr-landmarks": "segmentation.seg.nrrd", "ct-organs": "segmentation.seg.nrrd"}
#: tasks whose result has a contour with a per-point uncertainty (written as a TID 1500 report)
MEASUREMENT_TASKS = ("mammo-pectoral", "cxr-landmarks")


def write_dicom_objects(task_id: str, case_dir: Path, source: DicomSource, producer: Producer) -> dict:
    """Write the case's DICOM objects into `case_dir`; returns {"segmentation": "segmentation.dcm", ...} (the
    summary's files["dicom"]). Raises InputError (the case cannot be written as DICOM) with the reason."""

    try:
        return _write(task_id, Path(case_dir), source, producer)
    except (ValueError, TypeError, AttributeError, KeyError) as e:  # highdicom / pydicom refusing the source
        from uqseg.errors import InputError

        raise InputError(source.path, f"cannot be written as DICOM ({type(e).__name__}: {e})") from None


def _write(task_id: str, case_dir: Path, source: DicomSource, producer: Producer) -> dict:
    from uqseg.dicom_out.parametric_map import build_parametric_map
    from uqseg.dicom_out.seg import build_segmentation
    from uqseg.dicom_out.uncertainty_maps import uncertainty_map
    from uqseg.io.write import write_dicom

    shape = (1,) + tuple(source.image.shape) if source.image.ndim == 2 else tuple(source.image.shape)
    files = {}
    write_dicom(case_dir / "segmentation.dcm",
                build_segmentation(source, case_dir / SEGMENTATION_FILES[task_id], producer))
    files["segmentation"] = "segmentation.dcm"
    write_dicom(case_dir / "uncertainty.dcm",
                build_parametric_map(source, uncertainty_map(task_id, case_dir, shape), producer))
    files["uncertainty"] = "uncertainty.dcm"
    if task_id in MEASUREMENT_TASKS:
        from uqseg.dicom_out.sr import build_measurement_report

        write_dicom(case_dir / "measurements.dcm", build_measurement_report(task_id, case_dir, source, producer))
        files["measurements"] = "measurements.dcm"
    return files


def export_case(case_dir: Path, source_path: Path) -> dict:
    """The DICOM objects of a finished case folder (its summary.json names the task and model) over the DICOM it was
    predicted from (`source_path`: the file, or the series folder); written into the case folder and added to its
    summary.json. Raises InputError when the source is not DICOM or not the result's grid."""
    import json

    from uqseg.errors import InputError
    from uqseg.io.load import load_image
    from uqseg.io.write import write_json
    from uqseg.tasks.table import task_info

    case_dir = Path(case_dir)
    try:
        summary = json.loads((case_dir / "summary.json").read_text(encoding="utf-8"))
        task_id, model = summary["task"], summary["model"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(case_dir, f"is not a case folder of uqseg predict (summary.json: {e})") from None
    image = load_image(Path(source_path), ndim=task_info(task_id).ndim)
    from uqseg import __version__

    producer = Producer(str(model["id"]), str(model["version"]), str(__version__))
    files = write_dicom_objects(task_id, case_dir, source_of(image), producer)
    summary.setdefault("files", {})["dicom"] = files
    write_json(case_dir / "summary.json", summary)
    return files
