"""Every benchmark script runs: a quick smoke run of each, so that a benchmark the
README quotes cannot break unnoticed (as bench_ops.py once did when an op gained an
argument). Libraries a script compares with but that are not installed (shap, Quantus)
are skipped by the scripts' --quick mode; the rest of each script runs for real and
checks its own results (each compares xattr with a reference)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

SCRIPTS = {
    "bench_ops.py": ["--quick"],
    "bench_amortized.py": ["--quick"],
    "bench_bounds.py": ["--quick"],
    "bench_explainers.py": ["--quick", "--inputs", "2"],
    "bench_metrics.py": ["--quick"],
    "bench_mus.py": ["--quick", "--inputs", "2", "--rounds", "1", "--loop-rounds", "1"],
    "bench_sig.py": ["--quick", "--inputs", "2", "--rounds", "1", "--loop-rounds", "1"],
    "explainer_overhead.py": ["--repeats", "1", "--inputs", "2"],
    # Saliency's file only; prints that Captum's tests are unavailable where they are
    "captum_acceptance.py": ["--quick"],
}


def test_every_script_is_listed() -> None:
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith(("_", "test_"))}
    assert scripts == set(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_quick_run(script: str, tmp_path: Path) -> None:
    # `python -m bench.<script>` from the repository root, as the README runs them; the
    # root comes through PYTHONPATH here so that the working directory can stay empty
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=str(ROOT))
    run = subprocess.run(
        [sys.executable, "-m", f"bench.{script.removesuffix('.py')}", *SCRIPTS[script]],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # quick runs print their tables; nothing may be written here
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, f"{script} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stderr
    # the scripts catch a failing case, report it as FAILED / MISMATCH and go on
    assert "FAILED" not in run.stdout and "MISMATCH" not in run.stdout, run.stdout[-3000:]
    assert not any(tmp_path.iterdir())
