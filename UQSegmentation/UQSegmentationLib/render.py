"""Offscreen rendering of Slicer views through Slicer's own displayable managers (tests and screenshots).

Works wherever the MRML libraries do — in Slicer and on the `slicer-core` wheel without the application, Qt or an X
server (docs/testing-slicer-code.md). A view here is what a Slicer view widget is without its Qt shell:

- `SliceViewRenderer`: a `vtkMRMLSliceLogic` with its slice node (default "Red", axial) and slice composite node,
  the resliced and blended volume layers (background, foreground with its opacity, label) drawn by a
  `vtkImageMapper`/`vtkActor2D` fed by `sliceLogic.GetImageDataConnection()` (what CTK's lightbox renderer
  manager does in Slicer), and a `vtkMRMLDisplayableManagerGroup` from `vtkMRMLSliceViewDisplayableManagerFactory`
  with the segmentation, model-slice, markups and colour-legend managers.
- `ThreeDViewRenderer`: a `vtkMRMLViewNode` with the 3-D model, markups, segmentation and colour-legend managers;
  the camera looks at the image plane from below (inferior) so that left/right and up/down match the axial slice
  view (radiological convention).

Both render into an offscreen `vtkRenderWindow` of a fixed size and return the frame as a numpy array
``[row, col, rgb]`` (row 0 at the top, as in the PNG) or write a PNG. `world_to_pixel` maps RAS positions to
(row, col) of that array, so tests can look at the pixels where a control point or a voxel is drawn.

Without a display, VTK would first try X: `VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow` (set here when neither
DISPLAY nor WAYLAND_DISPLAY is set and the variable is unset) makes it use EGL (Mesa llvmpipe) directly.

`headless_scene()` builds a scene with the application logic and module logics the way the Slicer application does
at start-up (the same recipe as the `mrml_scene` pytest fixture), for scripts such as Testing/make_screenshots.py.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np

if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import vtk  # noqa: E402  (after the environment variable)
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

SLICE_MANAGERS = (
    "vtkMRMLSegmentationsDisplayableManager2D",
    "vtkMRMLModelSliceDisplayableManager",
    "vtkMRMLMarkupsDisplayableManager",
    "vtkMRMLColorLegendDisplayableManager",
)
THREED_MANAGERS = (
    "vtkMRMLModelDisplayableManager",
    "vtkMRMLSegmentationsDisplayableManager3D",
    "vtkMRMLMarkupsDisplayableManager",
    "vtkMRMLColorLegendDisplayableManager",
)

_MODULE_LOGICS = (
    ("volumes_logic", "Volumes", "vtkSlicerVolumesLogic"),
    ("segmentations_logic", "Segmentations", "vtkSlicerSegmentationsModuleLogic"),
    ("markups_logic", "Markups", "vtkSlicerMarkupsLogic"),
    ("subject_hierarchy_logic", "SubjectHierarchy", "vtkSlicerSubjectHierarchyModuleLogic"),
)


def headless_scene():
    """A scene + application logic + module logics, as the Slicer application sets them up (no Qt, no app).

    Returns a namespace: scene, app_logic, color_logic, volumes_logic, segmentations_logic, markups_logic,
    subject_hierarchy_logic, slicer. Keep a reference to it as long as the scene is used.
    """
    import slicer

    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = app_logic.GetColorLogic()
    color_logic.SetMRMLScene(scene)
    color_logic.AddDefaultColorNodes()
    app_logic.SetSliceLogics(vtk.vtkCollection())
    app_logic.SetViewLogics(vtk.vtkCollection())
    app_logic.SetModuleLogic("Colors", color_logic)
    ns = types.SimpleNamespace(scene=scene, app_logic=app_logic, color_logic=color_logic, slicer=slicer)
    for attr, module_name, class_name in _MODULE_LOGICS:
        logic = getattr(slicer, class_name)()
        logic.SetMRMLApplicationLogic(app_logic)
        logic.SetMRMLScene(scene)
        app_logic.SetModuleLogic(module_name, logic)
        setattr(ns, attr, logic)
    return ns


def _group(factory_class, app_logic, managers, renderer):
    factory = factory_class.GetInstance()
    if app_logic is not None:
        factory.SetMRMLApplicationLogic(app_logic)
    for name in managers:
        if not factory.IsDisplayableManagerRegistered(name):
            factory.RegisterDisplayableManager(name)
    import slicer

    group = slicer.vtkMRMLDisplayableManagerGroup()
    group.Initialize(factory, renderer)
    return group


class _OffscreenView:
    def __init__(self, size, background):
        self.size = (int(size[0]), int(size[1]))  # (width, height)
        self.window = vtk.vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetMultiSamples(0)
        self.window.SetSize(*self.size)
        self.renderer = vtk.vtkRenderer()
        self.renderer.SetBackground(*background)
        self.window.AddRenderer(self.renderer)
        self.interactor = vtk.vtkRenderWindowInteractor()
        self.interactor.SetRenderWindow(self.window)
        self.interactor.Initialize()
        self.group = None

    def render(self) -> np.ndarray:
        """Render and return the frame, ``[row, col, 3]`` uint8, row 0 at the top."""
        self._before_render()
        self.window.Render()
        grab = vtk.vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        image = grab.GetOutput()
        w, h, _ = image.GetDimensions()
        rgb = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)[:, :, :3]
        return np.ascontiguousarray(rgb[::-1])

    def save_png(self, path) -> np.ndarray:
        """Render, write the frame to `path` (PNG) and return it."""
        rgb = self.render()
        write_png(path, rgb)
        return rgb

    def _before_render(self):
        pass

    def set_caption(self, text: str | None, font_size: int = 16, color=(1.0, 1.0, 1.0)) -> None:
        """A text caption in the lower-left corner of the frame (None removes it); for screenshots."""
        if getattr(self, "_caption", None) is not None:
            self.renderer.RemoveViewProp(self._caption)
            self._caption = None
        if not text:
            return
        actor = vtk.vtkTextActor()
        actor.SetInput(text)
        prop = actor.GetTextProperty()
        prop.SetFontSize(int(font_size))
        prop.SetColor(*color)
        prop.SetBackgroundColor(0.0, 0.0, 0.0)
        prop.SetBackgroundOpacity(0.6)
        actor.SetDisplayPosition(8, 8)
        self.renderer.AddViewProp(actor)
        self._caption = actor

    def close(self):
        if self.group is not None:
            self.group.SetMRMLDisplayableNode(None)
            self.group = None
        self.window.Finalize()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SliceViewRenderer(_OffscreenView):
    """An offscreen slice view ("Red" by default) of `scene`, drawn by Slicer's slice logic and managers."""

    def __init__(self, scene, app_logic=None, name: str = "Red", orientation: str = "Axial",
                 size=(512, 512), background=(0.0, 0.0, 0.0), managers=SLICE_MANAGERS):
        import slicer

        super().__init__(size, background)
        self.scene = scene
        self.app_logic = app_logic
        self.logic = slicer.vtkMRMLSliceLogic()
        if app_logic is not None:
            self.logic.SetMRMLApplicationLogic(app_logic)
            app_logic.GetSliceLogics().AddItem(self.logic)
        self.logic.SetMRMLScene(scene)
        self.slice_node = self.logic.AddSliceNode(name)
        self.slice_node.SetOrientation(orientation)
        self.composite_node = self.logic.GetSliceCompositeNode()
        self.group = _group(slicer.vtkMRMLSliceViewDisplayableManagerFactory, app_logic, managers, self.renderer)
        self.group.SetMRMLDisplayableNode(self.slice_node)
        self.renderer.GetActiveCamera().ParallelProjectionOn()
        self.mapper = vtk.vtkImageMapper()
        self.mapper.SetColorWindow(255)  # the slice logic's output is RGBA 0..255 already mapped by the layers
        self.mapper.SetColorLevel(127.5)
        self.actor = vtk.vtkActor2D()
        self.actor.SetMapper(self.mapper)
        self.actor.GetProperty().SetDisplayLocationToBackground()
        self.renderer.AddViewProp(self.actor)
        self.logic.ResizeSliceNode(*self.size)

    def fit(self, volume_node=None):
        """Fit the view to `volume_node` (default: the background volume, else everything shown)."""
        self.logic.ResizeSliceNode(*self.size)
        if volume_node is not None:
            self.logic.FitSliceToVolume(volume_node, *self.size)
        elif self.composite_node.GetBackgroundVolumeID():
            self.logic.FitSliceToBackground(*self.size)
        else:
            self.logic.FitSliceToAll(*self.size)
        self.logic.SnapSliceOffsetToIJK()
        return self

    def _before_render(self):
        self.mapper.SetInputConnection(self.logic.GetImageDataConnection())
        self.actor.SetVisibility(self.logic.GetImageDataConnection() is not None)
        self.group.RequestRender()

    def world_to_pixel(self, ras) -> np.ndarray:
        """RAS points (N, 3) → (N, 2) float (row, col) in `render()`'s array (row 0 at the top)."""
        m = vtk.vtkMatrix4x4()
        vtk.vtkMatrix4x4.Invert(self.slice_node.GetXYToRAS(), m)
        ras = np.atleast_2d(np.asarray(ras, float))
        xy = np.array([m.MultiplyPoint((*p, 1.0))[:2] for p in ras])
        h = self.size[1]
        return np.stack([h - 1 - xy[:, 1], xy[:, 0]], axis=1)

    def close(self):
        if self.app_logic is not None:
            self.app_logic.GetSliceLogics().RemoveItem(self.logic)
        super().close()


class ThreeDViewRenderer(_OffscreenView):
    """An offscreen 3-D view of `scene` drawn by Slicer's 3-D displayable managers."""

    def __init__(self, scene, app_logic=None, name: str = "1", size=(512, 512), background=(0.0, 0.0, 0.0),
                 managers=THREED_MANAGERS):
        import slicer

        super().__init__(size, background)
        self.scene = scene
        self.view_node = scene.GetSingletonNode(name, "vtkMRMLViewNode")
        if self.view_node is None:
            self.view_node = slicer.vtkMRMLViewNode()
            self.view_node.SetSingletonTag(name)
            self.view_node.SetLayoutName(name)
            self.view_node.SetName(f"View{name}")
            scene.AddNode(self.view_node)
        self.view_node.SetBoxVisible(False)
        self.view_node.SetAxisLabelsVisible(False)
        self.group = _group(slicer.vtkMRMLThreeDViewDisplayableManagerFactory, app_logic, managers, self.renderer)
        self.group.SetMRMLDisplayableNode(self.view_node)
        self.renderer.SetBackground(*background)
        self.renderer.SetBackground2(*background)
        self.renderer.GradientBackgroundOff()

    def fit(self, bounds=None, from_below: bool = True):
        """Look at `bounds` (RAS xmin..zmax; default: everything visible) face-on along the S axis."""
        self.group.RequestRender()
        self.window.Render()  # let the managers create their actors before the bounds are taken
        if bounds is None:
            bounds = self.renderer.ComputeVisiblePropBounds()
        cx, cy, cz = (bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2
        camera = self.renderer.GetActiveCamera()
        camera.ParallelProjectionOn()
        camera.SetFocalPoint(cx, cy, cz)
        d = max(bounds[1] - bounds[0], bounds[3] - bounds[2], 1.0) * 2
        camera.SetPosition(cx, cy, cz - d if from_below else cz + d)
        camera.SetViewUp(0, 1, 0)
        w, h = self.size
        half_w, half_h = (bounds[1] - bounds[0]) / 2, (bounds[3] - bounds[2]) / 2
        camera.SetParallelScale(max(half_h, half_w * h / w) * 1.05)
        self.renderer.ResetCameraClippingRange()
        return self

    def _before_render(self):
        self.group.RequestRender()

    def world_to_pixel(self, ras) -> np.ndarray:
        """RAS points (N, 3) → (N, 2) float (row, col) in `render()`'s array."""
        out = []
        for p in np.atleast_2d(np.asarray(ras, float)):
            self.renderer.SetWorldPoint(*p, 1.0)
            self.renderer.WorldToDisplay()
            x, y, _ = self.renderer.GetDisplayPoint()
            out.append((self.size[1] - 1 - y, x))
        return np.array(out)


def write_png(path, rgb: np.ndarray) -> Path:
    """Write an ``[row, col, 3|4]`` uint8 array (row 0 at the top) as PNG with VTK."""
    from vtk.util.numpy_support import numpy_to_vtk

    rgb = np.ascontiguousarray(rgb)
    h, w, c = rgb.shape
    image = vtk.vtkImageData()
    image.SetDimensions(w, h, 1)
    arr = numpy_to_vtk(rgb[::-1].reshape(-1, c), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
    image.GetPointData().SetScalars(arr)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()
    return path
