"""The sample images shipped with the project (`Resources/SampleData/<sample>/`) and where to find them.

Samples: folder name → the file (or DICOM series folder) a task reads, relative to the sample's folder. Each folder
also holds a NOTICE.md with the source, licence and changes.
- `mammo-mlo`: `mlo.dcm`, a CBIS-DDSM right MLO mammogram (CC BY 3.0), 1134 × 730 — mammo-pectoral, mammo-breast;
- `cxr-chest`: `chest.dcm`, the NEMA WG04 CR chest film RG1, 651 × 613 — cxr-landmarks;
- `ct-abdomen`: `ct.nii.gz` (and the same volume as the DICOM series `dicom/`, and `liver.nii.gz`), a
  TotalSegmentator test CT (Apache-2.0), 256 × 256 × 20 — ct-organs.

Folders searched, in this order; each sample comes from the first folder that holds its file:
1. every folder in the environment variable UQSEG_SAMPLE_DATA (os.pathsep-separated), laid out like
   Resources/SampleData;
2. `<uqseg package>/../Resources/SampleData`: the installed Slicer extension, where `uqseg/` sits next to
   UQSegmentation.py and the samples are installed to `<module dir>/Resources/SampleData`;
3. `<uqseg package>/../../Resources/SampleData`: the repository (a source checkout or an editable install).
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent  # .../uqseg

SAMPLES: dict[str, str] = {
    "mammo-mlo": "mlo.dcm",
    "cxr-chest": "chest.dcm",
    "ct-abdomen": "ct.nii.gz",
}

TASK_SAMPLES: dict[str, str] = {
    "mammo-pectoral": "mammo-mlo",
    "mammo-breast": "mammo-mlo",
    "cxr-landmarks": "cxr-chest",
    "ct-organs": "ct-abdomen",
}


class SampleNotFound(FileNotFoundError):
    """A shipped sample is in none of the folders searched."""


def search_path() -> list[Path]:
    """The folders searched for samples, in order (they need not exist)."""
    folders = [Path(p) for p in os.environ.get("UQSEG_SAMPLE_DATA", "").split(os.pathsep) if p]
    folders += [_PACKAGE.parent / "Resources" / "SampleData", _PACKAGE.parent.parent / "Resources" / "SampleData"]
    return folders


def sample_dir(name: str) -> Path:
    """The folder of sample `name` (a key of SAMPLES): the first `<folder>/<name>` on the search path that holds
    its file. Raises SampleNotFound naming the folders searched, KeyError for an unknown sample."""
    main_file = SAMPLES[name]
    for folder in search_path():
        if (folder / name / main_file).exists():
            return folder / name
    searched = ", ".join(str(f) for f in search_path())
    raise SampleNotFound(f"the sample {name!r} ({name}/{main_file}) is in none of: {searched}")


def sample_file(name: str, relative: str | None = None) -> Path:
    """A file of sample `name`: `relative` to its folder, by default the file its task reads (SAMPLES)."""
    return sample_dir(name) / (relative or SAMPLES[name])


def task_sample(task_id: str) -> Path | None:
    """The shipped input for `task_id`, or None when the task has no sample or it is not installed."""
    name = TASK_SAMPLES.get(task_id)
    if name is None:
        return None
    try:
        return sample_file(name)
    except SampleNotFound:
        return None
