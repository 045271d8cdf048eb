"""The project's perceptually uniform colormaps as Slicer procedural colour nodes.

Slicer ships Viridis/Inferno as file-based colour tables, but those files are not in the `slicer-core` wheel, and
the project wants the same colours in Slicer, in tests and in screenshots. So the maps are defined here, as 33
control points each (every 1/32 of the range) of matplotlib's ``viridis`` and ``inferno`` (Stéfan van der Walt and
Nathaniel Smith, CC0), interpolated linearly in RGB by a `vtkColorTransferFunction`. With 33 points the largest
difference to the 256-entry originals is below 1/255 per channel.

- "viridis" (dark purple → blue → green → yellow): default for per-node std on contours (light at high std).
- "inferno" (black → purple → orange → pale yellow): default for voxel variance / entropy overlays (low values
  dark, so a semi-transparent overlay barely tints confident tissue).

`get_or_create_colormap(scene, name)` adds one `vtkMRMLProceduralColorNode` per scene and name (singleton tag
``UQSegmentation.<name>``, node name ``UQ <Name>``) and returns the existing one on later calls; its transfer
function spans 0..1 (display nodes map their own scalar range onto it). `color_by_point_array` colours a display
node (curve, model) by one of its point arrays with such a map over a fixed range.
"""

from __future__ import annotations

import vtk

COLORMAP_NODE_PREFIX = "UQ "
SINGLETON_PREFIX = "UQSegmentation."
ATTRIBUTE = "UQSegmentation.Colormap"

# (t, r, g, b), t in 0..1.
_VIRIDIS = (
    (0.0000, 0.2670, 0.0049, 0.3294), (0.0312, 0.2770, 0.0503, 0.3757), (0.0625, 0.2823, 0.0950, 0.4173),
    (0.0938, 0.2829, 0.1359, 0.4534), (0.1250, 0.2788, 0.1755, 0.4834), (0.1562, 0.2706, 0.2141, 0.5071),
    (0.1875, 0.2590, 0.2515, 0.5247), (0.2188, 0.2450, 0.2877, 0.5373), (0.2500, 0.2297, 0.3224, 0.5457),
    (0.2812, 0.2143, 0.3556, 0.5512), (0.3125, 0.1994, 0.3876, 0.5546), (0.3438, 0.1856, 0.4186, 0.5568),
    (0.3750, 0.1727, 0.4488, 0.5579), (0.4062, 0.1607, 0.4785, 0.5581), (0.4375, 0.1490, 0.5081, 0.5573),
    (0.4688, 0.1378, 0.5375, 0.5549), (0.5000, 0.1276, 0.5669, 0.5506), (0.5312, 0.1206, 0.5964, 0.5436),
    (0.5625, 0.1206, 0.6258, 0.5335), (0.5938, 0.1323, 0.6550, 0.5197), (0.6250, 0.1579, 0.6838, 0.5017),
    (0.6562, 0.1966, 0.7118, 0.4792), (0.6875, 0.2461, 0.7389, 0.4520), (0.7188, 0.3041, 0.7647, 0.4199),
    (0.7500, 0.3692, 0.7889, 0.3829), (0.7812, 0.4401, 0.8111, 0.3410), (0.8125, 0.5160, 0.8312, 0.2943),
    (0.8438, 0.5958, 0.8487, 0.2433), (0.8750, 0.6785, 0.8637, 0.1895), (0.9062, 0.7624, 0.8764, 0.1371),
    (0.9375, 0.8456, 0.8873, 0.0997), (0.9688, 0.9261, 0.8973, 0.1041), (1.0000, 0.9932, 0.9062, 0.1439),
)
_INFERNO = (
    (0.0000, 0.0015, 0.0005, 0.0139), (0.0312, 0.0140, 0.0112, 0.0719), (0.0625, 0.0423, 0.0281, 0.1411),
    (0.0938, 0.0820, 0.0433, 0.2153), (0.1250, 0.1293, 0.0473, 0.2908), (0.1562, 0.1834, 0.0403, 0.3550),
    (0.1875, 0.2383, 0.0366, 0.3964), (0.2188, 0.2908, 0.0456, 0.4186), (0.2500, 0.3415, 0.0623, 0.4294),
    (0.2812, 0.3915, 0.0809, 0.4331), (0.3125, 0.4412, 0.0993, 0.4316), (0.3438, 0.4910, 0.1172, 0.4256),
    (0.3750, 0.5409, 0.1347, 0.4151), (0.4062, 0.5907, 0.1526, 0.4003), (0.4375, 0.6401, 0.1714, 0.3811),
    (0.4688, 0.6887, 0.1922, 0.3576), (0.5000, 0.7357, 0.2159, 0.3302), (0.5312, 0.7805, 0.2433, 0.2995),
    (0.5625, 0.8224, 0.2752, 0.2661), (0.5938, 0.8605, 0.3119, 0.2306), (0.6250, 0.8943, 0.3534, 0.1936),
    (0.6562, 0.9232, 0.3994, 0.1552), (0.6875, 0.9470, 0.4492, 0.1153), (0.7188, 0.9654, 0.5022, 0.0739),
    (0.7500, 0.9784, 0.5579, 0.0349), (0.7812, 0.9860, 0.6158, 0.0256), (0.8125, 0.9879, 0.6753, 0.0653),
    (0.8438, 0.9841, 0.7361, 0.1295), (0.8750, 0.9746, 0.7977, 0.2063), (0.9062, 0.9606, 0.8591, 0.2980),
    (0.9375, 0.9476, 0.9174, 0.4107), (0.9688, 0.9545, 0.9659, 0.5404), (1.0000, 0.9884, 0.9984, 0.6449),
)

_TABLES = {"viridis": _VIRIDIS, "inferno": _INFERNO}
_DESCRIPTIONS = {
    "viridis": "UQSegmentation viridis-like perceptually uniform map (per-node std)",
    "inferno": "UQSegmentation inferno-like perceptually uniform map (variance / entropy)",
}

#: Names accepted by `get_or_create_colormap`.
COLORMAPS = tuple(_TABLES)


def _check(name: str) -> str:
    key = str(name).lower()
    if key not in _TABLES:
        raise ValueError(f"unknown colormap {name!r}; the project defines {', '.join(COLORMAPS)}")
    return key


def transfer_function(name: str) -> vtk.vtkColorTransferFunction:
    """A new `vtkColorTransferFunction` over 0..1 for the named map (RGB interpolation, clamped)."""
    ctf = vtk.vtkColorTransferFunction()
    ctf.SetColorSpaceToRGB()
    ctf.ClampingOn()
    for t, r, g, b in _TABLES[_check(name)]:
        ctf.AddRGBPoint(t, r, g, b)
    return ctf


def colormap_rgb(name: str, t: float) -> tuple[float, float, float]:
    """The colour (0..1 RGB) of the named map at t (clamped to 0..1); the same interpolation Slicer draws."""
    table = _TABLES[_check(name)]
    t = min(1.0, max(0.0, float(t)))
    for (t0, *c0), (t1, *c1) in zip(table, table[1:]):
        if t <= t1:
            w = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
            return tuple(a + w * (b - a) for a, b in zip(c0, c1))
    return tuple(table[-1][1:])


def get_or_create_colormap(scene, name: str):
    """The scene's procedural colour node for `name` ("viridis" or "inferno"), created on first use."""
    import slicer

    key = _check(name)
    tag = SINGLETON_PREFIX + key
    node = scene.GetSingletonNode(tag, "vtkMRMLProceduralColorNode")
    if node is not None:
        return node
    node = slicer.vtkMRMLProceduralColorNode()
    node.SetSingletonTag(tag)
    node.SetName(COLORMAP_NODE_PREFIX + key.capitalize())
    node.SetDescription(_DESCRIPTIONS[key])
    node.SetAttribute(ATTRIBUTE, key)
    node.SetAttribute("Category", "UQSegmentation")
    node.SetAndObserveColorTransferFunction(transfer_function(key))
    if hasattr(node, "SetNumberOfTableValues"):  # entries of the lookup-table copies (legend, volume slices)
        node.SetNumberOfTableValues(256)
    node.SetHideFromEditors(False)
    scene.AddNode(node)
    return node


def color_by_point_array(scene, display, name: str, value_range, colormap: str) -> None:
    """Colour `display` (a curve's or a model's display node) by its point array `name`: the project colormap
    `colormap` over the fixed range `value_range` (lo, hi; not the data's own range), scalars shown."""
    display.SetAndObserveColorNodeID(get_or_create_colormap(scene, colormap).GetID())
    display.SetActiveScalar(name, vtk.vtkAssignAttribute.POINT_DATA)
    display.SetScalarRangeFlag(display.UseManualScalarRange)
    display.SetScalarRange(*value_range)
    display.SetScalarVisibility(True)
