"""Segments ↔ numpy arrays on a volume's voxel grid, with Slicer's own segmentation functions and only the scene.

`slicer.util.arrayFromSegmentBinaryLabelmap` / `updateSegmentBinaryLabelmapFromArray` do the same but need
`slicer.modules` (the application); these need nothing but the nodes, so they work in Slicer, on `slicer-core` and
in a background scene alike.

Frames. Arrays are indexed ``[slice, row, col]`` = ``[k, j, i]`` (numpy order of a VTK image: i fastest), on the grid
of the reference volume node: voxel (i, j, k) sits at RAS ``IJKToRAS · (i, j, k, 1)``. A 2-D image is one slice
(k = 0); `read_segment` returns ``[row, col]`` for it when ``squeeze=True``. A segment's binary labelmap may be
stored on another lattice (its own extent, a shared layer with other segments); reading resamples it onto the
reference grid (nearest neighbour) and thresholds the segment's own label value, so shared layers read right.
"""

from __future__ import annotations

import numpy as np


def grid_matrix(volume_node) -> np.ndarray:
    """The volume's 4×4 IJK→RAS matrix (numpy)."""
    import vtk

    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def grid_shape(volume_node) -> tuple[int, int, int]:
    """(slices, rows, cols) of the volume's image data."""
    i, j, k = volume_node.GetImageData().GetDimensions()
    return k, j, i


def _vtk_matrix(m: np.ndarray):
    import vtk

    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(m[r][c]))
    return out


def oriented_image(mask: np.ndarray, ijk_to_ras: np.ndarray):
    """A `vtkOrientedImageData` (unsigned char) holding `mask` ([slice, row, col] or [row, col]) on the grid
    of `ijk_to_ras`."""
    import slicer
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk

    a = np.asarray(mask)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"expected a 2-D or 3-D mask, got shape {a.shape}")
    k, j, i = a.shape
    oi = slicer.vtkOrientedImageData()
    oi.SetExtent(0, i - 1, 0, j - 1, 0, k - 1)
    oi.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(a, np.uint8).reshape(-1), deep=True,
                                              array_type=vtk.VTK_UNSIGNED_CHAR))
    oi.SetImageToWorldMatrix(_vtk_matrix(ijk_to_ras))
    return oi


def reference_image(volume_node):
    """An empty `vtkOrientedImageData` with the volume's geometry (extent, IJK→RAS), no scalars."""
    import slicer

    oi = slicer.vtkOrientedImageData()
    oi.SetExtent(volume_node.GetImageData().GetExtent())
    oi.SetImageToWorldMatrix(_vtk_matrix(grid_matrix(volume_node)))
    return oi


def read_segment(segmentation_node, segment_id: str, volume_node, squeeze: bool = True) -> np.ndarray:
    """bool array of one segment on the volume's grid ([slice, row, col]; [row, col] for a 2-D volume when
    `squeeze`). An empty segment gives all False."""
    import slicer
    from vtk.util.numpy_support import vtk_to_numpy

    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise KeyError(f"{segmentation_node.GetName()}: no segment {segment_id!r}")
    shape = grid_shape(volume_node)
    out = np.zeros(shape, bool)
    source = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id, source)
    ext = source.GetExtent()
    if ext[0] <= ext[1] and ext[2] <= ext[3] and ext[4] <= ext[5] and source.GetPointData().GetScalars():
        ref = reference_image(volume_node)
        resampled = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(source, ref, resampled)
        rx = resampled.GetExtent()
        if rx[0] <= rx[1] and rx[2] <= rx[3] and rx[4] <= rx[5]:
            values = vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(
                rx[5] - rx[4] + 1, rx[3] - rx[2] + 1, rx[1] - rx[0] + 1)
            # GetBinaryLabelmapRepresentation gives the segment alone: nonzero = inside
            out[rx[4]:rx[5] + 1, rx[2]:rx[3] + 1, rx[0]:rx[1] + 1] = values != 0
    return out[0] if squeeze and shape[0] == 1 else out


def write_segment(segmentation_node, segment_id: str, mask: np.ndarray, volume_node) -> None:
    """Replace one existing segment's voxels by `mask` (on the volume's grid); other segments keep theirs, even in a
    shared layer (`vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment`, MODE_REPLACE, no overwrite)."""
    import slicer

    if segmentation_node.GetSegmentation().GetSegment(segment_id) is None:
        raise KeyError(f"{segmentation_node.GetName()}: no segment {segment_id!r}")
    a = np.asarray(mask, bool)
    shape = grid_shape(volume_node)
    if a.shape != shape and a.shape != shape[1:]:
        raise ValueError(f"mask shape {a.shape} does not match the volume grid {shape}")
    oi = oriented_image(a, grid_matrix(volume_node))
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(oi, segmentation_node, segment_id, logic.MODE_REPLACE, oi.GetExtent()):
        raise RuntimeError(f"could not write segment {segment_id!r} of {segmentation_node.GetName()}")


def add_segment(segmentation_node, segment_id: str, name: str, mask: np.ndarray, volume_node,
                color=(1.0, 1.0, 0.0)) -> str:
    """Add (or replace) a segment `segment_id` holding `mask`, in a labelmap layer of its own; returns its ID."""
    import slicer

    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSegment(segment_id) is not None:
        segmentation.RemoveSegment(segment_id)
    segment = slicer.vtkSegment()
    segment.SetName(name)
    segment.SetColor(*color)
    segment.AddRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(),
                              oriented_image(np.asarray(mask, bool), grid_matrix(volume_node)))
    segmentation.AddSegment(segment, segment_id)
    return segment_id


def label_map(segmentation_node, volume_node, segment_labels: dict, squeeze: bool = True) -> np.ndarray:
    """An integer label map (uint16) on the volume's grid: label `segment_labels[id]` where segment `id` is set,
    painted in the order given (later segments win where segments overlap), 0 elsewhere."""
    shape = grid_shape(volume_node)
    out = np.zeros(shape, np.uint16)
    for segment_id, value in segment_labels.items():
        out[read_segment(segmentation_node, segment_id, volume_node, squeeze=False)] = int(value)
    return out[0] if squeeze and shape[0] == 1 else out
