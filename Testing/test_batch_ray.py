"""`uqseg batch` on real Ray: the rows equal `uqseg predict`'s, a killed replica or driver loses and duplicates nothing.

A two-node Ray cluster on loopback (`ray_cluster.loopback_cluster`: `ray start --head` + `ray start --address`, one
CPU each, stopped by process group at the end) runs the batches; real JSRT chest X-rays and DDSM mammograms from
../shared/data (skipped, naming the folder, when absent). Checked:
- the nodes table and the case rows equal landmarks.csv / boundary.csv / summary.json written by `uqseg predict` on
  the same images with the same seed and thread count, number for number, though the batch runs the cases on two
  replicas in another order (a manifest listing them backwards); a bad input is a row with its error line;
- a rerun of the same command skips every case (nothing recomputed, no part added);
- a replica's process killed (SIGKILL, by PID) mid-run: Ray restarts it and the run completes with every case
  exactly once, the same numbers as an undisturbed run;
- the driver killed (SIGKILL) mid-run, then the same command again: the parts written before the kill are kept,
  the rest is done, every case exactly once, the same numbers;
- the embedded local Ray (no address) with --per-case-files writes the `uqseg predict` folder layout too;
- without Ray installed: one line saying what to install, exit status 2;
- the output folder: temporary files and uncommitted detail parts are removed at the start, a second run into the
  same folder is refused.
About 2 minutes on 2 CPU cores.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow", reason="uqseg[batch] (pyarrow) is part of the test extras")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("ray", reason="uqseg[batch] (ray[data]) is part of the test extras")

from ray_cluster import loopback_cluster, replica_pids  # noqa: E402

UQSEG = [sys.executable, "-m", "uqseg.cli"]
RUN_TIMEOUT_S = 240


def read_table(folder: Path):
    import pandas as pd

    return pd.read_parquet(folder)


def uqseg(args, env, timeout=RUN_TIMEOUT_S, **kw):
    return subprocess.run(UQSEG + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=timeout,
                          **kw)


def link_images(files, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for f in files:
        (folder / f.name).symlink_to(f)
    return folder


@pytest.fixture(scope="module")
def cxr_files(shared_data_dir):
    files = sorted((shared_data_dir / "cxr_jsrt" / "images").glob("*.png"))
    if len(files) < 40:
        pytest.skip(f"fewer than 40 JSRT images in {shared_data_dir / 'cxr_jsrt' / 'images'}")
    return files[:40]


@pytest.fixture(scope="module")
def cluster():
    with loopback_cluster(nodes=2, cpus_per_node=1) as c:
        yield c


@pytest.fixture(scope="module")
def eight_cxr(cxr_files, cluster, tmp_path_factory):
    """8 chest X-rays + one file that is not an image, through `uqseg batch` on the cluster (2 replicas, batches of
    2) and through `uqseg predict` with one torch thread (the replicas' count)."""
    root = tmp_path_factory.mktemp("eight")
    inputs = link_images(cxr_files[:8], root / "in")
    (inputs / "broken.png").write_bytes(b"not a png at all")
    batch = uqseg(["batch", "--task", "cxr-landmarks", inputs, "--out", root / "batch", "--address", cluster.address,
                   "--workers", "2", "--batch-size", "2", "--part-rows", "3"], cluster.env)
    predict = uqseg(["predict", "--task", "cxr-landmarks", inputs, "--out", root / "predict"],
                    dict(os.environ, OMP_NUM_THREADS="1"))
    return root, inputs, batch, predict


def test_cxr_rows_equal_uqseg_predict_and_a_bad_input_is_a_row(eight_cxr):
    root, inputs, batch, predict = eight_cxr
    assert batch.returncode == 2, batch.stderr  # the broken file: exit 2, as uqseg predict
    errors = [line for line in batch.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [line for line in predict.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(inputs / "broken.png") in errors[0]
    cases, nodes = read_table(root / "batch" / "cases"), read_table(root / "batch" / "nodes")
    assert sorted(cases.case_id) == sorted([f.stem for f in inputs.iterdir()])  # 9 rows, once each
    bad = cases.set_index("case_id").loc["broken"]
    assert bad.status == "error" and bad.error == errors[0] and bad.input_sha256 and bad.summary_json != bad.summary_json  # NaN: no summary
    assert len(nodes) == 8 * 120 and not nodes.duplicated(["case_id", "node"]).any()
    for case_id, rows in nodes.groupby("case_id"):
        with open(root / "predict" / case_id / "landmarks.csv", newline="") as fh:
            expected = [[int(r["node"]), r["organ"], *(float(r[k]) for k in ("mean_x", "mean_y", "std_x", "std_y"))]
                        for r in csv.DictReader(fh)]
        got = rows.sort_values("node")[["node", "organ", "mean_x", "mean_y", "std_x", "std_y"]].values.tolist()
        assert got == expected, case_id
        summary = json.loads((root / "predict" / case_id / "summary.json").read_text())
        row = cases.set_index("case_id").loc[case_id]
        assert (row.image_uncertainty, bool(row.ood), list(row["flags"])) == \
               (summary["image_uncertainty"], summary["ood"], summary["flags"])
        assert (row.model_id, row.model_version, row.model_sha256) == \
               (summary["model"]["id"], summary["model"]["version"], summary["model"]["sha256"])
        task_summary = json.loads(row.summary_json)
        assert task_summary == {k: summary[k] for k in task_summary}  # every number summary.json has


def test_a_rerun_skips_every_finished_case(eight_cxr, cluster):
    root, inputs, _, _ = eight_cxr
    parts = sorted((root / "batch" / "cases").iterdir())
    again = uqseg(["batch", "--task", "cxr-landmarks", inputs, "--out", root / "batch", "--address", cluster.address],
                  cluster.env)
    assert "9 already in" in again.stdout and "0 to do" in again.stdout, again.stdout
    assert again.returncode == 2  # the table still holds the broken input's error row
    assert sorted((root / "batch" / "cases").iterdir()) == parts


def test_mammo_rows_equal_uqseg_predict_in_another_order(shared_data_dir, cluster, tmp_path):
    """mammo-pectoral (one row per muscle row) on 6 DDSM MLO views, listed backwards in a CSV manifest, on the
    cluster that RAY_ADDRESS names."""
    files = sorted((shared_data_dir / "mammo_ddsm" / "images").glob("*.png"))[:6]
    if len(files) < 6:
        pytest.skip(f"fewer than 6 DDSM images in {shared_data_dir / 'mammo_ddsm'}")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path\n" + "".join(f"{f}\n" for f in reversed(files)))
    batch = uqseg(["batch", "--task", "mammo-pectoral", manifest, "--out", tmp_path / "batch", "--batch-size", "1"],
                  dict(cluster.env, RAY_ADDRESS=cluster.address))  # the cluster named by RAY_ADDRESS, no --address
    assert "Ray: a local instance" not in batch.stdout
    assert batch.returncode == 0, batch.stderr
    predict = uqseg(["predict", "--task", "mammo-pectoral", *files, "--out", tmp_path / "predict"],
                    dict(os.environ, OMP_NUM_THREADS="1"))
    assert predict.returncode == 0, predict.stderr
    cases, rows = read_table(tmp_path / "batch" / "cases"), read_table(tmp_path / "batch" / "rows")
    assert sorted(cases.case_id) == sorted(f.stem for f in files)
    for f in files:
        with open(tmp_path / "predict" / f.stem / "boundary.csv", newline="") as fh:
            expected = [[int(r["row"]), float(r["mean_col"]), float(r["std_col"]), bool(int(r["multimodal"]))]
                        for r in csv.DictReader(fh)]
        got = rows[rows.case_id == f.stem].sort_values("row")[["row", "mean_col", "std_col", "multimodal"]]
        assert got.values.tolist() == expected, f.stem
        summary = json.loads((tmp_path / "predict" / f.stem / "summary.json").read_text())
        row = cases.set_index("case_id").loc[f.stem]
        assert (row.image_uncertainty, bool(row.ood), bool(row.multimodal)) == \
               (summary["image_uncertainty"], summary["ood"], summary["multimodal"])


def _wait_for_parts(folder: Path, count: int, proc, timeout_s: float = 150) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = len(list(folder.glob("part-*.parquet"))) if folder.is_dir() else 0
        if n >= count:
            return n
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {count} parts were written: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"no {count} parts in {folder} after {timeout_s} s")


def _assert_exactly_once_and_equal(out: Path, cxr_files, reference: Path):
    cases, nodes = read_table(out / "cases"), read_table(out / "nodes")
    assert sorted(cases.case_id) == sorted(f.stem for f in cxr_files)  # every case, once
    assert (cases.status == "ok").all()
    assert len(nodes) == 120 * len(cxr_files) and not nodes.duplicated(["case_id", "node"]).any()
    ref = read_table(reference / "nodes")
    columns = ["case_id", "node", "mean_x", "mean_y", "std_x", "std_y"]
    merged = nodes[columns].merge(ref[columns], on=["case_id", "node"], suffixes=("", "_ref"))
    assert len(merged) == len(ref)  # the 8 reference cases are all there
    for c in ("mean_x", "mean_y", "std_x", "std_y"):
        assert (merged[c] == merged[c + "_ref"]).all(), c
    assert not list(out.rglob(".part-*"))  # no temporary file left
    return cases


def test_a_replica_killed_mid_run_loses_and_duplicates_nothing(cxr_files, cluster, eight_cxr, tmp_path):
    inputs = link_images(cxr_files, tmp_path / "in")
    out = tmp_path / "out"
    proc = subprocess.Popen(UQSEG + ["batch", "--task", "cxr-landmarks", str(inputs), "--out", str(out), "--address",
                                     cluster.address, "--workers", "2", "--batch-size", "1", "--part-rows", "1"],
                            env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_parts(out / "cases", 2, proc)
        worked = {int(w.rsplit(":", 1)[1]) for w in read_table(out / "cases").worker}
        victim = sorted(set(replica_pids(cluster)) & worked)[0]  # a replica that has written rows already
        by_victim = sum(w.endswith(f":{victim}") for w in read_table(out / "cases").worker)
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    cases = _assert_exactly_once_and_equal(out, cxr_files, eight_cxr[0] / "batch")
    # the kill took effect: the victim wrote nothing after it (at most the case it was finishing; a row is one case,
    # --batch-size 1), the other replica(s) — and the one Ray starts in the victim's place, when it gets work before
    # the run ends — did the rest
    victim_rows = int(cases.worker.str.endswith(f":{victim}").sum())
    assert by_victim <= victim_rows <= by_victim + 2 < len(cxr_files)


def test_a_driver_killed_mid_run_then_resumed_loses_and_duplicates_nothing(cxr_files, cluster, eight_cxr, tmp_path):
    inputs = link_images(cxr_files, tmp_path / "in")
    out = tmp_path / "out"
    args = ["batch", "--task", "cxr-landmarks", str(inputs), "--out", str(out), "--address", cluster.address,
            "--batch-size", "1", "--part-rows", "2"]
    proc = subprocess.Popen(UQSEG + args, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_for_parts(out / "cases", 2, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = {p.name: p.read_bytes() for p in (out / "cases").glob("part-*.parquet")}
    done_before = sum(pq.read_metadata(out / "cases" / name).num_rows for name in before)
    assert 4 <= done_before < len(cxr_files)
    resumed = uqseg(args, cluster.env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_before} already in" in resumed.stdout and f"{len(cxr_files) - done_before} to do" in resumed.stdout
    assert all((out / "cases" / name).read_bytes() == data for name, data in before.items())  # kept as they were
    _assert_exactly_once_and_equal(out, cxr_files, eight_cxr[0] / "batch")


def test_embedded_local_ray_with_per_case_files(cxr_files, tmp_path):
    """No address: a local Ray is started in the command; --per-case-files writes DIR/<case>/ as uqseg predict."""
    inputs = link_images(cxr_files[:3], tmp_path / "in")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    run = uqseg(["batch", "--task", "cxr-landmarks", inputs, "--out", tmp_path / "out", "--workers", "1",
                 "--per-case-files"], env)
    assert run.returncode == 0, run.stderr
    assert "a local instance" in run.stdout
    nodes = read_table(tmp_path / "out" / "nodes")
    for f in cxr_files[:3]:
        case = tmp_path / "out" / f.stem
        summary = json.loads((case / "summary.json").read_text())
        assert summary["case"] == f.stem and (case / summary["files"]["segmentation"]).is_file()
        with open(case / "landmarks.csv", newline="") as fh:
            expected = [float(r["std_x"]) for r in csv.DictReader(fh)]
        assert nodes[nodes.case_id == f.stem].sort_values("node").std_x.tolist() == expected
    queue = (tmp_path / "out" / "queue.csv").read_text().splitlines()
    assert sorted(line.split(",")[0] for line in queue[1:]) == sorted(f.stem for f in cxr_files[:3])
    assert len((tmp_path / "out" / "chexmask_u.csv").read_text().splitlines()) == 4
    assert not list((tmp_path / "out").glob(".uqseg-staging-*"))


def test_without_ray_one_line_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from uqseg.cli import main; "
            f"sys.exit(main(['batch', '--task', 'cxr-landmarks', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        'error: uqseg batch needs ray, which is not installed: pip install "uqseg[batch]" (Ray Data and pyarrow)']
    assert not (tmp_path / "o").exists()


def test_the_output_folder_drops_uncommitted_parts_and_refuses_a_second_run(tmp_path):
    from uqseg.batch.parquet_parts import BatchOutput
    from uqseg.batch.tables import CASE_SCHEMA, DETAIL_TABLES
    from uqseg.io.outdir import OutputError

    out = BatchOutput(tmp_path / "o", "cxr-landmarks").open()
    nodes = DETAIL_TABLES["cxr-landmarks"].schema.empty_table()
    committed = out.write_part(CASE_SCHEMA.empty_table(), nodes)
    (out.detail_dir / "part-orphan.parquet").write_bytes(b"a detail part whose cases part never came")
    (out.cases_dir / ".part-x.parquet.tmp").write_bytes(b"half a part")
    with pytest.raises(OutputError, match="another uqseg batch"):
        BatchOutput(tmp_path / "o", "cxr-landmarks").open()
    out.close()
    again = BatchOutput(tmp_path / "o", "cxr-landmarks").open()
    assert sorted(p.name for p in again.detail_dir.iterdir()) == [committed.name]
    assert sorted(p.name for p in again.cases_dir.iterdir()) == [committed.name]
    again.close()
