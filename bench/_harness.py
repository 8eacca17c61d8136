"""The benchmark harness that every script in bench/ and experiments/ uses: timing
(warm-up, interleaved repeats, medians, CUDA synchronisation), the machine report, the
allocator setting and the JSON / Markdown writer.

The scripts are modules of the ``bench`` and ``experiments`` packages, run from the
repository root::

    .venv/bin/python -m bench.bench_ops --quick
    .venv/bin/python -m experiments.mus_digits

>>> from bench._harness import interleaved
>>> s = interleaved({"sum": lambda: sum(range(100))}, repeats=3)
>>> len(s.seconds["sum"]), s.outputs["sum"]
(3, 4950)
"""

from __future__ import annotations

import ctypes
import datetime
import importlib.metadata
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import resource
except ImportError:  # not on Windows
    resource = None

import torch

import xattr
from xattr import _ext

# ------------------------------------------------------------------ timing


def synchronize() -> None:
    """Waits for queued CUDA work (a no-op in a process that has not used CUDA), so that
    a timing ends when the GPU's work does, not when it was launched."""
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where unknown)."""
    if resource is None:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds, result) of one call of ``fn``, CUDA work included."""
    synchronize()
    t0 = time.perf_counter()
    out = fn()
    synchronize()
    return time.perf_counter() - t0, out


def loop(fn: Callable[[], Any], number: int) -> tuple[float, float]:
    """(seconds, minor page faults) per call of ``fn``, over ``number`` calls."""
    synchronize()
    f0 = minor_faults()
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    synchronize()
    return (time.perf_counter() - t0) / number, (minor_faults() - f0) / number


def median(xs: list[float]) -> float:
    """The median (nan for no samples)."""
    return statistics.median(xs) if xs else math.nan


@dataclass
class Samples:
    """What :func:`interleaved` measured, per callable name."""

    seconds: dict[str, list[float]]  # seconds per call, one entry per repeat
    faults: dict[str, list[float]]  # minor page faults per call, one entry per repeat
    calls: dict[str, int]  # calls per timing
    outputs: dict[str, Any] = field(default_factory=dict)  # result of the last warm-up call

    def median(self, name: str) -> float:
        """Median seconds per call of ``name`` (nan without samples)."""
        return median(self.seconds[name])


def interleaved(
    fns: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    min_time: float = 0.0,
) -> Samples:
    """Times callables that do comparable work, so that drift of the machine hits them alike.

    Every callable first runs ``warmup`` times (at least once; the last result is kept in
    ``outputs``). One timing is a loop of enough calls to last ``min_time`` seconds (one
    call when 0, the default), measured from the last warm-up call. Then ``repeats``
    rounds each time every callable once, the order rotating from round to round
    (a, b, c; b, c, a; c, a, b; ...). Report medians (:meth:`Samples.median`).
    """
    names = list(fns)
    calls: dict[str, int] = {}
    outputs: dict[str, Any] = {}
    for n in names:
        t = 0.0
        for _ in range(max(warmup, 1)):
            t, outputs[n] = timed(fns[n])
        calls[n] = 1 if t >= min_time else min(10_000, math.ceil(min_time / max(t, 1e-7)))
    seconds: dict[str, list[float]] = {n: [] for n in names}
    faults: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names) if names else 0
        for n in names[k:] + names[:k]:
            t, f = loop(fns[n], calls[n])
            seconds[n].append(t)
            faults[n].append(f)
    return Samples(seconds, faults, calls, outputs)


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[float, Any]:
    """(median seconds over ``repeats`` calls after ``warmup`` calls, the warm-up's result)."""
    s = interleaved({"fn": fn}, repeats, warmup)
    return s.median("fn"), s.outputs["fn"]


def iqr(s: list[float]) -> float:
    """Interquartile range of the samples (0 for fewer than two)."""
    if len(s) < 2:
        return 0.0
    q = statistics.quantiles(s, n=4)
    return q[2] - q[0]


# ------------------------------------------------------------------ memory
MALLOC_MODES = ("reuse", "fresh", "system")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # glibc's mallopt


def set_malloc(mode: str) -> str:
    """Makes large allocations behave the same in every case; returns the mode in effect.

    torch's CPU tensors come from malloc. With glibc's defaults, a large output is
    either fresh mmap'ed memory (one page fault per 4 KiB on first touch: about 12k
    for 50 MB, often most of a memory-bound op's time) or a free chunk of the heap
    (no faults), depending on what earlier cases freed, so the same op can take 5x
    longer in one run than in another. ``reuse`` keeps freed memory in the heap and
    reuses it (as a caching allocator does: compute and bandwidth only); ``fresh``
    gives every allocation of 1 MiB or more fresh pages; ``system`` leaves glibc alone.
    """
    if mode not in MALLOC_MODES:
        raise ValueError(f"mode: expected one of {MALLOC_MODES}, got {mode!r}")
    if mode == "system":
        return mode
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        print(f"note: no glibc mallopt here; --malloc {mode} ignored", flush=True)
        return "system"
    if mode == "reuse":
        ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    else:
        ok = mallopt(_M_MMAP_THRESHOLD, 1 << 20) == 1
    return mode if ok else "system"


# ------------------------------------------------------------------ the machine
def cpu_name() -> str:
    """The CPU's model name."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> list[float] | None:
    """The system load: other processes on the cores skew the timings (and stall
    OpenMP barriers), so a run on a busy machine is worth repeating."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def version(name: str) -> str:
    """An installed package's version, or "not installed"."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def installed(name: str) -> bool:
    return version(name) != "not installed"


def require(names: list[str]) -> None:
    """A full run (one that writes results) needs every package it measures or compares
    with; --quick runs skip what is missing."""
    missing = [n for n in names if not installed(n)]
    if missing:
        raise SystemExit(
            f"{', '.join(missing)} not installed: a full run needs them "
            "(make experiments-install); --quick runs without them"
        )


def library_stamp() -> dict[str, str] | None:
    """Path and build time of the loaded ``xattr._C``: which kernels were timed."""
    lib = _ext.lib() if xattr.kernels_available() else None
    path = getattr(lib, "__file__", None)
    if not path:
        return None
    built = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
    return {"path": path, "built": built.isoformat(timespec="seconds")}


def machine_info(libraries: tuple[str, ...] = ()) -> dict[str, Any]:
    """The machine, the versions (torch, xattr and ``libraries``), the threads, the
    kernels, the OpenMP / MKL environment and the load now (``loadavg_before``; a script
    adds ``loadavg_after`` at its end)."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    for name in libraries:
        info[name] = version(name)
    info.update(
        xattr=xattr.__version__,
        kernels_available=xattr.kernels_available(),
        kernel_library=library_stamp(),
        threads=torch.get_num_threads(),
        interop_threads=torch.get_num_interop_threads(),
        mkl=torch.backends.mkl.is_available(),
        openmp=torch.backends.openmp.is_available(),
        env={
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith(("OMP_", "GOMP_", "MKL_", "KMP_"))
        },
        loadavg_before=loadavg(),
    )
    return info


# ------------------------------------------------------------------ results
def write_results(stem: str | Path, report: Any, markdown: str, indent: int = 1) -> None:
    """Writes ``report`` to ``stem.json`` and ``markdown`` to ``stem.md`` (creating the
    folder) and says so."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=indent) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}", flush=True)
