"""experiments/bounds_synthetic.py on tiny settings: the script asserts that every
measured attribution change (model and input perturbations, three removals, three
summaries) lies within its xattr.bounds bound, that conditional Shapley values do not
move at rho = 1 while baseline and marginal ones do, and that the unconditional-Q
variant fails on its counterexample; a broken bound makes this run fail."""

from __future__ import annotations

import pytest
import torch

from experiments import bounds_synthetic


def _args(*extra: str) -> list[str]:
    # keep the suite's thread count (the script defaults to one thread)
    return ["--quick", "--threads", str(torch.get_num_threads()), *extra]


def test_quick_run_holds_every_bound(tmp_path, capsys):
    assert bounds_synthetic.main(_args("--out", str(tmp_path))) == 0
    assert "quick run" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # quick runs write nothing


def test_a_bound_that_is_too_small_fails_loudly(monkeypatch):
    # L / 8: the input-perturbation checks must then catch a change above the "bound"
    monkeypatch.setattr(bounds_synthetic, "LIPSCHITZ", bounds_synthetic.LIPSCHITZ / 8)
    with pytest.raises(AssertionError, match="above its bound"):
        bounds_synthetic.main(_args())
