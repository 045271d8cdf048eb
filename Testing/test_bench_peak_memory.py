"""Peak memory of `uqseg bench` where the POSIX-only `resource` module does not exist (Windows).

`uqseg.bench` must import without `resource`; it then reads psutil's peak working set, or reports None without
psutil. Windows is imitated in a child interpreter by `sys.modules["resource"] = None` (which makes
`import resource` fail) and, for psutil, by a stand-in module or `sys.modules["psutil"] = None`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[1] / "UQSegmentation"

WITHOUT_RESOURCE = f"""
import json, sys, types
sys.path.insert(0, {str(MODULE_DIR)!r})
sys.modules["resource"] = None
"""


def run_child(code: str) -> dict:
    """Run `code` after WITHOUT_RESOURCE in a fresh interpreter; the JSON it prints last."""
    done = subprocess.run([sys.executable, "-c", WITHOUT_RESOURCE + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_bench_imports_without_resource_and_reports_none_without_psutil():
    out = run_child("""
        sys.modules["psutil"] = None
        import uqseg.bench as bench
        print(json.dumps({"resource": bench.resource is None, "peak": bench.process_peak_memory_mb()}))
    """)
    assert out == {"resource": True, "peak": None}


def test_without_resource_the_peak_working_set_comes_from_psutil():
    out = run_child("""
        fake = types.ModuleType("psutil")
        class Process:
            def memory_info(self):
                return types.SimpleNamespace(rss=1, peak_wset=300 * 2**20)
        fake.Process = Process
        sys.modules["psutil"] = fake
        import uqseg.bench as bench
        print(json.dumps({"peak": bench.process_peak_memory_mb()}))
    """)
    assert out == {"peak": 300.0}


def test_psutil_without_a_peak_working_set_reports_none():
    out = run_child("""
        fake = types.ModuleType("psutil")
        class Process:
            def memory_info(self):
                return types.SimpleNamespace(rss=1)
        fake.Process = Process
        sys.modules["psutil"] = fake
        import uqseg.bench as bench
        print(json.dumps({"peak": bench.process_peak_memory_mb()}))
    """)
    assert out == {"peak": None}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX getrusage")
def test_posix_peak_is_the_resident_memory_in_mib():
    import resource

    from uqseg.bench import process_peak_memory_mb

    peak = process_peak_memory_mb()
    raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert isinstance(peak, float) and peak > 1  # a Python process with torch imported holds more than 1 MiB
    assert peak == pytest.approx(raw / (2**20 if sys.platform == "darwin" else 1024), abs=0.2)
