"""``xattr demo`` end to end in --quick mode: the table, the report (every reference a
file that exists, every section there), the model cache (trained once, reused, a
corrupt file detected and retrained) and the errors a user can make."""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import torch

from xattr.cli import demo_models as dm
from xattr.cli import main
from xattr.cli.demo import METHODS

SECTIONS = (
    "Eight methods, one colour scale",
    "Exact Shapley values, and xattr against Captum and shap",
    "Certified explanations (MuS)",
    "Why this class and not that one? (GANMEX)",
    "How far can the Shapley values move? (robustness bound)",
    "Explanations in one forward pass, refined where unsure (selective)",
    "A pretrained ImageNet model on photos",
    "Where the time went",
)


class Page(HTMLParser):
    """The src / href references, the headings' text and the number of images."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []
        self.headings: list[str] = []
        self.images = 0
        self._heading: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.refs += [v for k, v in a.items() if k in ("src", "href") and v]
        self.images += tag == "img"
        if tag in ("h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder, and a count of the CNN trainings (the real training). One
    torch thread, as the demo runs (restored after the test)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls = []
    train = dm.train_cnn

    def counted(*args, **kwargs):
        calls.append(1)
        return train(*args, **kwargs)

    monkeypatch.setattr(dm, "train_cnn", counted)
    yield tmp_path / "cache" / "xattr" / "demo", calls
    torch.set_num_threads(threads)


def run_demo(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["demo", "--quick", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def check_report(out_dir: Path) -> str:
    index = out_dir / "index.html"
    text = index.read_text(encoding="utf-8")
    page = Page(text)
    files = [r for r in page.refs if not r.startswith("#")]
    assert files, "the report has no figures"
    for ref in files:
        parsed = urlparse(ref)
        assert not parsed.scheme and not parsed.netloc and not ref.startswith("/"), ref
        target = (out_dir / unquote(parsed.path)).resolve()
        assert target.is_file() and out_dir.resolve() in target.parents, ref
    for section in SECTIONS:
        assert section in page.headings, (section, page.headings)
    assert page.images == 6  # methods, exact, radii, counterfactuals, one-vs-one, photos
    return text


def test_demo_quick_end_to_end_and_its_cache(tmp_path, cache, capsys):
    folder, calls = cache
    out = tmp_path / "report"
    rc, stdout, stderr = run_demo(capsys, "--out", str(out), "--images", "2")
    assert rc == 0, stderr
    # the table: every method, xattr and the reference libraries, errors vs exact
    header = stdout.splitlines()[0].split()
    assert header[:3] == ["method", "library", "time"] and "exact" in header
    for method in METHODS:
        assert f"\n{method} " in stdout
    assert "captum" in stdout and "shap " in stdout
    # the summary, one line per section, on the page too
    for head in ("KernelShap: relative error", "MuS (", "GANMEX:", "Robustness:", "Selective:"):
        assert f"\n- {head}" in stdout
    assert f"report: {(out / 'index.html').resolve()}" in stdout
    assert "trained the CNN" in stderr and len(calls) == 1
    text = check_report(out)
    assert "trained the CNN" in text and "In short" in text
    cnn_file = (
        folder / "cnn-fashion-mnist-v1.pt"
        if dm.datasets.fashion_mnist_available()
        else folder / "cnn-mnist-digits-v1.pt"
    )
    assert cnn_file.is_file() and list(folder.glob("ganmex-*.pt"))

    # second run: the cached CNN and generator are used, nothing is trained
    rc, stdout, stderr = run_demo(capsys, "--out", str(out), "--images", "1", "--no-compare")
    assert rc == 0, stderr
    assert len(calls) == 1
    assert "loaded the cached CNN" in stderr and "loaded the cached GANMEX" in stderr
    assert "captum" not in stdout  # --no-compare: xattr alone
    check_report(out)

    # a corrupt cache file is detected, the CNN retrained, and the run still works
    cnn_file.write_bytes(b"this is not a torch file")
    rc, stdout, stderr = run_demo(
        capsys, "--out", str(out), "--images", "1", "--no-compare", "--quiet"
    )
    assert rc == 0
    assert stderr == ""  # --quiet: no notes, no bars
    assert len(calls) == 2
    text = check_report(out)
    assert "retrained the CNN (the cached file does not load" in text
    blob = torch.load(cnn_file, weights_only=True)
    assert blob["format"] == dm.CNN_FORMAT


def test_cached_cnn_checks(tmp_path, cache):
    folder, calls = cache
    data = dm.load_data("mnist")  # the digits: fast to train
    first = dm.cnn(data, folder)
    assert first.trained and first.message.startswith("trained the CNN")
    again = dm.cnn(data, folder)
    assert not again.trained and again.message.startswith("loaded the cached CNN")
    assert len(calls) == 1
    # weights of the wrong shape
    torch.save({"format": dm.CNN_FORMAT, "state_dict": {"0.weight": torch.zeros(3)}}, first.path)
    out = dm.cnn(data, folder)
    assert out.trained and "do not fit the model" in out.message
    # right shapes, useless weights: under the accuracy floor
    bad = {k: torch.zeros_like(v) for k, v in out.model.state_dict().items()}
    torch.save({"format": dm.CNN_FORMAT, "state_dict": bad}, first.path)
    out = dm.cnn(data, folder)
    assert out.trained and "accuracy" in out.message and "under" in out.message
    # a torch file of something else
    torch.save({"weights": torch.zeros(2)}, first.path)
    assert "not a demo model" in dm.cnn(data, folder).message
    assert len(calls) == 4


def test_demo_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    f = tmp_path / "a-file"
    f.write_text("x")
    assert main(["demo", "--quick", "--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xattr: error: --out:") and "Traceback" not in err
    assert err.count("\n") == 1
    monkeypatch.setattr(dm.datasets, "FASHION_MNIST_DIR", tmp_path / "no-fashion")
    assert main(["demo", "--quick", "--dataset", "fashion", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--dataset fashion" in err and "dataset-fashion-mnist" in err
    assert main(["demo", "--images", "0"]) == 2
    assert "--images" in capsys.readouterr().err


def test_photos_skipped_with_a_note_when_packages_are_missing(monkeypatch):
    from xattr.cli import demo

    assert dm.photo_packages_missing() is None  # installed here (the demo extra)
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # as if missing
    missing = dm.photo_packages_missing()
    assert missing is not None
    assert "efficientnet-lite-pytorch" in missing and "torch-xattr[demo]" in missing
    report = demo.Deferred()
    fact = demo._photos_section(report, demo.QUICK, 0, demo.Log(quiet=True))
    assert fact.startswith("EfficientNet-Lite0 on photos: skipped")
    [(kind, args, _)] = report.calls
    assert kind == "add_section" and args[1].startswith("Skipped: efficientnet-lite-pytorch")
