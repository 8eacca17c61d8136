"""Captum's own tests as xattr's acceptance check (issue 16).

Runs Captum's test files for the explainers both libraries name twice, in two pytest
processes on temporary copies of the files: once as they are (on Captum), once with
xattr's classes swapped in for Captum's. The figure is, of the tests that pass on Captum,
the share that passes on xattr (target: >= 95%).

The swap happens in the child pytest process before collection (``pytest_configure`` of
this module, loaded with ``-p bench.captum_acceptance``): every name of :data:`SWAPPED` is
replaced in ``captum.attr`` and in the module that defines Captum's class (the test files
import ``from captum.attr._core.<module> import <Name>``), after ``captum.attr`` has been
imported whole, so Captum's own modules keep Captum's classes. A name xattr does not
export is replaced by a placeholder whose constructor raises (its tests fail: the method is
missing, they must not pass on Captum's class). Each test's record says which swapped
classes it constructed, so the tables also show the tests that never touch xattr (helper
functions, Captum-only classes such as ``LimeBase``).

Captum's tests are not in its wheel (nor in the 0.9.0 sdist): they are taken from the
repository at the commit the release was built from (:data:`SOURCES`), found in a local
git mirror, checked file by file against the installed ``captum`` package, and cached
outside the repository (``~/.cache/xattr/captum-tests/<version>``, or ``--tests DIR`` /
``$XATTR_CAPTUM_TESTS``). Captum's test files need ``parameterized`` (the ``bench`` extra).

    .venv/bin/python -m bench.captum_acceptance                 # both runs, writes bench/results/
    .venv/bin/python -m bench.captum_acceptance --only Lime -k batch   # iterate (prints only)
    .venv/bin/python -m bench.captum_acceptance --quick         # Saliency only, prints only

Both runs use ``-p no:cacheprovider``, no xdist, no ``-x`` (every test is counted), and run
side by side (``--jobs 1`` runs them one after the other). Captum's side depends only on
the test files, the ``-k`` filter and the versions: its records are cached next to the
tests (keyed by a hash of those; ``--rerun-captum`` runs it again), so a re-run costs the
xattr side only. Results:
``bench/results/captum_acceptance.{json,md}``: per explainer (its test files) and overall,
the tests passing on Captum and how many of those pass on xattr, the failing test ids with
the first line of each failure, and the failures by group (:data:`GROUPS`: rules on the
test id and the message, first match wins, so a re-run gives the same table).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "captum_acceptance"

# the Captum class names both libraries name (issue 16); xattr's class of the same name
# replaces Captum's, whatever xattr exports when the harness runs
SWAPPED = (
    "Saliency",
    "InputXGradient",
    "IntegratedGradients",
    "NoiseTunnel",
    "GradientShap",
    "FeatureAblation",
    "FeaturePermutation",
    "Occlusion",
    "KernelShap",
    "Lime",
    "ShapleyValueSampling",
    "ShapleyValues",
    "LayerIntegratedGradients",
    "DeepLift",
    "DeepLiftShap",
    "GuidedBackprop",
    "Deconvolution",
    "GuidedGradCam",
    "LayerGradCam",
)

# one row per explainer: its own test files (under the tests folder); a test belongs to the
# row of its file, so the rows add up to the total. NoiseTunnel has no file of its own: its
# row (not added to the total) is the tests that construct xattr's NoiseTunnel.
SUITES: dict[str, tuple[str, ...]] = {
    "Saliency": ("attr/test_saliency.py",),
    "InputXGradient": ("attr/test_input_x_gradient.py",),
    "IntegratedGradients": (
        "attr/test_integrated_gradients_basic.py",
        "attr/test_integrated_gradients_classification.py",
    ),
    "GradientShap": ("attr/test_gradient_shap.py",),
    "FeatureAblation": ("attr/test_feature_ablation.py",),
    "FeaturePermutation": ("attr/test_feature_permutation.py",),
    "Occlusion": ("attr/test_occlusion.py",),
    "KernelShap": ("attr/test_kernel_shap.py",),
    "Lime": ("attr/test_lime.py",),
    "ShapleyValueSampling / ShapleyValues": ("attr/test_shapley.py",),
    "LayerIntegratedGradients": ("attr/layer/test_layer_integrated_gradients.py",),
    "DeepLift / DeepLiftShap": (
        "attr/test_deeplift_basic.py",
        "attr/test_deeplift_classification.py",
    ),
    "GuidedBackprop": ("attr/test_guided_backprop.py",),
    "Deconvolution": ("attr/test_deconvolution.py",),
    "GuidedGradCam": ("attr/test_guided_grad_cam.py",),
    "LayerGradCam": ("attr/layer/test_grad_cam.py",),
}
CROSS_ROWS = ("NoiseTunnel",)


@dataclass(frozen=True)
class Source:
    """Where a Captum release's tests come from: its repository at the release's commit."""

    repo: str  # owner/name on GitHub (its mirror's folder is owner+name)
    commit: str


# the commit each release was built from; the installed package is checked against it
SOURCES = {
    # "Use include list for package discovery ..." (16 Apr 2026), the last commit before
    # the 0.9.0 upload: its captum/ equals the 0.9.0 wheel but for __version__
    "0.9.0": Source("aobo-y/captum", "1957cdd292413eded293a0b9b62333a53b7d81d0"),
}
MIRRORS = (Path("/work/.mirror"),)  # where `fetch`-style mirrors live: <owner>+<name>/repo

# The failure groups of issue 16, in the order they are tried: (name, rule). A rule is a
# regular expression searched in "<test id> | <first line of the failure>" (case-insensitive).
# Order matters: the first group that matches takes the test.
GROUPS: tuple[tuple[str, str], ...] = (
    ("missing class", r"xattr does not export"),
    ("attribute_future / Futures", r"future"),
    ("attribution dtype (Captum's FeatureAblation: the output's)", r"torch\.\w+ != torch\.\w+"),
    ("aggregate mode (one output per batch)", r"agg|scalar|batch_output|one value"),
    ("progress bar output (show_progress)", r"show_progress|progress output"),
    ("bool inputs", r"bool"),
    ("Occlusion argument forms", r"occlusion.*(stride|window|shape|sliding)"),
    ("half / bfloat16 / int64", r"half|bfloat16|float16|int64|int32|int_to_|_int_"),
    ("float feature_mask", r"float.*mask|mask.*float"),
    ("Lime interpretable models", r"lime.*(sgd|interpretable|model)|linear_model"),
    ("empty batches / batch-size rules", r"empty|batch size|batch_size|number of examples"),
    ("several outputs per example, target=None", r"multi_task|values per example; give"),
    ("errors: AssertionError vs ValueError", r"assertionerror: \S+ not raised|raises|wrong_usage"),
    ("values differ (sampling, numerics)", r"differ more than|not almost equal|mismatch"),
)
OTHER = "other"

MODE_ENV = "XATTR_CAPTUM_ACCEPTANCE_MODE"  # "captum" | "xattr" (set only in the child)
OUT_ENV = "XATTR_CAPTUM_ACCEPTANCE_OUT"  # the child's record file (JSON lines)


# ---------------------------------------------------------------------------------------
# the child: pytest plugin (loaded with -p bench.captum_acceptance)


class _Missing:
    """Stands for a Captum class xattr does not export: constructing it fails."""

    swapped_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"xattr does not export {self.swapped_name}")


def swap_in_xattr(names: Iterable[str] = SWAPPED) -> dict[str, dict[str, Any]]:
    """Replaces each Captum class of ``names`` by xattr's (or a :class:`_Missing`) in
    ``captum.attr`` and in the module that defines it; returns what was done per name
    (``xattr``: the replacement's qualified name or None, ``modules``: where).

    Call it before any test module is imported (Captum's modules imported before keep
    Captum's classes: ``captum.attr`` is imported whole first).
    """
    import captum.attr

    import xattr

    done: dict[str, dict[str, Any]] = {}
    for name in names:
        original = getattr(captum.attr, name)
        home = sys.modules[original.__module__]
        replacement = getattr(xattr, name, None)
        if not isinstance(replacement, type):
            replacement = type(name, (_Missing,), {"swapped_name": name})
            qualified = None
        else:
            qualified = f"{replacement.__module__}.{replacement.__qualname__}"
        modules = []
        for module in (captum.attr, home):
            if getattr(module, name, None) is original:
                setattr(module, name, replacement)
                modules.append(module.__name__)
        done[name] = {"xattr": qualified, "modules": modules}
    return done


def _track_constructions(names: Iterable[str], used: set[str]) -> None:
    """Wraps the ``__init__`` of the classes now in ``captum.attr`` under ``names`` so that
    constructing one adds its name to ``used`` (only for the class itself, not for a
    subclass calling ``super().__init__``); behaviour is unchanged."""
    import captum.attr

    for name in names:
        cls = getattr(captum.attr, name)
        init = cls.__init__

        def tracked(self: Any, *args: Any, _cls=cls, _init=init, _name=name, **kw: Any) -> None:
            if type(self) is _cls:
                used.add(_name)
            _init(self, *args, **kw)

        functools.update_wrapper(tracked, init)
        cls.__init__ = tracked


def first_line(report: Any) -> str:
    """The first non-empty line of a pytest report's failure (the exception line)."""
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        text = crash.message
    elif isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        text = str(longrepr[2])
    else:
        text = str(longrepr)
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line[:400]


class Recorder:
    """Records every test's outcome (passed / failed / skipped: failed if any phase or
    subtest failed), its first failure line and the swapped classes it constructed, one
    JSON line per finished test (so a run cut short keeps what finished)."""

    def __init__(self, path: str, used: set[str]) -> None:
        self.path = path
        self.used = used
        self.current: dict[str, dict[str, Any]] = {}
        with open(self.path, "w"):
            pass

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self._write({"collect_error": report.nodeid, "message": first_line(report)})

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.used.clear()
        self.current[nodeid] = {"id": nodeid, "outcome": "passed", "message": ""}

    def pytest_runtest_logreport(self, report: Any) -> None:
        rec = self.current.setdefault(
            report.nodeid, {"id": report.nodeid, "outcome": "passed", "message": ""}
        )
        if report.failed:
            if rec["outcome"] != "failed":
                rec["message"] = first_line(report)
                if report.when != "call":
                    rec["message"] = f"[{report.when}] {rec['message']}"
            rec["outcome"] = "failed"
        elif report.skipped and rec["outcome"] == "passed":
            rec["outcome"] = "skipped"
            rec["message"] = first_line(report)

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        rec = self.current.pop(nodeid, {"id": nodeid, "outcome": "passed", "message": ""})
        rec["constructed"] = sorted(self.used)
        self._write(rec)


def pytest_configure(config: Any) -> None:
    """Child side: swap (xattr mode) and start recording; nothing without the harness's
    environment variables (so importing this module as a plugin by mistake is harmless)."""
    mode, out = os.environ.get(MODE_ENV), os.environ.get(OUT_ENV)
    if mode is None or out is None:
        return
    import captum.attr  # noqa: F401  (whole, before any test module)

    swapped = swap_in_xattr() if mode == "xattr" else {}
    used: set[str] = set()
    _track_constructions(SWAPPED, used)
    recorder = Recorder(out, used)
    recorder._write({"swapped": swapped})
    config.pluginmanager.register(recorder, "xattr-captum-acceptance")


# ---------------------------------------------------------------------------------------
# the tests: found, checked against the installed captum, cached


def _captum_package() -> tuple[str, Path]:
    import captum

    return captum.__version__, Path(captum.__file__).resolve().parent


def _git(git_dir: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], input=stdin, capture_output=True, check=True
    ).stdout


def check_source(git_dir: Path, commit: str, package: Path) -> list[str]:
    """The files of the installed ``captum`` package that differ from ``captum/`` at
    ``commit`` (``__init__.py`` compared without its ``__version__`` line)."""
    names = sorted(
        p.relative_to(package.parent).as_posix()
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    batch = _git(
        git_dir, "cat-file", "--batch", stdin="".join(f"{commit}:{n}\n" for n in names).encode()
    )
    differ, pos = [], 0
    for name in names:
        header_end = batch.index(b"\n", pos)
        header = batch[pos:header_end].split()
        if header[-1] == b"missing":
            differ.append(name)
            pos = header_end + 1
            continue
        size = int(header[2])
        blob = batch[header_end + 1 : header_end + 1 + size]
        pos = header_end + 1 + size + 1
        mine = (package.parent / name).read_bytes()
        if name == "captum/__init__.py":
            drop = re.compile(rb"^__version__ = .*$", re.M)
            mine, blob = drop.sub(b"", mine), drop.sub(b"", blob)
        if mine != blob:
            differ.append(name)
    return differ


def find_tests(tests: str | None = None) -> Path:
    """The folder holding Captum's ``tests/`` for the installed release: ``tests`` (or
    ``$XATTR_CAPTUM_TESTS``) when given, else the cache, else extracted from a local
    mirror of :data:`SOURCES` (checked against the installed package) into the cache.
    Raises FileNotFoundError saying what to do when none is found."""
    given = tests or os.environ.get("XATTR_CAPTUM_TESTS")
    if given:
        path = Path(given).expanduser()
        if not (path / "tests" / "attr").is_dir():
            raise FileNotFoundError(f"--tests: {path} has no tests/attr folder")
        return path
    version, package = _captum_package()
    cache = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    cache = cache / "xattr" / "captum-tests" / version
    if (cache / "SOURCE.json").is_file() and (cache / "tests" / "attr").is_dir():
        return cache
    source = SOURCES.get(version)
    if source is None:
        raise FileNotFoundError(
            f"captum {version}: no known source of its tests (SOURCES has "
            f"{sorted(SOURCES)}); pass --tests DIR (a folder holding its tests/)"
        )
    for root in MIRRORS:
        git_dir = root / source.repo.replace("/", "+") / "repo"
        if not git_dir.is_dir():
            continue
        try:
            _git(git_dir, "cat-file", "-e", f"{source.commit}^{{commit}}")
        except subprocess.CalledProcessError:
            continue
        differ = check_source(git_dir, source.commit, package)
        if differ:
            raise FileNotFoundError(
                f"{source.repo}@{source.commit[:10]} is not the installed captum {version}: "
                f"{len(differ)} files differ ({', '.join(differ[:5])})"
            )
        tmp = Path(tempfile.mkdtemp(prefix="captum-tests-", dir=cache.parent.parent))
        archive = _git(git_dir, "archive", source.commit, "tests")
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        (tmp / "SOURCE.json").write_text(
            json.dumps({"repo": source.repo, "commit": source.commit, "captum": version}) + "\n"
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(cache, ignore_errors=True)
        tmp.rename(cache)
        return cache
    raise FileNotFoundError(
        f"captum {version}'s tests: no mirror of {source.repo} holding {source.commit[:10]} "
        f"under {', '.join(map(str, MIRRORS))}; pass --tests DIR (a checkout of "
        f"github.com/{source.repo} at that commit)"
    )


def tests_digest(root: Path, files: Sequence[str]) -> str:
    """SHA-256 over the test files run (names and bytes): the same figure needs the same."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + (root / "tests" / name).read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# the parent: two pytest runs, compared


def select_suites(only: str | None) -> dict[str, tuple[str, ...]]:
    """The rows whose name (or a name of a "A / B" row) equals ``only`` (case-insensitive);
    all rows for None. Raises ValueError naming the choices."""
    if only is None:
        return dict(SUITES)
    want = only.strip().lower()
    chosen = {
        row: files
        for row, files in SUITES.items()
        if want == row.lower() or want in (n.strip().lower() for n in row.split("/"))
    }
    if want in (r.lower() for r in CROSS_ROWS):  # its tests live in the other files
        chosen = dict(SUITES)
    if not chosen:
        names = sorted({n.strip() for row in SUITES for n in row.split("/")} | set(CROSS_ROWS))
        raise ValueError(f"--only: {only!r} is none of {', '.join(names)}")
    return chosen


def child_command(files: Sequence[str], keyword: str | None) -> list[str]:
    """The child's command line (run in the copy's root)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    cmd += ["-p", "bench.captum_acceptance", "-W", "ignore", "--tb=line", "--no-header"]
    cmd += [f"tests/{f}" for f in files]
    if keyword:
        cmd += ["-k", keyword]
    return cmd


def read_records(path: Path) -> dict[str, Any]:
    """A child's record file -> {"tests": {id: record}, "collect_errors": {file: message},
    "swapped": {...}}."""
    out: dict[str, Any] = {"tests": {}, "collect_errors": {}, "swapped": {}}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "swapped" in rec:
            out["swapped"] = rec["swapped"]
        elif "collect_error" in rec:
            out["collect_errors"][rec["collect_error"]] = rec["message"]
        else:
            out["tests"][rec["id"]] = rec
    return out


def start_run(mode: str, tests_root: Path, files: Sequence[str], keyword: str | None, work: Path):
    """Starts one child pytest on a fresh copy of the test files; returns (process, record
    path, log path)."""
    copy = work / mode
    shutil.copytree(tests_root / "tests", copy / "tests")
    (copy / "pytest.ini").write_text("[pytest]\n")  # this copy is the rootdir, no addopts
    record, log = work / f"{mode}.jsonl", work / f"{mode}.log"
    env = dict(os.environ, **{MODE_ENV: mode, OUT_ENV: str(record)})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYTHONWARNINGS", "ignore")
    proc = subprocess.Popen(
        child_command(files, keyword),
        cwd=copy,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )
    return proc, record, log


def run_both(
    tests_root: Path,
    files: Sequence[str],
    keyword: str | None,
    jobs: int,
    timeout: float,
    captum_cache: Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """Runs the files on Captum and on xattr (side by side for ``jobs`` >= 2); returns both
    runs' records and the seconds each took. A run past ``timeout`` seconds is stopped; its
    unfinished tests are missing from its records. With ``captum_cache`` (a file), the
    Captum run's records are read from it when it exists (Captum's outcomes depend only on
    the files, the filter and the versions, which its name holds), else written to it
    after a complete run."""
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    pending = ["captum", "xattr"]
    if captum_cache is not None and captum_cache.is_file():
        results["captum"] = json.loads(captum_cache.read_text())
        seconds["captum"] = 0.0
        pending = ["xattr"]
    with tempfile.TemporaryDirectory(prefix="captum-acceptance-") as tmp:
        work = Path(tmp)
        while pending:
            batch, pending = pending[: max(1, jobs)], pending[max(1, jobs) :]
            started = {
                m: (start_run(m, tests_root, files, keyword, work), time.time()) for m in batch
            }
            for mode, ((proc, record, log), t0) in started.items():
                try:
                    proc.wait(timeout=max(1.0, timeout - (time.time() - t0)))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    print(f"{mode} run stopped after {timeout:.0f} s", flush=True)
                seconds[mode] = time.time() - t0
                results[mode] = read_records(record)
                results[mode]["returncode"] = proc.returncode
                results[mode]["log_tail"] = log.read_text()[-2000:]
                complete = proc.returncode in (0, 1) and results[mode]["tests"]
                if mode == "captum" and captum_cache is not None and complete:
                    captum_cache.parent.mkdir(parents=True, exist_ok=True)
                    captum_cache.write_text(json.dumps(results[mode]) + "\n")
    return results["captum"], results["xattr"], seconds


def captum_cache_file(tests_root: Path, files: Sequence[str], keyword: str | None) -> Path:
    """Where the Captum run's records are kept: named by a hash of the test files, the
    ``-k`` filter and the versions of Python, torch and Captum."""
    import platform

    import torch

    version, _ = _captum_package()
    key = json.dumps(
        [
            tests_digest(tests_root, files),
            keyword,
            version,
            torch.__version__,
            platform.python_version(),
        ]
    )
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return cache / "xattr" / "captum-tests" / version / "runs" / f"captum-{name}.json"


def file_of(test_id: str) -> str:
    """ "tests/attr/x.py::Test::t" -> "attr/x.py"."""
    return test_id.split("::", 1)[0].removeprefix("tests/")


def classify(test_id: str, message: str) -> str:
    """The issue group of a failing test (:data:`GROUPS`, first match), or "other"."""
    text = f"{test_id} | {message}"
    for name, rule in GROUPS:
        if re.search(rule, text, re.I):
            return name
    return OTHER


def compare(captum: dict[str, Any], xattr_run: dict[str, Any], suites: dict[str, tuple[str, ...]]):
    """The acceptance tables from the two runs' records.

    A test counts when it passes on Captum; it passes on xattr when its xattr record says
    passed. One missing from the xattr run (a collection error, a run stopped early) or
    skipped there fails, with the reason as its message.
    """
    row_of = {f: row for row, files in suites.items() for f in files}
    rows: dict[str, dict[str, Any]] = {
        row: {"captum_pass": 0, "xattr_pass": 0, "exercising": 0, "exercising_pass": 0}
        for row in [*suites, *CROSS_ROWS]
    }
    for row in rows:
        rows[row].update(captum_tests=0)
    failures, not_on_captum = [], []
    for test_id, crec in sorted(captum["tests"].items()):
        row = row_of.get(file_of(test_id))
        if row is None:
            continue
        rows[row]["captum_tests"] += 1
        if crec["outcome"] != "passed":
            not_on_captum.append(
                {"id": test_id, "outcome": crec["outcome"], "message": crec["message"]}
            )
            continue
        xrec = xattr_run["tests"].get(test_id)
        if xrec is None:
            err = xattr_run["collect_errors"].get(test_id.split("::", 1)[0])
            message = f"not run on xattr: {err}" if err else "not run on xattr (run stopped?)"
            xrec = {"outcome": "failed", "message": message, "constructed": []}
        elif xrec["outcome"] == "skipped":
            xrec = dict(xrec, outcome="failed", message=f"skipped on xattr: {xrec['message']}")
        passed = xrec["outcome"] == "passed"
        constructed = xrec.get("constructed", [])
        targets = [row] + [r for r in CROSS_ROWS if r in constructed]
        for r in targets:
            rows[r]["captum_pass"] += 1
            rows[r]["xattr_pass"] += passed
            rows[r]["exercising"] += bool(constructed)
            rows[r]["exercising_pass"] += bool(constructed) and passed
        if not passed:
            failures.append(
                {
                    "id": test_id,
                    "row": row,
                    "group": classify(test_id, xrec["message"]),
                    "message": xrec["message"],
                    "constructed": constructed,
                }
            )
    for r in rows.values():
        r["figure"] = r["xattr_pass"] / r["captum_pass"] if r["captum_pass"] else None
    total = {
        k: sum(rows[r][k] for r in suites)
        for k in ("captum_tests", "captum_pass", "xattr_pass", "exercising", "exercising_pass")
    }
    total["figure"] = total["xattr_pass"] / total["captum_pass"] if total["captum_pass"] else None
    total["figure_exercising"] = (
        total["exercising_pass"] / total["exercising"] if total["exercising"] else None
    )
    groups: dict[str, int] = {name: 0 for name, _ in GROUPS}
    groups[OTHER] = 0
    for f in failures:
        groups[f["group"]] += 1
    return {
        "rows": rows,
        "total": total,
        "groups": groups,
        "failures": failures,
        "not_on_captum": not_on_captum,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown(report: dict[str, Any]) -> str:
    """The tables of a report (the .md file; also printed)."""
    res, meta = report["results"], report["meta"]
    lines = [
        "# Captum's own tests on xattr (issue 16 acceptance)",
        "",
        f"Captum {meta['captum']} tests from {meta['tests_source']}; "
        f"torch {meta['torch']}, xattr {meta['xattr']}; "
        f"command: `{meta['command']}`" + (f" (-k {meta['keyword']!r})" if meta["keyword"] else ""),
        "",
        "A test counts when it passes on Captum; **figure** = the share of those that pass with "
        "xattr's classes swapped in (target >= 95%). *exercising* = the tests that construct "
        "one of xattr's classes (the others test Captum's helpers or Captum-only classes).",
        "",
        "| explainer | Captum tests | pass on Captum | pass on xattr | figure "
        "| exercising xattr | of those pass |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row, r in res["rows"].items():
        cross = row in CROSS_ROWS
        name = f"{row} (inside the files above, not added)" if cross else row
        lines.append(
            f"| {name} | {'-' if cross else r['captum_tests']} | {r['captum_pass']} "
            f"| {r['xattr_pass']} | {_pct(r['figure'])} | {r['exercising']} "
            f"| {r['exercising_pass']} |"
        )
    t = res["total"]
    lines.append(
        f"| **total** | {t['captum_tests']} | {t['captum_pass']} | {t['xattr_pass']} "
        f"| **{_pct(t['figure'])}** | {t['exercising']} | {t['exercising_pass']} "
        f"({_pct(t['figure_exercising'])}) |"
    )
    swapped = report["swapped"]
    missing = [n for n, s in swapped.items() if s.get("xattr") is None]
    lines += ["", "Swapped in: " + ", ".join(n for n in swapped if n not in missing) + "."]
    if missing:
        lines.append(f"Not exported by xattr (their tests fail): {', '.join(missing)}.")
    lines += ["", "## Failures by group", "", "| group | failing tests |", "|---|---:|"]
    lines += [f"| {g} | {n} |" for g, n in res["groups"].items()]
    lines += ["", "## Failing tests (pass on Captum, fail on xattr)", ""]
    by_group: dict[str, list[dict[str, Any]]] = {}
    for f in res["failures"]:
        by_group.setdefault(f["group"], []).append(f)
    for group in res["groups"]:
        if group not in by_group:
            continue
        lines += [f"### {group}", ""]
        for f in by_group[group]:
            msg = f["message"].replace("|", "\\|").replace("`", "'")
            lines.append(f"- `{f['id']}`: {msg}")
        lines.append("")
    if res["not_on_captum"]:
        lines += ["## Not passing on Captum itself (not counted)", ""]
        for f in res["not_on_captum"]:
            lines.append(f"- `{f['id']}` ({f['outcome']}): {f['message']}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def regroup(stem: Path) -> int:
    """Re-classifies the failures of a saved report with the current :data:`GROUPS` and
    rewrites its .json and .md (the runs' records are unchanged)."""
    from bench._harness import write_results

    report = json.loads(stem.with_suffix(".json").read_text())
    res = report["results"]
    res["groups"] = {name: 0 for name, _ in GROUPS} | {OTHER: 0}
    for f in res["failures"]:
        f["group"] = classify(f["id"], f["message"])
        res["groups"][f["group"]] += 1
    write_results(stem, report, markdown(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=None, help="one explainer's test files (e.g. Lime)")
    ap.add_argument("-k", dest="keyword", default=None, help="passed to pytest -k")
    ap.add_argument("--quick", action="store_true", help="Saliency only, prints only")
    ap.add_argument("--tests", default=None, help="a folder holding Captum's tests/")
    ap.add_argument("--jobs", type=int, default=2, help="1: the two runs one after the other")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    ap.add_argument("--out", default=str(RESULTS), help="results stem (.json, .md)")
    ap.add_argument("--print-failures", action="store_true", help="print the failing list")
    ap.add_argument(
        "--rerun-captum", action="store_true", help="run Captum's side again (not the cache)"
    )
    ap.add_argument(
        "--regroup", action="store_true", help="re-apply GROUPS to the saved .json (no run)"
    )
    args = ap.parse_args(argv)
    if args.regroup:
        return regroup(Path(args.out))
    if args.quick:
        args.only = args.only or "Saliency"
    try:
        suites = select_suites(args.only)
    except ValueError as e:
        ap.error(str(e))
    try:
        tests_root = find_tests(args.tests)
    except FileNotFoundError as e:
        print(f"Captum's tests are not available: {e}", flush=True)
        return 0 if args.quick else 2
    files = [f for fs in suites.values() for f in fs]
    missing_files = [f for f in files if not (tests_root / "tests" / f).is_file()]
    if missing_files:
        print(f"not in {tests_root}/tests: {', '.join(missing_files)}", flush=True)
        return 2

    import torch

    import xattr
    from bench._harness import write_results

    version, _ = _captum_package()
    source_file = tests_root / "SOURCE.json"
    source = json.loads(source_file.read_text()) if source_file.is_file() else {}
    t0 = time.time()
    cache = None if args.rerun_captum else captum_cache_file(tests_root, files, args.keyword)
    cached = cache is not None and cache.is_file()
    captum_run, xattr_run, seconds = run_both(
        tests_root, files, args.keyword, args.jobs, args.timeout, cache
    )
    for mode, run in (("captum", captum_run), ("xattr", xattr_run)):
        if not run["tests"]:
            print(f"the {mode} run recorded no test:\n{run['log_tail']}", flush=True)
            return 2
    results = compare(captum_run, xattr_run, suites)
    report = {
        "meta": {
            "captum": version,
            "tests_source": (
                f"github.com/{source['repo']}@{source['commit'][:10]}"
                if source
                else str(tests_root)
            ),
            "tests_sha256": tests_digest(tests_root, files),
            "torch": torch.__version__,
            "xattr": xattr.__version__,
            "command": "python -m bench.captum_acceptance"
            + (f" --only {args.only}" if args.only else ""),
            "keyword": args.keyword,
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "captum_run_from_cache": cached,
            "wall_seconds": round(time.time() - t0, 1),
        },
        "swapped": xattr_run["swapped"],
        "results": results,
    }
    md = markdown(report)
    t = results["total"]
    print(
        f"pass on Captum: {t['captum_pass']}, of those pass on xattr: {t['xattr_pass']} "
        f"({_pct(t['figure'])}); runs took {report['meta']['seconds']} s",
        flush=True,
    )
    for row, r in results["rows"].items():
        print(f"  {row:40s} {r['xattr_pass']:4d} / {r['captum_pass']:4d}  {_pct(r['figure'])}")
    print("failures by group: " + ", ".join(f"{g}: {n}" for g, n in results["groups"].items() if n))
    if args.print_failures or args.only or args.keyword:
        for f in results["failures"]:
            print(f"  [{f['group']}] {f['id']}: {f['message']}")
    if not (args.quick or args.only or args.keyword):
        write_results(args.out, report, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
