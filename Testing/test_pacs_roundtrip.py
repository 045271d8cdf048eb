"""The PACS round trip with a real server: Debian's Orthanc on loopback (`orthanc_server.py`), the sample studies
uploaded through its REST API; `uqseg predict --from-pacs ... --study ... --to-pacs ...` fetches a study by C-GET,
runs the task and stores the DICOM objects by C-STORE; the SEG, Parametric Map (and SR) are then in the same study on
the server and read back equal to the files written locally. Failures give one line and exit status 2: the server
down, the association refused (wrong called AE title), a peer that never answers (timeout), and a store that fails
half-way (a real pynetdicom storage SCP that refuses Parametric Maps) lists what arrived and what did not.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from orthanc_server import Orthanc, free_port

REPO = Path(__file__).resolve().parents[1]
CT_SERIES = REPO / "Resources" / "SampleData" / "ct-abdomen" / "dicom"
MAMMO = REPO / "Resources" / "SampleData" / "mammo-mlo" / "mlo.dcm"


def study_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    try:
        server.upload(sorted(CT_SERIES.iterdir()))
        server.upload([MAMMO])
        yield server
    finally:
        server.stop()


def uqseg(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "uqseg.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("task, source, options", [
    ("ct-organs", CT_SERIES / "slice_001.dcm", ["--fast"]),
    ("mammo-pectoral", MAMMO, []),
])
def test_round_trip_through_orthanc(orthanc, tmp_path, task, source, options):
    uid = study_uid(source)
    before = len(orthanc.study_instances(uid))
    run = uqseg("predict", "--task", task, "--from-pacs", orthanc.peer, "--study", uid, "--to-pacs", orthanc.peer,
                "--out", str(tmp_path / "out"), "--device", "cpu", *options)
    assert run.returncode == 0, run.stderr
    (case,) = [p for p in (tmp_path / "out").iterdir() if (p / "summary.json").is_file()]
    import json

    assert json.loads((case / "summary.json").read_text())["input"].startswith(f"{orthanc.peer} study {uid} ")
    local = {f.name: pydicom.dcmread(f) for f in case.glob("*.dcm")}
    want = {"segmentation.dcm", "uncertainty.dcm"} | ({"measurements.dcm"} if task == "mammo-pectoral" else set())
    assert set(local) == want
    on_server = {}
    for blob in orthanc.study_instances(uid):
        ds = pydicom.dcmread(io.BytesIO(blob))
        on_server[str(ds.SOPInstanceUID)] = ds
    assert len(on_server) == before + len(want), "exactly the new objects were added to the study"
    for name, ds in local.items():
        back = on_server[str(ds.SOPInstanceUID)]
        assert back.StudyInstanceUID == uid and back.SOPClassUID == ds.SOPClassUID
        if name == "segmentation.dcm":
            np.testing.assert_array_equal(back.pixel_array, ds.pixel_array)
        elif name == "uncertainty.dcm":
            assert back.FloatPixelData == ds.FloatPixelData
        else:
            assert back.ContentSequence == ds.ContentSequence
    if task == "ct-organs":  # again: the study now holds our SEG and map, which the fetch leaves out (images only)
        again = uqseg("predict", "--task", task, "--from-pacs", orthanc.peer, "--study", uid, "--to-pacs",
                      orthanc.peer, "--out", str(tmp_path / "again"), "--device", "cpu", "--fast")
        assert again.returncode == 0, again.stderr
        assert len(orthanc.study_instances(uid)) == before + 2 * len(want)


def test_server_down_is_one_line_and_status_2(tmp_path):
    port = free_port()  # nothing listens there
    run = uqseg("predict", "--task", "ct-organs", "--from-pacs", f"NOBODY@127.0.0.1:{port}", "--study", "1.2.3",
                "--out", str(tmp_path / "out"), timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"error: NOBODY@127.0.0.1:{port}: server down or unreachable (Connection refused)"]


def test_association_refused_is_one_line_and_status_2(orthanc, tmp_path):
    peer = orthanc.peer.replace("ORTHANC@", "WRONGAET@")
    run = uqseg("predict", "--task", "ct-organs", "--from-pacs", peer, "--study", study_uid(MAMMO),
                "--out", str(tmp_path / "out"), timeout=120)
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"error: {peer}: association refused (called AE title not recognised")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_peer_that_never_answers_times_out(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts TCP connections (the kernel does) and never says a word
    port = silent.getsockname()[1]
    try:
        run = uqseg("predict", "--task", "ct-organs", "--from-pacs", f"MUTE@127.0.0.1:{port}", "--study", "1.2.3",
                    "--pacs-timeout", "2", "--out", str(tmp_path / "out"), timeout=120)
    finally:
        silent.close()
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"error: MUTE@127.0.0.1:{port}: no answer within 2 s (association not established)"]


@pytest.fixture
def picky_store_scp():
    """A real pynetdicom Storage SCP on loopback that stores SEGs and refuses Parametric Maps (0xA700)."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import ParametricMapStorage, SegmentationStorage

    arrived = []

    def on_store(event):
        if event.request.AffectedSOPClassUID == ParametricMapStorage:
            return 0xA700
        arrived.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    ae = AE(ae_title="PICKY")
    ae.add_supported_context(SegmentationStorage)
    ae.add_supported_context(ParametricMapStorage)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        yield f"PICKY@127.0.0.1:{port}", arrived
    finally:
        server.shutdown()


def test_failed_store_lists_what_arrived_and_what_did_not(picky_store_scp, tmp_path):
    from uqseg.tasks.run import run_cases

    peer, arrived = picky_store_scp
    report = run_cases("ct-organs", [str(CT_SERIES)], tmp_path / "out", device="cpu", fast=True, to_pacs=peer)
    (summary,) = report.summaries  # the case itself is complete locally
    case = tmp_path / "out" / summary["case"]
    seg_uid = str(pydicom.dcmread(case / "segmentation.dcm", stop_before_pixels=True).SOPInstanceUID)
    assert arrived == [seg_uid]
    (line,) = report.errors
    assert line.startswith(f"error: {peer}: stored 1 of 2 objects; arrived: segmentation.dcm ({seg_uid}); "
                           "not stored: uncertainty.dcm (refused with status 0xA700)")
