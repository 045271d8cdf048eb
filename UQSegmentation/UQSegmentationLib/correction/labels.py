"""mammo-breast / ct-organs: label edits restricted to the uncertain region, through Slicer's Segment Editor, and
"accept the alternative" for a region.

Editable area (`EditableArea`). The area is `uqseg.correction.editable.editable_mask` of the region(s) (their voxels
grown by `dilate_mm` in mm) on the input grid. It becomes a hidden segment ``uq_editable_area`` of the result's
segmentation (a labelmap layer of its own) and the Segment Editor's parameter node (`vtkMRMLSegmentEditorNode`: by
default the scene's singleton tagged "SegmentEditor", the one Slicer's Segment Editor module uses) is set up so that
its effects can only change voxels inside it:
    SetAndObserveSegmentationNode(result segmentation), SetAndObserveSourceVolumeNode(input volume),
    SetMaskMode(vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment), SetMaskSegmentID("uq_editable_area"),
    SetSourceVolumeIntensityMask(False) (no editable intensity range), SetOverwriteMode(OverwriteVisibleSegments)
    (painting one class removes the others under the stroke — label-map semantics — but never the hidden area).
Slicer applies that mask in `vtkSlicerSegmentEditorLogic::ModifySegmentByLabelmap` (what Paint, Draw, Scissors,
Threshold... call), with ONE documented exception: in "inside single segment" mode an ERASE of the selected
segment may also remove voxels of that segment outside the mask. `EditableArea` therefore also guards the result:
on every change of the segmentation it puts back the model's labels on every voxel outside the area
(`enforce()`, the rule of `uqseg.correction.editable.apply_restricted_edit`), so no confident voxel can change,
whatever the effect. `paint(mask, segment_id, erase=False)` applies a stroke exactly as an effect does (same logic
call, same masking), for scripts and tests.

Accept the alternative (`accept_alternative`): the region's voxels take the alternative label map — breast: per
pixel the most probable OTHER class of the MC-dropout mean softmax (`correction.models.breast_probabilities`);
ct-organs: the label map of a sample (sample_<i>.seg.nrrd beside segmentation.seg.nrrd) — via
`uqseg.correction.editable.accept_alternative`; everything outside the region is left as it is.

Frames. All arrays are on the input volume's grid, ``[slice, row, col]`` (2-D: ``[row, col]``); segments ↔ arrays
through `segment_arrays` (IJK of the input volume, resampled from each segment's own lattice). Label values:
each label segment's value in the result's file (`label_segments`), 0 = background.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..segment_arrays import add_segment, grid_matrix, label_map, oriented_image, read_segment, write_segment

AREA_SEGMENT = "uq_editable_area"
SEGMENT_EDITOR_TAG = "SegmentEditor"
AREA_COLOR = (1.0, 1.0, 0.3)
HELPER_PREFIX = "uq_"
DEFAULT_DILATE_MM = 2.0


def label_segments(segmentation_node) -> dict[str, int]:
    """{segment id: label value} of the result's label segments (helper segments ``uq_*`` excluded), in segment
    order. The value is the segment's label value in its layer (as written to the .seg.nrrd), else its index + 1."""
    seg = segmentation_node.GetSegmentation()
    out, used = {}, set()
    for k in range(seg.GetNumberOfSegments()):
        sid = seg.GetNthSegmentID(k)
        if sid.startswith(HELPER_PREFIX):
            continue
        value = int(seg.GetSegment(sid).GetLabelValue())
        if value <= 0 or value in used:
            value = k + 1
        out[sid] = value
        used.add(value)
    return out


def read_labels(segmentation_node, volume_node) -> np.ndarray:
    """The result's label map on the input grid (uint16, 0 background)."""
    return label_map(segmentation_node, volume_node, label_segments(segmentation_node))


def write_labels(segmentation_node, volume_node, labels: np.ndarray, only=None) -> list[str]:
    """Write a label map back into the label segments (segment = voxels with its value); segments whose voxels are
    unchanged are not touched. only: a bool mask; voxels outside it keep what the segments hold now. Returns the ids
    of the segments written."""
    mapping = label_segments(segmentation_node)
    labels = np.asarray(labels)
    written = []
    for sid, value in mapping.items():
        now = read_segment(segmentation_node, sid, volume_node)
        new = labels == value
        if only is not None:
            new = np.where(only, new, now)
        if not np.array_equal(now, new):
            write_segment(segmentation_node, sid, new, volume_node)
            written.append(sid)
    return written


def best_other_class(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per voxel the most probable class other than the label shown (probabilities (C, ...), class axis 0):
    the runner-up where the label is the most probable class, else the most probable class."""
    from uqseg.correction.editable import runner_up_label

    p = np.asarray(probabilities)
    top = np.argmax(p, axis=0)
    return np.where(top == np.asarray(labels), runner_up_label(p, axis=0), top).astype(np.int64)


def file_label_map(scene, path, segmentation_node, volume_node) -> np.ndarray:
    """A .seg.nrrd of the case (the model's segmentation.seg.nrrd, a ct-organs sample_<i>.seg.nrrd) as a label map on
    the input grid, with the RESULT's label values (segments matched by name; read through Slicer, so its own
    geometry is honoured); the temporary node is removed again."""
    from .. import nodes_io
    node = nodes_io.load_segmentation(scene, Path(path), "uq label file")
    try:
        mapping = label_segments(segmentation_node)
        names = {segmentation_node.GetSegmentation().GetSegment(s).GetName(): v for s, v in mapping.items()}
        seg = node.GetSegmentation()
        out = None
        for k in range(seg.GetNumberOfSegments()):
            sid = seg.GetNthSegmentID(k)
            name = seg.GetSegment(sid).GetName()
            if name not in names:
                raise ValueError(f"{path}: segment {name!r} is not in the result's segmentation")
            mask = read_segment(node, sid, volume_node)
            out = np.zeros(mask.shape, np.uint16) if out is None else out
            out[mask] = names[name]
        if out is None:
            out = np.zeros(read_labels(segmentation_node, volume_node).shape, np.uint16)
        return out
    finally:
        display = node.GetDisplayNode()
        storage = node.GetStorageNode()
        scene.RemoveNode(node)
        for helper in (display, storage):
            if helper is not None and helper.GetScene() is scene:
                scene.RemoveNode(helper)


def segment_editor_node(scene):
    """The Segment Editor module's parameter node: the scene's `vtkMRMLSegmentEditorNode` singleton tagged
    "SegmentEditor" (what Slicer's Segment Editor module selects), created with that tag when missing — so an
    editable area set up here is the one the Segment Editor's effects use."""
    import slicer

    node = scene.GetSingletonNode(SEGMENT_EDITOR_TAG, "vtkMRMLSegmentEditorNode")
    if node is None:
        node = slicer.vtkMRMLSegmentEditorNode()
        node.SetSingletonTag(SEGMENT_EDITOR_TAG)
        node = scene.AddNode(node)
    return node


def sample_files(case_dir) -> list[Path]:
    """The ct-organs samples beside segmentation.seg.nrrd, in sample order."""
    files = list(Path(case_dir).glob("sample_*.seg.nrrd"))
    return sorted(files, key=lambda p: int("".join(ch for ch in p.name[len("sample_"):].split(".")[0]
                                                  if ch.isdigit()) or 0))


class EditableArea:
    """The editable area of one or more regions, set up in the Segment Editor node, guarded (module docstring).

    results: `ResultNodes` with "segmentation" and the input volume. mask: bool on the input grid (e.g.
    `editable_mask(region_set.mask(id).astype(float), 0.5, dilate_mm=..., spacing=...)`). editor_node: a
    `vtkMRMLSegmentEditorNode` (None: the Segment Editor module's, `segment_editor_node`). undo: an `UndoStack`
    (strokes push entries)."""

    def __init__(self, results, mask: np.ndarray, editor_node=None, undo=None) -> None:
        import slicer

        self.results = results
        self.scene = results.scene
        self.volume = results.input_volume
        self.segmentation = results.nodes["segmentation"]
        self.mask = np.asarray(mask, bool)
        self.undo = undo
        add_segment(self.segmentation, AREA_SEGMENT, "editable area (uncertain region)", self.mask, self.volume,
                    AREA_COLOR)
        display = self.segmentation.GetDisplayNode()
        if display is not None:
            display.SetSegmentVisibility(AREA_SEGMENT, False)
        self.editor = editor_node if editor_node is not None else segment_editor_node(self.scene)
        self.configure()
        self.reference = read_labels(self.segmentation, self.volume)  # the labels every voxel outside must keep
        self.reverted = 0
        self._guarding = False
        segmentation = self.segmentation.GetSegmentation()
        self._tags = [segmentation.AddObserver(event, self._on_modified)
                      for event in (slicer.vtkSegmentation.SourceRepresentationModified,
                                    slicer.vtkSegmentation.RepresentationModified)]
        self._logic = None

    def configure(self) -> None:
        """Point the Segment Editor node at the result and restrict editing to the area (module docstring)."""
        import slicer

        ed = self.editor
        ed.SetAndObserveSegmentationNode(self.segmentation)
        ed.SetAndObserveSourceVolumeNode(self.volume)
        ed.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment)
        ed.SetMaskSegmentID(AREA_SEGMENT)
        ed.SetSourceVolumeIntensityMask(False)
        ed.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteVisibleSegments)
        labels = list(label_segments(self.segmentation))
        if labels and ed.GetSelectedSegmentID() not in labels:
            ed.SetSelectedSegmentID(labels[0])

    # -------------------------------------------------------------------------------------------- guard
    def _on_modified(self, caller, event) -> None:
        if not self._guarding:
            self.enforce()

    def enforce(self) -> int:
        """Put the reference labels back on every voxel outside the area; returns how many voxels were reverted.
        Inside the area the current labels become the new reference."""
        was, self._guarding = self._guarding, True
        try:
            now = read_labels(self.segmentation, self.volume)
            outside = ~self.mask
            wrong = outside & (now != self.reference)
            n = int(wrong.sum())
            if n:
                write_labels(self.segmentation, self.volume, np.where(outside, self.reference, now), only=wrong)
            self.reference = np.where(outside, self.reference, now)
            self.reverted += n
            return n
        finally:
            self._guarding = was

    @contextlib.contextmanager
    def suspended(self):
        """Changes made inside (the review's own: undo, accept the alternative) are not reverted; they become the
        reference afterwards."""
        was, self._guarding = self._guarding, True
        try:
            yield self
        finally:
            self._guarding = was
            if not was:
                self.reference = read_labels(self.segmentation, self.volume)

    def close(self, keep_area: bool = False) -> None:
        for tag in self._tags:
            self.segmentation.GetSegmentation().RemoveObserver(tag)
        self._tags = []
        if not keep_area and self.segmentation.GetSegmentation().GetSegment(AREA_SEGMENT) is not None:
            self.segmentation.GetSegmentation().RemoveSegment(AREA_SEGMENT)
        if self.editor.GetMaskSegmentID() == AREA_SEGMENT:
            import slicer

            self.editor.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedEverywhere)
            self.editor.SetMaskSegmentID(None)

    # -------------------------------------------------------------------------------------------- strokes
    def box(self) -> tuple:
        """(slice, row, col) index box (start, stop) of the area: what a stroke can change."""
        idx = np.argwhere(self.mask if self.mask.ndim == 3 else self.mask[None])
        if idx.size == 0:
            return ((0, 0), (0, 0), (0, 0))
        lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
        return tuple((int(a), int(b)) for a, b in zip(lo, hi))

    def paint(self, stroke: np.ndarray, segment_id: str, erase: bool = False) -> int:
        """Apply a stroke (bool mask on the input grid) to `segment_id` the way a Segment Editor effect does
        (`vtkSlicerSegmentEditorLogic.ModifySegmentByLabelmap` with this editor node's masking), then the guard.
        Pushes an undo entry. Returns the number of voxels whose label changed."""
        import slicer

        from .undo import SegmentSnapshot

        if self._logic is None:
            self._logic = slicer.vtkSlicerSegmentEditorLogic()
            self._logic.SetMRMLScene(self.scene)
            self._logic.SetSegmentEditorNode(self.editor)
        before = read_labels(self.segmentation, self.volume)
        if self.undo is not None:
            self.undo.push("edit inside the uncertain region",
                           [SegmentSnapshot(self.segmentation, self.volume, list(label_segments(self.segmentation)),
                                            self.box())])
        self.editor.SetSelectedSegmentID(segment_id)
        modifier = oriented_image(np.asarray(stroke, bool), grid_matrix(self.volume))
        mode = self._logic.ModificationModeRemove if erase else self._logic.ModificationModeAdd
        self._logic.ModifySegmentByLabelmap(self.segmentation, segment_id, modifier, mode, True, False)
        self.enforce()
        return int((read_labels(self.segmentation, self.volume) != before).sum())


def accept_alternative(results, region_mask: np.ndarray, alternative: np.ndarray, undo=None, box=None) -> int:
    """Replace the region's voxels by `alternative` (label map or one value, the result's label values) in the
    segments; undo entry with the label segments inside `box` (default: the region's box). Returns voxels changed."""
    from uqseg.correction.editable import accept_alternative as replace_region

    from .undo import SegmentSnapshot

    seg, volume = results.nodes["segmentation"], results.input_volume
    before = read_labels(seg, volume)
    region = np.asarray(region_mask, bool)
    after = replace_region(before, region, alternative)
    if box is None:
        idx = np.argwhere(region if region.ndim == 3 else region[None])
        lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
        box = tuple((int(a), int(b)) for a, b in zip(lo, hi))
    if undo is not None:
        undo.push("accept the alternative", [SegmentSnapshot(seg, volume, list(label_segments(seg)), box)])
    write_labels(seg, volume, after, only=region)
    return int((after != before).sum())
