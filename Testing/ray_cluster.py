"""A real Ray cluster of several nodes on loopback, for the tests of `uqseg batch` (Testing/test_batch_ray.py).

`loopback_cluster(nodes=2, cpus_per_node=1)` starts a head (`ray start --head --port P --block`) and the other nodes
(`ray start --address 127.0.0.1:P --block`), each in its own session with its own free ports, in a temporary
folder of its own, with token authentication (a random RAY_AUTH_TOKEN that the tests' drivers get through `env`);
it waits until every node is alive and yields the cluster. At the end each `ray start --block` is stopped by its
process group (SIGTERM, then SIGKILL after 20 s): never `ray stop`, which would stop every Ray on the machine.

`replica_pids(cluster)`: the processes of the cluster that are `uqseg batch` model replicas (Ray names an actor's
process `ray::<class>`), found among the processes of the cluster's sessions only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    return ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
            "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port())]


@dataclass
class LoopbackCluster:
    address: str
    env: dict
    folder: Path
    processes: list = field(default_factory=list)

    @property
    def sessions(self) -> set:
        return {p.pid for p in self.processes}  # each `ray start` leads its own session


def alive_nodes(address: str, env: dict) -> int:
    code = ("import ray; ray.init(address=%r, logging_level='ERROR'); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))" % address)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


def _stop(processes) -> None:
    for p in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for p in processes:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)  # what is left of that session (workers, agents)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(5)


@contextlib.contextmanager
def loopback_cluster(nodes: int = 2, cpus_per_node: int = 1, start_timeout_s: float = 90):
    folder = Path(tempfile.mkdtemp(prefix="uqray", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    port = free_port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    env.pop("RAY_ADDRESS", None)
    cluster = LoopbackCluster(f"127.0.0.1:{port}", env, folder)
    common = ["--num-cpus", str(cpus_per_node), "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    try:
        head = [str(RAY), "start", "--head", "--port", str(port), "--temp-dir", str(folder / "ray"),
                "--include-dashboard", "false", *common, *_node_ports()]
        cluster.processes.append(subprocess.Popen(head, start_new_session=True, env=env, stdin=subprocess.DEVNULL,
                                                  stdout=open(folder / "head.log", "w"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + start_timeout_s
        while alive_nodes(cluster.address, env) < 1:
            if time.monotonic() > deadline or cluster.processes[0].poll() is not None:
                raise RuntimeError(f"the Ray head did not start: {(folder / 'head.log').read_text()[-2000:]}")
            time.sleep(1)
        for i in range(1, nodes):
            cmd = [str(RAY), "start", "--address", cluster.address, *common, *_node_ports()]
            cluster.processes.append(subprocess.Popen(cmd, start_new_session=True, env=env, stdin=subprocess.DEVNULL,
                                                      stdout=open(folder / f"node{i}.log", "w"),
                                                      stderr=subprocess.STDOUT))
        while alive_nodes(cluster.address, env) < nodes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only some of the {nodes} Ray nodes started: "
                                   f"{(folder / 'node1.log').read_text()[-2000:]}")
            time.sleep(1)
        yield cluster
    finally:
        _stop(cluster.processes)
        shutil.rmtree(folder, ignore_errors=True)


def _session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])  # fields after the name: state ppid pgrp session


def replica_pids(cluster: LoopbackCluster, title: str = "ray::MapWorker") -> list[int]:
    """PIDs of the cluster's processes whose title starts with `title` (the Ray Data actors of `uqseg batch`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith(title) and _session_of(int(entry.name)) in cluster.sessions:
            found.append(int(entry.name))
    return sorted(found)
