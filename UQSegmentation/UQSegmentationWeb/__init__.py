"""UQSegmentationWeb: `uqseg review`, the review of `uqseg predict` results in a web browser, on trame-slicer.

Kitware's trame-slicer runs Slicer's MRML scene, logics and displayable managers in a Python server and streams the
views to the browser, so the page shows each task's uncertainty exactly as the Slicer module does: the same
`UQSegmentationLib` loaders, display, review session, corrections, undo and save run here.

    __main__.py    `python -m UQSegmentationWeb DIR [--port P] [--host H --allow-remote] [--who NAME]`: checks,
                   then serves (what `uqseg review` starts; uqseg/review.py): the front server, or with --single
                   one trame app
    front.py       the front server on --port: a session cookie per browser, a loading page, and a reverse proxy
                   (HTTP and the websocket) to that session's own app process
    sessions.py    those processes: started on a session's first visit on a private 127.0.0.1 port, stopped (by PID)
                   when idle and when the front server exits
    folder.py      the cases of a predict output folder in queue order, with their review status
    editing.py     two reviewers on one folder: edit marks, and a save refused over someone else's newer save
    app.py         `ReviewApp`: the scene, the views, the case on screen and every page action
    page.py        the page: queue, views, legend, overlay controls, regions, corrections, save
    painting.py    a click of "Paint in region" → the brush stroke (a disc on the slice shown)
    scheduling.py  the review's debounce timer and background work on the server's asyncio loop

Layers: engine (`uqseg`) ← `UQSegmentationLib` ← this package (a second GUI beside UQSegmentation.py). The engine
does not import it: `uqseg review` runs ``python -m UQSegmentationWeb`` with the module folder on PYTHONPATH.
Needs the `web` extra (trame-slicer 2.0, which pins slicer-core 5.11). This ``__init__`` imports nothing.
"""
