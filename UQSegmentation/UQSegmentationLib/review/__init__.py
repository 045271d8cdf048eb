"""Reviewing what the model is unsure about: the uncertain regions of a case, their status, the views, the batch.

    session.py      `ReviewSession`: one loaded case — ranked regions, Previous / Next, Accept / Mark corrected,
                    the model-aware corrections (`UQSegmentationLib.correction`), undo, save
    controller.py   `ReviewController`: what the module's Review section holds between clicks (the session of the
                    case on screen, the batch queue, the background runner)
    regions.py      the uncertain regions of a loaded result (from its nodes and files), with RAS boxes
    state.py        region statuses and the current region in the module's parameter node (saved with the scene)
    navigation.py   centre and zoom the slice nodes on a region
    scheduling.py   injected debounce timers and runners: synchronous in tests, a worker thread polled from the GUI
                    thread in Slicer, and `SingleShotTimer` on the widget's QTimer
    save.py         the corrected labels shown → files for retraining (`uqseg.correction.save`)
    batch_queue.py  queue.csv of a batch run, stepped through most uncertain case first

What the module panel shows of all this (table cells, button states, summary) is computed by
`UQSegmentationLib.panel`; the widget forwards its buttons to `ReviewController.act` / `go_to_row`.

This ``__init__`` imports nothing (see `UQSegmentationLib`'s Layout).
"""
