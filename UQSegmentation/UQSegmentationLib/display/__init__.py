"""How a loaded result looks in Slicer's views: one module per kind of display, and the helpers they share.

    band.py           mammo-pectoral: the mean boundary curve, its ±σ band, the muscle, the multimodal rows
    node_colormap.py  cxr-landmarks: organ contours coloured by their per-node std (curves in 3-D, tubes in 2-D)
    variance.py       ct-organs / mammo-breast: the variance or entropy volume as a thresholded colour overlay
    colormaps.py      the project's viridis / inferno maps as procedural colour nodes (and `colormap_rgb`), and
                      `color_by_point_array` (a curve or model coloured by a point array over a fixed range)
    legend.py         colour legends with a title and units
    views.py          which volumes the slice views show (slice composite nodes)
    terminology.py    standard terminology (SNOMED CT) for the segments the tasks produce, and
                      `load_case_segmentation` (a result's segmentation.seg.nrrd with it, as the loaders show it)

Each task's loader (`load_pectoral_results`, `load_cxr_results`, `load_breast_results`, `load_ct_results`) is
registered in `UQSegmentationLib.results.TASK_LOADERS`; what the files hold is docs/cli-contract.md. Nothing here
imports the engine: the loaders read the files `uqseg predict` wrote with Slicer's own storage nodes
(`UQSegmentationLib.nodes_io`).

This ``__init__`` imports nothing (see `UQSegmentationLib`'s Layout).
"""
