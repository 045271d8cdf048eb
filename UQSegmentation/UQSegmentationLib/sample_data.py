"""The project's sample images as entries of Slicer's Sample Data module, under the category "UQSegmentation".

The samples are files shipped with the extension (Resources/SampleData, installed to
`<module dir>/Resources/SampleData`), not downloads. Slicer's `SampleDataLogic.registerCustomSampleDataSource`
takes URIs; a local file is given as its `file://` URI, which the Sample Data module copies into Slicer's cache
under the entry's `fileNames` name (urllib reads `file://` URIs like any other) and then loads with the given file
type. Each file carries its SHA-256 checksum, so a cached copy left by an older version of a sample is replaced.

Everything here is plain Python: where the samples are for a module file, the registration arguments of each
sample, and the registration itself, which takes Slicer's `SampleData` module as a parameter (so it runs, and is
tested, without Slicer). The module calls `register_sample_data(SampleData, __file__)` once the application has
started, as Slicer's scripted-module template does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

CATEGORY = "UQSegmentation"


@dataclass(frozen=True)
class Sample:
    """One entry of the Sample Data module.

    name - the entry's sample name (its button text).
    folder - the sample's folder under Resources/SampleData.
    files - the files loaded, relative to `folder`, with one scene node name and one Slicer file type each.
    node_names - the names the loaded nodes get.
    file_types - Slicer IO file types ("VolumeFile", "SegmentationFile").
    single_file - load each file alone (the VolumeFile reader otherwise looks for a series next to a DICOM file).
    tasks - the engine's tasks the sample is meant for.
    """

    name: str
    folder: str
    files: tuple[str, ...]
    node_names: tuple[str, ...]
    file_types: tuple[str, ...]
    single_file: bool
    tasks: tuple[str, ...]


SAMPLES: tuple[Sample, ...] = (
    Sample("UQSegMammogramMLO", "mammo-mlo", ("mlo.dcm",), ("UQSegMammogramMLO",), ("VolumeFile",), True,
           ("mammo-pectoral", "mammo-breast")),
    Sample("UQSegChestXray", "cxr-chest", ("chest.dcm",), ("UQSegChestXray",), ("VolumeFile",), True,
           ("cxr-landmarks",)),
    Sample("UQSegAbdominalCT", "ct-abdomen", ("ct.nii.gz", "liver.nii.gz"), ("UQSegAbdominalCT", "UQSegCTLiver"),
           ("VolumeFile", "SegmentationFile"), False, ("ct-organs",)),
)


def sample_data_dir(module_file) -> Optional[Path]:
    """The Resources/SampleData folder for the module file `module_file` (UQSegmentation.py), or None.

    Installed extension and build tree: `<module dir>/Resources/SampleData`; the source tree (the module loaded
    from the repository's UQSegmentation/ folder): `<module dir>/../Resources/SampleData`.
    """
    module_dir = Path(module_file).resolve().parent
    for folder in (module_dir / "Resources" / "SampleData", module_dir.parent / "Resources" / "SampleData"):
        if folder.is_dir():
            return folder
    return None


def sha256(path: Path) -> str:
    """The file's SHA-256 as the Sample Data module's checksum string, ``SHA256:<hex digest>``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return "SHA256:" + digest.hexdigest()


def cache_file_name(sample: Sample, file: str) -> str:
    """The name the Sample Data module gives its cached copy: unique to the project, the extension kept last (the
    readers go by it)."""
    return f"{CATEGORY}-{sample.folder}-{file}"


def registration_arguments(sample: Sample, sample_dir: Path, thumbnail: Optional[Path] = None) -> Optional[dict]:
    """The keyword arguments of `SampleDataLogic.registerCustomSampleDataSource` for `sample`, or None when one of
    its files is missing from `sample_dir`."""
    paths = [Path(sample_dir) / sample.folder / f for f in sample.files]
    if not all(p.is_file() for p in paths):
        return None
    return {
        "category": CATEGORY,
        "sampleName": sample.name,
        "uris": [p.resolve().as_uri() for p in paths],
        "fileNames": [cache_file_name(sample, f) for f in sample.files],
        "nodeNames": list(sample.node_names),
        "loadFileType": list(sample.file_types),
        "checksums": [sha256(p) for p in paths],
        "loadFileProperties": {"singleFile": True} if sample.single_file else {},
        "thumbnailFileName": str(thumbnail) if thumbnail is not None and Path(thumbnail).is_file() else None,
    }


def register_sample_data(sample_data_module, module_file) -> list[str]:
    """Register every shipped sample with Slicer's Sample Data module; returns the names registered.

    `sample_data_module` is Slicer's `SampleData` module (anything with
    `SampleDataLogic.registerCustomSampleDataSource`); `module_file` is UQSegmentation.py's path, which locates
    the samples and the module icon used as their thumbnail. Samples whose files are missing are left out.
    """
    sample_dir = sample_data_dir(module_file)
    if sample_dir is None:
        return []
    thumbnail = Path(module_file).resolve().parent / "Resources" / "Icons" / "UQSegmentation.png"
    registered = []
    for sample in SAMPLES:
        arguments = registration_arguments(sample, sample_dir, thumbnail)
        if arguments is not None:
            sample_data_module.SampleDataLogic.registerCustomSampleDataSource(**arguments)
            registered.append(sample.name)
    return registered
