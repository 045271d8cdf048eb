"""Reading geometry and voxels back from Slicer (slicer-core) nodes, for the tests and the screenshot script.

All matrices are 4 × 4 numpy arrays mapping homogeneous (i, j, k, 1) voxel indices — i = column, j = row, k = slice —
to RAS millimetres, as Slicer stores them.
"""

from __future__ import annotations

import numpy as np


def matrix_to_array(vtk_matrix) -> np.ndarray:
    """A vtkMatrix4x4 as a 4 × 4 numpy array."""
    return np.array([[vtk_matrix.GetElement(i, j) for j in range(4)] for i in range(4)])


def ijk_to_ras(node) -> np.ndarray:
    """The IJK-to-RAS matrix of a volume node."""
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return matrix_to_array(m)


def segment_mask_on_own_grid(slicer, seg_node, segment_id, shape) -> tuple[np.ndarray, np.ndarray]:
    """A segment's voxels on the grid of the file it was loaded from: (mask [slice, row, col] of `shape`, the
    labelmap's image-to-RAS matrix). The binary labelmap may cover only the segment's extent; the rest is False."""
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    oi = slicer.vtkOrientedImageData()
    assert seg_node.GetBinaryLabelmapRepresentation(segment_id, oi)
    m = vtk.vtkMatrix4x4()
    oi.GetImageToWorldMatrix(m)
    full = np.zeros(shape, bool)
    x0, x1, y0, y1, z0, z1 = oi.GetExtent()
    if x1 >= x0 and y1 >= y0 and z1 >= z0:
        values = vtk_to_numpy(oi.GetPointData().GetScalars()).reshape(z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1)
        full[z0:z1 + 1, y0:y1 + 1, x0:x1 + 1] = values != 0
    return full, matrix_to_array(m)
