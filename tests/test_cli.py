"""The ``xattr`` command line: ``explain`` writes what the explainer gives in Python,
every model and input format loads, ``compare`` produces its table and JSON, and
every mistake ends in one line on stderr with a non-zero exit code."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import xattr
from xattr.cli import main
from xattr.cli.methods import ALIASES, resolve_method
from xattr.explainers.registry import EXPLAINERS
from xattr.smoothing import MuS, columns, explain_and_certify

D, C, B = 6, 3, 4

# A module the factory form imports (written into the test's folder, put on sys.path).
FACTORY_SOURCE = textwrap.dedent(
    """
    import torch
    from torch import nn


    def mlp(seed=0):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).eval()


    def relu_mlp():
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


    def untrained():
        return mlp(seed=99)


    def cnn():
        torch.manual_seed(2)
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)
        ).eval()


    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("this model is broken\\non two lines")


    def broken():
        return Broken()


    def not_a_module():
        return 3


    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(3)
            self.a, self.b = nn.Linear(6, 3), nn.Linear(2, 3)

        def forward(self, a, b):
            return torch.tanh(self.a(a)) * self.b(b)


    def two_inputs():
        return TwoInputs().eval()
    """
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The models and inputs of the tests, in a folder that is on sys.path."""
    d = tmp_path_factory.mktemp("cli")
    (d / "cli_models.py").write_text(FACTORY_SOURCE)
    sys.path.insert(0, str(d))
    import cli_models  # type: ignore[import-not-found]

    model = cli_models.mlp()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, D, generator=g)
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(d / "mlp.pt2"))
    torch.export.save(torch.export.export(model, (x,)), str(d / "static.pt2"))
    if hasattr(torch.jit, "script"):  # TorchScript, where this torch still has it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.script(model).save(str(d / "mlp.ts"))
    torch.save(model.state_dict(), str(d / "weights.pt"))
    np.save(d / "x.npy", x.numpy())
    np.save(d / "x64.npy", x.double().numpy())
    np.save(d / "x5.npy", x[:, :5].numpy())
    np.savez(d / "x.npz", test=x.numpy(), other=x.numpy()[:2])
    torch.save(x, str(d / "x.pt"))
    torch.save({"inputs": x}, str(d / "xdict.pt"))
    (d / "garbage.pt2").write_bytes(b"not a program")
    # images: 8 x 8 RGB PNGs of known pixels
    from PIL import Image

    pixels = torch.randint(0, 256, (3, 8, 8, 3), generator=g, dtype=torch.uint8).numpy()
    (d / "images").mkdir()
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(d / "images" / f"img{i}.png")
    yield {"dir": d, "model": model, "x": x, "pixels": pixels, "m": cli_models}
    sys.path.remove(str(d))


def run(argv: list, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def load(path: Path) -> dict:
    return torch.load(str(path), weights_only=True)


def pred(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


# ------------------------------------------------------------------ explain = Python
# Every registered explainer: (model, CLI arguments, the same arguments in Python).
CASES: dict[str, tuple[str, list, dict]] = {
    "ExactShapley": ("mlp.pt2", [], {}),
    "ShapleyValues": ("mlp.pt2", [], {}),
    "Banzhaf": ("mlp.pt2", ["--n-samples", 40], {"n_samples": 40}),
    "DeepLift": ("cli_models:relu_mlp", ["--baselines", 0.5], {"baselines": 0.5}),
    "DeepLiftShap": ("cli_models:relu_mlp", ["--baselines", "base.npy"], {"baselines": "base"}),
    "FeatureAblation": ("mlp.pt2", ["--baselines", 0.25], {"baselines": 0.25}),
    "FeaturePermutation": ("mlp.pt2", [], {}),
    "NoiseTunnel": (
        "mlp.pt2",
        ["--base", "saliency", "--option", "nt_samples=3", "--option", "stdevs=0.1"],
        {"nt_samples": 3, "stdevs": 0.1},
    ),
    "GradientShap": ("mlp.pt2", ["--baselines", "base.npy"], {"baselines": "base"}),
    "GuidedBackprop": ("cli_models:relu_mlp", [], {}),
    "Deconvolution": ("cli_models:relu_mlp", [], {}),
    "LayerGradCam": ("cli_models:relu_mlp", ["--layer", "1"], {}),
    "GuidedGradCam": ("cli_models:cnn", ["--layer", "0"], {}),
    "InputXGradient": ("mlp.pt2", [], {}),
    "IntegratedGradients": (
        "mlp.pt2",
        ["--n-steps", 16, "--option", "method=riemann_trapezoid"],
        {"n_steps": 16, "method": "riemann_trapezoid"},
    ),
    "KernelShap": ("mlp.pt2", ["--n-samples", 30, "--seed", 3], {"n_samples": 30, "seed": 3}),
    "LayerIntegratedGradients": (
        "cli_models:relu_mlp",
        ["--layer", "0", "--n-steps", 8],
        {"n_steps": 8},
    ),
    "Lime": ("mlp.pt2", ["--n-samples", 30], {"n_samples": 30}),
    "MeanWhenIncluded": ("mlp.pt2", ["--n-samples", 30], {"n_samples": 30}),
    "Occlusion": (
        "mlp.pt2",
        ["--option", "sliding_window_shapes=(2,)"],
        {"sliding_window_shapes": (2,)},
    ),
    "Saliency": ("mlp.pt2", ["--option", "abs=False"], {"abs": False}),
    "ShapleyIntegratedGradients": (
        "mlp.pt2",
        ["--n-steps", 8, "--option", "n_coalitions_per_size=2", "--option", "normalize=False"],
        {"n_steps": 8, "n_coalitions_per_size": 2, "normalize": False},
    ),
    "ShapleyValueSampling": ("mlp.pt2", ["--n-samples", 5], {"n_samples": 5}),
}


def test_every_registered_explainer_has_a_case():
    assert set(CASES) == set(EXPLAINERS)


def _python_result(name: str, files: dict, kw: dict) -> torch.Tensor:
    """The explainer called directly, with the arguments the CLI passes (the predicted
    class as target, seed 0 where the method takes one)."""
    m = files["m"]
    spec = CASES[name][0]
    model = files["model"] if spec == "mlp.pt2" else getattr(m, spec.split(":")[1])()
    x = files["x"]
    info = EXPLAINERS[name]
    kw = dict(kw)
    if kw.get("baselines") == "base":
        kw["baselines"] = torch.from_numpy(np.load(files["dir"] / "base.npy"))
    if name == "GuidedGradCam":
        x = torch.from_numpy(np.stack([p.transpose(2, 0, 1) for p in files["pixels"]]) / 255.0)
        x = x.float()
    if name == "NoiseTunnel":
        explainer = info.cls(xattr.Saliency(model))
        takes = inspect.signature(info.cls.attribute).parameters
    elif name in ("LayerGradCam", "LayerIntegratedGradients", "GuidedGradCam"):
        layer = model.get_submodule(CASES[name][1][1])
        explainer = info.cls(model, layer)
        takes = inspect.signature(info.cls.attribute).parameters
    else:
        explainer = info.cls(model)
        takes = inspect.signature(info.cls.attribute).parameters
    if "seed" in takes:
        kw.setdefault("seed", 0)
    torch.manual_seed(kw.get("seed", 0))
    return explainer.attribute(x, target=pred(model, x), **kw)


@pytest.mark.parametrize("name", sorted(CASES))
def test_explain_equals_the_explainer_in_python(name, files, capsys):
    d = files["dir"]
    np.save(d / "base.npy", np.zeros((2, D), dtype=np.float32) + [[0.1], [-0.2]])
    spec, cli_args, kw = CASES[name]
    inputs = d / "images" if name == "GuidedGradCam" else d / "x.npy"
    out = d / f"{name}.pt"
    cli_args = [a if a != "base.npy" else d / "base.npy" for a in cli_args]
    model = spec if ":" in spec else d / spec
    code, stdout, err = run(
        ["explain", model, inputs, "-m", name, *cli_args, "-o", out, "-q"], capsys
    )
    assert code == 0, err
    saved = load(out)
    expected = _python_result(name, files, kw)
    torch.testing.assert_close(saved["attributions"], expected.detach(), rtol=1e-5, atol=1e-6)
    meta = saved["metadata"]
    assert meta["method"].startswith(name)
    assert meta["xattr_version"] == xattr.__version__
    assert meta["attribution_shapes"] == [list(expected.shape)]
    assert "target" in stdout.splitlines()[0]  # the summary table
    assert len(stdout.splitlines()) == 2 + saved["outputs"].shape[0]


def test_aliases_and_case_resolve():
    assert resolve_method("IG").name == "IntegratedGradients"
    assert resolve_method("kernel-shap").name == "KernelShap"
    assert resolve_method("SVS").name == "ShapleyValueSampling"
    for alias, name in ALIASES.items():
        assert resolve_method(alias.upper()).name == name


def test_explain_metadata_target_outputs_and_extras(files, capsys):
    d = files["dir"]
    out = d / "meta.pt"
    argv = ["explain", d / "mlp.pt2", d / "x.npy", "-m", "ig", "--target", 2, "--n-steps", 20]
    argv += ["--option", "return_convergence_delta=True", "-o", out, "-q"]
    code, stdout, _ = run(argv, capsys)
    assert code == 0
    saved = load(out)
    assert saved["target"] == 2
    torch.testing.assert_close(saved["outputs"], files["model"](files["x"]).detach())
    assert saved["delta"].shape == (B,)
    assert saved["metadata"]["options"]["n_steps"] == 20
    # the table: the model's output at the target and the sum of the attributions
    first = stdout.splitlines()[2].split()
    assert float(first[2]) == pytest.approx(float(saved["outputs"][0, 2]), rel=1e-3)
    assert float(first[3]) == pytest.approx(float(saved["attributions"][0].sum()), rel=1e-3)


def test_smooth_writes_the_certificates_of_explain_and_certify(files, capsys):
    d = files["dir"]
    out = d / "smooth.pt"
    argv = ["explain", d / "mlp.pt2", d / "x.npy", "-m", "fa", "--smooth", 0.25]
    argv += ["--smooth-q", 16, "--top-fraction", 0.5, "-o", out, "-q"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    saved = load(out)
    g = MuS(files["model"], 0.25, q=16, feature_mask=columns(), output="logits").eval()
    ref = explain_and_certify(g, xattr.FeatureAblation(g), files["x"], 0.5)
    torch.testing.assert_close(saved["attributions"], ref.attributions)
    cert = saved["certificate"]
    assert torch.equal(cert["alpha"], ref.alpha)
    assert torch.equal(cert["incremental_int"], ref.certificate.incremental_int)
    assert torch.equal(cert["consistent"], ref.certificate.consistent)
    assert cert["q"] == 16 and cert["lambda_"] == 0.25
    assert "consistent" in stdout.splitlines()[0]


# ------------------------------------------------------------------ models and inputs
def _ks(files, model, inputs, capsys, *extra) -> torch.Tensor:
    out = files["dir"] / "ks.pt"
    argv = ["explain", model, inputs, "-m", "kernelshap", "--n-samples", 20, "-o", out, "-q"]
    code, _, err = run([*argv, *extra], capsys)
    assert code == 0, err
    return load(out)["attributions"]


def _ks_python(model, x) -> torch.Tensor:
    return xattr.KernelShap(model).attribute(x, target=pred(model, x), n_samples=20, seed=0)


def test_model_forms_give_the_same_attributions(files, capsys):
    d, x = files["dir"], files["x"]
    ref = _ks_python(files["model"], x)
    forms = [d / "mlp.pt2", d / "static.pt2", "cli_models:mlp"]
    forms += [d / "mlp.ts"] if (d / "mlp.ts").exists() else []
    for form in forms:
        torch.testing.assert_close(_ks(files, form, d / "x.npy", capsys), ref, rtol=1e-5, atol=1e-6)
    # the state dict is loaded: a factory of other weights gives the model's result
    got = _ks(files, "cli_models:untrained", d / "x.npy", capsys, "--state-dict", d / "weights.pt")
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    other = _ks(files, "cli_models:untrained", d / "x.npy", capsys)
    assert not torch.allclose(other, ref)


def test_static_batch_program_is_called_in_chunks(files):
    from xattr.cli.loading import load_model

    m = load_model(str(files["dir"] / "static.pt2"))
    assert m.batch == B
    x = torch.randn(B + 3, D, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(m.module(x), files["model"](x).detach())


def test_input_formats(files, capsys):
    d, x = files["dir"], files["x"]
    ref = _ks_python(files["model"], x)
    for inputs, extra in [
        (d / "x.pt", []),
        (d / "xdict.pt", []),
        (d / "x.npz", ["--key", "test"]),
        (d / "x64.npy", []),  # float64 given to a float32 model
    ]:
        got = _ks(files, d / "mlp.pt2", inputs, capsys, *extra)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    got = _ks(files, d / "mlp.pt2", d / "x.npz", capsys, "--key", "other")
    assert got.shape == (2, D)
    assert _ks(files, d / "mlp.pt2", d / "x.npy", capsys, "--limit", 2).shape == (2, D)


def test_model_of_two_inputs(files, capsys):
    d, x = files["dir"], files["x"]
    x2 = torch.randn(B, 2, generator=torch.Generator().manual_seed(5))
    np.savez(d / "two.npz", a=x.numpy(), b=x2.numpy())
    torch.save((x, x2), str(d / "two.pt"))
    model = files["m"].two_inputs()
    with torch.no_grad():
        target = model(x, x2).argmax(1)
    ref = xattr.KernelShap(model).attribute((x, x2), target=target, n_samples=20, seed=0)
    for inputs, extra in [(d / "two.npz", ["--key", "a,b"]), (d / "two.pt", [])]:
        got = _ks(files, "cli_models:two_inputs", inputs, capsys, *extra)
        assert isinstance(got, tuple) and len(got) == 2
        torch.testing.assert_close(got, ref)


def test_feature_mask_baselines_and_target_files(files, capsys):
    d, x, model = files["dir"], files["x"], files["model"]
    mask = np.array([0, 0, 1, 1, 2, 5])
    np.save(d / "mask.npy", mask)
    target = np.array([2, 0, 1, 2])
    np.save(d / "target.npy", target)
    got = _ks(
        files, d / "mlp.pt2", d / "x.npy", capsys,
        "--feature-mask", d / "mask.npy", "--target", d / "target.npy", "--baselines", "mean",
    )  # fmt: skip
    ref = xattr.KernelShap(model).attribute(
        x,
        baselines=x.mean(1, keepdim=True).expand_as(x),
        target=torch.from_numpy(target),
        feature_mask=torch.from_numpy(mask).unsqueeze(0),
        n_samples=20,
        seed=0,
    )
    torch.testing.assert_close(got, ref)
    saved = load(files["dir"] / "ks.pt")
    assert saved["scores"].shape == (B, 4)  # four features
    assert saved["target"].tolist() == target.tolist()


def test_constructor_option(files, capsys):
    d, x, model = files["dir"], files["x"], files["model"]
    out = d / "ig_plain.pt"
    argv = ["explain", d / "mlp.pt2", d / "x.npy", "-m", "ig"]
    argv += ["--option", "multiply_by_inputs=False", "-o", out, "-q"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    ref = xattr.IntegratedGradients(model, multiply_by_inputs=False).attribute(
        x, target=pred(model, x)
    )
    saved = load(out)
    torch.testing.assert_close(saved["attributions"], ref)
    assert saved["metadata"]["init"] == {"multiply_by_inputs": False}


def test_image_folder(files, capsys):
    from xattr.cli.loading import load_images

    d, pixels = files["dir"], files["pixels"]
    x, names = load_images(d / "images", mean="0.5", std="0.25,0.5,1")
    expected = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0
    expected = (expected - 0.5) / torch.tensor([0.25, 0.5, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected)
    assert names == ["img0.png", "img1.png", "img2.png"]
    small, _ = load_images(d / "images", image_size="4x6", grayscale=True)
    assert small.shape == (3, 1, 4, 6)
    # explain on the folder, 4 x 4 patches: the explainer with that feature mask
    out = d / "img.pt"
    argv = ["explain", "cli_models:cnn", d / "images", "-m", "ks", "--patch", 4]
    argv += ["--n-samples", 16, "-o", out, "-q"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    model = files["m"].cnn()
    raw = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0
    mask = torch.arange(4).view(2, 2).repeat_interleave(4, 0).repeat_interleave(4, 1)
    ref = xattr.KernelShap(model).attribute(
        raw, target=pred(model, raw), feature_mask=mask.expand(1, 3, 8, 8), n_samples=16, seed=0
    )
    saved = load(out)
    torch.testing.assert_close(saved["attributions"], ref)
    assert saved["metadata"]["names"] == names
    assert "img1.png" in stdout


# ------------------------------------------------------------------ compare
def test_compare_against_captum_and_shap(files, capsys):
    d = files["dir"]
    path = d / "compare.json"
    argv = ["compare", d / "mlp.pt2", d / "x.npy", "--methods", "ig,ks,exact", "--n-samples", 30]
    argv += ["--against", "captum,shap", "--repeats", 2, "--json", path, "-q"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert stdout.splitlines()[0].split()[:3] == ["method", "library", "time"]
    doc = json.loads(path.read_text())
    rows = {(r["method"], r["library"]): r for r in doc["results"]}
    assert set(rows) == {
        ("IntegratedGradients", "xattr"),
        ("IntegratedGradients", "captum"),
        ("KernelShap", "xattr"),
        ("KernelShap", "captum"),
        ("KernelShap", "shap"),
        ("ExactShapley", "xattr"),
        ("ExactShapley", "shap"),
    }
    for r in rows.values():
        assert len(r["times_s"]) == 2 and r["rows_per_example"] > 0
        assert "err_vs_exact" in r  # d = 6
    # deterministic methods agree with the references; exact Shapley is exact
    assert rows["IntegratedGradients", "captum"]["agreement"]["rel_l2"] < 1e-5
    assert rows["ExactShapley", "shap"]["agreement"]["rel_l2"] < 1e-6
    assert rows["ExactShapley", "xattr"]["err_vs_exact"] == 0
    assert rows["ExactShapley", "xattr"]["rows_per_example"] == 2**D
    assert rows["KernelShap", "xattr"]["err_vs_exact"] < 0.5
    assert "shap has no IntegratedGradients" in doc["notes"]
    assert "captum has no ExactShapley" in doc["notes"]


def test_compare_exact_values_use_the_given_baselines(files, capsys):
    d = files["dir"]
    path = d / "exact.json"
    argv = ["compare", d / "mlp.pt2", d / "x.npy", "--methods", "saliency,exact"]
    argv += ["--baselines", 0.3, "--against", "none", "--repeats", 1, "--json", path, "-q"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    rows = {r["method"]: r for r in json.loads(path.read_text())["results"]}
    assert rows["ExactShapley"]["err_vs_exact"] == 0
    assert rows["Saliency"]["err_vs_exact"] > 0


# ------------------------------------------------------------------ reports
def _report_links(index: Path) -> list[str]:
    import re

    html = index.read_text()
    links = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    for link in links:  # every picture or page it names is in the folder
        assert "://" not in link and not link.startswith("/"), link
        assert (index.parent / link).is_file(), link
    return links


def test_explain_and_compare_write_reports(files, capsys):
    d = files["dir"]
    # tabular inputs: the per-example table and a bar chart
    argv = ["explain", d / "mlp.pt2", d / "x.npy", "-m", "ks", "--n-samples", 20]
    argv += ["-o", d / "r.pt", "--report", d / "rep-explain", "-q"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    index = d / "rep-explain" / "index.html"
    html = index.read_text()
    assert "xattr explain: KernelShap" in html and "Per example" in html
    first_row = stdout.splitlines()[2].split()
    assert f">{first_row[2]}<" in html  # example 0's output, as printed
    assert any(link.endswith(".png") for link in _report_links(index))
    # image inputs: the maps
    argv = ["explain", "cli_models:cnn", d / "images", "-m", "ig", "-o", d / "ri.pt"]
    argv += ["--report", d / "rep-images", "-q"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert any(link.endswith(".png") for link in _report_links(d / "rep-images" / "index.html"))
    # compare: the table of the run
    argv = ["compare", d / "mlp.pt2", d / "x.npy", "--methods", "ig,exact", "--against"]
    argv += ["captum", "--repeats", 1, "--report", d / "rep-compare", "-q"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    html = (d / "rep-compare" / "index.html").read_text()
    assert "xattr compare" in html and "IntegratedGradients" in html and "captum" in html
    _report_links(d / "rep-compare" / "index.html")


# ------------------------------------------------------------------ mistakes
def _bad_cases(d: Path) -> list[list]:
    x, m = d / "x.npy", d / "mlp.pt2"
    return [
        ["explain", d / "missing.pt2", x, "-m", "ig", "-o", d / "o.pt"],  # missing model
        ["explain", m, d / "missing.npy", "-m", "ig", "-o", d / "o.pt"],  # missing inputs
        ["explain", d / "garbage.pt2", x, "-m", "ig", "-o", d / "o.pt"],  # unreadable model
        ["explain", x, x, "-m", "ig", "-o", d / "o.pt"],  # not a model
        ["explain", d / "weights.pt", x, "-m", "ig", "-o", d / "o.pt"],  # a state dict
        ["explain", "cli_models:nothing", x, "-m", "ig", "-o", d / "o.pt"],
        ["explain", "no_such_module:f", x, "-m", "ig", "-o", d / "o.pt"],
        ["explain", "cli_models:not_a_module", x, "-m", "ig", "-o", d / "o.pt"],
        ["explain", m, d / "x5.npy", "-m", "ig", "-o", d / "o.pt"],  # wrong input shape
        ["explain", "cli_models:broken", x, "-m", "ig", "-o", d / "o.pt"],  # model fails
        ["explain", m, x, "-m", "kernalshap", "-o", d / "o.pt"],  # unknown method
        ["explain", m, x, "-m", "ig", "--n-steps", 0, "-o", d / "o.pt"],  # out of range
        ["explain", m, x, "-m", "ig", "--target", 3, "-o", d / "o.pt"],
        ["explain", m, x, "-m", "fa", "--smooth", 1.5, "-o", d / "o.pt"],
        ["explain", m, x, "-m", "fa", "--smooth", 0.3, "-o", d / "o.pt"],
        ["explain", m, x, "-m", "fa", "--smooth", 0.5, "--top-fraction", 2, "-o", d / "o.pt"],
        ["explain", m, x, "-m", "ks", "--n-samples", 5, "--seed", -1, "-o", d / "o.pt"],
        ["explain", m, x, "-m", "ig", "--option", "no_such=1", "-o", d / "o.pt"],
        ["explain", m, x, "-m", "ig", "--option", "method=nope", "-o", d / "o.pt"],
        ["explain", m, x, "-m", "ig", "--n-samples", 5, "-o", d / "o.pt"],
        ["explain", m, x, "-m", "deeplift", "-o", d / "o.pt"],  # needs the Python model
        ["explain", m, x, "-m", "occlusion", "-o", d / "o.pt"],  # needs a window
        ["explain", m, x, "-m", "ks", "--patch", 2, "-o", d / "o.pt"],  # not images
        ["explain", m, d / "x.npz", "-m", "ig", "-o", d / "o.pt"],  # which array?
        ["explain", m, d / "x.npz", "--key", "nope", "-m", "ig", "-o", d / "o.pt"],
        ["explain", m, x, "-m", "ig", "-o", d / "no-folder" / "o.pt"],
        ["explain", m, x, "-m", "ig"],  # no --out
        ["explain", m, x, "-m", "ig", "--baselines", "nope", "-o", d / "o.pt"],
        ["explain", m, x, "-m", "ig", "-o", d / "o.pt", "--report", x],  # a file
        ["compare", m, x, "--methods", "ig", "--against", "lime"],
        ["compare", m, x, "--methods", "ig,nope"],
        ["frobnicate"],
        [],
    ]


def test_every_mistake_is_one_line(files, capsys):
    for argv in _bad_cases(files["dir"]):
        code, _, err = run(argv, capsys)
        lines = err.strip().splitlines()
        assert code != 0, argv
        assert len(lines) == 1 and lines[0].startswith("xattr: error: "), (argv, err)
        assert "Traceback" not in err


def test_model_errors_name_the_expected_shapes(files, capsys):
    d = files["dir"]
    x5 = d / "x5.npy"
    _, _, err = run(["explain", d / "static.pt2", x5, "-m", "ig", "-o", d / "o.pt"], capsys)
    assert "inputs of shape [4, 5]; it was exported for [4, 6]" in err
    _, _, err = run(["explain", d / "mlp.pt2", x5, "-m", "ig", "-o", d / "o.pt"], capsys)
    assert "it was exported for [*, 6]" in err
    if (d / "mlp.ts").exists():  # TorchScript's message is its traceback: its last line
        code, _, err = run(["explain", d / "mlp.ts", x5, "-m", "ig", "-o", d / "o.pt"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "Traceback" not in err and "mat1 and mat2 shapes cannot be multiplied" in err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_cuda_gives_the_cpu_result(files, capsys):
    d = files["dir"]
    ref = _ks(files, d / "mlp.pt2", d / "x.npy", capsys)
    got = _ks(files, d / "mlp.pt2", d / "x.npy", capsys, "--device", "cuda")
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_messages_name_the_problem(files, capsys):
    d = files["dir"]
    cases = {
        "model failed on the inputs of shape [4, 5]": _bad_cases(d)[8],
        "this model is broken on two lines": _bad_cases(d)[9],
        "did you mean KernelShap": _bad_cases(d)[10],
        "out of range for a model with 3 outputs": _bad_cases(d)[12],
        "attribute takes: baselines, target": _bad_cases(d)[17],
        "--state-dict": _bad_cases(d)[4],
        "choose one with --key": _bad_cases(d)[23],
    }
    for text, argv in cases.items():
        _, _, err = run(argv, capsys)
        assert text in err, (text, err)


def test_debug_shows_the_traceback(files, capsys):
    argv = _bad_cases(files["dir"])[9] + ["--debug"]
    code, _, err = run(argv, capsys)
    assert code != 0
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("xattr: error: ")


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"xattr {xattr.__version__}"


def test_help_explains_every_option_with_examples(capsys):
    for argv in (["--help"], ["explain", "--help"], ["compare", "--help"]):
        code, out, _ = run(argv, capsys)
        assert code == 0
        assert "examples:" in out
        assert "xattr " in out.split("examples:")[1]
    _, out, _ = run(["explain", "--help"], capsys)
    for option in (
        "--target",
        "--baselines",
        "--feature-mask",
        "--patch",
        "--n-samples",
        "--seed",
        "--smooth",
        "--option",
        "--out",
        "--image-size",
        "--quiet",
    ):
        assert option in out


# ------------------------------------------------------------------ the console script
def test_console_script(files, tmp_path):
    script = Path(sys.executable).with_name("xattr")
    if not script.exists():
        pytest.skip("the console script is not installed (make install)")
    d = files["dir"]
    out = tmp_path / "a.pt"
    ok = subprocess.run(
        [
            str(script),
            "explain",
            "cli_models:mlp",
            str(d / "x.npy"),
            "-m",
            "ig",
            "-o",
            str(out),
            "-q",
        ],
        cwd=d,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    torch.testing.assert_close(
        load(out)["attributions"],
        xattr.IntegratedGradients(files["model"]).attribute(
            files["x"], target=pred(files["model"], files["x"])
        ),
    )
    bad = subprocess.run(
        [
            str(script),
            "explain",
            str(d / "missing.pt2"),
            str(d / "x.npy"),
            "-m",
            "ig",
            "-o",
            str(out),
        ],
        cwd=d,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert bad.stderr.startswith("xattr: error: MODEL: no such file")
