"""A real Orthanc (Debian's `orthanc` package) on loopback for the PACS tests: its own JSON configuration (free
ports for DICOM and HTTP, a temporary storage folder, AE title ORTHANC, this engine's AE known for C-GET), started
as `Orthanc <config>`, waited for on its REST API, and stopped by its PID. `.ci/run` installs the package."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    def __init__(self, folder: Path, ae_title: str = "ORTHANC"):
        exe = shutil.which("Orthanc") or (Path("/usr/sbin/Orthanc") if Path("/usr/sbin/Orthanc").is_file() else None)
        assert exe, "Orthanc not found: apt-get install -y orthanc (.ci/run installs it)"
        self.exe, self.folder, self.ae_title = str(exe), Path(folder), ae_title
        self.dicom_port, self.http_port = free_port(), free_port()
        self.proc = None

    @property
    def peer(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.dicom_port}"

    def start(self, timeout: float = 60) -> "Orthanc":
        from uqseg.dicom_out.pacs import AE_TITLE

        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "uqseg-test", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "DicomAet": self.ae_title, "DicomPort": self.dicom_port, "DicomServerEnabled": True,
            "HttpPort": self.http_port, "HttpServerEnabled": True, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "DicomCheckCalledAet": True, "DicomAlwaysAllowStore": True,
            "DicomModalities": {"uqseg": {"AET": AE_TITLE, "Host": "127.0.0.1", "Port": 104, "AllowGet": True,
                                          "AllowStore": True, "AllowFind": True, "AllowEcho": True}},
            "Plugins": [], "StableAge": 1, "ConcurrentJobs": 1, "SaveJobs": False,
        }
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(config, indent=1))
        self.log = open(self.folder / "orthanc.log", "wb")
        self.proc = subprocess.Popen([self.exe, str(path)], stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}: "
                                   f"{(self.folder / 'orthanc.log').read_text(errors='replace')[-2000:]}")
            try:
                self.get("/system")
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer on its HTTP port within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    # ------------------------------------------------------------------------------------------------- REST
    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get(self, path: str):
        with urllib.request.urlopen(self._url(path), timeout=10) as r:
            body = r.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def post(self, path: str, data: bytes, content_type: str = "application/dicom"):
        req = urllib.request.Request(self._url(path), data=data, headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def upload(self, files) -> None:
        for f in files:
            self.post("/instances", Path(f).read_bytes())

    def study_instances(self, study_uid: str) -> list[bytes]:
        """The files of every instance of the study on the server."""
        (hit,) = [h for h in self.post("/tools/lookup", study_uid.encode(), "text/plain") if h["Type"] == "Study"]
        return [self.get(f"/instances/{i['ID']}/file") for i in self.get(f"/studies/{hit['ID']}/instances")]
