"""The benchmark harness (bench/_harness.py) that every bench script and experiment
times and writes with: its protocol (warm-up, rotating interleaved rounds, calls per
timing, medians) and its writer."""

from __future__ import annotations

import json
import math

import pytest

from bench import _harness as h


def recorder(log: list[str], name: str, value: int = 0):
    def fn() -> int:
        log.append(name)
        return value

    return fn


def test_interleaved_warms_up_then_rotates() -> None:
    log: list[str] = []
    fns = {n: recorder(log, n, i) for i, n in enumerate("abc")}
    s = h.interleaved(fns, repeats=4, warmup=2)
    warm, rounds = log[:6], log[6:]
    assert warm == ["a", "a", "b", "b", "c", "c"]
    assert rounds == list("abcbcacababc")
    assert s.calls == {"a": 1, "b": 1, "c": 1}
    assert s.outputs == {"a": 0, "b": 1, "c": 2}
    assert all(len(v) == 4 and min(v) >= 0 for v in s.seconds.values())
    assert all(len(v) == 4 for v in s.faults.values())
    a = sorted(s.seconds["a"])
    assert s.median("a") == (a[1] + a[2]) / 2


def test_interleaved_loops_short_calls_up_to_min_time() -> None:
    log: list[str] = []
    s = h.interleaved({"x": recorder(log, "x")}, repeats=3, warmup=1, min_time=0.01)
    n = s.calls["x"]
    assert 1 < n <= 10_000  # a call of a few microseconds is looped
    assert len(log) == 1 + 3 * n


def test_median_time_returns_the_warmup_result() -> None:
    calls: list[int] = []

    def fn() -> int:
        calls.append(len(calls))
        return len(calls)

    seconds, out = h.median_time(fn, 5)
    assert out == 1 and len(calls) == 6 and seconds >= 0
    assert math.isnan(h.median([]))
    assert h.median([3.0, 1.0, 2.0]) == 2.0


def test_write_results(tmp_path, capsys) -> None:
    report = {"a": [1, 2.5], "b": {"c": None}}
    h.write_results(tmp_path / "sub" / "r", report, "# table\n", indent=2)
    assert json.loads((tmp_path / "sub" / "r.json").read_text()) == report
    assert (tmp_path / "sub" / "r.json").read_text().startswith('{\n  "a"')
    assert (tmp_path / "sub" / "r.md").read_text() == "# table\n"
    assert "r.json" in capsys.readouterr().out


def test_machine_info_and_malloc() -> None:
    info = h.machine_info(("pytest", "no-such-package-xyz"))
    assert info["pytest"] == pytest.__version__
    assert info["no-such-package-xyz"] == "not installed"
    for key in ("date", "cpu", "cpu_count", "torch", "xattr", "threads", "loadavg_before"):
        assert key in info
    assert h.set_malloc("system") == "system"
    with pytest.raises(ValueError, match="mode"):
        h.set_malloc("bogus")
