"""`uqseg review` in a real browser: Debian's headless Chromium driven by selenium against a review server started
per test (`uqseg review DIR --port <free loopback port>`: the front server, which starts a session process per
browser; stopped by its PID), on REAL predictions of the shipped
models — one case per task on the samples installed with the project (`uqseg.sample_data`).

What a user sees is what is checked:
- the queue in queue.csv's order; the first frame (time from opening the page to a drawn view, printed);
- the view images as the browser shows them (page screenshots cropped to the view): the pectoral band (cyan) and
  mean curve (yellow), the chest X-ray curves coloured by their node std (viridis), the breast entropy / CT variance
  overlays (inferno) changing with opacity and threshold, the CT segmentation in the 3-D view;
- Next centres the view on the region's focus (and the view image changes);
- a drag of a landmark point with the mouse: the model refits the contour (other nodes move, the colours change),
  timed from the release to the updated page (printed); Undo puts every point back;
- "accept the alternative" (breast: the most probable other class; CT: a sample's labels, only inside the region)
  and paint inside the region (CT; breast with a 20 mm brush that reaches beyond the region's editable area and
  changes nothing there), Save: the files read back with the change;
- two people on ONE server (two browsers, separate profiles): each gets the loading page, then a session process,
  case and view of their own; each sees the case the other has open as "being edited"; a save over the other's
  newer save is refused on the page and writes nothing; a closed browser's process stops when idle, and every
  session process stops with the server (the processes are the front server's children in /proc; their memory is
  printed);
- errors are one line on the page, never a traceback; bad command lines are one `error:` line and exit status 2.

Screenshots for the README go to $UQSEG_WEB_SCREENSHOTS when set (Resources/Screenshots/review-*.png were made so:
``UQSEG_WEB_SCREENSHOTS=Resources/Screenshots python -m pytest -s Testing/test_web_review.py``); measured times are
printed (``[measured] ...``) and appended to $UQSEG_WEB_TIMINGS (JSON lines) when set.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer", reason="the web extra (trame-slicer) is not installed")
pytest.importorskip("selenium", reason="selenium is not installed (pip install 'uqseg[test]')")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run")
WINDOW = (1400, 900)
pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)")

# one case per task: (task, sample, file in the sample folder, case name, --samples)
CASES = (("mammo-pectoral", "mammo-mlo", "mlo.dcm", "pectoral_mlo", None),
         ("cxr-landmarks", "cxr-chest", "chest.dcm", "chest", 20),
         ("mammo-breast", "mammo-mlo", "mlo.dcm", "breast_mlo", 5),
         ("ct-organs", "ct-abdomen", "ct.nii.gz", "abdomen_ct", 5))


def _measured(name: str, value) -> None:
    """Print a measured number (pytest -s shows it) and keep it in $UQSEG_WEB_TIMINGS (JSON lines) when set."""
    print(f"\n[measured] {name} = {value}")
    if os.environ.get("UQSEG_WEB_TIMINGS"):
        with open(os.environ["UQSEG_WEB_TIMINGS"], "a", encoding="utf-8") as f:
            f.write(json.dumps({name: value}) + "\n")


# --------------------------------------------------------------------------------------------------- predictions
@pytest.fixture(scope="session")
def predictions(tmp_path_factory):
    """One real prediction per task into one folder, ranked in queue.csv by the engine's own writer."""
    from uqseg.sample_data import sample_dir
    from uqseg.tasks.run import run_cases, write_queue

    root = tmp_path_factory.mktemp("web_review")
    inputs, out = root / "inputs", root / "out"
    inputs.mkdir()
    summaries = []
    for task, sample, name, case, samples in CASES:
        src = sample_dir(sample) / name
        dst = inputs / (case + "".join(src.suffixes))
        shutil.copyfile(src, dst)
        report = run_cases(task, [str(dst)], out, device="cpu", samples=samples, seed=0)
        assert not report.errors, report.errors
        summaries += report.summaries
    write_queue(out, summaries)
    return out


@pytest.fixture
def folder(predictions, tmp_path):
    """A copy of the predictions for this test (saves and edit marks stay in it)."""
    dst = tmp_path / "review"
    shutil.copytree(predictions, dst)
    return dst


# --------------------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`uqseg review ...` in its own process; `url` once it listens; stopped by PID."""

    def __init__(self, args, log: Path, timeout: float = 120.0) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "uqseg.cli", "review", *map(str, args), "--port", str(self.port)]
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True, cwd=REPO)
        self.lines: list[str] = []
        self.url = None
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("REVIEW "):
                    self.url = line.split()[1]
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or self.url is None:
            self.stop()
            raise AssertionError(f"the review server did not start: {self.lines[-5:]} {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def start_server(tmp_path):
    servers = []

    def start(*args) -> Server:
        server = Server(args, tmp_path / f"server{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --------------------------------------------------------------------------------------------------- browser
@pytest.fixture
def open_browser():
    drivers = []

    def make():
        options = webdriver.ChromeOptions()
        for flag in CHROME_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='uqseg-chromium-')}")
        options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
        options.add_argument("--force-device-scale-factor=1")
        options.binary_location = CHROMIUM
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        profile = driver.capabilities.get("chrome", {}).get("userDataDir")
        with contextlib.suppress(Exception):  # a test may have closed it already
            driver.quit()
        if profile:
            shutil.rmtree(profile, ignore_errors=True)


def state(d, key):
    return d.execute_script("return window.trame && window.trame.state ? window.trame.state.get(arguments[0]) : null",
                            key)


def set_state(d, key, value) -> None:
    d.execute_script("window.trame.state.set(arguments[0], arguments[1])", key, value)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def view_elements(d) -> list:
    return [e for e in d.find_elements(By.CSS_SELECTOR, "#uq-views img") if e.rect["width"] > 50]


def page_image(d) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(d.get_screenshot_as_png())).convert("RGB"))


def view_image(d, index: int = 0) -> np.ndarray:
    """What the browser shows in view `index` (0: the slice view), [row, col, rgb]."""
    r = view_elements(d)[index].rect
    x, y, w, h = (int(round(r[k])) for k in ("x", "y", "width", "height"))
    return page_image(d)[y:y + h, x:x + w]


def settled_view(d, index: int = 0, timeout: float = 30.0) -> np.ndarray:
    """The view image once the server is idle and two frames 0.4 s apart are equal."""
    wait_for(lambda: not state(d, "busy"), timeout, what="the server to finish")
    last = view_image(d, index)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        time.sleep(0.4)
        now = view_image(d, index)
        if now.shape == last.shape and np.array_equal(now, last):
            return now
        last = now
    return last


def queue_row(d, case: str):
    for row in d.find_elements(By.CSS_SELECTOR, "#uq-queue tr"):
        if row.text.split()[1:2] == [case]:
            return row
    return None


def changed_pixels(a: np.ndarray, b: np.ndarray, level: int = 30) -> int:
    return int((np.abs(a.astype(int) - b.astype(int)).max(axis=2) > level).sum()) if a.shape == b.shape else a.size


def view_after_change(d, before: np.ndarray, index: int = 0, timeout: float = 60.0) -> np.ndarray:
    """The settled view image once it differs from `before` (the server may draw the change a little later)."""
    wait_for(lambda: changed_pixels(view_image(d, index), before) > 20, timeout, 0.1, "the view to change")
    return settled_view(d, index)


def view_until(d, measure, accept, timeout: float = 60.0, what: str = "the view") -> np.ndarray:
    """Poll settled view images until `accept(measure(image))`; on a loaded machine a redraw can arrive after a
    first settled frame, so one snapshot is not the answer. Fails with the last measured value."""
    end, value = time.monotonic() + timeout, None
    while time.monotonic() < end:
        image = settled_view(d, timeout=min(30.0, max(1.0, end - time.monotonic())))
        value = measure(image)
        if accept(value):
            return image
        time.sleep(0.3)
    raise AssertionError(f"{what}: still {value} after {timeout} s")


def open_case(d, case: str) -> np.ndarray:
    wait_for(lambda: queue_row(d, case), 30, what=f"{case} in the queue").click()
    wait_for(lambda: state(d, "current_case") == case and not state(d, "busy"), 90, what=f"{case} to open")
    return settled_view(d)


def drag(d, x: float, y: float, dx: int, dy: int, steps: int = 10) -> tuple[int, int]:
    """Press the mouse on view pixel (x, y) of the slice view (after hovering, so Slicer's markups interaction picks
    the point under it), move by about (dx, dy) in `steps` steps, release; returns the move from (x, y) to the
    release."""
    view = view_elements(d)[0]
    w, h = view.rect["width"], view.rect["height"]
    chain = ActionChains(d, duration=20)
    chain.move_to_element_with_offset(view, x - w / 2, y - h / 2).pause(0.5).move_by_offset(1, 0).pause(0.5)
    chain.click_and_hold().pause(0.2)
    for _ in range(steps):
        chain.move_by_offset(int(dx / steps), int(dy / steps)).pause(0.03)
    chain.release().perform()
    return 1 + steps * int(dx / steps), steps * int(dy / steps)


def click(d, element_id: str) -> None:
    d.find_element(By.ID, element_id).click()


def no_traceback(d) -> None:
    assert "Traceback" not in d.page_source and 'File "' not in d.page_source


def screenshot(d, name: str) -> None:
    folder = os.environ.get("UQSEG_WEB_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(Path(folder) / f"review-{name}.png"))


def legend_left(image: np.ndarray, gap: int = 30) -> int:
    """The first column of the slice view's own colour legend (Slicer's, drawn at the view's right edge): walking in
    from the right, the bright columns up to the first run of more than `gap` black columns (the black between the
    legend and the image). Layout changes of the page can move the legend by a few pixels between two frames, so
    an overlay measure leaves these columns out."""
    bright = (image[2:-2].max(axis=2) > 30).any(axis=0)  # the view's frame (its outermost rows) left out
    x, dark = len(bright) - 1, 0
    while x > 0 and not bright[x]:
        x -= 1
    left = x
    while x > 0 and dark <= gap:
        dark = 0 if bright[x] else dark + 1
        left = x if bright[x] else left
        x -= 1
    return left


def colour_distance(pixels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per pixel: the distance (0..255 units) to the nearest colour of `table` (N, 3)."""
    p = pixels.reshape(-1, 1, 3).astype(float)
    return np.sqrt(((p - table[None].astype(float)) ** 2).sum(-1)).min(axis=1).reshape(pixels.shape[:-1])


def colormap_table(name: str) -> np.ndarray:
    from UQSegmentationLib.display.colormaps import colormap_rgb

    return np.array([colormap_rgb(name, t) for t in np.linspace(0, 1, 256)]) * 255


def at(image: np.ndarray, x: float, y: float, r: int = 1) -> np.ndarray:
    """The pixels within r of view position (x, y) (x = column, y = row, from the top-left)."""
    c, w = int(round(x)), int(round(y))
    return image[max(0, w - r):w + r + 1, max(0, c - r):c + r + 1].reshape(-1, 3)


# ------------------------------------------------------------------------------------------------------- tests
def test_queue_order_first_frame_and_the_pectoral_band(folder, start_server, open_browser):
    import csv

    server = start_server(folder, "--who", "alice")
    d = open_browser()
    t0 = time.monotonic()
    d.get(server.url)

    def drawn():
        views = view_elements(d)
        if not views or state(d, "current_case") is None:
            return False
        image = view_image(d)
        return image.size and (image.max(axis=2) > 40).mean() > 0.05

    wait_for(drawn, 120, 0.05, "the first frame")
    _measured("first_frame_s", round(time.monotonic() - t0, 2))
    with open(folder / "queue.csv", newline="") as f:
        expected = [row["case"] for row in csv.DictReader(f)]
    rows = [r.text.split() for r in d.find_elements(By.CSS_SELECTOR, "#uq-queue tr")[1:]]
    assert [r[1] for r in rows] == expected and [r[0] for r in rows] == ["1", "2", "3", "4"]
    assert {r[1]: r[2] for r in rows} == {case: task for task, _, _, case, _ in CASES}
    assert state(d, "current_case") == expected[0] == "pectoral_mlo"  # the most uncertain case opens first
    image = settled_view(d)
    # the mean boundary curve (yellow, UQSegmentationLib.display.band.CURVE_COLOR) is drawn at its control points
    points = state(d, "curve_points")
    assert len(points) >= 10
    yellow = sum(any(p[0] > 180 and p[1] > 160 and p[2] < 110 for p in at(image, x, y, 2)) for _, _, x, y in points)
    assert yellow >= 0.8 * len(points), f"{yellow} of {len(points)} control points drawn yellow"
    # the ±σ band (cyan outline, BAND_COLOR (0.15, 0.85, 1.0)) beside the curve
    cyan = (image[..., 0] < 110) & (image[..., 1] > 150) & (image[..., 2] > 190)
    assert cyan.sum() > 200
    legend = d.find_element(By.ID, "uq-legend").text
    assert "±σ band" in legend
    # drag a boundary point sideways: the most probable path through it (model-aware) moves the curve and the band
    wait_for(lambda: state(d, "can_correct"), 60, what="the corrections")
    role, k, x, y = sorted(points, key=lambda p: p[3])[len(points) // 2]  # the middle of the boundary
    mx, my = drag(d, x, y, -25, 0)
    wait_for(lambda: state(d, "refits") == 1, 60, 0.02, "the pectoral refit")
    _measured("pectoral_drag_refit_server_ms", state(d, "refit_ms"))
    after = view_after_change(d, image)
    moved = {(r, kk): (xx, yy) for r, kk, xx, yy in state(d, "curve_points")}
    assert np.hypot(moved[(role, k)][0] - (x + mx), moved[(role, k)][1] - (y + my)) < 3  # on the release point
    cyan_after = (after[..., 0] < 110) & (after[..., 1] > 150) & (after[..., 2] > 190)
    assert (cyan_after != cyan).sum() > 50  # the ±σ band follows the new boundary
    no_traceback(d)


def test_cxr_colours_next_drag_refit_undo_and_save(folder, start_server, open_browser):
    server = start_server(folder)
    d = open_browser()
    d.get(server.url)
    wait_for(lambda: state(d, "current_case") == "pectoral_mlo", 120, what="the first case")
    image = open_case(d, "chest")
    wait_for(lambda: state(d, "corrections_ready") and state(d, "can_correct"), 60, what="the corrections")
    # node colours: every control point is drawn in a viridis colour (node std), the legend is in mm
    viridis = colormap_table("viridis")
    points = state(d, "curve_points")
    assert len(points) == 120
    on_map = [colour_distance(at(image, x, y, 0), viridis).min() < 40 for _, _, x, y in points]
    assert np.mean(on_map) > 0.9
    assert state(d, "legend")["units"] == "mm"
    # Next: the view is centred on region 1's focus, and the picture changes
    click(d, "uq-next")
    wait_for(lambda: state(d, "current_region") == 1, 30, what="region 1")
    moved = view_after_change(d, image)
    focus = np.array(state(d, "regions")[0]["focus"])
    assert np.abs(np.array(state(d, "view_centre"))[:2] - focus[:2]).max() < 1.0
    assert (np.abs(moved.astype(int) - image.astype(int)).max(axis=2) > 30).mean() > 0.2
    # drag a node of region 1 with the mouse (its organ from the table's "where", e.g. "heart nodes 94–110": with the
    # calibrated node std of cxr-hybridgnet-vae 1.1.0 region 1 of this sample is on the heart, not the right lung)
    before = {(r, k): (x, y) for r, k, x, y in state(d, "curve_points")}
    mm_per_px = state(d, "view_mm_per_px")
    organ, nodes = state(d, "regions")[0]["where"].split(" nodes ")
    organ = organ.replace(" ", "_")
    start, size = {"right_lung": (0, 44), "left_lung": (44, 50), "heart": (94, 26)}[organ]
    first, last = (int(v) - start for v in nodes.split("–"))
    members = {(first + i) % size for i in range((last - first) % size + 1)}
    visible = [(r, k) for r, k, x, y in state(d, "curve_points")
               if r == f"curve:{organ}" and 150 < x < 700 and 150 < y < 550]
    role, k = next((p for p in visible if p[1] in members), visible[0])
    x, y = before[(role, k)]
    dx, dy = 30, 20
    legend_min = state(d, "legend")["min"]
    mx, my = drag(d, x, y, dx, dy)
    t_release = time.monotonic()
    wait_for(lambda: state(d, "refits") == 1, 60, 0.02, "the refit")
    _measured("drag_refit_page_s", round(time.monotonic() - t_release, 2))  # release → refit on the page
    after_image = view_after_change(d, moved)
    _measured("drag_refit_server_ms", state(d, "refit_ms"))
    after = {(r, kk): (xx, yy) for r, kk, xx, yy in state(d, "curve_points")}
    assert np.hypot(after[(role, k)][0] - (x + mx), after[(role, k)][1] - (y + my)) < 3
    shifts = [np.hypot(after[p][0] - before[p][0], after[p][1] - before[p][1]) for p in before if p != (role, k)]
    assert sum(s > 1.0 for s in shifts) >= 3, "the refit moved no other node"
    assert state(d, "legend")["min"] < legend_min  # the pinned node is certain now: the colours change
    assert changed_pixels(after_image, moved) > 100
    assert state(d, "regions")[0]["status"] == "corrected"
    # Undo restores every point exactly
    click(d, "uq-undo")
    wait_for(lambda: not state(d, "can_undo"), 30, what="undo")
    undone = {(r, kk): (xx, yy) for r, kk, xx, yy in state(d, "curve_points")}
    assert max(np.hypot(undone[p][0] - before[p][0], undone[p][1] - before[p][1]) for p in before) < 0.01
    assert state(d, "regions")[0]["status"] == "unreviewed"
    # drag again and save: the saved landmark moved by the drag, in input pixels
    refits = state(d, "refits")
    drag(d, x, y, dx, dy)
    wait_for(lambda: state(d, "refits") == refits + 1, 60, 0.05, "the second refit")
    settled_view(d)
    click(d, "uq-save")
    wait_for(lambda: "Saved chest" in (state(d, "message") or ""), 30, what="the save")
    root = folder / "corrections"
    record = json.loads((root / "corrections" / "chest.json").read_text())
    saved = json.loads((root / "landmarks" / "chest.json").read_text())
    assert [len(saved[o]) for o in ("right_lung", "left_lung", "heart")] == [44, 50, 26]
    import csv

    with open(folder / "chest" / "landmarks.csv", newline="") as f:
        model = {int(r["node"]): (float(r["mean_x"]), float(r["mean_y"])) for r in csv.DictReader(f)}
    spacing = json.loads((folder / "chest" / "summary.json").read_text())["input_geometry"]["spacing_mm"][0]
    moved_px = np.hypot(saved[organ][k][0] - 0.5 - model[start + k][0], saved[organ][k][1] - 0.5 - model[start + k][1])
    expected_px = np.hypot(mx, my) * mm_per_px / spacing
    assert abs(moved_px - expected_px) < 0.2 * expected_px + 1.0
    assert record["task"] == "cxr-landmarks" and record["regions"][0]["status"] == "corrected"
    rows = {r.text.split()[1]: r.text for r in d.find_elements(By.CSS_SELECTOR, "#uq-queue tr")[1:]}
    wait_for(lambda: "saved" in d.find_elements(By.CSS_SELECTOR, "#uq-queue tr")[2].text, 10, what="saved status")
    assert "chest" in rows
    screenshot(d, "cxr")
    no_traceback(d)


def test_breast_overlay_opacity_threshold_alternative_and_save(folder, start_server, open_browser):
    import nrrd

    server = start_server(folder)
    d = open_browser()
    d.get(server.url)
    wait_for(lambda: state(d, "current_case") == "pectoral_mlo", 120, what="the first case")
    open_case(d, "breast_mlo")
    inferno = colormap_table("inferno")
    assert state(d, "legend")["title"] == "entropy" and state(d, "legend")["units"] == "nats"
    assert state(d, "opacity") == pytest.approx(0.6)
    shown_first = settled_view(d)
    set_state(d, "opacity", 0.0)
    without = view_after_change(d, shown_first)  # the mammogram and the segment outlines, no overlay

    legend_x = legend_left(without)
    assert legend_x > 0.6 * without.shape[1], legend_x  # the legend lies right of the mammogram

    def overlay(img):  # pixels the overlay changes, the view's own legend left out
        changed = np.abs(img.astype(int) - without.astype(int)).max(axis=2) > 30
        changed[:, legend_x - 5:] = False
        return changed

    set_state(d, "opacity", 1.0)
    opaque = view_after_change(d, without)
    shown = overlay(opaque)
    assert shown.sum() > 2000, shown.sum()
    # at full opacity the overlay pixels ARE the colormap (inferno, from the card's display threshold up)
    assert (colour_distance(opaque[shown], inferno) < 25).mean() > 0.9
    set_state(d, "opacity", 0.6)
    blended_image = view_after_change(d, opaque)
    blended = overlay(blended_image)
    assert 0.8 * shown.sum() < blended.sum() <= shown.sum() * 1.05
    set_state(d, "threshold", state(d, "threshold_max") * 0.999)  # nothing is above: no overlay left
    view_until(d, lambda img: int(overlay(img).sum()), lambda n: n < 0.02 * shown.sum(), what="overlay pixels")
    set_state(d, "threshold", state(d, "threshold_min"))  # everything is coloured
    view_until(d, lambda img: int(overlay(img).sum()), lambda n: n > 1.5 * shown.sum(), what="overlay pixels")
    # region 1, the alternative (the model's most probable other class), save
    click(d, "uq-next")
    wait_for(lambda: state(d, "current_region") == 1, 30, what="region 1")
    click(d, "uq-accept-alternative")
    wait_for(lambda: state(d, "regions")[0]["status"] == "corrected", 120, what="the alternative")
    settled_view(d)
    click(d, "uq-next")  # region 2: accepted as the model has it; region 3: marked corrected; Previous goes back
    wait_for(lambda: state(d, "current_region") == 2, 30, what="region 2")
    click(d, "uq-accept")
    click(d, "uq-next")
    wait_for(lambda: state(d, "current_region") == 3, 30, what="region 3")
    click(d, "uq-mark-corrected")
    wait_for(lambda: [r["status"] for r in state(d, "regions")[:3]] == ["corrected", "accepted", "corrected"], 30,
             what="the statuses")
    click(d, "uq-previous")
    wait_for(lambda: state(d, "current_region") == 2, 30, what="back to region 2")
    focus = np.array(state(d, "regions")[1]["focus"])
    wait_for(lambda: np.abs(np.array(state(d, "view_centre"))[:2] - focus[:2]).max() < 1.0, 10, what="the centre")
    click(d, "uq-save")
    wait_for(lambda: "Saved breast_mlo" in (state(d, "message") or ""), 30, what="the save")
    saved, header = nrrd.read(str(folder / "corrections" / "labels" / "breast_mlo.seg.nrrd"))
    model, _ = nrrd.read(str(folder / "breast_mlo" / "segmentation.seg.nrrd"))
    assert saved.shape == model.shape and (saved != model).sum() > 0
    record = json.loads((folder / "corrections" / "corrections" / "breast_mlo.json").read_text())
    assert [r["status"] for r in record["regions"][:3]] == ["corrected", "accepted", "corrected"]
    # paint restricted to the uncertain region: a 20 mm brush on a region's focus (the view's centre, where the
    # click lands) changes only voxels of the region's editable area (the region grown by 2 mm), although the disc
    # covers many voxels of another class outside it. The region and the class: those where an unrestricted brush
    # would change the most outside every uncertain area (much of this MLO's pectoral muscle is uncertain)
    threshold = region_threshold(d)
    distance = distance_to_uncertain(folder / "breast_mlo" / "uncertainty.nrrd", threshold)
    spacing = float(np.linalg.norm(header["space directions"], axis=1)[:2].max())
    labels = segment_labels(header)
    choices = []
    for region in state(d, "regions")[:12]:
        away = disc_mask(header, region["focus"], 20 - 2) & (distance > 2.0 + 2 * spacing)  # outside every area
        for sid, value in labels.items():
            choices.append((int((away & (saved != value)).sum()), region["id"], sid, away))
    _, region_id, segment, away = max(choices, key=lambda c: c[0])
    rows = d.find_elements(By.CSS_SELECTOR, "#uq-regions tr")[1:]
    next(r for r in rows if r.text.split()[0] == str(region_id)).click()
    wait_for(lambda: state(d, "current_region") == region_id, 30, what=f"region {region_id}")
    focus = np.array(next(r for r in state(d, "regions") if r["id"] == region_id)["focus"])
    wait_for(lambda: np.abs(np.array(state(d, "view_centre"))[:2] - focus[:2]).max() < 1.0, 10, what="the centre")
    centre = state(d, "view_centre")
    click(d, "uq-paint")
    wait_for(lambda: state(d, "paint_mode") and d.find_element(By.ID, "uq-paint-radius").is_displayed(), 10,
             what="paint mode")
    set_state(d, "paint_segment", segment)
    set_state(d, "paint_radius_mm", 20)
    wait_for(lambda: "brush 20 mm" in d.find_element(By.ID, "uq-paint-radius").text, 10, what="the brush size")
    before = settled_view(d)
    ActionChains(d).move_to_element(view_elements(d)[0]).click().perform()
    wait_for(lambda: "voxels changed" in (state(d, "message") or ""), 30, what="the paint")
    changed = int(state(d, "message").split("painted: ")[1].split()[0])
    view_after_change(d, before)
    assert next(r for r in state(d, "regions") if r["id"] == region_id)["status"] == "corrected"
    click(d, "uq-save")
    wait_for(lambda: "Saved breast_mlo" in (state(d, "message") or ""), 30, what="the save after painting")
    painted, _ = nrrd.read(str(folder / "corrections" / "labels" / "breast_mlo.seg.nrrd"))
    label = labels[segment]
    diff = painted != saved
    assert 0 < diff.sum() <= changed and (painted[diff] == label).all()
    assert not (diff & ~disc_mask(header, centre, 20 + 2)).any()  # inside the brush
    assert distance[diff].max() <= 2.0 + 1.5 * spacing  # inside the editable area
    outside = away & (saved != label)
    assert outside.sum() > 100, outside.sum()  # what an unrestricted brush would have changed: none of it changed
    no_traceback(d)


def region_threshold(d) -> float:
    """The uncertain regions' threshold as the page states it ("N uncertain regions (threshold X, source): ...")."""
    return float(state(d, "region_summary").split("(threshold ")[1].split(",")[0])


def segment_labels(header) -> dict:
    """Segment id → label value of a .seg.nrrd header."""
    return {header[k]: int(header[k[:-len("_ID")] + "_LabelValue"]) for k in header
            if k.startswith("Segment") and k.endswith("_ID")}


def distance_from(header, ras) -> np.ndarray:
    """Per voxel of an NRRD grid ([i, j, k], LPS header): the distance (mm) of its centre from the RAS point."""
    sizes = tuple(int(v) for v in header["sizes"])
    directions, origin = np.asarray(header["space directions"], float), np.asarray(header["space origin"], float)
    lps = np.array([-ras[0], -ras[1], ras[2]], float)
    world = np.indices(sizes).reshape(3, -1).T.astype(float) @ directions + origin
    return np.linalg.norm(world - lps, axis=1).reshape(sizes)


def disc_mask(header, ras, radius_mm: float) -> np.ndarray:
    """The voxels of an NRRD grid ([i, j, k], LPS header) within radius_mm of the RAS point, on the slice through
    it: the paint brush's disc (UQSegmentationWeb/painting.py), computed here from the file's own geometry."""
    sizes = tuple(int(v) for v in header["sizes"])
    directions, origin = np.asarray(header["space directions"], float), np.asarray(header["space origin"], float)
    lps = np.array([-ras[0], -ras[1], ras[2]], float)
    disc = distance_from(header, ras) <= radius_mm
    k = int(round(np.linalg.solve(directions.T, lps - origin)[2]))
    keep = np.zeros(sizes, bool)
    keep[..., min(max(k, 0), sizes[2] - 1)] = True
    return disc & keep


def distance_to_uncertain(path: Path, threshold: float) -> np.ndarray:
    """Per voxel of the overlay file: the distance (mm) to the nearest voxel at or above the regions' threshold (the
    page shows it to 3 digits: 1 % slack)."""
    import nrrd
    from scipy.ndimage import distance_transform_edt

    values, header = nrrd.read(str(path))
    spacing = np.linalg.norm(np.asarray(header["space directions"], float), axis=1)
    uncertain = values >= 0.99 * threshold
    if values.shape[2] == 1:
        return distance_transform_edt(~uncertain[..., 0], sampling=spacing[:2])[..., None]
    return distance_transform_edt(~uncertain, sampling=spacing)


def test_ct_overlay_3d_view_paint_undo_errors_and_save(folder, start_server, open_browser):
    import nrrd

    server = start_server(folder)
    d = open_browser()
    d.get(server.url)
    wait_for(lambda: state(d, "current_case") == "pectoral_mlo", 120, what="the first case")
    t0 = time.monotonic()
    wait_for(lambda: queue_row(d, "abdomen_ct"), 30, what="the CT in the queue").click()
    wait_for(lambda: state(d, "busy") and "Loading abdomen_ct" in state(d, "busy_message"), 10, 0.02,
             what="the progress of the load")
    assert d.find_element(By.ID, "uq-busy").is_displayed()  # the progress bar and its text while the CT loads
    wait_for(lambda: state(d, "current_case") == "abdomen_ct" and not state(d, "busy"), 90, what="the CT")
    _measured("ct_open_s", round(time.monotonic() - t0, 2))
    _measured("session_rss_mb_ct", round(rss_mb(child_pids(server.proc.pid)[0])))
    wait_for(lambda: len(view_elements(d)) == 2, 30, what="the 3-D view")
    three_d = settled_view(d, 1)
    seg_colours = np.array([[round(255 * c) for c in v] for v in _segment_colours(folder / "abdomen_ct")])
    assert (colour_distance(three_d, seg_colours) < 60).sum() > 500  # the organ surfaces in 3-D (shaded)
    screenshot(d, "ct")
    # paint before choosing a region: one line on the page, no traceback
    click(d, "uq-paint")
    wait_for(lambda: state(d, "paint_mode"), 10, what="paint mode")
    view = view_elements(d)[0]
    ActionChains(d).move_to_element(view).click().perform()
    wait_for(lambda: "select an uncertain region first" in (state(d, "error") or ""), 20, what="the error line")
    assert d.find_element(By.ID, "uq-error").is_displayed()
    no_traceback(d)
    click(d, "uq-next")
    wait_for(lambda: state(d, "current_region") == 1, 30, what="region 1")
    # paint the last listed organ (the model labels region 1 as liver or background; painting the label a voxel already
    # has changes nothing, as it should)
    set_state(d, "paint_segment", state(d, "paint_segments")[-1])
    before = settled_view(d)
    ActionChains(d).move_to_element(view).click().perform()  # the view's centre is the region's focus
    wait_for(lambda: "voxels changed" in (state(d, "message") or ""), 30, what="the paint")
    changed = int(state(d, "message").split("painted: ")[1].split()[0])
    assert changed > 0
    view_after_change(d, before)  # the painted disc is drawn
    click(d, "uq-undo")
    wait_for(lambda: not state(d, "can_undo"), 30, what="undo")
    wait_for(lambda: changed_pixels(view_image(d), before, 20) < 5, 30, 0.2, "the view as before the paint")
    ActionChains(d).move_to_element(view).click().perform()
    wait_for(lambda: state(d, "can_undo"), 30, what="the second paint")
    click(d, "uq-save")
    wait_for(lambda: "Saved abdomen_ct" in (state(d, "message") or ""), 60, what="the save")
    saved, header = nrrd.read(str(folder / "corrections" / "labels" / "abdomen_ct.seg.nrrd"))
    model, _ = nrrd.read(str(folder / "abdomen_ct" / "segmentation.seg.nrrd"))
    assert saved.shape == model.shape and 0 < (saved != model).sum() <= changed
    # accept the alternative — sample 2's labels — in region 1: only the region's voxels change, and to the sample's
    assert state(d, "alternatives") == ["sample 1", "sample 2", "sample 3"]
    threshold = region_threshold(d)
    before = settled_view(d)
    set_state(d, "alternative", 1)
    click(d, "uq-accept-alternative")
    wait_for(lambda: state(d, "regions")[0]["status"] == "corrected" and state(d, "can_undo"), 30,
             what="the alternative")
    view_after_change(d, before)
    click(d, "uq-save")
    wait_for(lambda: "Saved abdomen_ct" in (state(d, "message") or ""), 60, what="the second save")
    second, _ = nrrd.read(str(folder / "corrections" / "labels" / "abdomen_ct.seg.nrrd"))
    sample, _ = nrrd.read(str(folder / "abdomen_ct" / "sample_1.seg.nrrd"))
    taken = second != saved
    assert taken.sum() > 0 and (second[taken] == sample[taken]).all()
    distance = distance_to_uncertain(folder / "abdomen_ct" / "variance.nrrd", threshold)
    spacing = float(np.linalg.norm(header["space directions"], axis=1).max())
    assert distance[taken].max() <= spacing  # uncertain voxels (the edge voxel's centre at most)
    # ... of region 1: a region is at most CT_MAX_EXTENT_MM long along each axis and holds its focus, so every voxel
    # taken is within √3 of that from the focus; the sample differs from the labels in other regions too, farther
    # away, and none of that was taken
    from UQSegmentationLib.review.regions import CT_MAX_EXTENT_MM

    reach = np.sqrt(3.0) * CT_MAX_EXTENT_MM + spacing
    from_focus = distance_from(header, state(d, "regions")[0]["focus"])
    assert from_focus[taken].max() <= reach
    assert ((sample != saved) & (from_focus > reach)).sum() > 100
    no_traceback(d)


def _segment_colours(case_dir: Path) -> list:
    import nrrd

    header = nrrd.read_header(str(case_dir / "segmentation.seg.nrrd"))
    return [[float(v) for v in header[k].split()[:3]] for k in header if k.startswith("Segment") and
            k.endswith("_Color")]


def child_pids(pid: int) -> list[int]:
    """The PIDs whose parent is `pid` (Linux /proc): the front server's session processes."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return sorted(out)


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def session_of(pids: list[int], who: str) -> int:
    """The session process started for `who` (its command line has --who WHO)."""
    for pid in pids:
        args = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
        if b"--who" in args and args[args.index(b"--who") + 1].decode() == who:
            return pid
    raise AssertionError(f"no session process for {who} among {pids}")


def rss_mb(pid: int) -> float:
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def status_of(d, case: str) -> str:
    for row in d.find_elements(By.CSS_SELECTOR, "#uq-queue tr")[1:]:
        if row.text.split()[1:2] == [case]:
            return row.text
    return ""


def screenshot_pair(left, right, name: str) -> None:
    """Two browsers' pages side by side in one PNG (for the README)."""
    folder = os.environ.get("UQSEG_WEB_SCREENSHOTS")
    if folder:
        from PIL import Image

        a, b = Image.fromarray(page_image(left)), Image.fromarray(page_image(right))
        pair = Image.new("RGB", (a.width + b.width + 12, max(a.height, b.height)), (255, 255, 255))
        pair.paste(a, (0, 0))
        pair.paste(b, (a.width + 12, 0))
        Path(folder).mkdir(parents=True, exist_ok=True)
        pair.save(Path(folder) / f"review-{name}.png")


def test_two_people_on_one_server_each_their_own_session(folder, start_server, open_browser):
    """ONE `uqseg review` port, two browsers (separate profiles): each gets a process, case and view of its own; a
    case one of them has open is "being edited" for the other; the later of two saves of one case is refused on the
    page and nothing of the first is lost; a closed browser's process stops when idle, all stop with the server."""
    import hashlib

    server = start_server(folder, "--idle-minutes", "0.1")  # 6 s without a page: the session's process stops
    da, db = open_browser(), open_browser()
    for d, who in ((da, "alice"), (db, "bob")):
        d.get(server.url + f"?who={who}")
        assert d.find_element(By.ID, "uq-starting").is_displayed()  # the loading page while the process starts
        assert f"Starting your review session for {who}" in d.find_element(By.ID, "uq-starting").text
    for d in (da, db):  # each page reloads into its own app, which opens the most uncertain case
        wait_for(lambda d=d: state(d, "current_case") == "pectoral_mlo" and not state(d, "busy"), 180,
                 what="the first case")
    pids = wait_for(lambda: len(child_pids(server.proc.pid)) == 2 and child_pids(server.proc.pid), 10,
                    what="two session processes")
    alice_pid, bob_pid = session_of(pids, "alice"), session_of(pids, "bob")
    # each their own case and view: alice opens the chest film, bob stays on the mammogram
    chest_a = open_case(da, "chest")
    assert state(db, "current_case") == "pectoral_mlo" and state(db, "case_task") == "mammo-pectoral"
    assert state(da, "case_task") == "cxr-landmarks"
    mammo_b = settled_view(db)
    assert chest_a.shape != mammo_b.shape or changed_pixels(chest_a, mammo_b) > 0.2 * chest_a.shape[0] * \
        chest_a.shape[1]
    wait_for(lambda: "being edited by alice" in status_of(db, "chest"), 30, what="alice's mark in bob's queue")
    wait_for(lambda: "being edited by bob" in status_of(da, "pectoral_mlo"), 30, what="bob's mark in alice's queue")
    assert "being edited" not in status_of(da, "chest") and "being edited" not in status_of(db, "pectoral_mlo")
    _measured("session_rss_mb", {"alice (chest)": round(rss_mb(alice_pid)), "bob (mammogram)": round(rss_mb(bob_pid)),
                                 "front server": round(rss_mb(server.proc.pid))})
    # bob opens the chest too, before alice saves, and changes it
    open_case(db, "chest")
    assert db.find_element(By.ID, "uq-editing").is_displayed() and "alice" in db.find_element(By.ID, "uq-editing").text
    click(db, "uq-next")
    wait_for(lambda: state(db, "current_region") == 1, 30, what="bob's region 1")
    click(db, "uq-mark-corrected")
    wait_for(lambda: state(db, "regions")[0]["status"] == "corrected", 30, what="bob's change")
    # alice changes it and saves first
    click(da, "uq-next")
    wait_for(lambda: state(da, "current_region") == 1, 30, what="alice's region 1")
    click(da, "uq-accept")
    wait_for(lambda: state(da, "regions")[0]["status"] == "accepted", 30, what="alice's change")
    click(da, "uq-save")
    wait_for(lambda: "Saved chest" in (state(da, "message") or ""), 30, what="alice's save")
    root = folder / "corrections"
    record_path = root / "corrections" / "chest.json"
    record = json.loads(record_path.read_text())
    saved = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert record["regions"][0]["status"] == "accepted" and len(saved) >= 2
    # bob's save is refused, on his page, and writes nothing
    click(db, "uq-save")
    wait_for(lambda: state(db, "error"), 30, what="bob's refusal")
    error = db.find_element(By.ID, "uq-error")
    assert error.is_displayed() and "saved by someone else" in error.text and "nothing was written" in error.text
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == saved  # no file lost or changed
    for f in record["files"].values():  # alice's files are the ones her record lists
        assert hashlib.sha256((root / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert state(db, "regions")[0]["status"] == "corrected"  # bob's work is still on his page
    no_traceback(db)
    screenshot_pair(da, db, "two-reviewers")
    # bob closes his browser: his process stops after the idle time (its mark goes with it); alice's goes on
    db.quit()
    wait_for(lambda: not alive(bob_pid), 60, 0.5, "bob's session process to stop")
    # the server reaps it: right after the exit it can still be listed as a zombie child for a moment
    wait_for(lambda: child_pids(server.proc.pid) == [alice_pid], 15, 0.2, "the server to reap bob's process")
    assert alive(alice_pid)
    wait_for(lambda: "saved" in status_of(da, "chest") and "being edited" not in status_of(da, "chest"), 30,
             what="bob's mark to go from alice's queue")
    # the server stops: every session process stops with it, and no mark is left
    server.stop()
    wait_for(lambda: not alive(alice_pid), 20, 0.2, "alice's session process to stop")
    assert not list((folder / ".review").rglob("*.json"))


def test_command_line_refusals_and_a_task_run_first(folder, tmp_path, start_server):
    def run(*args):
        p = subprocess.run([sys.executable, "-m", "uqseg.cli", "review", *map(str, args)], capture_output=True,
                           text=True, cwd=REPO, timeout=120)
        return p.returncode, p.stderr.strip().splitlines()

    rc, err = run(tmp_path / "missing")
    assert rc == 2 and err == [f"error: {tmp_path / 'missing'}: no such folder"]
    (tmp_path / "empty").mkdir()
    rc, err = run(tmp_path / "empty")
    assert rc == 2 and len(err) == 1 and "holds no results of `uqseg predict`" in err[0]
    rc, err = run(folder, "--max-sessions", "0")
    assert rc == 2 and len(err) == 1 and "--max-sessions must be at least 1" in err[0]
    rc, err = run(folder, "--host", "0.0.0.0")
    assert rc == 2 and len(err) == 1 and "--allow-remote" in err[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        rc, err = run(folder, "--port", taken.getsockname()[1])
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: server: cannot listen on 127.0.0.1:")
    # --task: the batch driver runs first (its PROGRESS lines), then the folder is served
    from uqseg.sample_data import sample_dir

    out = tmp_path / "run"
    server = start_server("--task", "mammo-pectoral", sample_dir("mammo-mlo") / "mlo.dcm", "--out", out)
    assert any(line.startswith("PROGRESS 1.000") for line in server.lines)
    assert (out / "mlo" / "summary.json").is_file()
    import urllib.request

    with urllib.request.urlopen(server.url, timeout=30) as response:
        assert response.status == 200
    # another address than 127.0.0.1 only with --allow-remote, and with a warning (127.0.0.2: still this machine)
    remote = start_server(folder, "--host", "127.0.0.2", "--allow-remote")
    assert remote.url.startswith("http://127.0.0.2:")
    assert f"warning: serving {folder} on 127.0.0.2:{remote.port} to the network, without a login" in \
        remote.log.read_text()
    # --max-sessions 1: the first browser session gets its cookie and the loading page; a second one is told the
    # server is full (HTTP 503), and a request of no session for the app (the websocket, a script) is not relayed
    import http.cookiejar
    import urllib.error

    one = start_server(folder, "--max-sessions", "1")
    jar = http.cookiejar.CookieJar()
    first = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with first.open(one.url + "?who=carol", timeout=30) as response:
        assert "Starting your review session for <b>carol</b>" in response.read().decode()
    assert [c.name for c in jar] == [f"uqseg-review-{one.port}"]
    for path, words in (("", "limit of 1 review sessions"), ("ws", "Reload the page")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(one.url + path, timeout=30)
        assert refused.value.code == 503 and words in refused.value.read().decode()


@pytest.fixture
def thorax_folder(tmp_path):
    """A ct-organs prediction of a real thorax CT (the pulmonary report crop of ../shared: anatomy outside the
    abdomen the model was trained on), in its own review folder."""
    from ct_ood_checks import THORAX

    from uqseg.tasks.run import run_cases, write_queue

    src = THORAX["thorax_pulmonary"]
    if not src.is_file():
        pytest.skip(f"{src}: ../shared/data is absent")
    inputs, out = tmp_path / "inputs", tmp_path / "review"
    inputs.mkdir()
    shutil.copyfile(src, inputs / "thorax_ct.nii.gz")
    report = run_cases("ct-organs", [str(inputs / "thorax_ct.nii.gz")], out, device="cpu", samples=5, seed=0)
    assert not report.errors, report.errors
    write_queue(out, report.summaries)
    return out


def test_ct_ood_map_switch_legend_and_colours(thorax_folder, start_server, open_browser):
    """The out-of-distribution map in the browser (issue 18): the thorax case is flagged `ood` in the queue; the
    switch puts the OOD map in the slice view — viridis from the model's OOD threshold up, its own legend and
    threshold — and back to the variance as it was."""
    import nrrd

    summary = json.loads((thorax_folder / "thorax_ct" / "summary.json").read_text())
    threshold = summary["ood_map"]["threshold"]
    ood, _ = nrrd.read(str(thorax_folder / "thorax_ct" / "ood.nrrd"))
    assert summary["ood"] and (ood > threshold).mean() > 0.1  # the input: a real OOD case
    server = start_server(thorax_folder)
    d = open_browser()
    d.get(server.url)
    wait_for(lambda: state(d, "current_case") == "thorax_ct" and not state(d, "busy"), 120, what="the thorax CT")
    row = wait_for(lambda: queue_row(d, "thorax_ct"), 30, what="the case in the queue")
    assert "ood" in row.text.replace(",", " ").split(), row.text
    assert state(d, "has_ood") and not state(d, "show_ood")
    assert state(d, "legend")["title"] == "variance"
    viridis = colormap_table("viridis")
    set_state(d, "opacity", 0.0)
    plain = view_until(d, lambda img: img.shape, lambda _: True)  # the CT and the segment outlines, no overlay
    set_state(d, "opacity", 1.0)
    # the variance view as the page shows it (on the slice the review opens, the smooth closed-form variance of this
    # case need not show anything outside the predicted segments, so the view may equal `plain`)
    time.sleep(1.0)
    variance_view = settled_view(d)
    variance_threshold = state(d, "threshold")

    def image_part(img):  # left of the in-view colour legend (Slicer draws one per overlay at the right edge)
        return img[:, : int(0.78 * img.shape[1])]

    def overlay(img):
        return np.abs(image_part(img).astype(int) - image_part(plain).astype(int)).max(axis=2) > 30

    def coloured(img, table):
        shown = overlay(img)
        part = image_part(img)
        return int(shown.sum()), round(float((colour_distance(part[shown], table) < 25).mean()), 3) if shown.any() else 0.0

    click(d, "uq-ood")
    wait_for(lambda: state(d, "show_ood") and (state(d, "legend") or {}).get("title") == "out of distribution", 30,
             what="the OOD legend")
    legend = state(d, "legend")
    assert legend["units"] == "k-NN distance" and legend["min"] == pytest.approx(threshold, rel=1e-4)
    assert state(d, "threshold") == pytest.approx(threshold, rel=1e-4)
    ood_view = view_until(d, lambda img: coloured(img, viridis), lambda v: v[0] > 2000 and v[1] > 0.9,
                          what="viridis OOD pixels (count, share)")
    screenshot(d, "ct-ood")
    # raising the threshold past the map's maximum leaves nothing coloured; back at the model's threshold, as before
    set_state(d, "threshold", state(d, "threshold_max") * 0.999)
    view_until(d, lambda img: int(overlay(img).sum()), lambda n: n < 200, what="OOD pixels above the maximum")
    set_state(d, "threshold", threshold)
    view_until(d, lambda img: changed_pixels(image_part(img), image_part(ood_view)), lambda n: n < 50,
               what="the OOD view as before")
    click(d, "uq-ood")  # back to the variance, as it was
    wait_for(lambda: not state(d, "show_ood") and state(d, "legend")["title"] == "variance", 30,
             what="the variance legend")
    # the variance's own threshold again (a slider snapping to the OOD map's steps once set it to 0)
    wait_for(lambda: state(d, "threshold") == pytest.approx(variance_threshold, rel=1e-6), 10,
             what=f"the variance threshold {variance_threshold}, not {state(d, 'threshold')}")
    view_until(d, lambda img: changed_pixels(image_part(img), image_part(variance_view)), lambda n: n < 50,
               what="the variance view")
    no_traceback(d)
