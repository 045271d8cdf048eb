"""Hostile output folders, full disks, interruption and concurrent runs of `uqseg predict`, from the outside.

Every scenario runs the real command (`python -m uqseg.cli predict --task mammo-pectoral ...`, a subprocess) on small
real images: CBIS-DDSM PNGs from ../shared/data/mammo_ddsm (resized copies where a size matters), else images made
from the shipped sample Resources/SampleData/mammo-mlo/mlo.dcm. The scenarios are the data lists below; each row is
(input class, what the user gets, scenario key). The README table "input class → what the user gets" is generated
from these lists, so keep the first two fields short and true.

Disk-full and read-only cases mount a small tmpfs (root and a sandbox that allows mounts); where mounting is refused
the test is skipped with the mount error: a full or read-only file system cannot be faked honestly without one
(RLIMIT_FSIZE gives EFBIG, not ENOSPC, and /dev/full takes one file, not a folder).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TASK = "mammo-pectoral"
CASE_FILES = ("summary.json", "boundary.csv", "pectoral.seg.nrrd", "boundary.mrk.json", "preview.png")
RUN_TIMEOUT = 300  # s, one `uqseg predict` subprocess
PAGE = 4096


class Row(NamedTuple):
    input_class: str  # the README's left column
    user_gets: str  # the README's right column
    key: str  # scenario key used by the test
    message: str = ""  # a fragment the one stderr line must contain (regular expression), "" = not checked


# ------------------------------------------------------------------------------------------------ the data lists
OUTPUT_FOLDER_ROWS = [
    Row("--out is an existing file",
        "`error: <dir>: is an existing file, not a folder ...`, exit 2, before any work", "existing_file",
        "is an existing file, not a folder"),
    Row("--out lies below an existing file",
        "`error: <dir>: cannot be created: a part of its path is a file, not a folder`, exit 2", "below_file",
        "a part of its path is a file"),
    Row("--out on /proc", "`error: <dir>: is on the proc pseudo file system ...`, exit 2, nothing created", "proc",
        "is on the proc pseudo file system"),
    Row("--out on /sys", "`error: <dir>: is on the sysfs pseudo file system ...`, exit 2, nothing created", "sys",
        "is on the sysfs pseudo file system"),
    Row("--out equal to the input folder", "`error: <dir>: is the input folder ...`, exit 2, nothing written",
        "equal_input", "is the input folder"),
    Row("--out inside the input folder", "`error: <dir>: is inside the input folder ...`, exit 2, nothing written",
        "inside_input", "is inside the input folder"),
    Row("--out an existing folder on a read-only file system",
        "`error: <dir>: is not writable: read-only file system`, exit 2", "readonly_existing",
        "is not writable: read-only file system"),
    Row("--out to be created on a read-only file system",
        "`error: <dir>: cannot be created: read-only file system`, exit 2", "readonly_missing",
        "cannot be created: read-only file system"),
    Row("--out in a folder the user may not write to",
        "`error: <dir>: cannot be created: permission denied`, exit 2", "no_permission",
        "cannot be created: permission denied"),
    Row("--out on a disk that is already full",
        "`error: <dir>: is not writable: no space left on the device`, exit 2", "full_before",
        "is not writable: no space left on the device"),
]

CASE_NAME_ROWS = [
    Row("input file named `...png` or `..png` (only dots before the extension)",
        "case folders `case`, `case_2` inside --out; nothing is written outside it", "dots"),
    Row("`x.jpg`, `x.png` and `x_2.png` in one input folder",
        "three case folders `x`, `x_3`, `x_2` (one per input, summary.json `input` says which); queue.csv one row "
        "per case", "same_stem"),
]

DISK_FULL_ROWS = [
    Row("disk fills up during a case of a batch",
        "that case: one line `error: <dir>/<case>: the results of <input> could not be written (no space left on "
        "the device) ...`, no file of it left; the other cases are written; exit 2", "enospc",
        "no space left on the device"),
]

INTERRUPT_ROWS = [
    Row("SIGTERM during a multi-case run",
        "finished cases complete and in queue.csv; the current case discarded (no folder, no *.tmp); one line "
        "`error: interrupted by SIGTERM: ...`; exit 143", "SIGTERM", r"^error: interrupted by SIGTERM: 1 of 5 "),
    Row("SIGINT (Ctrl-C) during a multi-case run",
        "finished cases complete and in queue.csv; the current case discarded (no folder, no *.tmp); one line "
        "`error: interrupted by SIGINT: ...`; exit 130", "SIGINT", r"^error: interrupted by SIGINT: 1 of 5 "),
    Row("kill -9 during a multi-case run",
        "finished cases complete and in queue.csv; only the hidden `.uqseg-staging-*` folder (the unfinished case, "
        "its *.tmp files) is left, and the next `uqseg predict` into that folder removes it", "SIGKILL"),
]

CONCURRENT_ROWS = [
    Row("two runs writing into the same --out at once (same case names, different images)",
        "both finish; every case folder holds one input's complete results (never a mix); queue.csv lists every "
        "case once", "concurrent"),
]

ALL_ROWS = OUTPUT_FOLDER_ROWS + CASE_NAME_ROWS + DISK_FULL_ROWS + INTERRUPT_ROWS + CONCURRENT_ROWS


# ------------------------------------------------------------------------------------------------------- helpers
def _shared_dir() -> Path:
    env = os.environ.get("UQSEG_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _source_arrays(n: int) -> list[np.ndarray]:
    """n real mammograms (uint8 [row, col], chest wall left): DDSM PNGs, else resized copies of the sample MLO."""
    from PIL import Image as PILImage

    images = _shared_dir() / "mammo_ddsm" / "images"
    files = sorted(images.glob("*.png"))[:n] if images.is_dir() else []
    if len(files) >= n:
        return [np.asarray(PILImage.open(f).convert("L")) for f in files]
    sample = REPO / "Resources" / "SampleData" / "mammo-mlo" / "mlo.dcm"
    if not sample.is_file():
        pytest.skip("no real mammograms: neither ../shared/data/mammo_ddsm nor the sample mlo.dcm")
    from uqseg.io.load import load_image

    a = np.asarray(load_image(sample, ndim=2).array, dtype=float)
    a = np.clip(255 * (a - a.min()) / max(1e-9, float(np.ptp(a))), 0, 255).astype(np.uint8)
    out = []
    for k in range(n):  # distinct real images: the sample at slightly different scales
        h = 960 - 40 * k
        out.append(np.asarray(PILImage.fromarray(a).resize((int(h * a.shape[1] / a.shape[0]), h))))
    return out


def save_png(array: np.ndarray, path: Path, scale: float = 1.0) -> Path:
    from PIL import Image as PILImage

    im = PILImage.fromarray(array)
    if scale != 1.0:
        im = im.resize((max(8, round(im.width * scale)), max(8, round(im.height * scale))))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG")
    return path


def command(inputs, out) -> list[str]:
    return [sys.executable, "-m", "uqseg.cli", "predict", "--task", TASK, *map(str, inputs), "--out", str(out),
            "--device", "cpu"]


def run_predict(inputs, out, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(command(inputs, out), capture_output=True, text=True, timeout=timeout)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def finished_cases(stdout: str) -> list[str]:
    """Case names of the `<case>: image_uncertainty=... -> <dir>` lines (printed once a case is in place)."""
    return [m.group(1) for m in re.finditer(r"^(\S+): image_uncertainty=", stdout, re.M)]


def queue_rows(out: Path) -> list[str]:
    with open(out / "queue.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["case", "image_uncertainty", "multimodal", "ood", "status"], rows[0]
    return [r[0] for r in rows[1:] if r]


def visible(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if not p.name.startswith(".")}


def hidden(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.name.startswith(".")}


def tmp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".staged"))


def assert_case_complete(case_dir: Path) -> dict:
    """All the files of a mammo-pectoral case, non-empty, and summary.json naming this folder; returns the summary."""
    for name in CASE_FILES:
        assert (case_dir / name).is_file() and (case_dir / name).stat().st_size > 0, \
            f"{case_dir.name}: {name} missing or empty ({sorted(p.name for p in case_dir.iterdir())})"
    assert sorted(p.name for p in case_dir.iterdir() if p.name.startswith(".")) == [], \
        f"{case_dir.name}: hidden leftovers {sorted(p.name for p in case_dir.iterdir())}"
    summary = json.loads((case_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["case"] == case_dir.name
    return summary


def assert_case_consistent(case_dir: Path) -> dict:
    """The files of the case belong to the input summary.json names: the segmentation has that image's size, and
    boundary.csv has the rows and σ the summary reports."""
    import nrrd
    from PIL import Image as PILImage

    s = assert_case_complete(case_dir)
    with PILImage.open(s["input"]) as im:
        w, h = im.size
    assert s["input_geometry"]["shape"] == [h, w], (case_dir.name, s["input"], s["input_geometry"])
    header = nrrd.read_header(str(case_dir / "pectoral.seg.nrrd"))
    assert [int(v) for v in header["sizes"]][:2] == [w, h], \
        f"{case_dir.name}: segmentation {list(header['sizes'])} beside a summary of {s['input']} ({w}x{h})"
    with open(case_dir / "boundary.csv", newline="") as fh:
        body = list(csv.reader(fh))[1:]
    rows = np.array([[float(v) for v in r] for r in body if r]).reshape(-1, 4)
    assert len(rows) == s["muscle_rows"], f"{case_dir.name}: boundary.csv has {len(rows)} rows, summary says " \
                                         f"{s['muscle_rows']} ({s['input']})"
    assert rows.size == 0 or rows[:, 0].max() < h
    if len(rows):
        assert s["image_uncertainty"] == pytest.approx(rows[:, 2].mean(), abs=0.01), case_dir.name
    return s


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size_bytes: int, readonly: bool = False):
    """A tmpfs of `size_bytes` at `mountpoint` for the block; skips the test when this sandbox cannot mount."""
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        pytest.skip("a small file system for this test needs Linux `mount -t tmpfs`")
    mountpoint.mkdir(parents=True, exist_ok=True)
    opts = f"size={max(PAGE, size_bytes)}" + (",ro" if readonly else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mountpoint)], capture_output=True,
                          text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and a sandbox that allows mounts): "
                    f"{proc.stderr.strip() or proc.returncode}")
    try:
        yield mountpoint
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(mountpoint)], capture_output=True, timeout=30).returncode == 0:
                break
            time.sleep(0.5)
        else:  # pragma: no cover
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=30)


def du_pages(folder: Path) -> int:
    """The pages (4 KiB) the files of `folder` take on a tmpfs."""
    return sum(-(-p.stat().st_size // PAGE) for p in folder.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Small real images: a1..a6 (full size), half_* (half size) and huge (8x), all PNG."""
    d = tmp_path_factory.mktemp("hostile_images")
    arrays = _source_arrays(6)
    files = {f"a{k + 1}": save_png(a, d / f"a{k + 1}.png") for k, a in enumerate(arrays)}
    for k, a in enumerate(arrays[:4]):
        files[f"half{k + 1}"] = save_png(a, d / f"half{k + 1}.png", 0.5)
    files["huge"] = save_png(arrays[0], d / "huge.png", 8.0)
    return files


# ---------------------------------------------------------------------------------- 3. output folder refusals
def _skip_unless_pseudo(root: str, fstype: str) -> None:
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        pytest.skip("no /proc/self/mountinfo (not Linux)")
    mounts = {(ln.split(" - ")[0].split()[4], ln.split(" - ")[1].split()[0]) for ln in text.splitlines() if " - " in ln}
    if (root, fstype) not in mounts:
        pytest.skip(f"{root} is not a {fstype} mount here")


@pytest.mark.parametrize("row", OUTPUT_FOLDER_ROWS, ids=[r.key for r in OUTPUT_FOLDER_ROWS])
def test_output_folder_refused_before_any_work(row: Row, images, tmp_path):
    image = images["half1"]
    inputs = [image]
    before = None  # (folder, its listing) that must stay unchanged
    with contextlib.ExitStack() as stack:
        if row.key == "existing_file":
            out = tmp_path / "results"
            out.write_text("not a folder\n")
        elif row.key == "below_file":
            (tmp_path / "results").write_text("not a folder\n")
            out = tmp_path / "results" / "out"
        elif row.key == "proc":
            _skip_unless_pseudo("/proc", "proc")
            out = Path(f"/proc/uqseg-test-{os.getpid()}")
        elif row.key == "sys":
            _skip_unless_pseudo("/sys", "sysfs")
            out = Path(f"/sys/uqseg-test-{os.getpid()}")
        elif row.key in ("equal_input", "inside_input"):
            folder = tmp_path / "images"
            folder.mkdir()
            shutil.copy(image, folder / image.name)
            inputs = [folder]
            out = folder if row.key == "equal_input" else folder / "results"
            before = (folder, sorted(p.name for p in folder.rglob("*")))
        elif row.key in ("readonly_existing", "readonly_missing"):
            mnt = stack.enter_context(tmpfs(tmp_path / "ro", 64 * 1024, readonly=True))
            out = mnt if row.key == "readonly_existing" else mnt / "out"
        elif row.key == "no_permission":
            parent = tmp_path / "locked"
            parent.mkdir()
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                # root ignores permission bits: the immutable attribute refuses writes to root too (EPERM)
                subprocess.run(["chattr", "+i", str(parent)], check=True, capture_output=True)
                stack.callback(subprocess.run, ["chattr", "-i", str(parent)], capture_output=True)
            else:
                parent.chmod(0o555)
                stack.callback(parent.chmod, 0o755)
            out = parent / "out"
        elif row.key == "full_before":
            mnt = stack.enter_context(tmpfs(tmp_path / "full", 64 * 1024))
            with contextlib.suppress(OSError), open(mnt / "filler", "wb") as fh:
                for _ in range(1000):
                    fh.write(b"\0" * PAGE)
                    fh.flush()
            out = mnt / "out"
        else:  # pragma: no cover
            raise AssertionError(row.key)
        existed = os.path.lexists(out)
        t0 = time.monotonic()
        proc = run_predict(inputs, out)
        elapsed = time.monotonic() - t0
        assert proc.returncode == 2, (proc.returncode, proc.stderr)
        err = lines(proc.stderr)
        assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert err[0].startswith(f"error: {out}: "), err[0]
        assert re.search(row.message, err[0]), err[0]
        assert "PROGRESS" not in proc.stdout, f"work started before the refusal:\n{proc.stdout}"
        if not existed and row.key != "existing_file":
            assert not os.path.lexists(out), f"{out} was created"
        if before is not None:
            assert sorted(p.name for p in before[0].rglob("*")) == before[1], "the input folder was changed"
        if row.key == "full_before":
            assert not os.path.lexists(out), "an empty output folder was left on the full disk"
        assert elapsed < RUN_TIMEOUT


# --------------------------------------------------------------------------------------------- 3. case names
def test_case_folder_names_stay_inside_out_and_are_unique(images, tmp_path):
    """`...png`/`..png` used to write outside --out; `x.jpg`, `x.png`, `x_2.png` gave three cases in two folders."""
    from PIL import Image as PILImage

    work = tmp_path / "work"
    folder, dots = work / "in", work / "dots"
    folder.mkdir(parents=True)
    dots.mkdir()
    for src, name in ((images["half1"], "x.png"), (images["half2"], "x_2.png"), (images["half3"], "x.jpg")):
        save_png(np.asarray(PILImage.open(src).convert("L")), folder / name)
    shutil.copy(images["half4"], dots / "...png")
    shutil.copy(images["half1"], dots / "..png")
    out = work / "out"
    proc = run_predict([folder, dots / "...png", dots / "..png"], out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["dots", "in", "out"], "something was written outside --out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert sorted(p.name for p in dots.iterdir()) == ["...png", "..png"] and len(list(folder.iterdir())) == 3
    expected = {"x": folder / "x.jpg", "x_3": folder / "x.png", "x_2": folder / "x_2.png",
                "case": dots / "...png", "case_2": dots / "..png"}
    assert visible(out) == set(expected) | {"queue.csv"}, sorted(visible(out))
    assert hidden(out) == set(), sorted(hidden(out))
    for name, source in expected.items():
        s = assert_case_consistent(out / name)
        assert Path(s["input"]) == source, (name, s["input"])
    q = queue_rows(out)
    assert sorted(q) == sorted(expected), q
    assert not tmp_files(out)


def test_case_name_rules_in_process(tmp_path):
    """The naming rules without a subprocess: separators, dots, case-insensitive clashes, reserved and foreign
    names in --out."""
    from uqseg.io.outdir import safe_case_name, unique_case_names

    assert safe_case_name("..") == "case" and safe_case_name("") == "case" and safe_case_name(" . ") == "case"
    assert safe_case_name("../../etc/passwd") == "_.._etc_passwd"
    assert safe_case_name("a\\b:c*d?.") == "a_b_c_d_"
    assert safe_case_name("CON") == "_CON" and safe_case_name("lpt1.scan") == "_lpt1.scan"
    assert len(safe_case_name("é" * 300).encode()) <= 120
    assert unique_case_names(["x", "x", "x_2"]) == ["x", "x_3", "x_2"]
    assert unique_case_names(["X", "x"]) == ["X", "x_2"]  # one folder on Windows/macOS
    assert unique_case_names(["queue.csv", "chexmask_u.csv"]) == ["queue.csv_2", "chexmask_u.csv_2"]
    out = tmp_path / "out"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "mine.txt").write_text("a folder of the user's\n")
    (out / "report").write_text("a file of the user's\n")
    (out / "old").mkdir()
    (out / "old" / "summary.json").write_text("{}\n")
    # earlier results ("old") may be replaced; a foreign folder or file is never used
    assert unique_case_names(["notes", "report", "old"], out) == ["notes_2", "report_2", "old"]


def test_stale_staging_removed_live_staging_kept(tmp_path):
    """What a kill -9 can leave, cleaned in-process: a dead run's staging folder goes (an earlier result it had moved
    aside is put back first), a stray queue.csv temporary goes, a live run's staging folder stays."""
    from uqseg.io.outdir import CaseStaging, remove_stale_staging

    out = tmp_path / "out"
    out.mkdir()
    live = CaseStaging(out).open()  # this process holds its owner lock
    dead = out / ".uqseg-staging-1-dead"
    (dead / "c").mkdir(parents=True)
    (dead / "c" / ".preview.png.1234abcd.tmp").write_bytes(b"half a file")
    (dead / ".owner.lock").write_text("1\n")  # nobody holds its lock: the owner is gone
    (dead / ".old-b").mkdir()
    (dead / ".old-b" / "summary.json").write_text('{"case": "b"}\n')
    (out / ".queue.csv.1234abcd.tmp").write_text("case\n")
    try:
        removed = remove_stale_staging(out)
        assert sorted(removed) == [".queue.csv.1234abcd.tmp", ".uqseg-staging-1-dead"]
        assert (out / "b" / "summary.json").is_file(), "the earlier result moved aside was not put back"
        assert live.root is not None and live.root.is_dir(), "a live run's staging folder was removed"
        assert not tmp_files(out)
    finally:
        live.close()
    assert hidden(out) == set() and visible(out) == {"b"}


# ------------------------------------------------------------------------------------------------- 3. disk full
def test_disk_full_drops_only_that_case(images, tmp_path):
    row = DISK_FULL_ROWS[0]
    inputs_dir = tmp_path / "in"
    inputs_dir.mkdir()
    small_a = Path(shutil.copy(images["half1"], inputs_dir / "a_small.png"))
    big = Path(shutil.copy(images["huge"], inputs_dir / "b_big.png"))
    small_c = Path(shutil.copy(images["half2"], inputs_dir / "c_small.png"))
    # sizes of the results on a normal disk, to size the small file system: room for the two small cases and a
    # little more, not for the big one once the first small case is in
    ref = run_predict([small_a, big, small_c], tmp_path / "reference")
    assert ref.returncode == 0, ref.stderr
    s_pages = max(du_pages(tmp_path / "reference" / n) for n in ("a_small", "c_small"))
    b_pages = du_pages(tmp_path / "reference" / "b_big")
    size_pages = 2 * s_pages + 8
    if b_pages <= s_pages + 8:
        pytest.skip(f"the big image's results ({b_pages} pages) are not bigger than the room left ({s_pages + 8})")
    with tmpfs(tmp_path / "small_fs", size_pages * PAGE) as mnt:
        out = mnt / "out"
        proc = run_predict([small_a, big, small_c], out)
        assert proc.returncode == 2, proc.stderr
        err = lines(proc.stderr)
        assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert err[0].startswith(f"error: {out / 'b_big'}: ") and str(big) in err[0], err[0]
        assert re.search(row.message, err[0]), err[0]
        assert visible(out) == {"a_small", "c_small", "queue.csv"}, sorted(visible(out))
        assert hidden(out) == set(), sorted(hidden(out))
        for name in ("a_small", "c_small"):
            assert_case_consistent(out / name)
        assert sorted(queue_rows(out)) == ["a_small", "c_small"]
        assert not tmp_files(mnt), tmp_files(mnt)
        assert finished_cases(proc.stdout) == ["a_small", "c_small"]


# ---------------------------------------------------------------------------------------------- 5. interruption
def _run_and_signal(inputs, out, sig) -> tuple[subprocess.Popen, str, str, list[str]]:
    """Start predict, send `sig` as soon as the first case is reported finished; (proc, stdout, stderr, finished)."""
    # SIGINT as from a terminal: a child of a background job starts with SIGINT ignored, which uqseg respects
    proc = subprocess.Popen(command(inputs, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            bufsize=1, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    watchdog = threading.Timer(RUN_TIMEOUT, proc.kill)
    watchdog.start()
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if re.match(r"^\S+: image_uncertainty=", line):
                assert (out / line.split(":")[0] / "summary.json").is_file()
                proc.send_signal(sig)
                break
        rest, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        watchdog.cancel()
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
    stdout = "".join(seen) + rest
    return proc, stdout, err, finished_cases(stdout)


@pytest.mark.parametrize("row", INTERRUPT_ROWS, ids=[r.key for r in INTERRUPT_ROWS])
def test_interrupted_run_keeps_finished_cases_only(row: Row, images, tmp_path):
    sig = getattr(signal, row.key)
    inputs = [images[f"a{k}"] for k in range(1, 6)]
    out = tmp_path / "out"
    proc, stdout, stderr, finished = _run_and_signal(inputs, out, sig)
    assert finished, f"no case finished:\n{stdout}\n{stderr}"
    assert len(finished) < len(inputs), "the run ended before the signal reached it; nothing was interrupted"
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + sig, (proc.returncode, stderr)
        err = lines(stderr)
        assert len(err) == 1 and "Traceback" not in stderr, stderr
        assert re.search(row.message.replace("1 of", f"{len(finished)} of"), err[0]), err[0]
    # finished cases complete, listed once in queue.csv; nothing else visible
    assert visible(out) == set(finished) | {"queue.csv"}, sorted(visible(out))
    for name in finished:
        assert_case_consistent(out / name)
    assert sorted(queue_rows(out)) == sorted(finished)
    if sig != signal.SIGKILL:
        assert hidden(out) == set(), sorted(hidden(out))
        assert not tmp_files(out), tmp_files(out)
        return
    # kill -9: only the run's hidden staging folder is left (temporary files only inside it) ...
    left = hidden(out)
    assert len(left) == 1 and next(iter(left)).startswith(".uqseg-staging-"), sorted(left)
    staging = out / next(iter(left))
    assert all(staging in p.parents for p in tmp_files(out)), tmp_files(out)
    # ... until the next run into the same folder, which removes it and keeps the earlier cases
    nxt = run_predict([images["a6"]], out)
    assert nxt.returncode == 0, nxt.stderr
    assert hidden(out) == set(), sorted(hidden(out))
    assert not tmp_files(out), tmp_files(out)
    assert visible(out) == set(finished) | {"a6", "queue.csv"}, sorted(visible(out))
    for name in [*finished, "a6"]:
        assert_case_consistent(out / name)
    assert sorted(queue_rows(out)) == sorted([*finished, "a6"])


# ----------------------------------------------------------------------------------------------- 5. concurrency
@pytest.mark.parametrize("trial", [1, 2])
def test_two_runs_into_one_out_never_mix_a_case(trial, images, tmp_path):
    """Run A (half-size images) and run B (full-size images) write cases p, q, r (same names) and one of their
    own into one --out at the same time: each case folder must hold one input's files only."""
    a_dir, b_dir = tmp_path / "A", tmp_path / "B"
    a_dir.mkdir()
    b_dir.mkdir()
    for k, name in enumerate(("p", "q", "r", "only_a")):
        shutil.copy(images[f"half{k + 1}"], a_dir / f"{name}.png")
    for k, name in enumerate(("p", "q", "r", "only_b")):
        shutil.copy(images[f"a{k + 2}"], b_dir / f"{name}.png")
    out = tmp_path / "out"
    procs = [subprocess.Popen(command([d], out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for d in (a_dir, b_dir)]
    results = []
    for p in procs:
        try:
            results.append(p.communicate(timeout=2 * RUN_TIMEOUT))
        finally:
            if p.poll() is None:  # pragma: no cover
                p.kill()
    for p, (so, se) in zip(procs, results):
        assert p.returncode == 0 and not lines(se), (p.returncode, se)
        assert sorted(finished_cases(so)) == sorted(["p", "q", "r", "only_a" if "only_a" in so else "only_b"])
    names = {"p", "q", "r", "only_a", "only_b"}
    assert visible(out) == names | {"queue.csv"}, sorted(visible(out))
    assert hidden(out) == set(), sorted(hidden(out))
    sources = {str(f) for d in (a_dir, b_dir) for f in d.iterdir()}
    for name in names:
        s = assert_case_consistent(out / name)
        assert s["input"] in sources and Path(s["input"]).stem == name, (name, s["input"])
    q = queue_rows(out)
    assert sorted(q) == sorted(names), q
    assert not tmp_files(out)
