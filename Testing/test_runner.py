"""The background runner and the run logic of the Slicer module, with plain Python as the "engine".

`PredictProcess` runs fake engines (`sys.executable -c <script>`) that print PROGRESS lines, fail, crash, run out of
GPU memory or hang; `UQSegmentationLogic` gets such an engine through its injected runner factory and a real
volume node on slicer-core (the `mrml_scene` fixture). Checked: progress parsing, error propagation (the engine's
one-line error reaches the user's message), cancel (child and grandchild gone, temp files deleted, nothing added to
the scene), re-run, the CPU fallback after a CUDA out-of-memory, dependency installation with injected installers,
and the task list read from the engine's registry. The results loader is a stub here: these tests do not depend on
the display code (that is tested in test_lib_display.py and by the self-test).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "UQSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from UQSegmentationLib import dependencies  # noqa: E402
from UQSegmentationLib.catalog import task_catalog  # noqa: E402
from UQSegmentationLib.logic import (  # noqa: E402
    CANCELLED, FAILED, RUNNING, SUCCEEDED, UQSegmentationLogic, default_python, engine_environment, predict_command,
    user_error)
from UQSegmentationLib.process_runner import PredictProcess, parse_progress  # noqa: E402


def script(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); count it as gone (its parent, if it is ours, reaps it).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# ---------------------------------------------------------------------------------------------------- runner
def test_parse_progress():
    assert parse_progress("PROGRESS 0.250 case-1") == (0.25, "case-1")
    assert parse_progress("PROGRESS 1 done") == (1.0, "done")
    assert parse_progress("PROGRESS 1.7 overshoot") == (1.0, "overshoot")
    assert parse_progress("PROGRESS -0.2 x") == (0.0, "x")
    assert parse_progress("PROGRESS 0.5") == (0.5, "")
    assert parse_progress("PROGRESS nan x") is None
    assert parse_progress("PROGRESS abc x") is None
    assert parse_progress("case-1: image_uncertainty=1.2") is None


def test_progress_lines_reach_the_owner():
    p = PredictProcess(script("""
        import sys, time
        for i, name in enumerate(["load", "predict", "write"]):
            print(f"PROGRESS {i / 3:.3f} {name}", flush=True)
            time.sleep(0.05)
        print("a plain line", flush=True)
        print("a warning", file=sys.stderr, flush=True)
        print("PROGRESS 1.000 done", flush=True)
    """)).start()
    seen = []
    while not p.finished:
        seen += [(e.fraction, e.text) for e in p.poll() if e.kind == "progress"]
        time.sleep(0.02)
    assert seen == [(0.0, "load"), (pytest.approx(0.333), "predict"), (pytest.approx(0.667), "write"),
                    (1.0, "done")]
    assert p.returncode == 0 and not p.cancelled
    assert (p.progress, p.message) == (1.0, "done")
    assert list(p.stdout_lines) == ["a plain line"]
    assert list(p.error_lines) == ["a warning"]


def test_error_lines_and_exit_status_are_collected():
    p = PredictProcess(script("""
        import sys
        print("PROGRESS 0.000 case", flush=True)
        print("error: /tmp/x/in.nrrd: is a CC view; mammo-pectoral needs an MLO view", file=sys.stderr)
        sys.exit(2)
    """)).start()
    assert p.wait(timeout=30) == 2
    assert p.finished and not p.running
    assert list(p.error_lines) == ["error: /tmp/x/in.nrrd: is a CC view; mammo-pectoral needs an MLO view"]


def test_cancel_ends_the_whole_process_tree(tmp_path):
    """The child ignores SIGTERM and has a grandchild (like PythonSlicer → python-real): both must be gone."""
    pids = tmp_path / "pids.txt"
    p = PredictProcess(script(f"""
        import os, signal, subprocess, sys, time
        if os.name != "nt":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{grandchild.pid}}")
        print("PROGRESS 0.100 running", flush=True)
        time.sleep(120)
    """), kill_timeout=1.0).start()
    assert wait_until(lambda: pids.is_file() and pids.read_text().count(" ") == 1)
    child, grandchild = map(int, pids.read_text().split())
    assert wait_until(lambda: (p.poll() or True) and p.progress == pytest.approx(0.1))
    t0 = time.monotonic()
    p.cancel()
    assert time.monotonic() - t0 < 10
    assert p.cancelled and p.finished
    assert p.returncode not in (None, 0)
    assert wait_until(lambda: not alive(child) and not alive(grandchild), timeout=10)


def test_cancel_after_the_end_and_wait_timeout():
    p = PredictProcess(script("import time; time.sleep(30)")).start()
    assert p.wait(timeout=0.3) is None and p.running
    p.cancel(timeout=2)
    assert not p.running
    done = PredictProcess(script("pass")).start()
    assert done.wait(timeout=30) == 0
    done.cancel()  # nothing to do: already finished
    assert not done.cancelled
    with pytest.raises(RuntimeError):
        done.start()


# ---------------------------------------------------------------------------------------------------- logic
# A fake `uqseg predict`: same arguments as the real one (`-m uqseg.cli predict --task T INPUT --out DIR --device D
# --seed S`); its behaviour is chosen by the environment variable FAKE_ENGINE.
FAKE_ENGINE = """
import json, os, sys, time
args = sys.argv[1:]
task, inp, out, device = args[args.index("--task") + 1], args[args.index("--task") + 2], args[args.index("--out") + 1], args[args.index("--device") + 1]
mode = os.environ.get("FAKE_ENGINE", "ok")
print("PROGRESS 0.000 " + os.path.basename(inp)[:-len(".nrrd")], flush=True)
assert os.path.isfile(inp), inp
if mode == "bad-input":
    print(f"error: {inp}: is a CC view; mammo-pectoral needs an MLO view", file=sys.stderr, flush=True)
    sys.exit(2)
if mode == "crash":
    raise RuntimeError("the network exploded")
if mode == "hang":
    open(os.environ["FAKE_PIDFILE"], "w").write(str(os.getpid()))
    time.sleep(120)
if mode == "oom" and device != "cpu":
    print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr, flush=True)
    sys.exit(1)
case = os.path.join(out, os.path.basename(inp)[:-len(".nrrd")])
os.makedirs(case)
json.dump({"case": "x", "task": task, "device": device, "image_uncertainty": 1.5, "multimodal": True,
           "files": {}}, open(os.path.join(case, "summary.json"), "w"))
print("PROGRESS 1.000 done", flush=True)
"""


class FakeLoader:
    """Stands in for UQSegmentationLib.load_results: records its calls, adds one node like a real loader would."""

    def __init__(self):
        self.calls = []

    def __call__(self, scene, case_dir, volume):
        self.calls.append((scene, Path(case_dir), volume))
        assert (Path(case_dir) / "summary.json").is_file()
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{volume.GetName()} result")
        return type("Results", (), {"overlay": None, "nodes": {"result": node}})()


@pytest.fixture
def fake_run(mrml_scene, tmp_path, monkeypatch):
    """(logic, volume, loader, temp root) with the fake engine behind the logic's runner factory."""
    import numpy as np
    import slicer

    def factory(cmd, **kwargs):
        assert cmd[0] == sys.executable and cmd[1:4] == ["-m", "uqseg.cli", "predict"]
        assert kwargs["cwd"] == str(MODULE_DIR)  # how the child finds the engine: cwd and PYTHONPATH
        assert kwargs["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(MODULE_DIR)
        return PredictProcess([sys.executable, "-c", FAKE_ENGINE, *cmd[4:]], kill_timeout=2.0, **kwargs)

    monkeypatch.setenv("FAKE_PIDFILE", str(tmp_path / "engine.pid"))
    volume = slicer.util.addVolumeFromArray(np.arange(64 * 48, dtype=np.float32).reshape(1, 64, 48),
                                            name="Patient 7 / MLO")
    loader = FakeLoader()
    temp_root = tmp_path / "runs"
    logic = UQSegmentationLogic(scene=mrml_scene.scene, runner_factory=factory, load_results=loader,
                                temp_root=str(temp_root))
    yield logic, volume, loader, temp_root
    logic.cleanup()


def test_success_loads_results_and_reports_the_summary(fake_run, monkeypatch):
    logic, volume, loader, temp_root = fake_run
    monkeypatch.setenv("FAKE_ENGINE", "ok")
    status = logic.start(volume, "mammo-pectoral", device="cpu")
    assert status.state == RUNNING and logic.running
    input_file = logic.run_dir / "input" / "Patient_7_MLO.nrrd"
    assert input_file.is_file()  # written through a storage node...
    status = logic.wait(timeout=60)
    assert status.state == SUCCEEDED, status.error
    assert status.progress == 1.0 and status.device == "cpu"
    assert len(loader.calls) == 1
    scene, case_dir, vol = loader.calls[0]
    assert scene is logic.scene and vol is volume and case_dir == status.case_dir
    assert status.summary["task"] == "mammo-pectoral"
    assert "image uncertainty 1.5" in status.message and "multimodal" in status.message
    assert not input_file.exists() and case_dir.is_dir()  # the input goes, the results stay for the review tools
    logic.cleanup()
    assert list(temp_root.iterdir()) == []


def test_engine_error_reaches_the_user_message(fake_run, monkeypatch, mrml_scene):
    logic, volume, loader, temp_root = fake_run
    monkeypatch.setenv("FAKE_ENGINE", "bad-input")
    nodes_before = mrml_scene.scene.GetNumberOfNodes()
    status = logic.run(volume, "mammo-pectoral", device="cpu", timeout=60)
    assert status.state == FAILED
    assert status.error == "'Patient 7 / MLO': is a CC view; mammo-pectoral needs an MLO view"
    assert str(temp_root) not in status.error
    assert loader.calls == [] and mrml_scene.scene.GetNumberOfNodes() == nodes_before
    assert list(temp_root.iterdir()) == []


def test_crash_reports_the_last_traceback_line(fake_run, monkeypatch):
    logic, volume, loader, temp_root = fake_run
    monkeypatch.setenv("FAKE_ENGINE", "crash")
    status = logic.run(volume, "mammo-pectoral", device="cpu", timeout=60)
    assert status.state == FAILED and status.error == "RuntimeError: the network exploded"
    assert not status.oom and list(temp_root.iterdir()) == []


def test_cancel_kills_the_engine_and_leaves_nothing_then_rerun_works(fake_run, monkeypatch, mrml_scene, tmp_path):
    logic, volume, loader, temp_root = fake_run
    monkeypatch.setenv("FAKE_ENGINE", "hang")
    nodes_before = mrml_scene.scene.GetNumberOfNodes()
    logic.start(volume, "mammo-pectoral", device="cpu")
    pidfile = tmp_path / "engine.pid"
    assert wait_until(lambda: pidfile.is_file() and pidfile.read_text())
    engine_pid = int(pidfile.read_text())
    assert wait_until(lambda: logic.poll().message == "mammo-pectoral on cpu: Patient_7_MLO")
    assert 0.0 < logic.status.progress < 1.0 and logic.status.indeterminate
    status = logic.cancel()
    assert status.state == CANCELLED and not logic.running
    assert wait_until(lambda: not alive(engine_pid))
    assert list(temp_root.iterdir()) == []  # temp files deleted
    assert mrml_scene.scene.GetNumberOfNodes() == nodes_before and loader.calls == []  # nothing added
    assert logic.poll().state == CANCELLED  # polling after a cancel changes nothing

    monkeypatch.setenv("FAKE_ENGINE", "ok")  # re-run after a cancel
    assert logic.run(volume, "mammo-pectoral", device="cpu", timeout=60).state == SUCCEEDED
    monkeypatch.setenv("FAKE_ENGINE", "bad-input")  # a failed re-run deletes the previous run's files too
    assert logic.run(volume, "mammo-pectoral", device="cpu", timeout=60).state == FAILED
    assert list(temp_root.iterdir()) == []
    monkeypatch.setenv("FAKE_ENGINE", "ok")  # and a run after a failure works
    assert logic.run(volume, "mammo-pectoral", device="cpu", timeout=60).state == SUCCEEDED
    assert len(loader.calls) == 2


def test_cuda_out_of_memory_falls_back_to_the_cpu(fake_run, monkeypatch):
    logic, volume, loader, temp_root = fake_run
    monkeypatch.setenv("FAKE_ENGINE", "oom")
    status = logic.run(volume, "mammo-pectoral", device="cuda", timeout=60)
    assert status.state == SUCCEEDED, status.error
    assert status.oom and status.retried_on_cpu and status.device == "cpu"
    assert loader.calls[-1][1].is_dir()


def test_cuda_out_of_memory_without_fallback_suggests_the_cpu(fake_run, monkeypatch):
    logic, volume, loader, temp_root = fake_run
    monkeypatch.setenv("FAKE_ENGINE", "oom")
    logic.start(volume, "mammo-pectoral", device="cuda", cpu_fallback=False)
    status = logic.wait(timeout=60)
    assert status.state == FAILED and status.oom and not status.retried_on_cpu
    assert "GPU ran out of memory" in status.error and "'cpu'" in status.error
    assert "CUDA out of memory" in status.error
    assert list(temp_root.iterdir()) == []
    status = logic.retry_on_cpu()
    assert status.device == "cpu"
    assert logic.wait(timeout=60).state == SUCCEEDED


def test_unusable_requests_start_nothing(fake_run, mrml_scene):
    import numpy as np
    import slicer

    logic, volume, loader, temp_root = fake_run
    with pytest.raises(ValueError, match="Select an input volume"):
        logic.start(None, "mammo-pectoral")
    with pytest.raises(ValueError, match="unknown task"):
        logic.start(volume, "no-such-task")
    with pytest.raises(ValueError, match="unknown device"):
        logic.start(volume, "mammo-pectoral", device="tpu")
    ct = slicer.util.addVolumeFromArray(np.zeros((5, 8, 8), np.float32), name="ct")
    with pytest.raises(ValueError, match="2-D images"):
        logic.start(ct, "mammo-pectoral")
    assert not logic.running
    assert not temp_root.exists() or list(temp_root.iterdir()) == []
    with pytest.raises(RuntimeError, match="nothing to run again"):
        logic.retry_on_cpu()


def test_a_second_start_while_running_is_refused(fake_run, monkeypatch):
    logic, volume, loader, temp_root = fake_run
    monkeypatch.setenv("FAKE_ENGINE", "hang")
    logic.start(volume, "mammo-pectoral", device="cpu")
    with pytest.raises(RuntimeError, match="in progress"):
        logic.start(volume, "mammo-pectoral", device="cpu")
    logic.cleanup()
    assert not logic.running and list(temp_root.iterdir()) == []


def test_user_error_formats():
    assert user_error(["error: /t/in.nrrd: unreadable"], 2, Path("/t/in.nrrd"), "CT") == "'CT': unreadable"
    assert user_error(["Traceback (most recent call last):", '  File "x", line 1', "ValueError: bad"], 1) \
        == "ValueError: bad"
    assert user_error([], -9) == "the engine stopped with exit status -9"
    assert user_error(["error: no model for task 'x' on the search path []"], 2) \
        == "no model for task 'x' on the search path []"


# ---------------------------------------------------------------------------------------------------- launching
def test_the_engine_command_and_how_the_child_finds_the_engine(tmp_path):
    cmd = predict_command("/opt/Slicer/bin/PythonSlicer", "mammo-pectoral", tmp_path / "in.nrrd", tmp_path / "out",
                          "cuda", samples=16, seed=3)
    assert cmd == ["/opt/Slicer/bin/PythonSlicer", "-m", "uqseg.cli", "predict", "--task", "mammo-pectoral",
                   str(tmp_path / "in.nrrd"), "--out", str(tmp_path / "out"), "--device", "cuda", "--seed", "3",
                   "--samples", "16"]
    assert "--samples" not in predict_command("py", "t", "i", "o")
    assert default_python() == sys.executable  # outside Slicer; inside it is PythonSlicer
    env = engine_environment(MODULE_DIR, base={"PYTHONPATH": "/elsewhere", "PATH": os.environ.get("PATH", "")})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(MODULE_DIR), "/elsewhere"]
    # With site-packages disabled (-S), `uqseg` can only come from PYTHONPATH: the module folder's copy is used.
    out = subprocess.run([sys.executable, "-S", "-c", "import uqseg; print(uqseg.__file__)"], env=env,
                         cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == MODULE_DIR / "uqseg" / "__init__.py"
    # Should a launcher replace PYTHONPATH, the working directory (the module folder) still provides it.
    bare = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-S", "-c", "import uqseg; print(uqseg.__file__)"], env=bare,
                         cwd=str(MODULE_DIR), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and Path(out.stdout.strip()) == MODULE_DIR / "uqseg" / "__init__.py"


def test_real_engine_through_the_logic(mrml_scene, tmp_path):
    """The real `uqseg predict` (mammo-pectoral, CPU) on a synthetic MLO volume, launched exactly as in Slicer
    except for the interpreter; the results loader is a stub."""
    import numpy as np
    import slicer
    from uqseg.io.phantoms import mlo_phantom

    image, boundary, mask = mlo_phantom((480, 240), seed=3)
    volume = slicer.util.addVolumeFromArray(image[None].astype(np.float32), name="phantom")
    loader = FakeLoader()
    logic = UQSegmentationLogic(scene=mrml_scene.scene, load_results=loader, temp_root=str(tmp_path / "runs"))
    status = logic.run(volume, "mammo-pectoral", device="cpu", timeout=300)
    assert status.state == SUCCEEDED, status.error
    assert {"boundary.csv", "summary.json"} <= {p.name for p in status.case_dir.iterdir()}
    assert status.summary["device"] == "cpu" and status.summary["task"] == "mammo-pectoral"
    rows = (status.case_dir / "boundary.csv").read_text().splitlines()
    assert rows[0] == "row,mean_col,std_col,multimodal" and len(rows) > 100
    logic.cleanup()
    assert list((tmp_path / "runs").iterdir()) == []


# ---------------------------------------------------------------------------------------------------- tasks, devices
def test_task_list_comes_from_the_engine_registry():
    from uqseg.tasks import TASKS

    expected = [(t.id, t.description, t.ndim) for t in TASKS.values()]  # the task objects themselves
    assert [(t.id, t.description, t.ndim) for t in task_catalog()] == expected
    assert [t.id for t in UQSegmentationLogic().tasks()] == list(TASKS)


def test_task_list_is_read_without_importing_torch():
    code = ("import sys; sys.path.insert(0, %r); from UQSegmentationLib.catalog import task_catalog; "
            "print(len(task_catalog())); print('torch' in sys.modules)" % str(MODULE_DIR))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    n, torch_loaded = out.stdout.split()
    assert int(n) >= 1 and torch_loaded == "False"


def test_devices():
    devices = UQSegmentationLogic.devices()
    assert devices[0] == "auto" and "cpu" in devices
    assert set(devices) <= {"auto", "cuda", "cpu", "mps"}


# ---------------------------------------------------------------------------------------------------- dependencies
def test_requirements_match_the_engine_package():
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    norm = lambda r: re.sub(r"\s+", "", r).lower()  # noqa: E731
    assert sorted(map(norm, dependencies.REQUIREMENTS)) == sorted(norm(d) for d in deps if not d.startswith("torch"))
    torch = next(d for d in deps if d.startswith("torch"))
    assert norm(torch) == "torch" + dependencies.TORCH_REQUIREMENT


def test_version_checks():
    vs = dependencies.version_satisfies
    assert vs("2.13.0+cpu", ">=2.4") and not vs("2.3.1", ">=2.4") and vs("1.0", "")
    assert vs("10.4.0", ">=10,<11") and not vs("11.0", ">=10,<11")
    assert dependencies.check_requirement("pydicom>=2.4", "pydicom")[0]
    assert dependencies.missing_requirements({"numpy>=1.0": "numpy"}) == []
    assert dependencies.missing_requirements({"numpy>=999": "numpy"}) == ["numpy>=999"]


def test_nothing_to_install_asks_nothing(monkeypatch):
    monkeypatch.setattr(dependencies, "torch_status", lambda req=None: (True, "2.13.0"))
    asked = []
    report = dependencies.ensure_dependencies(lambda text: asked.append(text) or True,
                                              pip_install=lambda reqs, cons: pytest.fail("pip must not run"),
                                              torch_installer=lambda req: pytest.fail("torch must not be installed"),
                                              requirements={"numpy>=1.0": "numpy"})
    assert asked == [] and report.installed == [] and report.message == ""


def test_missing_packages_are_installed_after_confirmation(monkeypatch, tmp_path):
    monkeypatch.setattr(dependencies, "torch_status", lambda req=None: (True, "2.13.0"))
    monkeypatch.syspath_prepend(str(tmp_path))
    requirements = {"uqseg-fake-dep>=1.0": "uqseg_fake_dep"}
    asked, installed = [], []

    def pip_install(reqs, constraints):  # "installs" by dropping the module on sys.path
        installed.append(list(reqs))
        assert any(c.startswith("numpy==") for c in constraints)  # Slicer's numpy pinned as installed
        (tmp_path / "uqseg_fake_dep.py").write_text("")
        import importlib

        importlib.invalidate_caches()

    # declined: nothing installed, a clear error
    with pytest.raises(dependencies.DependencyError, match="were not installed: uqseg-fake-dep>=1.0"):
        dependencies.ensure_dependencies(lambda text: asked.append(text) or False, pip_install=pip_install,
                                         requirements=requirements)
    assert installed == [] and "uqseg-fake-dep>=1.0" in asked[0]
    # accepted
    report = dependencies.ensure_dependencies(lambda text: True, pip_install=pip_install, requirements=requirements)
    assert installed == [["uqseg-fake-dep>=1.0"]]
    assert report.installed == ["uqseg-fake-dep>=1.0"] and not report.restart_needed
    assert "Installed: uqseg-fake-dep>=1.0" in report.message


def test_failed_install_and_restart_message(monkeypatch):
    monkeypatch.setattr(dependencies, "torch_status", lambda req=None: (True, "2.13.0"))
    with pytest.raises(dependencies.DependencyError, match="Installing these packages failed"):
        dependencies.ensure_dependencies(lambda t: True, pip_install=lambda r, c: None,
                                         requirements={"uqseg-never-there>=1": "uqseg_never_there"})
    # an upgrade of a package Slicer already imported needs a restart: say so
    calls = iter([["json-fake>=2"], []])
    monkeypatch.setattr(dependencies, "missing_requirements", lambda reqs=None: next(calls))
    report = dependencies.ensure_dependencies(lambda t: True, pip_install=lambda r, c: None,
                                              requirements={"json-fake>=2": "json"})
    assert report.restart_needed and "Restart Slicer" in report.message


def test_slicer_bundled_packages_are_never_upgraded(monkeypatch):
    monkeypatch.setattr(dependencies, "torch_status", lambda req=None: (True, "2.13.0"))
    with pytest.raises(dependencies.DependencyError, match="come with Slicer"):
        dependencies.ensure_dependencies(lambda t: pytest.fail("must not ask"), pip_install=lambda r, c: pytest.fail(),
                                         requirements={"numpy>=999": "numpy"})
    with pytest.raises(dependencies.DependencyError, match="come with Slicer"):
        dependencies.ensure_dependencies(lambda t: pytest.fail("must not ask"), pip_install=lambda r, c: pytest.fail(),
                                         requirements={"pydicom>=99": "pydicom"})


def test_pip_runs_with_the_bundled_packages_pinned(monkeypatch, tmp_path):
    """The constraints pin every bundled package this Python has, at its installed version; pip's failure (e.g. a
    resolution that would need a newer numpy) becomes a message, not a traceback."""
    import importlib.metadata

    constraints = dependencies.bundled_constraints()
    pinned = dict(line.split("==") for line in constraints)
    for name in ("numpy", "scipy", "simpleitk", "pydicom", "pillow"):
        assert pinned[name] == importlib.metadata.version(name)
    path = dependencies.write_constraints_file(constraints, tmp_path)
    assert path.read_text().splitlines()[1:] == constraints
    assert dependencies.pip_arguments(["pynrrd>=1.0"], path) == ["--constraint", str(path), "pynrrd>=1.0"]

    def failing_pip(reqs, cons):
        raise subprocess.CalledProcessError(1, ["pip", "install"])

    monkeypatch.setattr(dependencies, "torch_status", lambda req=None: (True, "2.13.0"))
    with pytest.raises(dependencies.DependencyError, match=r"kept at .*numpy=="):
        dependencies.ensure_dependencies(lambda t: True, pip_install=failing_pip,
                                         requirements={"uqseg-never-there>=1": "uqseg_never_there"})


def test_torch_comes_from_the_pytorch_extension(monkeypatch):
    monkeypatch.setattr(dependencies, "torch_status", lambda req=None: (False, None))
    asked = []
    report = dependencies.ensure_dependencies(lambda t: True, torch_installer=lambda req: asked.append(req) or object(),
                                              requirements={})
    assert asked == [dependencies.TORCH_REQUIREMENT] and report.installed == ["torch>=2.4"]
    with pytest.raises(dependencies.DependencyError, match="PyTorch was not installed"):
        dependencies.ensure_dependencies(lambda t: True, torch_installer=lambda req: None, requirements={})
    # outside Slicer there is no PyTorch extension: the message says where to get it
    with pytest.raises(dependencies.DependencyError, match="PyTorch extension"):
        dependencies.ensure_dependencies(lambda t: True, requirements={})


def test_too_old_torch_is_reported_not_replaced():
    with pytest.raises(dependencies.DependencyError, match="PyTorch Utils"):
        dependencies.ensure_dependencies(lambda t: True, torch_installer=lambda r: pytest.fail(), requirements={},
                                         torch_requirement=">=99")


def test_logic_asks_for_dependencies_once(monkeypatch):
    calls = []
    monkeypatch.setattr(dependencies, "ensure_dependencies",
                        lambda confirm, **kw: calls.append(confirm) or dependencies.DependencyReport(message="m"))
    logic = UQSegmentationLogic()
    assert logic.ensure_dependencies(lambda t: True) == "m"
    assert logic.ensure_dependencies(lambda t: True) == ""
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------------- display
def test_overlay_display_settings_reach_the_last_result(mrml_scene):
    """The widget's opacity / threshold sliders go through the logic to UQSegmentationLib's overlay helpers."""
    import types

    import numpy as np
    import slicer
    from UQSegmentationLib import get_overlay_opacity, get_overlay_threshold

    logic = UQSegmentationLogic(scene=mrml_scene.scene)
    assert logic.set_overlay_display(0.3, 0.5) is False  # no result yet
    overlay = slicer.util.addVolumeFromArray(np.linspace(0, 100, 4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8),
                                             name="variance")
    overlay.CreateDefaultDisplayNodes()
    logic.status.results = types.SimpleNamespace(overlay=overlay)
    assert logic.set_overlay_display(0.3, 0.5) is True
    assert get_overlay_threshold(overlay) == pytest.approx(50.0)
    assert get_overlay_opacity(mrml_scene.scene, overlay) == pytest.approx(0.3)
    logic.set_overlay_display(1.0, 0.0)
    assert get_overlay_threshold(overlay) is None
