"""xattr.report: the static HTML report (links, escaping, values, rewriting, errors) and
one render in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import torch

from xattr.report import Report, format_number

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Two colours no page element uses: the test figure is a checkerboard of them, so its
# pixels can be found in a screenshot.
MAGENTA = (255, 0, 255)
GREEN = (0, 200, 0)


class Page(HTMLParser):
    """Every tag with its attributes, the ids, and the text of each table's cells."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.ids: set[str] = set()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def refs(self) -> list[str]:
        return [v for _, a in self.tags for k, v in a.items() if k in ("src", "href") and v]


def checkerboard_png(path: Path, size: int = 240) -> None:
    """A PNG of 8 x 8 squares of MAGENTA and GREEN."""
    square = np.indices((8, 8)).sum(0) % 2
    big = np.kron(square, np.ones((size // 8, size // 8)))
    rgb = np.where(big[..., None] == 1, np.array(MAGENTA), np.array(GREEN)).astype(np.uint8)
    plt.imsave(path, rgb)


def wine_certificates():
    """MuS certificates of a logistic regression trained on the wine data set (real
    data, a real model)."""
    from sklearn.datasets import load_wine

    import xattr
    from xattr.smoothing import MuS, columns, explain_and_certify

    data = load_wine()
    x = torch.tensor(data.data, dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    model = torch.nn.Linear(13, 3).double()
    opt = torch.optim.LBFGS(model.parameters(), max_iter=50)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y) + 1e-2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    smoothed = MuS(model, 1 / 8, q=16, feature_mask=columns(), output="logits")
    # MuS warns that g's label differs from h's on some rows: the table is about g's
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "MuS: the smoothed label", UserWarning)
        return explain_and_certify(
            smoothed, xattr.FeatureAblation(smoothed), x[::40], top_fraction=0.5
        ), list(data.target_names)


def full_report(tmp: Path) -> Report:
    """A report with every kind of item: a section, text, tables, a matplotlib figure,
    a PNG file, an HTML snippet and certificates."""
    png = tmp / "checkerboard.png"
    checkerboard_png(png)
    report = Report(
        "xattr demo: MNIST digits",
        config={"seed": 0, "n_samples": 200, "model": {"kind": "cnn", "epochs": 2}},
    )
    report.add_text("Attributions of **five** digits with *six* methods, timed against `captum`.")
    report.add_section("Timing", "Wall-clock time per example on this machine.")
    report.add_table(
        "Time per method",
        [
            {"method": "KernelShap", "xattr (ms)": 12.3456, "captum (ms)": 834.2, "rows": 2000},
            {"method": "IntegratedGradients", "xattr (ms)": 3.2, "captum (ms)": 4.9, "rows": 50},
            {"method": "Lime", "xattr (ms)": 15.0, "captum (ms)": None, "rows": 1234567},
        ],
        caption="Lower is better; the fastest is marked.",
        highlight={"xattr (ms)": "min"},
    )
    report.add_section("Pictures")
    report.add_figure("Checkerboard", png, caption="A PNG copied from a file.")
    fig, ax = plt.subplots(figsize=(5, 2.5))
    ax.plot(np.linspace(0, 1, 20), np.linspace(0, 1, 20) ** 2, color="C0", lw=2)
    ax.set_title("Deletion curve")
    report.add_figure("Deletion curve", fig, caption="Probability as features are removed.")
    plt.close(fig)
    report.add_html("Text", '<span style="background:#fdd">good</span> movie')
    cert, classes = wine_certificates()
    report.add_certificates("MuS certificates", cert, class_names=classes, radius=2)
    return report


@pytest.fixture(scope="module")
def written():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        report = full_report(tmp)
        index = report.write(tmp / "out")
        yield report, index, Page(index.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- links and escaping
def test_every_reference_is_a_local_file_or_anchor(written):
    _, index, page = written
    refs = page.refs()
    assert len([r for r in refs if not r.startswith("#")]) == 2  # the two figures
    for ref in refs:
        parsed = urlparse(ref)
        assert not parsed.scheme and not parsed.netloc, ref
        if ref.startswith("#"):
            assert ref[1:] in page.ids, ref
            continue
        assert not ref.startswith("/"), ref
        target = (index.parent / unquote(parsed.path)).resolve()
        assert target.is_file(), ref
        assert index.parent.resolve() in target.parents, ref
    # the images are the PNGs given (the file copied byte for byte)
    imgs = [a["src"] for t, a in page.tags if t == "img"]
    assert imgs == sorted(imgs) and all(s.endswith(".png") for s in imgs)
    text = index.read_text(encoding="utf-8")
    assert "http:" not in text and "https:" not in text and "//" not in text.replace("<!--", "")
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe")]


def test_page_structure(written):
    report, index, page = written
    headings = [a.get("id") for t, a in page.tags if t in ("h2", "h3")]
    toc = [a["href"][1:] for t, a in page.tags if t == "a" and a.get("href", "").startswith("#")]
    # every heading but the table of contents' own is in it, in page order
    assert toc == [h for h in headings if h != "contents"]
    assert "configuration" in toc
    body = " ".join(page.text)
    assert "Generated" in body and f"torch {torch.__version__}" in body
    assert "n_samples" in body and "epochs" in body  # nested configuration
    assert "Table 1." in body and "Figure 2." in body


def test_text_is_escaped():
    evil = "<script>alert(1)</script>"
    report = Report(evil, config={evil: evil})
    report.add_text(f"**{evil}**")
    report.add_section(evil, evil)
    report.add_table(evil, [{evil: evil, "n": 1}], caption=evil)
    report.add_html(evil, "<b>kept</b>", caption=evil)
    with tempfile.TemporaryDirectory() as tmp:
        text = report.write(tmp).read_text(encoding="utf-8")
    page = Page(text)
    assert "script" not in [t for t, _ in page.tags]
    assert "b" in [t for t, _ in page.tags]  # the snippet itself is not escaped
    assert text.count("&lt;script&gt;") >= 9
    assert sum(evil in s for s in page.text) >= 9  # shown as text, unchanged


# ---------------------------------------------------------------- values
def test_table_keeps_the_values(written):
    _, _, page = written
    head, *rows = page.tables[0]
    assert head == ["method", "xattr (ms)", "captum (ms)", "rows"]
    assert rows == [
        ["KernelShap", "12.35", "834.2", "2,000"],  # a column of floats: its decimals,
        ["IntegratedGradients", "3.20", "4.900", "50"],  # unless they span > 100x
        ["Lime", "15.00", "\u2013", "1,234,567"],
    ]
    cells = [a.get("class", "") for t, a in page.tags if t == "td"]
    assert cells[0] == "" and cells[1] == "num"  # text left, numbers right
    assert cells.count("num best") == 1 and cells[5] == "num best"  # 3.2 ms


def test_certificate_table_matches_the_certificate(written):
    cert, classes = wine_certificates()
    _, _, page = written
    head, *rows = page.tables[1]
    c = cert.certificate
    assert len(rows) == len(c.label) == 5
    col = {name: [r[i] for r in rows] for i, name in enumerate(head)}
    assert col["prediction"] == [classes[i] for i in c.full_label.tolist()]
    assert col["certified additions"] == [format_number(v) for v in c.incremental_int.tolist()]
    assert col["certified removals"] == [format_number(v) for v in c.decremental_int.tolist()]
    assert col["features kept"] == ["7"] * 5  # ceil(0.5 * 13)
    shown = [float(v) for v in col["margin (full input)"]]
    assert shown == pytest.approx(c.full_gap.tolist(), abs=1e-3)
    stable = c.stable(2).tolist()
    assert 0 < sum(stable) < len(stable)  # both answers occur
    assert col["stable (r = 2)"] == ["yes" if s else "no" for s in stable]


def test_format_number():
    cases = {
        0: "0",
        7: "7",
        -1234: "-1,234",
        0.5: "0.5000",
        9.99996: "10.00",
        123.456: "123.5",
        99999.4: "99,999",
        1.5e6: "1.500e+06",
        2.5e-5: "2.500e-05",
        float("nan"): "NaN",
        float("inf"): "\u221e",
    }
    assert {k: format_number(k) for k in cases} == cases
    assert format_number(torch.tensor(3)) == "3"
    assert format_number(np.float32(0.25)) == "0.2500"


def test_table_options(tmp_path):
    pandas = pytest.importorskip("pandas")
    rows = [{"method": "ig", "share": 0.125, "ms": 3}, {"method": "lime", "share": 0.5, "ms": 40}]
    report = Report("options")
    report.add_table("dicts", rows, formats={"share": ".1%", "ms": lambda v: f"{v} ms"})
    report.add_table("frame", pandas.DataFrame(rows), formats={"share": ".1%"})
    report.add_table("sequences", [["ig", 0.125, 3]], columns=["method", "share", "ms"])
    report.add_table("empty", [], columns=["method", "ms"])
    page = Page(report.write(tmp_path).read_text(encoding="utf-8"))
    dicts, frame, sequences, empty = page.tables
    assert dicts == [["method", "share", "ms"], ["ig", "12.5%", "3 ms"], ["lime", "50.0%", "40 ms"]]
    assert frame[1:] == [["ig", "12.5%", "3"], ["lime", "50.0%", "40"]]
    assert sequences == [["method", "share", "ms"], ["ig", "0.1250", "3"]]
    assert empty == [["method", "ms"], ["(no rows)"]]


def test_figure_shown_at_its_size_in_inches(tmp_path):
    fig, _ = plt.subplots(figsize=(4, 3))
    report = Report("sizes")
    report.add_figure("four by three", fig, dpi=200)
    plt.close(fig)
    index = report.write(tmp_path)
    (img,) = [a for t, a in Page(index.read_text(encoding="utf-8")).tags if t == "img"]
    pixels = plt.imread(tmp_path / img["src"]).shape
    # at 200 dpi, less the white margins the tight box crops
    assert 0.8 * 4 * 200 < pixels[1] <= 4 * 200 and 0.8 * 3 * 200 < pixels[0] <= 3 * 200
    assert int(img["width"]) == round(pixels[1] * 96 / 200)
    assert int(img["height"]) == round(pixels[0] * 96 / 200)


# ---------------------------------------------------------------- writing twice
def test_writing_twice_replaces_the_report(tmp_path):
    png = tmp_path / "a.png"
    checkerboard_png(png, 16)
    first = Report("first")
    for name in ("one", "two", "three"):
        first.add_figure(name, png)
    out = tmp_path / "report"
    first.write(out)
    (out / "notes.txt").write_text("mine")
    (out / "figures" / "logo.png").write_bytes(png.read_bytes())
    assert len(list((out / "figures").glob("fig-*.png"))) == 3

    second = Report("second")
    second.add_figure("only", png)
    index = second.write(out)
    page = Page(index.read_text(encoding="utf-8"))
    srcs = [a["src"] for t, a in page.tags if t == "img"]
    assert srcs == ["figures/fig-01-only.png"]
    assert sorted(p.name for p in (out / "figures").glob("fig-*.png")) == ["fig-01-only.png"]
    # files the report did not write are left alone
    assert (out / "notes.txt").read_text() == "mine" and (out / "figures" / "logo.png").exists()
    assert "second" in index.read_text() and "first" not in index.read_text()
    assert second.write(out) == index  # and again, in place


def test_no_figures_no_folder(tmp_path):
    report = Report("text only")
    report.add_text("nothing to see")
    index = report.write(tmp_path)
    assert index == (tmp_path / "index.html").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]


# ---------------------------------------------------------------- bad input
def test_bad_input(tmp_path):
    report = Report("r")
    with pytest.raises(ValueError, match=r"rows\[1\]: missing column\(s\) \['b'\]"):
        report.add_table("t", [{"a": 1, "b": 2}, {"a": 3}])
    with pytest.raises(ValueError, match=r"rows\[0\]: missing column\(s\) \['c'\]"):
        report.add_table("t", [{"a": 1}], columns=["a", "c"])
    with pytest.raises(ValueError, match=r"rows\[0\]: 1 values for 2 columns"):
        report.add_table("t", [[1]], columns=["a", "b"])
    with pytest.raises(TypeError, match="rows: expected a list of rows"):
        report.add_table("t", {"a": [1, 2]})
    with pytest.raises(ValueError, match="highlight: unknown column"):
        report.add_table("t", [{"a": 1}], highlight={"b": "min"})
    with pytest.raises(ValueError, match="column 'a' is not numeric"):
        report.add_table("t", [{"a": "x"}], highlight={"a": "min"})
    with pytest.raises(ValueError, match="expected 'min' or 'max'"):
        report.add_table("t", [{"a": 1}], highlight={"a": "best"})
    with pytest.raises(FileNotFoundError, match="figure: .*missing.png"):
        report.add_figure("f", tmp_path / "missing.png")
    (tmp_path / "fake.png").write_text("not a png")
    with pytest.raises(ValueError, match="is not a PNG"):
        report.add_figure("f", tmp_path / "fake.png")
    with pytest.raises(TypeError, match="figure: expected a matplotlib Figure"):
        report.add_figure("f", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="must open offline"):
        report.add_html("h", '<img src="https://example.com/a.png">')
    with pytest.raises(ValueError, match="must open offline"):
        report.add_html("h", "<script src='x.js'></script>")
    for snippet in (
        "<a href='//cdn.example/x'>x</a>",
        '<p style="background: url(http://x)">',
        '<link rel="stylesheet" href="a.css">',
        "<style>@import 'a.css'</style>",
    ):
        with pytest.raises(ValueError, match="must open offline"):
            report.add_html("h", snippet)
    fine = Report("fine")  # a data: URI and a link on the page are not the network
    fine.add_html("h", '<img src="data:image/png;base64,iVBORw0KGgo=" alt="">')
    fine.add_html("h", '<a href="#h">same page</a> <span data-w="0.3">w</span>')
    with pytest.raises(TypeError, match="certificates: expected a Certificate"):
        report.add_certificates("c", [1, 2])
    with pytest.raises(TypeError, match="title: expected a string"):
        report.add_table(None, [{"a": 1}])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="title: expected a non-empty"):
        Report("  ")
    with pytest.raises(TypeError, match="config: expected a mapping"):
        Report("r", config=[("a", 1)])  # type: ignore[arg-type]
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="out_dir: .*file.* is a file"):
        report.write(tmp_path / "file")
    with pytest.raises(NotADirectoryError, match="out_dir: .*file.* is a file"):
        report.write(tmp_path / "file" / "sub")
    assert (tmp_path / "file").read_text() == "x"
    assert not report._blocks  # nothing half-added


def test_report_does_not_import_matplotlib():
    code = "import sys, xattr.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- headless Chromium
def find_browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(index: Path, png: Path, width: int, height: int) -> None:
    browser = find_browser()
    assert browser is not None
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                f"--window-size={width},{height}",
                index.as_uri(),
            ],
            capture_output=True,
            timeout=180,
            check=True,
        )


@pytest.mark.skipif(find_browser() is None, reason="no Chromium or Chrome installed (make browser)")
def test_renders_in_headless_chromium(tmp_path):
    report = full_report(tmp_path)
    index = report.write(tmp_path / "out")
    width, height = 1200, 2400
    shot = tmp_path / "screenshot.png"
    screenshot(index, shot, width, height)
    if os.environ.get("XATTR_REPORT_SCREENSHOT"):  # to look at it
        shutil.copy(shot, os.environ["XATTR_REPORT_SCREENSHOT"])
    image = np.round(plt.imread(shot)[..., :3] * 255).astype(int)
    assert image.shape == (height, width, 3)
    assert image.std() > 10  # not a blank page
    # the checkerboard figure rendered: a block of its two colours, not a broken image
    magenta = (np.abs(image - MAGENTA).sum(-1) < 30).nonzero()
    assert len(magenta[0]) > 5000
    top, bottom = magenta[0].min(), magenta[0].max()
    left, right = magenta[1].min(), magenta[1].max()
    region = image[top : bottom + 1, left : right + 1]
    green = (np.abs(region - GREEN).sum(-1) < 30).mean()
    assert 0.3 < green < 0.7  # half green, half magenta
    assert 200 <= right - left + 1 <= 260  # shown at its own size (240 px + a border)
