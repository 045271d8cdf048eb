"""Reading result files into nodes with Slicer's own storage nodes, given only the scene.

The module logics (`vtkSlicerVolumesLogic.AddArchetypeVolume`, `vtkSlicerSegmentationsModuleLogic.
LoadSegmentationFromFile`, `vtkSlicerMarkupsLogic.LoadMarkups`) do the same through the same storage nodes, but
need the application's logics; these functions need nothing but the scene, so they behave identically in Slicer,
on `slicer-core` and in a background scene. Each raises `FileNotFoundError` for a missing file and `RuntimeError`
when Slicer cannot read it; nothing is left in the scene after a failure.
"""

from __future__ import annotations

from pathlib import Path


def _check(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def _fail(scene, nodes, message):
    for node in nodes:
        if node is not None and node.GetScene() is scene:
            scene.RemoveNode(node)
    raise RuntimeError(message)


def _read(scene, path: Path, name: str | None, node, storage, what: str, loaded=None):
    """`node` (named `name`, else the file name up to its first dot) read from `path` through `storage`, both added
    to the scene, with a display node; `loaded(node)` False counts as a failed read, like `ReadData` failing."""
    node.SetName(name or path.name.split(".")[0])
    scene.AddNode(node)
    storage.SetFileName(str(path))
    scene.AddNode(storage)
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node) or (loaded is not None and not loaded(node)):
        _fail(scene, (node, storage), f"{path}: Slicer could not read {what}")
    node.CreateDefaultDisplayNodes()
    return node


def load_volume(scene, path, name: str | None = None):
    """A scalar volume node from a NRRD/NIfTI/MHA file (Slicer's archetype reader), with a display node."""
    import slicer

    path = _check(path)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetSingleFile(True)
    return _read(scene, path, name, slicer.vtkMRMLScalarVolumeNode(), storage, "this volume",
                 loaded=lambda node: node.GetImageData() is not None)


def load_segmentation(scene, path, name: str | None = None):
    """A segmentation node from a `.seg.nrrd` (segment names, colours, terminology tags kept), with display node."""
    import slicer

    path = _check(path)
    return _read(scene, path, name, slicer.vtkMRMLSegmentationNode(), slicer.vtkMRMLSegmentationStorageNode(),
                 "this segmentation")


def load_markups(scene, path, name: str | None = None):
    """The (first) markups node of a `.mrk.json` file (curve, closed curve, fiducials), with a display node."""
    import slicer

    path = _check(path)
    storage = slicer.vtkMRMLMarkupsJsonStorageNode()
    scene.AddNode(storage)
    node = storage.AddNewMarkupsNodeFromFile(str(path), name or "")
    if node is None:
        _fail(scene, (storage,), f"{path}: Slicer could not read these markups")
    if name:
        node.SetName(name)
    if node.GetStorageNode() is not storage and storage.GetScene() is scene:
        scene.RemoveNode(storage)  # the reader attached a storage node of its own
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node
