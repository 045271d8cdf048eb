"""UQSegmentationLib: the Slicer side of UQSegmentation — engine results → MRML nodes, and how they are displayed.

Imports `slicer` and `vtk`, never Qt (no `qt`, `ctk` or widgets): the same code runs inside 3D Slicer and on the
`slicer-core` wheel in pytest (Testing/test_lib_display.py, test_lib_review.py, test_lib_corrections.py,
test_runner.py, ...). The display, review and correction functions take the MRML scene explicitly and never read
`slicer.mrmlScene` or `slicer.modules`; only the run logic falls back to `slicer.mrmlScene` when it was given no
scene (and, inside the application, reads Slicer's start-up environment and temporary folder), and
`dependencies.py` installs packages with `slicer.util.pip_install`.

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

Layout
------
Top level (shared by the subpackages, or the module's own plumbing):
    logic.py           `UQSegmentationLogic`: one run of the engine in a background process, then `load_results`
    process_runner.py  the child process (`PredictProcess`: progress lines, cancel of the whole process tree)
    polling.py         `poll_until`: the blocking wait (scripts, tests) of the process, the logic and the review's
                       worker thread
    panel.py           what the module panel shows, computed from the logic and the review (button states, table
                       cells, status texts): the GUI only copies it onto its widgets
    catalog.py         the engine's task list (its torch-free task table);  dependencies.py  installing torch and the
                       engine's packages at the first Apply;  sample_data.py  entries of Slicer's Sample Data module
    results.py         `load_results` and the task → loader registry;  hierarchy.py  the result's subject-hierarchy
                       folder;  nodes_io.py  files → nodes through Slicer's storage nodes;  input_volume.py  an
                       image read by the engine's loader → a volume node;  segment_arrays.py  segments ↔ numpy on a
                       volume's grid;  render.py  offscreen views (tests, screenshots);  dicom_export.py  "Export
                       to DICOM": the engine (`uqseg export-dicom`, a child process) writes the current result as
                       DICOM SEG / Parametric Map / SR over the volume's source series, imported into the database
display/      how a result looks: one module per kind of display (band: mammo-pectoral, node_colormap:
              cxr-landmarks, variance: ct-organs and mammo-breast) and their helpers (colormaps, legend, views:
              slice composite layers, terminology)
correction/   the model-aware corrections: models (the result's model run again), curves (control-point moves →
              debounced model update), pectoral, cxr, labels (breast / CT: Segment Editor editable area, accept the
              alternative), undo (exact snapshots)
review/       the review of one case and of a batch: session (`ReviewSession`, the entry point), controller (what the
              module's Review section holds between clicks), regions, state (statuses in the parameter node),
              navigation (slice views), scheduling (injected timers and runners), save, batch_queue (queue.csv)
Each subpackage's ``__init__`` only documents it (no imports), so importing one module never drags in the others.

Layers
------
engine (`uqseg`) ← this package ← GUI (`UQSegmentation.py`). The engine never imports this package, and this
package never imports the GUI or Qt (Testing/test_module_packaging.py checks all three). How this code is tested on
the `slicer-core` wheel without the application: docs/testing-slicer-code.md; the files a result folder holds:
docs/cli-contract.md.

Predictions run in a child process (`logic.py` starts ``python -m uqseg.cli predict``; it does not import the
engine; `catalog.py` loads the engine's task table file `uqseg/tasks/table.py`, plain data, by path). Nine files
here do import the engine, always inside the function that needs it (importing this package loads neither the
engine nor torch):
    input_volume.py        `uqseg.io` — reads an input image exactly as `uqseg predict` does (DICOM, PNG, NRRD, ...)
    review/regions.py      `uqseg.correction.regions` / `.thresholds`, `uqseg.models.registry`, `uqseg.cxr.graph` —
                           the uncertain regions and their threshold, from the model card
    review/session.py      `uqseg.correction.editable` — the editable area around a breast / CT region
    review/save.py         `uqseg.correction.save` — corrected labels in the training recipes' formats
    correction/models.py   `uqseg.models`, `uqseg.tasks`, `uqseg.mammo`, `uqseg.cxr`, `uqseg.correction.cxr_pinned`
                           and torch — the result's model run again IN SLICER'S PROCESS (on the review's worker
                           thread), because the files do not hold what a correction needs (heatmap, latent posterior,
                           class probabilities)
    correction/pectoral.py `uqseg.correction.pectoral_path`, `uqseg.mammo.pectoral`, `uqseg.tasks.mammo_pectoral` —
                           the most probable boundary through the user's clicks, laid out as the engine lays it out
    correction/cxr.py      `uqseg.cxr.graph` — which nodes belong to which organ
    correction/labels.py   `uqseg.correction.editable` — the breast runner-up class, accepting an alternative
    display/band.py        `uqseg.mammo.pectoral_band` — the pectoral ±σ band mask, one definition with the DICOM
                           Parametric Map (numpy only: no torch)
"""

from __future__ import annotations

from .display.colormaps import COLORMAPS, colormap_rgb, get_or_create_colormap
from .hierarchy import find_results, remove_results
from .display.legend import add_legend
from .results import ResultNodes, TASK_LOADERS, load_results, register_task_loader, supported_tasks
from .display.variance import (
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
