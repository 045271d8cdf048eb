"""UQSegmentationLib: the Slicer side of UQSegmentation — engine results → MRML nodes, and how they are displayed.

Imports `slicer` and `vtk`, never Qt widgets: the same code runs inside 3D Slicer and on the `slicer-core` wheel
(pytest, Testing/test_lib_display.py). Every function takes the MRML scene explicitly; nothing reads
`slicer.mrmlScene` or `slicer.modules`.

Public API (what `UQSegmentationLib/logic.py` and the widget call)
-----------------------------------------------------------------
Results of one case (a folder written by ``uqseg predict``; its ``summary.json`` names the task):

    load_results(scene, case_dir, input_volume_node=None) -> ResultNodes
        Reads ``summary.json``'s ``task`` and calls the loader registered for it in ``TASK_LOADERS`` (task id →
        loader). All nodes go into one subject-hierarchy folder "<input name> — <task>" under the input volume's
        study (scene root when it has none). Loading again for the same input and task first removes the previous
        results (replace, never duplicate). Raises ``ValueError`` for an unknown task or a case folder without
        ``summary.json``; ``FileNotFoundError`` when a file the task needs is missing.
    ResultNodes: .task, .case, .case_dir, .summary (dict), .folder_item (subject-hierarchy item ID), .scene,
        .input_volume, .nodes (role → node; roles per task:
            mammo-pectoral  "segmentation" (segments pectoral_muscle, uncertainty_band, multimodal_rows), "curve",
                            "multimodal" (fiducials, one per multimodal run; absent when none)
            cxr-landmarks   "segmentation", "curve:<organ>", "model:<organ>" (2-D tube coloured by std), "legend"
            mammo-breast    "segmentation", "overlay" (entropy volume), "legend"
            ct-organs       "segmentation", "overlay" (variance volume), "probability", "legend"),
        .image_uncertainty, .flags (e.g. ["multimodal", "ood"]), .overlay (the foreground volume or None),
        .all_nodes() (every data node in the folder).
    load_input_volume(scene, path_or_uqseg_Image, name=None) -> vtkMRMLScalarVolumeNode
        The input as the engine reads it (DICOM MG/CR/DX, PNG, NRRD, ...), on its own geometry.
    remove_results(scene, folder_item_or_node_or_results) -> int
        Removes the folder and every node in it (data, display, storage, legend and colour-less helper nodes);
        returns how many data nodes were removed. Shared colormaps stay (like Slicer's built-in colour tables).
    find_results(scene, task, input_volume_node=None, case=None) -> folder item ID or 0
    supported_tasks() -> list of task ids;  register_task_loader(task_id, loader)  (loader(scene, case_dir,
        summary, input_volume_node, folder_item) -> dict role → node) so a new task plugs in without GUI changes.

Variance / entropy overlays (ct-organs, mammo-breast; any scalar volume):

    show_overlay(scene, overlay_node, background_node=None, colormap="inferno", opacity=0.6,
                 lower_threshold="auto", title="variance", units=None)
                                          foreground of every slice view + legend; "auto" = 5 % of the maximum
    set_overlay_opacity(scene, overlay_node, opacity)                    0..1, every slice view showing it
    set_overlay_threshold(scene, overlay_node, lower)                    values below `lower` are transparent
                                                                         (None: no threshold)
    set_overlay_colormap(scene, overlay_node, name)
    get_overlay_threshold(overlay_node) / get_overlay_opacity(scene, overlay_node)

Colormaps and legends:

    COLORMAPS: names of the project's perceptually uniform maps ("viridis", "inferno")
    get_or_create_colormap(scene, name) -> vtkMRMLProceduralColorNode (one per scene and name, reused)
    colormap_rgb(name, t) -> (r, g, b) for t in 0..1 (the same transfer function, without a scene)
    add_legend(scene, displayable_node, title, units) -> vtkMRMLColorLegendDisplayNode

Offscreen rendering (tests, screenshots; also works in Slicer-less environments): `UQSegmentationLib.render`
(SliceViewRenderer, ThreeDViewRenderer, headless_scene, write_png) — not imported here so that importing the
package never creates render windows or sets VTK environment variables.

Modules (one idea each): colormaps, legend, hierarchy, views (slice composite layers), nodes_io (files → nodes
with Slicer's storage nodes), terminology, input_volume, display_band (mammo-pectoral), display_node_colormap
(cxr-landmarks), display_variance (ct-organs, mammo-breast), results (registry + load_results), render.

Review and correction (issue 7; entry point `review_session.ReviewSession(results, parameter_node, runner=...,
timer=...)`, held for the GUI by `review_controller.ReviewController`): review_regions (uncertain regions of a
loaded result, RAS boxes), review_state (status in the parameter node), review_navigation (centre and zoom the
slice nodes), review_scheduling (injected debounce timers and runners: synchronous or a worker thread polled from
the GUI thread), correction_models (the result's model run again in-process, checked against the files),
correction_curves / correction_pectoral / correction_cxr (control-point moves → the model-aware update),
correction_labels (breast / CT: the Segment Editor's editable area, accept the alternative), review_undo,
review_save (nodes → uqseg.correction.save), review_queue (queue.csv of a batch), segment_arrays (segments ↔
numpy on a volume's grid, no application needed).

Layers: engine (`uqseg`) ← this package ← GUI (`UQSegmentation.py`). This package imports the engine only to read
input images (`input_volume.load_input_volume`); it never imports the GUI.
"""

from __future__ import annotations

from .colormaps import COLORMAPS, colormap_rgb, get_or_create_colormap
from .hierarchy import find_results, remove_results
from .legend import add_legend
from .results import ResultNodes, TASK_LOADERS, load_results, register_task_loader, supported_tasks
from .display_variance import (
    get_overlay_opacity,
    get_overlay_threshold,
    set_overlay_colormap,
    set_overlay_opacity,
    set_overlay_threshold,
    show_overlay,
)
from .input_volume import load_input_volume

__all__ = [
    "COLORMAPS",
    "ResultNodes",
    "TASK_LOADERS",
    "add_legend",
    "colormap_rgb",
    "find_results",
    "get_or_create_colormap",
    "get_overlay_opacity",
    "get_overlay_threshold",
    "load_input_volume",
    "load_results",
    "register_task_loader",
    "remove_results",
    "set_overlay_colormap",
    "set_overlay_opacity",
    "set_overlay_threshold",
    "show_overlay",
    "supported_tasks",
]
