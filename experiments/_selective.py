"""What the selective-explanations experiments share (experiments/selective_*.py).

Given a model, data splits, a feature mask, baselines and high-quality (HQ)
explanations, :func:`run` trains a FastSHAP deep ensemble
(:func:`xattr.amortized.train_ensemble`), builds the two selective explainers of
Paes, Wei & Calmon (2024) on it (``uncertainty="ensemble"`` and ``"learned"``, the
latter's head trained on a split of its own), calibrates them on a calibration split
at each coverage alpha in {0, 0.1, ..., 1} and scores every method on a held-out test
split against HQ:

* MSE (per input: the mean over the d players of the squared error; then the mean
  over inputs, with its standard error) and Spearman correlation (per input, then the
  mean), as functions of alpha;
* quality against average model evaluations per input: KernelShap at n in
  {16, 32, ..., 2048}, the amortized explainer and the selective explainers at every
  coverage;
* the FastSHAP paper's ratio: the model evaluations KernelShap needs to match the
  amortized explainer's MSE over the amortized path's.

Counting model evaluations per input (the same rule for every method): every
explanation needs v(N) and v(empty), 2 rows (v(empty) is shared by a batch under
baseline removal, so 2 is an upper bound); KernelShap at n costs n + 2, the amortized
path 2 (plus the explainer networks' forward passes, not model rows) and the selective
one 2 + (1 - alpha') n, alpha' the realised coverage.

The methods are the dict :data:`METHODS`, name -> ``method(ctx, alpha)`` returning
(attributions [B, d] float64 on the test split, model evaluations per input, realised
coverage); a selective explainer with other settings (e.g. A(x) as KernelShap's prior)
is one more entry of :data:`SELECTIVE` (its SelectiveExplainer arguments), which adds
its method "selective (key)".
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor

import xattr
from bench._harness import write_results
from xattr.amortized import AmortizedExplainer, SelectiveExplainer, train_ensemble

COVERAGES = tuple(round(0.1 * i, 1) for i in range(11))
QUICK_COVERAGES = (0.0, 0.5, 1.0)
BUDGETS = tuple(2**i for i in range(4, 12))  # KernelShap's n: 16 ... 2048
QUICK_BUDGETS = (16, 64)
FALLBACK_NS = (32, 256)  # the fallback's budgets n (MC_n, selective)
BOTH_EMPTY_AND_FULL = 2
HQ_SEED_OFFSET = 1000  # v(N) and v(empty): model rows every explanation needs


@dataclass
class Task:
    """One data set to explain.

    ``target``: ``"predicted"`` explains each input's predicted class (the amortized
    explainers learn every class at once, ``n_classes``); otherwise the fixed output
    (None or an int) every input is explained for. ``hq``: ``"exact"``
    (ExactShapley) or an int, KernelShap's n for the HQ explanations. ``net``: the
    explainer network, a backbone name or a function seed -> nn.Module, with
    ``net_kwargs`` (hidden / channels) and ``fit_kwargs`` (AmortizedExplainer.fit's).
    ``ranked``: x -> bool [B, d], the players Spearman ranks (default all; text: the
    real tokens, as padding positions are null players whose ranks are noise).
    """

    name: str
    model: Callable[[Tensor], Tensor]
    input_shape: tuple[int, ...]
    feature_mask: Tensor
    baselines: float | Tensor
    x_train: Tensor
    x_unc: Tensor
    x_cal: Tensor
    x_test: Tensor
    target: Any = None
    n_classes: int | None = None
    hq: str | int = "exact"
    net: Any = "mlp"
    net_kwargs: dict = field(default_factory=dict)
    fit_kwargs: dict = field(default_factory=dict)
    ranked: Callable[[Tensor], Tensor] | None = None
    info: dict = field(default_factory=dict)

    @property
    def d(self) -> int:
        return int(self.feature_mask.unique().numel())

    def target_of(self, x: Tensor) -> Any:
        """The target argument for inputs ``x``: their predicted classes, or the fixed one."""
        if self.target != "predicted":
            return self.target
        with torch.no_grad():
            return self.model(x).argmax(1).tolist()

    def game(self) -> dict[str, Any]:
        return {"baselines": self.baselines, "feature_mask": self.feature_mask}


def per_feature(phi: Tensor, mask: Tensor, d: int) -> Tensor:
    """Captum-layout attributions [B, *F] -> per player [B, d] float64 (each player's
    elements carry its value; the mean over them reads it off)."""
    flat = phi.reshape(phi.shape[0], -1).to(torch.float64)
    ids = mask.reshape(-1).to(phi.device)
    total = torch.zeros(flat.shape[0], d, dtype=torch.float64).index_add_(1, ids, flat)
    return total / torch.bincount(ids, minlength=d).to(torch.float64)


def high_quality(task: Task, x: Tensor, seed: int = 0) -> Tensor:
    """HQ explanations [B, *F] (Captum's layout): ExactShapley, or KernelShap at n = task.hq."""
    target = task.target_of(x)
    if task.hq == "exact":
        return xattr.ExactShapley(task.model).attribute(x, target=target, **task.game())
    return xattr.KernelShap(task.model).attribute(
        x, target=target, n_samples=int(task.hq), seed=seed, **task.game()
    )


def kernel_shap(task: Task, x: Tensor, n: int, seed: int) -> Tensor:
    """KernelShap with n coalitions, per player [B, d] float64."""
    phi = xattr.KernelShap(task.model).attribute(
        x,
        target=task.target_of(x),
        n_samples=n,
        seed=seed,
        return_input_shape=False,
        **task.game(),
    )
    return phi.to(torch.float64)


def mse(phi: Tensor, hq: Tensor) -> Tensor:
    """Per input: mean over players of the squared error, float64 [B]."""
    return ((phi - hq) ** 2).mean(1)


def spearman(phi: Tensor, hq: Tensor, ranked: Tensor | None = None) -> np.ndarray:
    """Per input: Spearman's rank correlation over the players (those where ``ranked``,
    bool [B, d], holds; default all), average ranks for ties; NaN where either side is
    constant or fewer than 2 players are ranked."""
    out = np.full(phi.shape[0], np.nan)
    a, b = phi.numpy(), hq.numpy()
    keep = np.ones(a.shape, dtype=bool) if ranked is None else ranked.numpy()
    for i in range(phi.shape[0]):
        ai, bi = a[i][keep[i]], b[i][keep[i]]
        if ai.size >= 2 and np.ptp(ai) > 0 and np.ptp(bi) > 0:
            out[i] = spearmanr(ai, bi).statistic
    return out


def score(phi: Tensor, hq: Tensor, ranked: Tensor | None = None) -> dict[str, float]:
    """MSE (mean, standard error) and Spearman (mean over inputs where defined)."""
    e = mse(phi, hq)
    r = spearman(phi, hq, ranked)
    return {
        "mse": float(e.mean()),
        "mse_se": float(e.std() / math.sqrt(e.numel())) if e.numel() > 1 else 0.0,
        "spearman": float(np.nanmean(r)) if np.isfinite(r).any() else math.nan,
    }


@dataclass
class Context:
    """What the methods read: the task, its ensemble, the selective explainers, the
    test split's amortized / MC_n / HQ explanations per player, n and the seed."""

    task: Task
    members: list[AmortizedExplainer]
    selective: dict[str, SelectiveExplainer]
    a_test: Tensor
    mc_test: Tensor
    hq_test: Tensor
    hq_cal: Tensor
    n: int
    seed: int


Row = tuple[Tensor, float, float]  # (attributions [B, d], evaluations per input, coverage)


def amortized_row(ctx: Context, alpha: float) -> Row:
    return ctx.a_test, float(BOTH_EMPTY_AND_FULL), 1.0


def mc_row(ctx: Context, alpha: float) -> Row:
    return ctx.mc_test, float(ctx.n + BOTH_EMPTY_AND_FULL), 0.0


def selective_row(key: str) -> Callable[[Context, float], Row]:
    """The selective explainer ``SELECTIVE[key]``, calibrated at coverage alpha."""

    def row(ctx: Context, alpha: float) -> Row:
        sel = ctx.selective[key]
        sel.coverage = alpha
        t = ctx.task
        sel.calibrate(t.x_cal, ctx.hq_cal, target=t.target_of(t.x_cal), seed=ctx.seed)
        out = sel.attribute(
            t.x_test, target=t.target_of(t.x_test), seed=ctx.seed, return_input_shape=False
        )
        refined = float(out.refined.double().mean())
        return out.attributions, BOTH_EMPTY_AND_FULL + refined * ctx.n, 1.0 - refined

    return row


# The selective explainers: key -> SelectiveExplainer's keyword arguments (beside the
# ensemble; n_fallback_samples is set per budget); one with uncertainty="learned" gets
# its head trained on the task's x_unc. Each is a method "selective (key)".
SELECTIVE: dict[str, dict[str, Any]] = {
    "ensemble": {"uncertainty": "ensemble"},
    "learned": {"uncertainty": "learned"},
    # A(x) as the prior of KernelShap's regression, rho per bin (issue 14's variant)
    "ensemble, prior": {"uncertainty": "ensemble", "combine": "prior"},
    "learned, prior": {"uncertainty": "learned", "combine": "prior"},
}
METHODS: dict[str, Callable[[Context, float], Row]] = {
    "amortized": amortized_row,
    "MC_n": mc_row,
    **{f"selective ({key})": selective_row(key) for key in SELECTIVE},
}


def match_evaluations(evals: list[float], mses: list[float], target: float) -> dict[str, Any]:
    """The model evaluations at which KernelShap's MSE curve (evaluations increasing)
    reaches ``target``: log-log interpolation between the budgets around it, or, beyond
    the largest budget, MSE ~ 1/n from the last point (an extrapolation, flagged)."""
    le, lm = np.log(evals), np.log(mses)
    if target >= mses[0]:
        return {"evaluations": evals[0], "kind": "at or below the smallest budget"}
    for i in range(1, len(evals)):
        if mses[i] <= target:
            w = (lm[i - 1] - math.log(target)) / (lm[i - 1] - lm[i])
            return {
                "evaluations": float(math.exp(le[i - 1] + w * (le[i] - le[i - 1]))),
                "kind": "interpolated",
            }
    return {
        "evaluations": float(evals[-1] * mses[-1] / target),
        "kind": "extrapolated (MSE ~ 1/n beyond the largest budget)",
    }


def check_ends(curves: dict[str, dict[str, list[dict[str, float]]]]) -> None:
    """What must hold whatever the data: coverage 1 keeps A(x) for every test input
    (the amortized MSE, realised coverage 1) and coverage 0 refines every one."""
    for n, methods in curves.items():
        amortized = methods["amortized"][0]["mse"]
        for name, curve in methods.items():
            if not name.startswith("selective"):
                continue
            for p in curve:
                if p["coverage"] == 1.0:
                    assert p["realised_coverage"] == 1.0, (n, name, p)
                    assert math.isclose(p["mse"], amortized, rel_tol=1e-9), (n, name, p)
                if p["coverage"] == 0.0:
                    assert p["realised_coverage"] == 0.0, (n, name, p)


def run(
    task: Task,
    *,
    k: int = 5,
    ns: tuple[int, ...] = FALLBACK_NS,
    seed: int = 0,
    budgets=BUDGETS,
    coverages=COVERAGES,
    unc_epochs: int = 200,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Everything for one task (see the module docstring); returns the JSON-able report.
    ``log`` prints each stage's time (default: print, flushed)."""
    log = log or (lambda line: print(line, flush=True))
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    d = task.d

    def lap(name: str) -> None:
        times[name] = time.perf_counter() - t0 - sum(times.values())
        log(f"[{task.name}] {name}: {times[name]:.1f} s")

    # HQ's seeds differ from the Monte Carlo explanations' (seed): KernelShap draws the
    # same first coalitions at the same seed, which would correlate their errors
    hq_unc = high_quality(task, task.x_unc, seed + HQ_SEED_OFFSET)
    hq_cal = high_quality(task, task.x_cal, seed + HQ_SEED_OFFSET)
    hq_test_full = high_quality(task, task.x_test, seed + HQ_SEED_OFFSET)
    hq_test = per_feature(hq_test_full, task.feature_mask, d)
    hq_note: dict[str, Any] = {"method": "ExactShapley (all 2^d coalitions)"}
    if task.hq != "exact":
        other = per_feature(
            high_quality(task, task.x_test, seed + HQ_SEED_OFFSET + 1), task.feature_mask, d
        )
        # two independent HQ estimates: E||a - b||^2 = 2 E||a - phi||^2
        hq_note = {
            "method": f"KernelShap, n = {task.hq} coalitions",
            "own_mse_estimate": float(mse(hq_test, other).mean() / 2),
            "how": "half the MSE between two seeds on the test split",
        }
    lap("HQ explanations")

    fit_target = None if task.target == "predicted" else task.target
    members = train_ensemble(
        task.model,
        task.x_train,
        k=k,
        seeds=[seed + i for i in range(k)],
        explainer_net=task.net,
        input_shape=task.input_shape,
        feature_mask=task.feature_mask,
        n_classes=task.n_classes,
        baselines=task.baselines,
        target=fit_target,
        show_progress=False,
        **task.net_kwargs,
        **task.fit_kwargs,
    )
    lap(f"FastSHAP ensemble (k = {k})")

    selective = {key: SelectiveExplainer(members, **kw) for key, kw in SELECTIVE.items()}
    for sel in selective.values():
        if sel.uncertainty == "learned":
            sel.fit_uncertainty(
                task.x_unc, hq_unc, target=task.target_of(task.x_unc), epochs=unc_epochs, seed=seed
            )
    lap("learned uncertainty head")

    target_test = task.target_of(task.x_test)
    each = torch.stack(
        [
            per_feature(m.attribute(task.x_test, target=target_test), task.feature_mask, d)
            for m in members
        ]
    )
    single = [float(mse(e, hq_test).mean()) for e in each]
    ranked = None if task.ranked is None else task.ranked(task.x_test)

    # every method at every coverage, once per fallback budget n (the selective
    # explainers and the learned head are the same; only n_fallback_samples changes)
    curves: dict[str, dict[str, list[dict[str, float]]]] = {}
    for n in ns:
        for sel in selective.values():
            sel.n_fallback_samples = n
        mc = kernel_shap(task, task.x_test, n, seed)
        ctx = Context(task, members, selective, each.mean(0), mc, hq_test, hq_cal, n, seed)
        curves[str(n)] = {}
        for name, method in METHODS.items():
            curves[str(n)][name] = []
            for alpha in coverages:
                phi, evals, realised = method(ctx, alpha)
                curves[str(n)][name].append(
                    {
                        "coverage": alpha,
                        "realised_coverage": realised,
                        "evaluations": evals,
                        **score(phi, hq_test, ranked),
                    }
                )
    lap("coverage curves")
    check_ends(curves)

    # at n >= 2^d - 2 KernelShap enumerates every coalition and is exact: left out
    budgets = [b for b in budgets if b < 2**d - 2]
    ks = [
        {
            "n": b,
            "evaluations": float(b + BOTH_EMPTY_AND_FULL),
            **score(kernel_shap(task, task.x_test, b, seed), hq_test, ranked),
        }
        for b in budgets
    ]
    lap("KernelShap budget curve")

    amortized = curves[str(ns[0])]["amortized"][0]
    match = match_evaluations(
        [r["evaluations"] for r in ks], [r["mse"] for r in ks], amortized["mse"]
    )
    match["ratio"] = match["evaluations"] / BOTH_EMPTY_AND_FULL
    return {
        "task": task.name,
        **task.info,
        "d": d,
        "splits": {
            s: int(getattr(task, f"x_{s}").shape[0]) for s in ("train", "unc", "cal", "test")
        },
        "explained": "predicted class" if task.target == "predicted" else repr(task.target),
        "hq": hq_note,
        "k": k,
        "n_fallback": list(ns),
        "seed": seed,
        "member_mse": single,
        "curves": curves,
        "kernel_shap": ks,
        "kernel_shap_match": match,
        "seconds": times,
    }


# ------------------------------------------------------------------ reporting
COLORS = {
    "amortized": "tab:blue",
    "MC_n": "tab:gray",
    "selective (ensemble)": "tab:orange",
    "selective (learned)": "tab:green",
}
CONSTANT = ("amortized",)  # the same at every n: drawn once


def _label(name: str, n: str) -> str:
    if name in CONSTANT:
        return f"{name} (ensemble mean)"
    return f"MC_{n} (KernelShap)" if name == "MC_n" else f"{name}, n = {n}"


def plot(reports: list[dict[str, Any]], path: Any) -> None:
    """One row per data set: MSE vs coverage, Spearman vs coverage (solid: the first
    fallback budget n, dashed: the second), MSE vs model evaluations per input (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(reports), 3, figsize=(15, 4 * len(reports)), squeeze=False)
    for row, rep in zip(axes, reports):
        for j, (n, curves) in enumerate(rep["curves"].items()):
            ls = ("-", "--", "-.", ":")[j % 4]
            for name, curve in curves.items():
                if name in CONSTANT and j > 0:
                    continue
                style = {
                    "color": COLORS.get(name),
                    "ls": ls,
                    "ms": 3,
                    "marker": "o" if name.startswith("selective") else None,
                }
                alphas = [p["coverage"] for p in curve]
                row[0].plot(alphas, [p["mse"] for p in curve], label=_label(name, n), **style)
                row[1].plot(alphas, [p["spearman"] for p in curve], label=_label(name, n), **style)
                if name.startswith("selective"):
                    row[2].plot(
                        [p["evaluations"] for p in curve],
                        [p["mse"] for p in curve],
                        label=f"{name}, n = {n}, alpha = 1 ... 0",
                        **style,
                    )
        ks = rep["kernel_shap"]
        row[2].plot(
            [p["evaluations"] for p in ks],
            [p["mse"] for p in ks],
            "k-^",
            ms=4,
            label=f"KernelShap, n = {ks[0]['n']} ... {ks[-1]['n']}",
        )
        a = next(iter(rep["curves"].values()))["amortized"][0]
        row[2].plot(
            [a["evaluations"]],
            [a["mse"]],
            "*",
            color=COLORS["amortized"],
            ms=12,
            label="amortized (ensemble mean)",
        )
        if "own_mse_estimate" in rep["hq"]:
            row[2].axhline(
                rep["hq"]["own_mse_estimate"],
                color="tab:red",
                lw=0.8,
                label="HQ's own error (estimate)",
            )
        row[2].set_xscale("log")
        row[2].set_yscale("log")
        row[0].set_yscale("log")
        for ax, ylabel in zip(row, ("MSE to HQ", "Spearman to HQ", "MSE to HQ")):
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        row[0].set_xlabel("coverage alpha (share that keeps A(x))")
        row[1].set_xlabel("coverage alpha")
        row[2].set_xlabel("model evaluations per input")
        row[0].set_title(f"{rep['task']}: MSE vs coverage")
        row[1].set_title(f"{rep['task']}: Spearman vs coverage")
        row[2].set_title(f"{rep['task']}: quality vs cost")
        row[1].legend(fontsize=6)
        row[2].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_task(rep: dict[str, Any]) -> list[str]:
    """One data set's section: setting, a coverage table per n, KernelShap, the ratio."""
    sp = rep["splits"]
    hq = rep["hq"]
    hq_text = hq["method"] + (
        f" (its own MSE, estimated as {hq['how']}: {hq['own_mse_estimate']:.3g})"
        if "own_mse_estimate" in hq
        else ""
    )
    lines = [
        f"## {rep['task']}",
        "",
        f"{rep.get('about', '')} d = {rep['d']} players. "
        f"Splits: {sp['train']} train (FastSHAP), {sp['unc']} for the learned uncertainty "
        f"head, {sp['cal']} calibration, {sp['test']} test. HQ: {hq_text}. FastSHAP "
        f"ensemble of k = {rep['k']} (single members' MSE "
        + ", ".join(f"{m:.3g}" for m in rep["member_mse"])
        + "); fallback MC_n = KernelShap with n = "
        + " and ".join(map(str, rep["n_fallback"]))
        + ". Times: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in rep["seconds"].items())
        + ".",
        "",
    ]
    for n, curves in rep["curves"].items():
        names = list(curves)
        lines += [
            f"Fallback n = {n}: MSE to HQ (mean over test inputs +- its standard error) / "
            "mean Spearman, by coverage alpha (the selective explainers' realised coverage "
            "on the test split in brackets):",
            "",
            "| alpha | " + " | ".join(n_name.replace("MC_n", f"MC_{n}") for n_name in names) + " |",
            "|---:|" + "---:|" * len(names),
        ]
        for i, alpha in enumerate(p["coverage"] for p in curves[names[0]]):
            cells = []
            for name in names:
                p = curves[name][i]
                cell = f"{p['mse']:.3g} +- {p['mse_se']:.2g} / {p['spearman']:.3f}"
                if name.startswith("selective"):
                    cell += f" ({p['realised_coverage']:.2f})"
                cells.append(cell)
            lines.append(f"| {alpha:.1f} | " + " | ".join(cells) + " |")
        lines.append("")
    m = rep["kernel_shap_match"]
    a = next(iter(rep["curves"].values()))["amortized"][0]
    lines += [
        "KernelShap alone against model evaluations per input (n coalitions + v(N) + v(empty)):",
        "",
        "| n | evaluations | MSE | Spearman |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {p['n']} | {p['evaluations']:.0f} | {p['mse']:.3g} | {p['spearman']:.3f} |"
        for p in rep["kernel_shap"]
    ]
    lines += [
        "",
        f"Amortized (ensemble mean): MSE {a['mse']:.3g}, Spearman {a['spearman']:.3f}, at "
        f"{a['evaluations']:.0f} model evaluations per input. KernelShap matches that MSE at "
        f"about {m['evaluations']:.0f} evaluations ({m['kind']}): a ratio of "
        f"**{m['ratio']:.0f}x** (the FastSHAP paper reports 200-2000x for Monte Carlo "
        "baselines on tabular data).",
        "",
    ]
    return lines


def summary(rep: dict[str, Any]) -> str:
    """One line for the console."""
    parts = []
    for n, c in rep["curves"].items():
        sel = c["selective (ensemble)"]
        mid = sel[len(sel) // 2]
        parts.append(
            f"n = {n}: MC {c['MC_n'][0]['mse']:.3g}, selective (ensemble) at alpha "
            f"{mid['coverage']} {mid['mse']:.3g}, at alpha 0 {sel[0]['mse']:.3g}"
        )
    a = next(iter(rep["curves"].values()))["amortized"][0]
    m = rep["kernel_shap_match"]
    return (
        f"[{rep['task']}] amortized MSE {a['mse']:.3g}; "
        + "; ".join(parts)
        + f"; KernelShap matches the amortized MSE at {m['evaluations']:.0f} evaluations "
        f"({m['ratio']:.0f}x)"
    )


def markdown(title: str, stem: str, report: dict[str, Any]) -> str:
    """The whole Markdown report of a script: its title, the counting rule, skipped data
    sets, a section per data set and the figure ``stem``.png."""
    lines = [
        f"# {title} (experiments/{stem}.py)",
        "",
        f"{report['seconds']:.0f} s on this machine ({report['threads']} torch thread(s)). "
        "Model evaluations per input count v(N) and v(empty) for every method (2), "
        "KernelShap's n coalitions, and the selective explainer's n for the refined share "
        "(1 - realised coverage).",
        "",
    ]
    lines += [f"Skipped: {msg}" for msg in report.get("skipped", {}).values()]
    for rep in report["tasks"]:
        lines += markdown_task(rep)
    lines += [f"![{title}]({stem}.png)", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ the scripts' main
def arguments(description: str, results: Any) -> argparse.ArgumentParser:
    """The arguments every selective_*.py script takes (each adds its own)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--k", type=int, default=5, help="ensemble members")
    ap.add_argument(
        "--n",
        type=int,
        nargs="+",
        default=list(FALLBACK_NS),
        help="the fallback KernelShap's n (each gets its curves)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny settings, writes nothing")
    ap.add_argument("--out", type=Path, default=results)
    return ap


def fit_settings(epochs: int, n_coalitions: int, patience: int) -> dict[str, Any]:
    """AmortizedExplainer.fit's settings in these experiments (Adam, lr 1e-3, batch 64)."""
    return {
        "epochs": epochs,
        "batch_size": 64,
        "lr": 1e-3,
        "n_coalitions": n_coalitions,
        "patience": patience,
    }


def main(
    makers: list[Callable[[], Task | None]],
    args: argparse.Namespace,
    title: str,
    stem: str,
    skipped: dict[str, str] | None = None,
) -> int:
    """Builds each task (None: skipped, the maker says why), runs it, prints a summary
    line; then, unless ``args.quick``, writes results/<stem>.{json,md,png}."""
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    reports = []
    for make in makers:
        task = make()
        if task is None:
            continue
        rep = run(
            task,
            k=args.k,
            ns=tuple(args.n),
            seed=args.seed,
            budgets=QUICK_BUDGETS if args.quick else BUDGETS,
            coverages=QUICK_COVERAGES if args.quick else COVERAGES,
            unc_epochs=20 if args.quick else 200,
        )
        print(summary(rep), flush=True)
        reports.append(rep)
    seconds = time.perf_counter() - t0
    if args.quick:
        print(f"quick run: {seconds:.0f} s, nothing written")
        return 0
    report = {
        "seconds": seconds,
        "threads": args.threads,
        "tasks": reports,
        "skipped": skipped or {},
    }
    write_results(args.out / stem, report, markdown(title, stem, report))
    plot(reports, args.out / f"{stem}.png")
    print(f"wrote {args.out}/{stem}.png in {seconds:.0f} s")
    return 0
