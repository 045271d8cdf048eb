"""An input image as a scalar volume node, read by the engine's loader (DICOM MG/CR/DX, PNG, NRRD, NIfTI, ...).

In Slicer the user's volume usually exists already (loaded through the DICOM module). This is for the other cases:
tests and screenshots on `slicer-core` (which has no DICOM reader), and opening a case of a batch (summary.json
``input``). The pixels are exactly those the engine saw — including its VOI/MONOCHROME1 handling — on the image's
own grid and geometry (LPS in the engine, converted to Slicer's RAS here), so results written on that grid overlay
it exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def ijk_to_ras(spacing, origin, direction) -> np.ndarray:
    """4×4 IJK→RAS of an engine image geometry (spacing x/y[/z], LPS origin and direction)."""
    sp = list(spacing) + [1.0] * (3 - len(spacing))
    m = np.eye(4)
    m[:3, :3] = LPS_TO_RAS @ np.asarray(direction, float) @ np.diag(sp)
    m[:3, 3] = LPS_TO_RAS @ np.asarray(origin, float)
    return m


def volume_node_from_array(scene, array: np.ndarray, matrix_ijk_to_ras: np.ndarray, name: str):
    """A new scalar volume node (with display node) holding `array` ([row, col] or [slice, row, col])."""
    import slicer
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk

    a = np.asarray(array)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"expected a 2-D or 3-D array, got shape {a.shape}")
    a = np.ascontiguousarray(a)
    image = vtk.vtkImageData()
    image.SetDimensions(a.shape[2], a.shape[1], a.shape[0])
    image.GetPointData().SetScalars(numpy_to_vtk(a.reshape(-1), deep=True))
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName(name)
    m = vtk.vtkMatrix4x4()
    for i in range(4):
        for j in range(4):
            m.SetElement(i, j, float(matrix_ijk_to_ras[i, j]))
    node.SetIJKToRASMatrix(m)
    node.SetAndObserveImageData(image)
    scene.AddNode(node)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None:
        display.AutoWindowLevelOn()
    return node


def load_input_volume(scene, source, name: str | None = None):
    """Load `source` (a path, or a `uqseg.io.image.Image`) as a scalar volume node named `name` (default: stem)."""
    from uqseg.io.image import Image
    from uqseg.io.load import load_image

    if isinstance(source, Image):
        image = source
        default = Path(image.meta.get("path", "input")).name
    else:
        path = Path(source)
        image = load_image(path, ndim=None)
        default = path.name
    if name is None:
        for suffix in (".nii.gz", ".seg.nrrd", ".dcm", ".png", ".jpg", ".jpeg", ".nrrd", ".nii", ".mha", ".mhd",
                       ".tif", ".tiff", ".bmp"):
            if default.lower().endswith(suffix):
                default = default[: -len(suffix)]
                break
        name = default
    array = image.array.astype(np.float32, copy=False)
    return volume_node_from_array(scene, array, ijk_to_ras(image.spacing, image.origin, image.direction), name)
