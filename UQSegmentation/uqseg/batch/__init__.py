"""`uqseg batch`: one task over a whole data set on Ray — resumable, fault-tolerant, from one laptop to a cluster.

Read in this order:
- `manifest.py`   INPUT (a folder, a glob, a CSV / Parquet manifest with a `path` column) → cases with their sha256;
- `tables.py`     the output tables: one row per case (`cases/`) and the task's second table (`nodes/`, `rows/`,
                  `classes/`, `organs/`);
- `parquet_parts.py`  the output folder: Parquet parts written atomically, the done-set a rerun skips;
- `replica.py`    the Ray actor: loads the task's model once (the task contract) and predicts batches of cases;
- `progress.py`   the terminal progress bar (cases/s, ETA) and the Ray dashboard link;
- `command.py`    the command itself: Ray Data streams the cases through the replicas into the parts.

Nothing here is imported by `uqseg predict`; Ray and pyarrow (`pip install "uqseg[batch]"`) are imported only by
`command.py`, `replica.py` and `parquet_parts.py` / `tables.py` when a batch runs.
"""
