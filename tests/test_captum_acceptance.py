"""The acceptance harness's own logic (bench/captum_acceptance.py): the swap of Captum's
classes for xattr's, the recording of outcomes in the child pytest runs, and the counting.
It runs the harness's two child runs on a small test file written here (Captum's own test
files are not needed); the check of a source of Captum's tests against the installed
package runs only where a mirror of that source exists."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("captum")

from bench import captum_acceptance as acc  # noqa: E402

# A stand-in for one of Captum's test files, imported the way Captum's are. Each test
# says what it expects on which side; the counts below follow from it.
FAKE_TESTS = """
import unittest

import pytest
import torch
from captum.attr._core.saliency import Saliency
from captum.attr._core.noise_tunnel import NoiseTunnel


class Test(unittest.TestCase):
    def test_both(self):  # passes on both, constructs Saliency
        sal = Saliency(lambda x: x.sum(1))
        a = sal.attribute(torch.ones(2, 3, requires_grad=True))
        assert a.shape == (2, 3)

    def test_captum_only(self):  # passes on Captum only
        Saliency(lambda x: x.sum(1))
        assert Saliency.__module__.startswith("captum"), "the class is " + Saliency.__module__

    def test_xattr_only(self):  # fails on Captum: not counted
        assert Saliency.__module__.startswith("xattr")

    def test_nothing_swapped(self):  # passes on both, touches no swapped class
        assert torch.ones(1).item() == 1.0

    def test_subtests(self):  # one subtest fails on xattr only
        for k in range(2):
            with self.subTest(k=k):
                if k == 1:
                    assert Saliency.__module__.startswith("captum")

    def test_skipped_on_xattr(self):  # skipped on xattr: counts as failing there
        if Saliency.__module__.startswith("xattr"):
            pytest.skip("not for xattr")

    def test_noise_tunnel(self):  # constructs NoiseTunnel (its cross row)
        NoiseTunnel(Saliency(lambda x: x.sum(1)))
"""


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("captum-tests")
    (root / "tests" / "attr").mkdir(parents=True)
    (root / "tests" / "__init__.py").write_text("")
    (root / "tests" / "attr" / "__init__.py").write_text("")
    (root / "tests" / "attr" / "test_saliency.py").write_text(textwrap.dedent(FAKE_TESTS))
    files = ["attr/test_saliency.py"]
    captum_run, xattr_run, _ = acc.run_both(root, files, None, jobs=2, timeout=300)
    return captum_run, xattr_run


def test_child_runs_record_every_test(fake_run) -> None:
    captum_run, xattr_run = fake_run
    outcome = {k.split("::")[-1]: v["outcome"] for k, v in captum_run["tests"].items()}
    assert outcome == {
        "test_both": "passed",
        "test_captum_only": "passed",
        "test_xattr_only": "failed",
        "test_nothing_swapped": "passed",
        "test_subtests": "passed",
        "test_skipped_on_xattr": "passed",
        "test_noise_tunnel": "passed",
    }
    outcome = {k.split("::")[-1]: v["outcome"] for k, v in xattr_run["tests"].items()}
    assert outcome == {
        "test_both": "passed",
        "test_captum_only": "failed",
        "test_xattr_only": "passed",
        "test_nothing_swapped": "passed",
        "test_subtests": "failed",
        "test_skipped_on_xattr": "skipped",
        "test_noise_tunnel": "passed",
    }
    # the swap: xattr's classes in captum.attr and in the defining module
    swapped = xattr_run["swapped"]
    assert swapped["Saliency"]["xattr"].startswith("xattr.")
    assert swapped["Saliency"]["modules"] == ["captum.attr", "captum.attr._core.saliency"]
    assert captum_run["swapped"] == {}
    constructed = {k.split("::")[-1]: v["constructed"] for k, v in xattr_run["tests"].items()}
    assert constructed["test_both"] == ["Saliency"]
    assert constructed["test_nothing_swapped"] == []
    assert constructed["test_noise_tunnel"] == ["NoiseTunnel", "Saliency"]


def test_counting(fake_run) -> None:
    captum_run, xattr_run = fake_run
    res = acc.compare(captum_run, xattr_run, {"Saliency": ("attr/test_saliency.py",)})
    row = res["rows"]["Saliency"]
    # 7 tests, 6 pass on Captum; of those test_both, test_nothing_swapped and
    # test_noise_tunnel pass on xattr
    assert (row["captum_tests"], row["captum_pass"], row["xattr_pass"]) == (7, 6, 3)
    assert row["figure"] == pytest.approx(0.5)
    # only test_both, test_captum_only and test_noise_tunnel construct a swapped class
    # (the others read the class's module or nothing); 2 of them pass on xattr
    assert (row["exercising"], row["exercising_pass"]) == (3, 2)
    assert res["rows"]["NoiseTunnel"]["captum_pass"] == 1
    assert res["total"]["captum_pass"] == 6 and res["total"]["xattr_pass"] == 3
    failing = {f["id"].split("::")[-1]: f["message"] for f in res["failures"]}
    assert set(failing) == {"test_captum_only", "test_subtests", "test_skipped_on_xattr"}
    assert failing["test_captum_only"].startswith("AssertionError: the class is xattr.")
    assert failing["test_skipped_on_xattr"] == "skipped on xattr: Skipped: not for xattr"
    assert [f["id"].split("::")[-1] for f in res["not_on_captum"]] == ["test_xattr_only"]
    assert sum(res["groups"].values()) == 3
    # the markdown carries the figure and every failing id
    md = acc.markdown(
        {
            "meta": {
                "captum": "x",
                "tests_source": "here",
                "torch": "t",
                "xattr": "x",
                "command": "c",
                "keyword": None,
            },
            "swapped": xattr_run["swapped"],
            "results": res,
        }
    )
    assert "| **total** | 7 | 6 | 3 | **50.0%** |" in md
    assert all(f["id"] in md for f in res["failures"])


def test_missing_class_fails_and_says_so() -> None:
    # a name xattr does not export is replaced by a class whose constructor raises
    stand_in = type("DeepLift", (acc._Missing,), {"swapped_name": "DeepLift"})
    with pytest.raises(NotImplementedError, match="xattr does not export DeepLift"):
        stand_in(lambda x: x)
    assert acc.classify("a::b", "NotImplementedError: xattr does not export DeepLift") == (
        "missing class"
    )


def test_groups_are_rules_in_order() -> None:
    assert acc.classify("t.py::Test::test_future_output", "x") == "attribute_future / Futures"
    assert acc.classify("t.py::Test::test_multi_sample_ablation_batch_scalar_float", "x") == (
        "aggregate mode (one output per batch)"
    )
    assert acc.classify("t.py::Test::test_simple_ablation_boolean", "x") == "bool inputs"
    assert acc.classify("t.py::Test::test_x", "x") == acc.OTHER


def test_only_selects_rows() -> None:
    assert list(acc.select_suites("ShapleyValues")) == ["ShapleyValueSampling / ShapleyValues"]
    assert list(acc.select_suites("lime")) == ["Lime"]
    assert acc.select_suites("NoiseTunnel") == acc.SUITES  # its tests are in every file
    with pytest.raises(ValueError, match="--only: 'Nope' is none of"):
        acc.select_suites("Nope")


def test_source_of_the_tests_is_the_installed_release() -> None:
    # where a mirror of the release's source exists, its captum/ is the installed package
    version, package = acc._captum_package()
    source = acc.SOURCES.get(version)
    if source is None:
        pytest.skip(f"no known source for captum {version}")
    git_dir = next(
        (
            root / source.repo.replace("/", "+") / "repo"
            for root in acc.MIRRORS
            if (root / source.repo.replace("/", "+") / "repo").is_dir()
        ),
        None,
    )
    if git_dir is None:
        pytest.skip(f"no mirror of {source.repo} here")
    assert acc.check_source(git_dir, source.commit, package) == []


def test_read_records_keeps_a_cut_run(tmp_path: Path) -> None:
    # a run stopped early: the finished tests are kept, the rest are missing
    path = tmp_path / "r.jsonl"
    lines = [
        {"swapped": {}},
        {"id": "tests/attr/a.py::T::t1", "outcome": "passed", "message": "", "constructed": []},
        {"collect_error": "tests/attr/b.py", "message": "ImportError: x"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    rec = acc.read_records(path)
    assert list(rec["tests"]) == ["tests/attr/a.py::T::t1"]
    assert rec["collect_errors"] == {"tests/attr/b.py": "ImportError: x"}
    captum = {"tests": {"tests/attr/b.py::T::t": {"outcome": "passed", "message": ""}}}
    res = acc.compare(captum, rec, {"B": ("attr/b.py",)})
    assert res["failures"][0]["message"] == "not run on xattr: ImportError: x"
