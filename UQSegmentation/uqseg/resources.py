"""Working memory: an estimate per task, checked once per case before `task.run`, and the caps on `--samples`.

`check_case(task_id, image, card, samples, fast)` (called by `uqseg predict` after the input is read, before the
task runs) raises
- `SamplesError` when `samples` is above the task's cap `SAMPLE_CAPS`;
- `ResourceError` when the case's estimated working memory is above the limit;
and otherwise returns the `Estimate`. Both are InputErrors naming the file, like every refusal of `uqseg predict`:
one line `error: <file>: <reason>` for the case, the other cases go on, exit status 2. Nothing of the case's size
has been allocated by then beyond the input image itself.

Estimate (`estimate`): bytes the process needs ON TOP of what it holds before the case (Python, torch, the loaded
model and the input image itself), as a function of the input's shape and spacing and of the samples:

    mammo-pectoral  BASE + IN·P + WORK·Pw                   P input pixels, Pw the mammo-breast working grid
    mammo-breast    BASE + IN·P + WORK·Pw                   (0.4 mm, padded to 16; MC dropout runs 5 samples at a
                                                             time, so the samples add no memory)
    cxr-landmarks   BASE + IN·(P + S²) + DECODE·min(N+1, 512) + SAMPLE·N
                                                            S = the long side (the padded square), N samples
    ct-organs       BASE + WIN·Vw + WORK·W + IN·I + SAMPLE·k·min(W, 32768)
                                                            W voxels of the working grid (the model's isotropic
                                                            spacing over the input's bounding box, padded to
                                                            multiples of 8 × 16 × 16),
                                                            Vw those of one sliding window (≤ 64 × 192 × 192),
                                                            I input voxels, k samples (0 with --fast)

The coefficients (`COEFFICIENTS`) come from peak resident memory measured with `/usr/bin/time -v uqseg predict` on
the sample data and on 13 inputs made from it (docs/hostile-inputs.md, "Models and resources": the table of
estimate against measurement), rounded up: the estimate is an upper bound, 1.1–1.7 × the measured peak, not an exact
figure. Its purpose is to refuse, in milliseconds and with one line, a case that would otherwise exhaust the machine
(a CT whose header declares 10 mm voxels over 512 × 512 × 300 makes a working grid of 10^10 voxels).

Limit (`memory_limit`): `UQSEG_MEMORY_LIMIT` when set (bytes, or a number with K, M, G or T: binary units; e.g.
`UQSEG_MEMORY_LIMIT=4G`), else `MEMORY_FRACTION` (80 %) of the memory available now:
- Linux: MemAvailable of /proc/meminfo, and no more than the cgroup's limit minus its usage (containers);
- other POSIX systems: os.sysconf SC_AVPHYS_PAGES × SC_PAGE_SIZE, else SC_PHYS_PAGES × SC_PAGE_SIZE (the total:
  macOS has no available-memory figure in the standard library);
- Windows: GlobalMemoryStatusEx (ctypes);
- else `FALLBACK_AVAILABLE` (4 GiB).
No new dependencies. The estimate is of host memory; on a GPU the network's activations move to the device, so it
is then an over-estimate of the host side.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from uqseg.errors import InputError

MEMORY_FRACTION = 0.8
FALLBACK_AVAILABLE = 4 << 30

#: the most samples `--samples` may ask for, per task. mammo-pectoral draws no samples (its σ comes from one pass).
#: Monte-Carlo error of a mean falls as 1/√N of the spread: at the cap it is 3.2 % (mammo-breast, ct-organs) and 1 %
#: (cxr-landmarks), while time grows linearly in N (and cxr-landmarks' and ct-organs' sampling memory too).
SAMPLE_CAPS = {"mammo-breast": 1000, "cxr-landmarks": 10000, "ct-organs": 1000}
_SAMPLE_COST = {"mammo-breast": "time grows linearly with the samples",
                "cxr-landmarks": "time and memory grow linearly with the samples",
                "ct-organs": "time and the sampling memory grow linearly with the samples"}

#: bytes per unit (module docstring); "base" in bytes
COEFFICIENTS = {
    "mammo-pectoral": {"base": 120e6, "in": 34.0, "work": 300.0},
    "mammo-breast": {"base": 250e6, "in": 36.0, "work": 1000.0},
    "cxr-landmarks": {"base": 100e6, "in": 28.0, "decode": 80e3, "sample": 3e3},
    "ct-organs": {"base": 250e6, "win": 250.0, "work": 50.0, "in": 40.0, "sample": 32.0},
}
CT_WINDOW = (64, 192, 192)
CT_MULTIPLE = (8, 16, 16)  # (z, y, x): the network's size multiple and the noise tile
CT_SLAB_VOXELS = 32768
CXR_DECODE_CHUNK = 512
BREAST_MULTIPLE = 16


class ResourceError(InputError):
    """This case needs more working memory than the limit: the file and the reason, one line."""


class SamplesError(InputError):
    """`--samples` above the task's cap (per case, naming the file, like the other refusals)."""


@dataclass
class Estimate:
    task: str
    bytes: int
    detail: str  # the sizes the estimate was computed from, in words
    parts: dict = field(default_factory=dict)  # the terms, bytes


def fmt_bytes(n: float) -> str:
    """Binary units, as UQSEG_MEMORY_LIMIT's K, M, G, T."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.0f} KiB"


def _x(shape) -> str:
    return " x ".join(str(int(s)) for s in shape)


def _mm(values) -> str:
    return " x ".join(f"{float(v):g}" for v in values) + " mm"


# ---------------------------------------------------------------------------------------------------------- limit
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str) -> int:
    """'4G', '512M', '2.5G', '1000000' → bytes; ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"UQSEG_MEMORY_LIMIT={text!r}: not a size (e.g. 4G, 512M or a number of bytes)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """limit − usage of this process's cgroup (v2, else v1), None when unlimited or unknown."""
    pairs = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
             ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))
    for limit_file, usage_file in pairs:
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:
            return None
        return max(0, int(limit) - usage)
    return None


def _sysconf_available() -> int | None:
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return int(os.sysconf(pages)) * int(os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            continue
    return None


def _windows_available() -> int | None:
    if os.name != "nt":
        return None
    try:
        import ctypes

        class MemoryStatus(ctypes.Structure):
            _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                        ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                        ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                        ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                        ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

        status = MemoryStatus()
        status.dwLength = ctypes.sizeof(MemoryStatus)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
            return int(status.ullAvailPhys)
    except Exception:  # no ctypes / windll: fall back
        return None
    return None


def available_memory() -> tuple[int, str]:
    """(bytes, where the figure came from): the module docstring's order."""
    value = _meminfo_available()
    if value is not None:
        room = _cgroup_room()
        if room is not None and room < value:
            return room, "the cgroup's memory limit minus its usage"
        return value, "MemAvailable in /proc/meminfo"
    value = _windows_available()
    if value is not None:
        return value, "GlobalMemoryStatusEx"
    value = _sysconf_available()
    if value is not None:
        return value, "os.sysconf"
    return FALLBACK_AVAILABLE, "fallback (the available memory could not be read)"


def memory_limit() -> tuple[int, str]:
    """(bytes, a phrase saying where the limit comes from)."""
    env = os.environ.get("UQSEG_MEMORY_LIMIT", "").strip()
    if env:
        return parse_bytes(env), f"UQSEG_MEMORY_LIMIT={env}"
    available, source = available_memory()
    return int(available * MEMORY_FRACTION), f"{MEMORY_FRACTION:.0%} of the {fmt_bytes(available)} available, {source}"


# ------------------------------------------------------------------------------------------------------ estimates
def _round_up(n: int, m: int) -> int:
    return int(math.ceil(n / m) * m)


def _breast_work_pixels(image) -> tuple[int, tuple[int, int], str]:
    from uqseg.mammo.breast_preprocess import input_spacing, working_shape

    spacing, basis = input_spacing(image)
    h, w = working_shape(tuple(image.shape[:2]), spacing)
    return _round_up(h, BREAST_MULTIPLE) * _round_up(w, BREAST_MULTIPLE), (h, w), basis


def _estimate_mammo(task: str, image) -> Estimate:
    c = COEFFICIENTS[task]
    p = int(math.prod(image.shape))
    pw, work, _ = _breast_work_pixels(image)
    parts = {"base": c["base"], "input grid": c["in"] * p, "working grid": c["work"] * pw}
    detail = f"{_x(image.shape)} pixels, working grid {_x(work)} at 0.4 mm"
    return Estimate(task, int(sum(parts.values())), detail, parts)


def _estimate_cxr(image, samples: int | None, fast: bool) -> Estimate:
    c = COEFFICIENTS["cxr-landmarks"]
    from uqseg.cxr.inference import DEFAULT_SAMPLES

    n = 0 if fast else (DEFAULT_SAMPLES if samples is None else max(0, int(samples)))
    p = int(math.prod(image.shape))
    side = int(max(image.shape[:2]))
    parts = {"base": c["base"], "input grid": c["in"] * (p + side * side),
             "decoding": c["decode"] * min(n + 1, CXR_DECODE_CHUNK), "samples": c["sample"] * n}
    return Estimate("cxr-landmarks", int(sum(parts.values())), f"{_x(image.shape)} pixels, {n} samples", parts)


def ct_grid(image, card) -> tuple[tuple[int, int, int], float]:
    """(working-grid shape (z, y, x), spacing mm) of `image` for the model of `card`, from the header only."""
    from uqseg.ct.preprocess import working_grid

    spacing = float(((card.get("preprocessing") if card is not None else None) or {}).get("spacing_mm", 2.0))
    return tuple(int(s) for s in working_grid(image, spacing).shape), spacing


def _estimate_ct(image, card, samples: int | None, fast: bool) -> Estimate:
    from uqseg.ct.inference import DEFAULT_SAMPLES

    c = COEFFICIENTS["ct-organs"]
    k = 0 if fast else (DEFAULT_SAMPLES if samples is None else max(0, int(samples)))
    shape, spacing = ct_grid(image, card)
    padded = [_round_up(s, m) for s, m in zip(shape, CT_MULTIPLE)]
    w = int(math.prod(padded))
    vw = int(math.prod(min(r, s) for r, s in zip(CT_WINDOW, padded)))
    i = int(math.prod(image.shape))
    parts = {"base": c["base"], "window": c["win"] * vw, "working grid": c["work"] * w, "input grid": c["in"] * i,
             "samples": c["sample"] * k * min(w, CT_SLAB_VOXELS) if k else 0.0}
    detail = (f"working grid {_x(shape)} voxels at {spacing:g} mm from {_x(image.shape)} voxels of "
              f"{_mm(image.spacing)}, {k} samples")
    return Estimate("ct-organs", int(sum(parts.values())), detail, parts)


def estimate(task_id: str, image, card=None, samples: int | None = None, fast: bool = False) -> Estimate:
    """The working memory one case of `task_id` needs (module docstring), from the image's shape and geometry only
    (nothing of that size is allocated)."""
    if task_id in ("mammo-pectoral", "mammo-breast"):
        return _estimate_mammo(task_id, image)
    if task_id == "cxr-landmarks":
        return _estimate_cxr(image, samples, fast)
    if task_id == "ct-organs":
        return _estimate_ct(image, card, samples, fast)
    raise KeyError(f"no memory estimate for task {task_id!r}")


def check_samples(task_id: str, samples: int | None, path=None) -> None:
    """SamplesError when `samples` is above the task's cap."""
    cap = SAMPLE_CAPS.get(task_id)
    if cap is not None and samples is not None and int(samples) > cap:
        raise SamplesError(path, f"--samples {samples}: more than the {cap} samples {task_id} allows (the "
                                 f"Monte-Carlo error of a mean is 1/√N of the spread, {100 / math.sqrt(cap):.1f} % at "
                                 f"{cap}; {_SAMPLE_COST[task_id]}): use --samples {cap} or fewer")


def _hint(task_id: str, image) -> str:
    if task_id == "ct-organs":
        return (f"check the voxel spacing in the file's header ({_mm(image.spacing)}), or run it where more memory is "
                "free (UQSEG_MEMORY_LIMIT sets the limit)")
    return "free memory, or run it on a smaller image (UQSEG_MEMORY_LIMIT sets the limit)"


def check_case(task_id: str, image, card=None, samples: int | None = None, fast: bool = False) -> Estimate | None:
    """The checks of the module docstring for one case: SamplesError, ResourceError, else the Estimate (None when
    the image's geometry cannot be read: the task's own input checks refuse such an image with their reason)."""
    check_samples(task_id, samples, image.meta.get("path"))
    try:
        est = estimate(task_id, image, card, samples, fast)
    except (ValueError, TypeError, OverflowError, ZeroDivisionError, KeyError):
        return None  # a geometry the estimate cannot read (NaN spacing, ...): the task's own input checks refuse it
    limit, source = memory_limit()
    if est.bytes > limit:
        raise ResourceError(image.meta.get("path"),
                            f"{task_id} would need about {fmt_bytes(est.bytes)} of working memory ({est.detail}), "
                            f"more than the limit of {fmt_bytes(limit)} ({source}): refused before processing; "
                            f"{_hint(task_id, image)}")
    return est


__all__ = ["Estimate", "ResourceError", "SamplesError", "check_case", "check_samples", "estimate", "memory_limit",
           "available_memory", "SAMPLE_CAPS", "COEFFICIENTS", "MEMORY_FRACTION"]
