"""The module's Slicer self-test (UQSegmentation/Testing/Python/UQSegmentationSelfTest.py), run on slicer-core.

Inside Slicer the same file runs as a ctest and from the module's Reload & Test; here the `mrml_scene` fixture
provides what the application would (`slicer.mrmlScene`, the module logics) and the engine runs through the same
background process, with this interpreter instead of PythonSlicer.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import unittest
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[1] / "UQSegmentation"
SELF_TEST = MODULE_DIR / "Testing" / "Python" / "UQSegmentationSelfTest.py"


def load_self_test():
    spec = importlib.util.spec_from_file_location("UQSegmentationSelfTest", SELF_TEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_self_test_runs_on_slicer_core(mrml_scene):
    module = load_self_test()
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    assert suite.countTestCases() >= 2
    stream = io.StringIO()
    result = unittest.TextTestRunner(stream=stream, verbosity=2).run(suite)
    sys.stdout.write(stream.getvalue())
    assert result.wasSuccessful(), stream.getvalue()
    assert not result.skipped, f"the self-test skipped: {result.skipped}"
    assert result.testsRun >= 2
