""""Export to DICOM": the current result of a volume loaded from Slicer's DICOM database, written as DICOM SEG,
Parametric Map (and TID 1500 SR) by the engine, and imported into that database beside its source series.

Steps of `export_to_dicom(case_dir, volume_node)`:
1. the volume's source instances: its ``DICOM.instanceUIDs`` attribute (set by Slicer's DICOM loaders), each UID's
   file from the database (`files_for_volume`; injectable as `source_files`);
2. they are linked (copied where links are impossible) into ``<work>/source/`` — one file for a 2-D image, the series
   folder for a CT — which is what the engine reads;
3. the engine, in a child process like a prediction (`logic.default_python`, `logic.engine_environment`), runs
   ``python -m uqseg.cli export-dicom <case_dir> <source>``: it checks that the result lies on the source's grid and
   writes the objects into the case folder (the same code as ``uqseg predict --dicom``, so Slicer 5.8's pydicom 2.4 /
   highdicom 0.22 and 5.12's pydicom 3 / highdicom 0.27 give the same objects);
4. the objects are copied into ``<work>/objects/`` and that folder imported with the injected `importer` (default:
   `DICOMUtils.importDicom` into ``slicer.dicomDatabase``).
Any failure raises `DicomExportError` with one line (the engine's ``error: ...`` line when it refused).
No Qt here; `run` (subprocess.run's signature) and `importer(folder)` are injectable for tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

OBJECT_FILES = ("segmentation.dcm", "uncertainty.dcm", "measurements.dcm")


class DicomExportError(RuntimeError):
    """The export failed; the message is one line saying why."""


def files_for_volume(volume_node, database=None) -> list:
    """The DICOM files a volume node was loaded from (Slicer's DICOM database), in the attribute's order."""
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
    if not uids:
        raise DicomExportError(f"{volume_node.GetName()}: was not loaded from DICOM (no DICOM.instanceUIDs): "
                               "load the image through the DICOM module to export DICOM objects for it")
    if database is None:
        import slicer

        database = slicer.dicomDatabase
    files = [database.fileForInstance(uid) for uid in uids]
    missing = [u for u, f in zip(uids, files) if not f]
    if missing:
        raise DicomExportError(f"{volume_node.GetName()}: {len(missing)} of its instances are not in the DICOM "
                               f"database (e.g. {missing[0]})")
    return [Path(f) for f in files]


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.symlink(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def default_importer(folder: Path) -> None:
    from DICOMLib import DICOMUtils

    DICOMUtils.importDicom(str(folder))


def export_to_dicom(case_dir: Path, volume_node=None, *, source_files: Optional[Sequence] = None,
                    python: Optional[str] = None, env: Optional[dict] = None, run: Callable = subprocess.run,
                    importer: Optional[Callable[[Path], None]] = None, work_dir: Optional[Path] = None,
                    timeout: float = 600) -> list:
    """Write the DICOM objects of the result in `case_dir` (a case folder of ``uqseg predict``) over the source DICOM
    of `volume_node` (or `source_files`), import them, and return the imported files (module docstring)."""
    from UQSegmentationLib.logic import default_python, engine_environment

    if not case_dir or not (Path(case_dir) / "summary.json").is_file():
        raise DicomExportError("there is no result to export: run the task on the volume first")
    files = [Path(f) for f in (source_files if source_files is not None else files_for_volume(volume_node))]
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="UQSegmentation-dicom-"))
    source = work / "source"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for i, f in enumerate(files):
        _link_or_copy(f.resolve(), source / f"{i:05d}.dcm")
    source_arg = source / "00000.dcm" if len(files) == 1 else source
    cmd = [python or default_python(), "-m", "uqseg.cli", "export-dicom", str(case_dir), str(source_arg)]
    done = run(cmd, capture_output=True, text=True, timeout=timeout, env=env or engine_environment())
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or "").splitlines() if ln.startswith("error:")]
        raise DicomExportError(lines[-1] if lines else f"the engine failed (exit status {done.returncode}): "
                               f"{(done.stderr or '').strip().splitlines()[-1:] or ''}")
    objects = work / "objects"
    shutil.rmtree(objects, ignore_errors=True)
    objects.mkdir()
    written = [Path(case_dir) / n for n in OBJECT_FILES if (Path(case_dir) / n).is_file()]
    for f in written:
        shutil.copy2(f, objects / f.name)
    (importer or default_importer)(objects)
    return [objects / f.name for f in written]
