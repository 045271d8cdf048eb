"""`UQSegmentationLogic`: run one task on one volume in a background process, then load what it wrote.

Flow of one run (nothing here blocks for long; the widget calls `poll()` from a QTimer):

1. `start(volume, task_id, device, samples)` writes the volume with a storage node (not added to the scene) to
   ``<temp>/UQSegmentation-XXXX/input/<name>.nrrd`` and starts the engine through the injected runner factory —
   by default `PredictProcess` running ``<python> -m uqseg.cli predict --task T <input> --out <temp>/output ...``.
   Inside Slicer <python> is the `PythonSlicer` executable (the same Python environment as Slicer, without its GUI);
   the engine package `uqseg/` lives in the module folder, which is put first on the child's PYTHONPATH (and used as
   its working directory), so no installation step is needed. Outside Slicer <python> is `sys.executable`.
2. `poll()` forwards the engine's `PROGRESS` lines to `status.progress` / `status.message`. When the process ends:
   exit 0 → `load_results(scene, case_dir, volume)` (UQSegmentationLib's display layer, which replaces the results
   of an earlier run of the same task on the same volume) → SUCCEEDED; otherwise FAILED with the engine's one-line
   error (the temp input path replaced by the volume's name). A CUDA (or MPS) out-of-memory failure sets
   `status.oom`; with `cpu_fallback` the same input is run again on the CPU automatically, else the message suggests
   the CPU and `retry_on_cpu()` does it.
3. `cancel()` kills the child process tree; cancel, failure and `cleanup()` (module closed, scene closed) delete the
   temp folder. Nothing is added to the scene before a run has succeeded. After a success the output folder stays
   (`status.case_dir`, for the review tools) until the next run or `cleanup()`.

No Qt here (the dependency dialog is a callback), so the same code runs in Slicer and on slicer-core in pytest.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from UQSegmentationLib.catalog import TaskInfo, task_catalog
from UQSegmentationLib.flags import FINDING_FLAGS, shown_flags
from UQSegmentationLib.polling import poll_until
from UQSegmentationLib.process_runner import PredictProcess

IDLE, RUNNING, SUCCEEDED, FAILED, CANCELLED = "idle", "running", "succeeded", "failed", "cancelled"
MODULE_DIR = Path(__file__).resolve().parent.parent  # holds uqseg/, UQSegmentationLib/, Resources/
OOM_RE = re.compile(r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED"
                    r"|MPS backend out of memory", re.IGNORECASE)
# Share of the progress bar for writing the input (before) and loading the results (after) the engine's own part.
_ENGINE_START, _ENGINE_END = 0.05, 0.95

log = logging.getLogger("UQSegmentation")


@dataclass
class RunStatus:
    """Where the current (or last) run stands; the widget shows it, the self-test checks it."""

    state: str = IDLE
    task: str = ""
    device: str = ""
    progress: float = 0.0
    message: str = ""
    error: str = ""
    oom: bool = False
    retried_on_cpu: bool = False
    case_dir: Optional[Path] = None
    summary: dict = field(default_factory=dict)
    results: Any = None  # what load_results returned (UQSegmentationLib.ResultNodes)
    seconds: float = 0.0

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def indeterminate(self) -> bool:
        """Running, but the engine has not reported any progress yet (a busy indicator fits better than 5 %)."""
        return self.running and self.progress <= _ENGINE_START


def in_slicer_application() -> bool:
    """True inside the Slicer application (slicer.app exists), False on slicer-core or plain Python."""
    try:
        import slicer
    except ImportError:
        return False
    return getattr(slicer, "app", None) is not None


def default_python() -> str:
    """The Python that runs the engine: Slicer's `PythonSlicer` inside Slicer, else this interpreter."""
    if in_slicer_application():
        found = shutil.which("PythonSlicer")
        if found:
            return found
        sibling = Path(sys.executable).with_name("PythonSlicer" + (".exe" if os.name == "nt" else ""))
        if sibling.is_file():
            return str(sibling)
    return sys.executable


def engine_environment(module_dir: Path = MODULE_DIR, base: Optional[dict] = None) -> dict:
    """Environment of the child: `base` (Slicer's start-up environment inside Slicer) + the engine on PYTHONPATH."""
    if base is None:
        base = os.environ
        if in_slicer_application():
            import slicer

            base = slicer.util.startupEnvironment()
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join([str(module_dir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def predict_command(python: str, task_id: str, input_path: Path, out_dir: Path, device: str = "auto",
                    samples: Optional[int] = None, seed: int = 0) -> list[str]:
    """The `uqseg predict` command line of the CLI contract (docs/cli-contract.md)."""
    cmd = [python, "-m", "uqseg.cli", "predict", "--task", task_id, str(input_path), "--out", str(out_dir),
           "--device", device, "--seed", str(int(seed))]
    if samples:
        cmd += ["--samples", str(int(samples))]
    return cmd


def available_devices() -> list[str]:
    """Device choices for the GUI: auto, cuda, cpu (+ mps on Apple silicon; no cuda on macOS)."""
    if platform.system() == "Darwin":
        return ["auto", "cpu"] + (["mps"] if platform.machine() == "arm64" else [])
    return ["auto", "cuda", "cpu"]


def safe_name(name: str) -> str:
    """A file-name-safe version of a node name (the engine names the case folder after the input file)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name or "").strip("._")
    return cleaned[:64] or "input"


def user_error(error_lines, returncode: Optional[int], input_path: Optional[Path] = None,
               input_name: str = "") -> str:
    """One message for the user: the engine's `error:` lines, else the last line of a traceback, else the status."""
    lines = [line for line in error_lines if line.strip()]
    engine = [line.split(":", 1)[1].strip() for line in lines if line.startswith("error:")]
    if engine:
        text = "; ".join(engine)
    else:
        last = [line for line in lines if not line.startswith((" ", "\t", "Traceback"))]
        text = last[-1].strip() if last else f"the engine stopped with exit status {returncode}"
    if input_path is not None:
        text = text.replace(str(input_path), f"'{input_name}'" if input_name else "the input")
    return text


class UQSegmentationLogic:
    """Runs the engine on a volume node and loads its results into `scene` (see the module docstring).

    scene: the MRML scene (default: `slicer.mrmlScene` when a run starts).
    runner_factory: callable(command, env=..., cwd=..., on_line=...) → an object with start(), poll(), cancel(),
        finished, cancelled, returncode, progress, message, error_lines — `PredictProcess` by default; tests inject
        their own commands through it.
    python: the interpreter for the engine (default: `default_python()`).
    load_results: callable(scene, case_dir, volume_node) → results (default: `UQSegmentationLib.load_results`).
    temp_root: where run folders are made (default: Slicer's temporary path, else the system's).
    cpu_fallback: run again on the CPU when the GPU runs out of memory.
    """

    def __init__(self, scene=None, runner_factory: Callable = PredictProcess, python: Optional[str] = None,
                 load_results: Optional[Callable] = None, temp_root: Optional[str] = None,
                 module_dir: Path = MODULE_DIR, cpu_fallback: bool = True):
        self._scene = scene
        self.runner_factory = runner_factory
        self.python = python
        self._load_results = load_results
        self.temp_root = temp_root
        self.module_dir = Path(module_dir)
        self.cpu_fallback = cpu_fallback
        self.status = RunStatus()
        self._runner = None
        self._run_dir: Optional[Path] = None
        self._input_path: Optional[Path] = None
        self._volume = None
        self._last_volume = None
        self._request: dict = {}
        self._t0 = 0.0
        self._dependencies_checked = False

    # ------------------------------------------------------------------------------------------------ queries
    @property
    def scene(self):
        if self._scene is not None:
            return self._scene
        import slicer

        return slicer.mrmlScene

    def tasks(self) -> list[TaskInfo]:
        return task_catalog(self.module_dir / "uqseg")

    def task(self, task_id: str) -> TaskInfo:
        for t in self.tasks():
            if t.id == task_id:
                return t
        raise ValueError(f"unknown task {task_id!r}; available: {', '.join(t.id for t in self.tasks())}")

    @staticmethod
    def devices() -> list[str]:
        return available_devices()

    @property
    def running(self) -> bool:
        return self.status.running

    @property
    def run_dir(self) -> Optional[Path]:
        """The temp folder of the current or last run (None once deleted)."""
        return self._run_dir

    # ------------------------------------------------------------------------------------------------ dependencies
    def ensure_dependencies(self, confirm: Callable[[str], bool], **installers) -> str:
        """Install torch and the engine's packages at the first Apply (asks through `confirm`). The message to show
        (empty when nothing was installed); raises `DependencyError` when the user declined or installing failed."""
        if self._dependencies_checked:
            return ""
        from UQSegmentationLib.dependencies import ensure_dependencies

        report = ensure_dependencies(confirm, **installers)
        self._dependencies_checked = True
        return report.message

    # ------------------------------------------------------------------------------------------------ running
    def start(self, volume_node, task_id: str, device: str = "auto", samples: Optional[int] = None,
              seed: int = 0, cpu_fallback: Optional[bool] = None) -> RunStatus:
        """Start a run in the background (raises ValueError for an unusable request; nothing starts then)."""
        if self.running:
            raise RuntimeError("a run is in progress; cancel it first")
        task = self.task(task_id)
        self._check_input(volume_node, task)
        if device not in ("auto", "cpu", "cuda", "mps"):
            raise ValueError(f"unknown device {device!r}")
        self._delete_run_dir()
        if cpu_fallback is not None:
            self.cpu_fallback = cpu_fallback
        name = volume_node.GetName() or "input"
        root = self.temp_root or _slicer_temp_path() or tempfile.gettempdir()
        Path(root).mkdir(parents=True, exist_ok=True)
        self._run_dir = Path(tempfile.mkdtemp(prefix="UQSegmentation-", dir=root))
        self._input_path = self._run_dir / "input" / f"{safe_name(name)}.nrrd"
        self._volume = self._last_volume = volume_node
        self._request = dict(task_id=task_id, device=device, samples=samples, seed=seed, name=name)
        self.status = RunStatus(state=RUNNING, task=task_id, device=device, message="writing the input image")
        self._t0 = time.monotonic()
        try:
            write_volume(volume_node, self._input_path)
            self._launch(device)
        except Exception:
            self._delete_run_dir()
            self.status = RunStatus()
            raise
        return self.status

    def _check_input(self, volume_node, task: TaskInfo) -> None:
        if volume_node is None:
            raise ValueError("Select an input volume.")
        image = volume_node.GetImageData() if hasattr(volume_node, "GetImageData") else None
        if image is None:
            raise ValueError(f"The volume '{volume_node.GetName()}' has no image data.")
        dims = image.GetDimensions()
        if task.ndim == 2 and sum(d > 1 for d in dims) > 2:
            raise ValueError(f"The task {task.id} works on 2-D images, but '{volume_node.GetName()}' is a 3-D volume "
                             f"({dims[0]}×{dims[1]}×{dims[2]} voxels).")
        if task.ndim == 3 and dims[2] < 2:
            raise ValueError(f"The task {task.id} works on 3-D volumes, but '{volume_node.GetName()}' is a single "
                             f"2-D image.")

    def _launch(self, device: str) -> None:
        out_dir = self._run_dir / "output"
        if out_dir.exists():
            shutil.rmtree(out_dir, ignore_errors=True)
        r = self._request
        cmd = predict_command(self.python or default_python(), r["task_id"], self._input_path, out_dir, device,
                              r["samples"], r["seed"])
        log.info("UQSegmentation: %s", " ".join(cmd))
        self._runner = self.runner_factory(cmd, env=engine_environment(self.module_dir), cwd=str(self.module_dir),
                                           on_line=_log_line)
        self._runner.start()
        self.status.device = device
        self.status.progress = _ENGINE_START
        self.status.message = f"starting {r['task_id']} on {device}"

    def poll(self) -> RunStatus:
        """Forward progress; finish the run (load results, or report the error) once the process has ended."""
        runner = self._runner
        if runner is None or not self.running:
            return self.status
        runner.poll()
        if runner.message:
            self.status.message = f"{self.status.task} on {self.status.device}: {runner.message}"
        self.status.progress = _ENGINE_START + (_ENGINE_END - _ENGINE_START) * float(runner.progress)
        if runner.finished:
            self._runner = None
            self._finish(runner)
        return self.status

    def _finish(self, runner) -> None:
        self.status.seconds = time.monotonic() - self._t0
        if runner.cancelled:
            self._end(CANCELLED, "cancelled")
            return
        errors = list(runner.error_lines)
        if runner.returncode != 0:
            self.status.oom = any(OOM_RE.search(line) for line in errors)
            if self.status.oom and self.cpu_fallback and self.status.device != "cpu":
                log.warning("UQSegmentation: out of GPU memory on %s; running again on the CPU", self.status.device)
                self.status.retried_on_cpu = True
                try:
                    self._launch("cpu")
                except Exception as e:
                    self._end(FAILED, "failed", f"The GPU ran out of memory and the CPU run could not start: {e}")
                    return
                self.status.message = "the GPU ran out of memory: running again on the CPU"
                return
            error = user_error(errors, runner.returncode, self._input_path, self._request.get("name", ""))
            if self.status.oom:
                error = ("The GPU ran out of memory. Choose 'cpu' as the device (Advanced) and press Apply again, "
                         "or use a smaller image or fewer samples. (" + error + ")")
            self._end(FAILED, "failed", error)
            return
        try:
            case_dir = find_case_dir(self._run_dir / "output")
            volume = self._volume
            if volume is None or volume.GetScene() is None:
                raise RuntimeError("the input volume was removed from the scene while the model was running")
            self.status.message = "loading the results"
            self.status.summary = json.loads((case_dir / "summary.json").read_text())
            self.status.results = self._loader()(self.scene, case_dir, volume)
            self.status.case_dir = case_dir
        except Exception as e:  # a result that cannot be shown is a failed run; say why
            log.exception("UQSegmentation: loading the results failed")
            self._end(FAILED, "failed", f"Loading the results failed: {e}")
            return
        shutil.rmtree(self._run_dir / "input", ignore_errors=True)
        self._volume = None
        self.status.state, self.status.progress = SUCCEEDED, 1.0
        self.status.message = describe_summary(self.status.summary, self.status.seconds)

    def _end(self, state: str, message: str, error: str = "") -> None:
        self._delete_run_dir()
        self._volume = None
        self.status.state, self.status.message, self.status.error = state, message, error
        self.status.case_dir, self.status.results = None, None

    def _loader(self) -> Callable:
        if self._load_results is not None:
            return self._load_results
        from UQSegmentationLib import load_results

        return load_results

    def cancel(self) -> RunStatus:
        """Stop the running engine (its whole process tree) and delete the run's temp files."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
        if self.running:
            self.status.seconds = time.monotonic() - self._t0
            self._end(CANCELLED, "cancelled")
        return self.status

    def retry_on_cpu(self) -> RunStatus:
        """Run the last request again on the CPU (after an out-of-memory failure)."""
        if self.running or not self._request or self._last_volume is None:
            raise RuntimeError("nothing to run again")
        r = self._request
        self.start(self._last_volume, r["task_id"], "cpu", r["samples"], r["seed"])
        self.status.retried_on_cpu = True
        return self.status

    def wait(self, timeout: Optional[float] = None, interval: float = 0.1,
             process_events: Optional[Callable[[], None]] = None) -> RunStatus:
        """Poll until the run ends (for scripts and tests; the GUI polls with a timer instead). Cancels on timeout."""
        if not poll_until(lambda: not self.running, self.poll, timeout, interval, process_events):
            self.cancel()
            self.status.error = f"timed out after {timeout} s"
        return self.status

    def run(self, volume_node, task_id: str, device: str = "auto", samples: Optional[int] = None, seed: int = 0,
            timeout: Optional[float] = None, process_events: Optional[Callable[[], None]] = None) -> RunStatus:
        """`start` + `wait`: a blocking run for scripts and self-tests."""
        self.start(volume_node, task_id, device, samples, seed)
        return self.wait(timeout, process_events=process_events)

    # ------------------------------------------------------------------------------------------------ display
    def set_overlay_display(self, opacity: float, threshold_fraction: float) -> bool:
        """Opacity (0..1) of the last result's uncertainty overlay, and a lower threshold given as a fraction of its
        maximum (from max(min, 0); 0 = show everything), as UQSegmentationLib's default threshold is defined.
        False when the last result has no overlay."""
        overlay = getattr(self.status.results, "overlay", None)
        if overlay is None or overlay.GetImageData() is None:
            return False
        from UQSegmentationLib import set_overlay_opacity, set_overlay_threshold

        lo, hi = overlay.GetImageData().GetScalarRange()
        base = max(float(lo), 0.0)
        set_overlay_opacity(self.scene, overlay, float(opacity))
        f = float(threshold_fraction)
        set_overlay_threshold(self.scene, overlay, None if f <= 0 else base + f * (float(hi) - base))
        return True

    def show_ood_map(self, on: bool, opacity: float | None = None) -> bool:
        """ct-organs: the out-of-distribution map (on) or the variance (off) as the slice views' overlay
        (UQSegmentationLib.display.ood). False when the last result has no OOD map."""
        nodes = getattr(self.status.results, "nodes", None) or {}
        if nodes.get("ood") is None:
            return False
        from UQSegmentationLib.display.ood import show_ct_overlay

        return show_ct_overlay(self.scene, nodes, "ood" if on else "variance", opacity)

    # ------------------------------------------------------------------------------------------------ clean-up
    def _delete_run_dir(self) -> None:
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
        self._run_dir = None

    def cleanup(self) -> None:
        """Module or scene closed: stop a running engine and delete every temp file of this logic."""
        self.cancel()
        self._delete_run_dir()
        self.status.case_dir = None


def write_volume(volume_node, path: Path) -> Path:
    """Write a volume node as uncompressed NRRD through a storage node that is never added to the scene."""
    import slicer

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.UseCompressionOff()
    if not storage.WriteData(volume_node) or not path.is_file():
        raise RuntimeError(f"could not write the volume '{volume_node.GetName()}' to {path}")
    return path


def find_case_dir(out_dir: Path) -> Path:
    """The one case folder (with summary.json) that `uqseg predict` wrote into `out_dir`."""
    cases = sorted(p.parent for p in Path(out_dir).glob("*/summary.json"))
    if len(cases) != 1:
        raise RuntimeError(f"expected one result folder in {out_dir}, found {len(cases)}")
    return cases[0]


def describe_summary(summary: dict, seconds: float) -> str:
    """'done in 6.1 s — image uncertainty 1.23; flags: multimodal' for the status line (with a task finding such as
    detached_fragments, its one-sentence detail after the flags)."""
    text = f"done in {seconds:.1f} s"
    u = summary.get("image_uncertainty")
    if isinstance(u, (int, float)):
        text += f" — image uncertainty {u:.3g}"
    flags = shown_flags(summary)
    findings = [f for f in flags if f in FINDING_FLAGS]
    if flags:
        text += "; flags: " + ", ".join(flags)
    for f in findings:
        detail = (summary.get("flag_details") or {}).get(f)
        if detail:
            text += f" — {detail}"
    return text


def _slicer_temp_path() -> Optional[str]:
    if in_slicer_application():
        import slicer

        return slicer.app.temporaryPath
    return None


def _log_line(kind: str, text: str) -> None:
    (log.warning if kind == "stderr" else log.info)("uqseg: %s", text)
