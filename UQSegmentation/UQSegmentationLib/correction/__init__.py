"""Model-aware corrections of a loaded result: the user's edits go through the model that made it.

    models.py    the result's model run again in Slicer's process (on the review's worker thread), on the same
                 pixels, and checked against the files (pectoral heatmap, chest X-ray latent posterior, breast
                 class probabilities: what the files do not hold)
    curves.py    `CurveCorrector`: control-point moves → debounced, latest-only model update → nodes, with undo
    pectoral.py  mammo-pectoral: moved boundary points are clicks; the boundary, σ, band and muscle follow
    cxr.py       cxr-landmarks: moved nodes are pins; the pinned organs are refitted, contour and std follow
    labels.py    mammo-breast / ct-organs: the Segment Editor's editable area around an uncertain region, and
                 "accept the alternative" (runner-up class, or a CT sample)
    undo.py      exact snapshots of what a correction changes (curve points and measurements, segment voxels,
                 Python state) and the undo stack

The maths is the engine's (`uqseg.correction`, `uqseg.mammo`, `uqseg.cxr`), imported inside the functions that use
it; these modules turn nodes into arrays and back. A `review.session.ReviewSession` creates and owns the
correctors; their timers and runners are injected (`review.scheduling`).

This ``__init__`` imports nothing (see `UQSegmentationLib`'s Layout).
"""
