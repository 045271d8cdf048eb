"""CT volumes to and from the model's working grid, and the HU normalisation the network was trained with.

Working grid: axis-aligned in the patient LPS frame (direction = identity: array axes x → patient left, y → posterior,
z → superior), isotropic `spacing` mm (the model card's `preprocessing.spacing_mm`), covering the physical bounding
box of the input volume (all 8 corner voxel centres, whatever the input's direction — oblique inputs included). The
input is resampled onto it with trilinear interpolation, −1024 HU (air) outside the input.
Results on the working grid go back onto the input's own grid (same size, spacing, origin, direction) by
`to_input_grid`: trilinear for probabilities / variances, nearest neighbour for labels.

An input that already IS its working grid (axis-aligned, the working spacing, same origin and shape — e.g. a
cached training volume, or the benchmark's 2 mm volume) is taken as is, without a resampling, and so are the results
going back; SimpleITK is imported only when a resampling is needed.

HU normalisation (`normalise_hu`): clip to [hu_min, hu_max], then map linearly onto [−1, 1]; the range is in the
model card (`preprocessing.hu_window`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uqseg.io.image import Image


class _LazySitk:
    """SimpleITK, imported on first use (the module's pure-numpy parts work without it)."""

    def __getattr__(self, name):
        import SimpleITK

        return getattr(SimpleITK, name)


sitk = _LazySitk()

AIR_HU = -1024.0


@dataclass
class WorkingGrid:
    """An axis-aligned LPS grid: `shape` (z, y, x) voxels, `spacing` mm (x, y, z), `origin` mm (centre of voxel 0)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def reference(self):
        ref = sitk.Image([int(s) for s in self.shape[::-1]], sitk.sitkFloat32)
        ref.SetSpacing([float(s) for s in self.spacing])
        ref.SetOrigin([float(o) for o in self.origin])
        ref.SetDirection(np.eye(3).ravel().tolist())
        return ref

    def as_image(self, array: np.ndarray, meta: dict | None = None) -> Image:
        return Image(array=array, spacing=self.spacing, origin=self.origin, direction=np.eye(3), meta=meta or {})


def to_sitk(image: Image, array: np.ndarray | None = None):
    """An `Image` (or another array on its grid) as a SimpleITK image with the same LPS geometry."""
    a = image.array if array is None else array
    out = sitk.GetImageFromArray(np.ascontiguousarray(a))
    out.SetSpacing([float(s) for s in image.spacing])
    out.SetOrigin([float(o) for o in image.origin])
    out.SetDirection(np.asarray(image.direction, float).ravel().tolist())
    return out


def corner_points(image: Image) -> np.ndarray:
    """(8, 3) LPS positions (mm) of the centres of the 8 corner voxels."""
    z, y, x = image.shape
    sp = np.asarray(image.spacing, float)
    d = np.asarray(image.direction, float)
    corners = np.array([[i, j, k] for i in (0, x - 1) for j in (0, y - 1) for k in (0, z - 1)], float)
    return np.asarray(image.origin, float) + (corners * sp) @ d.T


def working_grid(image: Image, spacing: float) -> WorkingGrid:
    """The axis-aligned grid of voxel size `spacing` mm that covers the input's bounding box."""
    pts = corner_points(image)
    lo, hi = pts.min(0), pts.max(0)
    size = np.maximum(1, np.floor((hi - lo) / spacing + 1e-6).astype(int) + 1)
    return WorkingGrid(shape=(int(size[2]), int(size[1]), int(size[0])), spacing=(spacing,) * 3,
                       origin=tuple(float(v) for v in lo))


def is_working_grid(image: Image, grid: WorkingGrid) -> bool:
    """Whether `image`'s voxels are exactly those of `grid` (no resampling needed either way)."""
    return (tuple(image.shape) == tuple(grid.shape) and np.allclose(image.spacing, grid.spacing)
            and np.allclose(image.origin, grid.origin) and np.allclose(image.direction, np.eye(3)))


def to_working_grid(image: Image, grid: WorkingGrid, default: float = AIR_HU,
                    interpolation=None) -> np.ndarray:
    """The input's voxels resampled onto `grid` (trilinear unless `interpolation` says otherwise): float32 (z, y, x)."""
    if is_working_grid(image, grid):
        return np.ascontiguousarray(image.array, np.float32)
    interpolation = sitk.sitkLinear if interpolation is None else interpolation
    out = sitk.Resample(to_sitk(image, image.array.astype(np.float32)), grid.reference(), sitk.Transform(),
                        interpolation, float(default), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def _resample_label(label: Image, reference) -> np.ndarray:
    out = sitk.Resample(to_sitk(label, label.array.astype(np.uint8)), reference, sitk.Transform(),
                        sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(out)


def label_to_working_grid(label: Image, grid: WorkingGrid) -> np.ndarray:
    """A label map (any geometry, aligned by physical position) onto `grid`, nearest neighbour: uint8 (z, y, x)."""
    return _resample_label(label, grid.reference())


def label_to_image_grid(label: Image, image: Image) -> np.ndarray:
    """A label map (any geometry, aligned by physical position) onto the voxel grid of `image`, nearest neighbour:
    uint8 in `image`'s array order; the label's own array when the two grids are the same."""
    same = (label.shape == image.shape and np.allclose(label.spacing, image.spacing)
            and np.allclose(label.origin, image.origin) and np.allclose(label.direction, image.direction))
    if same:
        return label.array.astype(np.uint8)
    return _resample_label(label, to_sitk(image, np.zeros(image.shape, np.uint8)))


def to_input_grid(work: np.ndarray, grid: WorkingGrid, image: Image, label: bool = False) -> np.ndarray:
    """A (z, y, x) or (C, z, y, x) working-grid volume back onto the input's own grid (its shape, float32 or uint8)."""
    if work.ndim == 4:
        return np.stack([to_input_grid(w, grid, image, label) for w in work])
    if is_working_grid(image, grid):
        return np.ascontiguousarray(work, np.uint8 if label else np.float32)
    src = grid.as_image(np.ascontiguousarray(work))
    ref = to_sitk(image, np.zeros(image.shape, np.uint8))
    pixel = sitk.sitkUInt8 if label else sitk.sitkFloat32
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    out = sitk.Resample(to_sitk(src, work.astype(np.uint8 if label else np.float32)), ref, sitk.Transform(), interp,
                        0.0, pixel)
    return sitk.GetArrayFromImage(out)


def normalise_hu(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """HU clipped to `window` = (hu_min, hu_max) and mapped linearly onto [−1, 1], float32."""
    lo, hi = float(window[0]), float(window[1])
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo) * 2 - 1).astype(np.float32)


def pad_to_multiple(volume: np.ndarray, multiple: tuple[int, int, int], minimum: tuple[int, int, int] = (0, 0, 0),
                    value: float = -1.0) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Pad (…, z, y, x) at the END of each axis to a multiple of `multiple` and at least `minimum`; returns the
    padded array and the original (z, y, x) shape (crop back with ``[..., :z, :y, :x]``)."""
    shape = volume.shape[-3:]
    target = [max(int(np.ceil(s / m) * m), int(np.ceil(mn / m) * m)) for s, m, mn in zip(shape, multiple, minimum)]
    pad = [(0, 0)] * (volume.ndim - 3) + [(0, t - s) for s, t in zip(shape, target)]
    return np.pad(volume, pad, constant_values=value), tuple(shape)
