"""Robustness bounds on the synthetic case of Lin, Covert & Lee (NeurIPS 2023).

x ~ N(0, Sigma) in d = 4 dimensions, Sigma = I with Sigma_01 = Sigma_10 = rho; the model
is logistic regression f(x) = sigmoid(beta . x) with beta = [5, 0, 3, 1]. Three removals
(``removal=``): baseline (b = the mean 0), marginal (a seeded background of 256 rows from
N(0, Sigma)) and conditional, exact: ``experiments._gaussian.GaussianConditional`` computes
E[f(x_S, X_{not S}) | X_S = x_S] by quadrature. Summaries: exact Shapley (``ExactShapley``),
Banzhaf (``Banzhaf``) and leave-one-out (``FeatureAblation``).

1. Model perturbation f -> f' = sigmoid(beta' . x), beta' = [0, 5, 3, 1]: f and f' agree
   wherever x0 = x1, so on the data's support at rho = 1. For rho in RHOS and 200 seeded
   points from N(0, Sigma), the measured ||phi(f) - phi(f')||_2 next to
   ``xattr.bounds.model_bound``: for baseline and marginal removal the gap is
   ``model_gap`` (sup |f - f'| over the points the removal queries). For conditional
   removal the gap uses X' = {|x0 - x1| <= r}: sup over X' of |f - f'| = tanh(5 r / 4)
   exactly (the logits differ by 5 (x0 - x1); sigma(u + a) - sigma(u - a) peaks at u = 0),
   and Q is the probability that the imputed point lies in X'. The game's gap is
   max_S |E[(f - f')(X) | X_S = x_S]|, so Q must hold for every coalition: Q(x, r) =
   min_S P(|X0 - X1| <= r | X_S = x_S) (a Gaussian probability in closed form; for S
   holding 0 and 1 it is 1{|x0 - x1| <= r}). The unconditional P(|X0 - X1| <= r) =
   2 Phi(r / sqrt(2 - 2 rho)) - 1 is not enough pointwise (an explained point with
   |x0 - x1| > r has v(N) - v'(N) = f(x) - f'(x) outside X'); it is reported beside, as
   "bound_unconditional_q", not asserted. r is chosen per point (the smallest gap over
   a grid and r = |x0 - x1|; the bound holds for each r, so for the best).
   At rho = 1 the conditional attributions must not move (max change < 1e-9, asserted)
   while the baseline and marginal ones do.
2. Input perturbation x -> x + delta, ||delta||_2 = eps: for rho in INPUT_RHOS and the
   first 50 points, random directions (seeded) and an adversarial one per point (random
   search on the sphere: the best random direction, then steps that keep a perturbed
   direction when it moves the attributions more), next to ``input_bound`` with
   L = ||beta||_2 / 4 (sigmoid is 1/4-Lipschitz) and, for conditional removal,
   M = ``tv_lipschitz(Sigma)`` (exact for Gaussians).

Output bound: the summaries here (Shapley, Banzhaf, leave-one-out) give a constant game
zero attribution, so f and f - 1/2 have the same attributions; |f - 1/2| <= 1/2, hence
B = 1/2 (``output_bound=``) in the conditional bounds.

Every measured change (l2 and per feature) is asserted to lie within its bound: a rerun
that breaks the mathematics fails loudly.

Writes experiments/results/bounds_synthetic.{json,md,png}.

Run: .venv/bin/python -m experiments.bounds_synthetic   (about a minute on 2 CPU cores;
--quick for a small smoke run)
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from bench._harness import write_results
from experiments._gaussian import GaussianConditional, _blocks, tv_lipschitz
from xattr import Banzhaf, ExactShapley, FeatureAblation, ops
from xattr._core.removal import BaselineRemoval, ConditionalRemoval, MarginalRemoval
from xattr.bounds import (
    RobustnessBound,
    attribution_change,
    input_bound,
    model_bound,
    model_gap,
)

RESULTS = Path(__file__).resolve().parent / "results"
F64 = torch.float64
D = 4
BETA = torch.tensor([5.0, 0.0, 3.0, 1.0], dtype=F64)
BETA_PRIME = torch.tensor([0.0, 5.0, 3.0, 1.0], dtype=F64)
LIPSCHITZ = float(BETA.norm()) / 4  # sigmoid' <= 1/4
OUTPUT_BOUND = 0.5  # |f - 1/2| <= 1/2, and the summaries ignore constants
RHOS = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
INPUT_RHOS = (0.0, 0.5, 0.9)
EPS = (0.01, 0.03, 0.1, 0.3, 1.0)
METHODS = {"shapley": ExactShapley, "banzhaf": Banzhaf, "loo": FeatureAblation}
REMOVALS = ("baseline", "marginal", "conditional")
R_GRID = torch.cat([torch.zeros(1), torch.logspace(-3, 1, 41), torch.tensor([math.inf])])
U = torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=F64)  # x0 - x1 = U . x
TOL = 1e-9


def covariance(rho: float) -> Tensor:
    cov = torch.eye(D, dtype=F64)
    cov[0, 1] = cov[1, 0] = rho
    return cov


def sample(n: int, rho: float, gen: torch.Generator) -> Tensor:
    """n rows from N(0, Sigma) through the Cholesky factor (x1 = x0 exactly at rho = 1)."""
    z = torch.randn(n, D, generator=gen, dtype=F64)
    x = z.clone()
    x[:, 1] = rho * z[:, 0] + math.sqrt(max(1.0 - rho * rho, 0.0)) * z[:, 1]
    return x


def logistic(beta: Tensor) -> Callable[[Tensor], Tensor]:
    def f(x: Tensor) -> Tensor:
        return torch.sigmoid(x.to(F64) @ beta)[:, None]

    return f


def removal_of(kind: str, rho: float, beta: Tensor, background: Tensor) -> object:
    if kind == "baseline":
        return BaselineRemoval()
    if kind == "marginal":
        return MarginalRemoval(background)
    return ConditionalRemoval(
        GaussianConditional(beta, 0.0, torch.zeros(D, dtype=F64), covariance(rho))
    )


def baselines_of(kind: str) -> Tensor | None:
    return torch.zeros(1, D, dtype=F64) if kind == "baseline" else None


# ------------------------------------------------------------ conditional model gap


def inside_prob(x: Tensor, cov: Tensor, r: Tensor) -> Tensor:
    """Q(x, r) = min over coalitions S of P(|X0 - X1| <= r | X_S = x_S): [B, R]."""
    out = torch.ones(x.shape[0], r.numel(), dtype=F64)
    r = r.to(F64)[None]
    for keep in ops.enumerate_coalitions(D):
        if bool(keep.all()):
            m, s = x @ U, 0.0
        elif not bool(keep.any()):
            m, s = torch.zeros(x.shape[0], dtype=F64), float(U @ cov @ U)
            s = math.sqrt(max(s, 0.0))
        else:
            K, C = _blocks(cov, keep)
            u_r = U[~keep]
            m = x[:, keep] @ (U[keep] + K.T @ u_r)
            s = math.sqrt(max(float(u_r @ C @ u_r), 0.0))
        m = m[:, None]
        if s <= 1e-12:  # X0 - X1 is known given x_S
            q = (m.abs() <= r).to(F64)
        else:
            q = torch.special.ndtr((r - m) / s) - torch.special.ndtr((-r - m) / s)
        out = torch.minimum(out, q)
    return out


def sup_gap_inside(r: Tensor) -> Tensor:
    """sup over {|x0 - x1| <= r} of |sigmoid(5 x0 + a) - sigmoid(5 x1 + a)| = tanh(5 r / 4)."""
    return torch.tanh(1.25 * r.to(F64))


def conditional_model_bounds(method: type, x: Tensor, rho: float) -> tuple[Tensor, Tensor, dict]:
    """Per point: model_bound(..., removal="conditional", inside_prob=Q, output_bound=B)
    at the r (grid, or |x0 - x1|) that minimises it; also the unconditional-Q variant.
    Returns (l2 [B], per_feature [B, d], info)."""
    cov = covariance(rho)
    l2, per, chosen_r, chosen_q = [], [], [], []
    for i in range(x.shape[0]):
        r = torch.cat([R_GRID.to(F64), (x[i] @ U).abs().reshape(1)])
        q = inside_prob(x[i : i + 1], cov, r)[0]
        sup = sup_gap_inside(r)
        gap = q * sup + 2 * OUTPUT_BOUND * (1 - q)
        k = int(gap.argmin())
        b = model_bound(
            method,
            D,
            float(sup[k]),
            removal="conditional",
            inside_prob=float(q[k]),
            output_bound=OUTPUT_BOUND,
        )
        l2.append(b.l2)
        per.append(b.per_feature)
        chosen_r.append(float(r[k]))
        chosen_q.append(float(q[k]))
    # the brief's unconditional Q = P(|X0 - X1| <= r), r on the grid (not a pointwise bound)
    s = math.sqrt(max(2.0 - 2.0 * rho, 0.0))
    r = R_GRID.to(F64)
    q_unc = torch.ones_like(r) if s == 0.0 else 2 * torch.special.ndtr(r / s) - 1
    q_unc = torch.where(torch.isinf(r), torch.ones_like(r), q_unc)
    gap_unc = q_unc * sup_gap_inside(r) + 2 * OUTPUT_BOUND * (1 - q_unc)
    k = int(gap_unc.argmin())
    unc = model_bound(
        method,
        D,
        float(sup_gap_inside(r)[k]),
        removal="conditional",
        inside_prob=float(q_unc[k]),
        output_bound=OUTPUT_BOUND,
    )
    info = {
        "r_median": float(torch.tensor(chosen_r).median()),
        "q_median": float(torch.tensor(chosen_q).median()),
        "bound_unconditional_q": float(unc.l2[0]),
        "r_unconditional_q": float(r[k]),
    }
    return torch.cat(l2), torch.cat(per), info


def unconditional_q_counterexample(method: type, rho: float = 0.9999) -> dict:
    """One point, x = (1, -1, 0, 0) (positive density), where the bound with the
    unconditional Q = P(|X0 - X1| <= r) fails while the per-coalition Q holds: the
    coalitions holding x0 and x1 see f(x) - f'(x) = sigmoid(5) - sigmoid(-5)."""
    x = torch.tensor([[1.0, -1.0, 0.0, 0.0]], dtype=F64)
    bg = torch.zeros(1, D, dtype=F64)
    rem = removal_of("conditional", rho, BETA, bg)
    rem_prime = removal_of("conditional", rho, BETA_PRIME, bg)
    l2, per = model_change(method, x, "conditional", rem, rem_prime)
    b_l2, b_per, info = conditional_model_bounds(method, x, rho)
    check(f"counterexample {method.__name__}", l2, per, b_l2, b_per)
    return {
        "rho": rho,
        "x": x[0].tolist(),
        "change": float(l2[0]),
        "bound": float(b_l2[0]),
        "bound_unconditional_q": info["bound_unconditional_q"],
    }


# ------------------------------------------------------------ measurement helpers


def model_change(method: type, x: Tensor, kind: str, rem: object, rem_prime: object):
    """||phi(f) - phi(f')||_2 and |phi_i - phi'_i| per point (attribution_change; under
    conditional removal the surrogate belongs to the model, so f' gets its own)."""
    f, f_prime = logistic(BETA), logistic(BETA_PRIME)
    return attribution_change(
        method(f),
        x,
        explainer_prime=method(f_prime),
        target=0,
        removal=rem,
        removal_prime=rem_prime if kind == "conditional" else None,
        baselines=baselines_of(kind),
    )


def check(name: str, l2: Tensor, per: Tensor, bound_l2: Tensor, bound_per: Tensor) -> None:
    """Every measured change within its bound (l2 and per feature), up to rounding."""
    slack = TOL * (1.0 + bound_l2)
    assert bool((l2 <= bound_l2 + slack).all()), (
        f"{name}: ||phi - phi'||_2 {float(l2.max()):.6g} above its bound "
        f"{float(bound_l2[int((l2 - bound_l2).argmax())]):.6g}"
    )
    slack = TOL * (1.0 + bound_per)
    assert bool((per <= bound_per + slack).all()), f"{name}: a per-feature change above its bound"


def ratio(measured: Tensor, bound: Tensor) -> Tensor:
    return torch.where(bound > 0, measured / bound.clamp_min(1e-300), torch.zeros_like(bound))


def stats(t: Tensor) -> dict:
    return {"mean": float(t.mean()), "max": float(t.max())}


# ------------------------------------------------------------ the two experiments


def model_perturbation(args: argparse.Namespace, data: dict) -> dict:
    out: dict = {}
    for rho in args.rhos:
        x, bg = data[rho]
        out[str(rho)] = {}
        for kind in REMOVALS:
            rem = removal_of(kind, rho, BETA, bg)
            rem_prime = removal_of(kind, rho, BETA_PRIME, bg)
            if kind != "conditional":
                gap = model_gap(
                    logistic(BETA),
                    logistic(BETA_PRIME),
                    x,
                    baselines=baselines_of(kind),
                    removal=rem,
                    target=0,
                )
            row = {}
            for name, cls in METHODS.items():
                l2, per = model_change(cls, x, kind, rem, rem_prime)
                info: dict = {}
                if kind == "conditional":
                    b_l2, b_per, info = conditional_model_bounds(cls, x, rho)
                else:
                    b = model_bound(cls, D, gap, removal=kind)
                    b_l2, b_per = b.l2, b.per_feature
                check(f"model rho={rho} {kind} {name}", l2, per, b_l2, b_per)
                tight = ratio(l2, b_l2)
                row[name] = {
                    "change": stats(l2),
                    "bound": stats(b_l2),
                    "tightness": stats(tight),
                    **info,
                }
                if kind == "conditional":
                    row[name]["unconditional_q_holds"] = bool(
                        (l2 <= info["bound_unconditional_q"] * (1 + TOL) + TOL).all()
                    )
            out[str(rho)][kind] = row
        if rho == 1.0:
            for name in METHODS:
                moved = out["1.0"]["conditional"][name]["change"]["max"]
                assert moved < 1e-9, f"conditional {name} moved by {moved:g} at rho = 1"
                for kind in ("baseline", "marginal"):
                    ch = out["1.0"][kind][name]["change"]["max"]
                    assert ch > 1e-2, f"{kind} {name} did not move at rho = 1 ({ch:g})"
        sh = out[str(rho)]
        print(
            f"model rho={rho:<5} shapley change mean / bound mean: "
            + ", ".join(
                f"{k} {sh[k]['shapley']['change']['mean']:.3g} / "
                f"{sh[k]['shapley']['bound']['mean']:.3g}"
                for k in REMOVALS
            ),
            flush=True,
        )
    return out


def search(
    explainer: object,
    x: Tensor,
    eps: float,
    kind: str,
    rem: object,
    bound: RobustnessBound,
    label: str,
    gen: torch.Generator,
    dirs: int,
    steps: int,
) -> tuple[Tensor, Tensor]:
    """The change ||phi(x) - phi(x + delta)||_2 for ``dirs`` random directions per point
    ([dirs, B]) and for an adversarial one per point ([B]): random search on the sphere
    ||delta|| = eps from the best random direction, keeping a perturbed direction when it
    moves the attributions more (step size 0.5, shrinking by 0.85 per step). Every
    measurement is checked against the bound."""
    b_l2 = bound.l2.expand(x.shape[0])
    b_per = bound.per_feature.expand(x.shape[0], D)

    def measure(u: Tensor) -> Tensor:
        delta = eps * u / u.norm(dim=1, keepdim=True)
        l2, per = attribution_change(
            explainer, x, x + delta, target=0, removal=rem, baselines=baselines_of(kind)
        )
        check(label, l2, per, b_l2, b_per)
        return l2

    start = [torch.randn(x.shape, generator=gen, dtype=F64) for _ in range(dirs)]
    random = torch.stack([measure(u) for u in start])
    best = random.max(0)
    u = torch.stack(start)[best.indices, torch.arange(x.shape[0])]
    adv = best.values.clone()
    sigma = 0.5
    for _ in range(steps):
        u_new = u / u.norm(dim=1, keepdim=True)
        u_new = u_new + sigma * torch.randn(x.shape, generator=gen, dtype=F64)
        val = measure(u_new)
        better = val > adv
        u[better], adv[better] = u_new[better], val[better]
        sigma *= 0.85
    return random, adv


def input_perturbation(args: argparse.Namespace, data: dict, gen: torch.Generator) -> dict:
    out: dict = {}
    f = logistic(BETA)
    for rho in args.input_rhos:
        x_all, bg = data[rho]
        x = x_all[: args.input_points]
        cov = covariance(rho)
        M = tv_lipschitz(cov)
        out[str(rho)] = {"tv_lipschitz": M}
        for kind in REMOVALS:
            rem = removal_of(kind, rho, BETA, bg)
            out[str(rho)][kind] = {}
            for name, cls in METHODS.items():
                ex = cls(f)
                rows = []
                for eps in args.eps:
                    cond = kind == "conditional"
                    bound = input_bound(
                        cls,
                        D,
                        eps,
                        lipschitz=LIPSCHITZ,
                        removal=kind,
                        output_bound=OUTPUT_BOUND if cond else None,
                        tv_lipschitz=M if cond else None,
                    )
                    random, adv = search(
                        ex,
                        x,
                        eps,
                        kind,
                        rem,
                        bound,
                        f"input rho={rho} {kind} {name} eps={eps}",
                        gen,
                        args.dirs,
                        args.steps,
                    )
                    bound_v = float(bound.l2[0])
                    rows.append(
                        {
                            "eps": eps,
                            "bound": bound_v,
                            "random": stats(random.reshape(-1)),
                            "adversarial": stats(adv),
                            "tightness_random_mean": float(random.mean()) / bound_v,
                            "tightness_adversarial_max": float(adv.max()) / bound_v,
                        }
                    )
                out[str(rho)][kind][name] = rows
            sh = out[str(rho)][kind]["shapley"][-1]
            print(
                f"input rho={rho} {kind:<11} shapley eps={sh['eps']}: random mean "
                f"{sh['random']['mean']:.3g}, adversarial max {sh['adversarial']['max']:.3g}, "
                f"bound {sh['bound']:.3g}",
                flush=True,
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--points", type=int, default=200, help="explained points per rho")
    ap.add_argument("--background", type=int, default=256, help="marginal background rows")
    ap.add_argument("--input-points", type=int, default=50, help="points for input changes")
    ap.add_argument("--dirs", type=int, default=8, help="random directions per point and eps")
    ap.add_argument("--steps", type=int, default=15, help="adversarial random-search steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    args.rhos, args.input_rhos, args.eps = RHOS, INPUT_RHOS, EPS
    if args.quick:
        args.points, args.background, args.input_points = 12, 16, 6
        args.dirs, args.steps = 2, 2
        args.rhos, args.input_rhos, args.eps = (0.5, 1.0), (0.5,), (0.1, 1.0)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    data = {}
    for k, rho in enumerate(sorted(set(args.rhos) | set(args.input_rhos))):
        g = torch.Generator().manual_seed(args.seed * 1000 + k)
        data[rho] = (sample(args.points, rho, g), sample(args.background, rho, g))
    model = model_perturbation(args, data)
    counter = {name: unconditional_q_counterexample(cls) for name, cls in METHODS.items()}
    for name, c in counter.items():  # the unconditional Q is no bound: a point breaks it
        assert c["change"] > c["bound_unconditional_q"], (name, c)
    t_model = time.perf_counter() - t0
    inputs = input_perturbation(args, data, torch.Generator().manual_seed(args.seed + 7))

    report = {
        "config": {
            "d": D,
            "beta": BETA.tolist(),
            "beta_prime": BETA_PRIME.tolist(),
            "rhos": list(args.rhos),
            "input_rhos": list(args.input_rhos),
            "eps": list(args.eps),
            "points": args.points,
            "background": args.background,
            "input_points": args.input_points,
            "random_directions": args.dirs,
            "adversarial_steps": args.steps,
            "lipschitz": LIPSCHITZ,
            "output_bound": OUTPUT_BOUND,
            "methods": {k: v.__name__ for k, v in METHODS.items()},
            "seed": args.seed,
            "threads": args.threads,
        },
        "model_perturbation": model,
        "unconditional_q_counterexample": counter,
        "input_perturbation": inputs,
        "seconds_model": t_model,
        "seconds": time.perf_counter() - t0,
    }
    report["reading"] = reading(report)
    if args.quick:
        print("\n".join(report["reading"]))
        print(f"quick run: {report['seconds']:.1f} s (nothing written)")
        return 0
    write_results(args.out / "bounds_synthetic", report, markdown(report))
    plot(report, args.out / "bounds_synthetic.png")
    print("\n".join(report["reading"]))
    print(f"{report['seconds']:.0f} s; wrote {args.out}/bounds_synthetic.png")
    return 0


# ------------------------------------------------------------ reporting


def reading(report: dict) -> list[str]:
    """Sentences computed from the numbers."""
    mp = report["model_perturbation"]
    rhos = report["config"]["rhos"]
    lo, hi = str(rhos[0]), str(rhos[-1])
    sh = {k: [mp[str(r)][k]["shapley"] for r in rhos] for k in REMOVALS}
    out = [
        f"- Model perturbation, Shapley: the conditional change falls from "
        f"{sh['conditional'][0]['change']['mean']:.3g} (mean) at rho = {lo} to "
        f"{sh['conditional'][-1]['change']['max']:.1e} (max) at rho = {hi}, and its bound from "
        f"{sh['conditional'][0]['bound']['mean']:.3g} to "
        f"{sh['conditional'][-1]['bound']['max']:.3g}; baseline and marginal changes stay at "
        f"{sh['baseline'][-1]['change']['mean']:.3g} and {sh['marginal'][-1]['change']['mean']:.3g}"
        f" (mean) at rho = {hi}, within bounds of {sh['baseline'][-1]['bound']['mean']:.3g} and "
        f"{sh['marginal'][-1]['bound']['mean']:.3g}: f and f' differ only off the support "
        "x0 = x1, where the baseline and marginal games query the model and the conditional "
        "game does not.",
    ]
    unc = [
        (r, name)
        for r in rhos
        for name in METHODS
        if not mp[str(r)]["conditional"][name]["unconditional_q_holds"]
    ]
    ce = report["unconditional_q_counterexample"]["shapley"]
    out.append(
        "- The conditional bound needs Q = min over coalitions S of P(X in X' | X_S = x_S); "
        "with the unconditional Q = P(|X0 - X1| <= r) instead it held on the sampled points "
        f"at {len(rhos) * len(METHODS) - len(unc)} of {len(rhos) * len(METHODS)} "
        f"(rho, summary) pairs but is no guarantee: at rho = {ce['rho']}, x = {ce['x']} the "
        f"Shapley values move by {ce['change']:.3g}, above that 'bound' "
        f"({ce['bound_unconditional_q']:.3g}) and within the per-coalition one "
        f"({ce['bound']:.3g})."
    )
    ip = report["input_perturbation"]
    tight = {
        k: max(
            row["tightness_adversarial_max"]
            for r in ip
            for name in METHODS
            for row in ip[r][k][name]
        )
        for k in REMOVALS
    }
    out.append(
        "- Input perturbation: every measured change is within its bound; the largest "
        "tightness (adversarial max / bound) is "
        + ", ".join(f"{k} {v:.2f}" for k, v in tight.items())
        + ". The conditional bound grows with rho through M = tv_lipschitz(Sigma) ("
        + ", ".join(f"rho {r}: M = {ip[r]['tv_lipschitz']:.3f}" for r in ip)
        + ")."
    )
    ban = {
        name: max(ip[r][k][name][-1]["adversarial"]["max"] for r in ip for k in REMOVALS)
        for name in METHODS
    }
    out.append(
        f"- Largest adversarial change at eps = {report['config']['eps'][-1]}: "
        + ", ".join(f"{n} {v:.3g}" for n, v in ban.items())
        + "."
    )
    return out


def markdown(report: dict) -> str:
    c = report["config"]
    lines = [
        "# Robustness bounds, synthetic Gaussian case (experiments/bounds_synthetic.py)",
        "",
        "Lin, Covert & Lee (NeurIPS 2023), the synthetic experiment: x ~ N(0, Sigma), "
        f"d = {c['d']}, Sigma_01 = rho; f = sigmoid(beta . x), beta = {c['beta']}; f' with beta' = "
        f"{c['beta_prime']}. {c['points']} points per rho; marginal background "
        f"{c['background']} rows; conditional removal exact (Gaussian). L = ||beta|| / 4 = "
        f"{c['lipschitz']:.4f}, B = {c['output_bound']} (f - 1/2). "
        f"{report['seconds']:.0f} s on this machine.",
        "",
        "## Model perturbation: ||phi(f) - phi(f')||_2 vs the bound",
        "",
        "Per point; mean and max over the points. Tightness = measured / bound per point "
        "(max). Conditional: bound per point from X' = {|x0 - x1| <= r} and "
        "Q = min_S P(X in X' | x_S); 'uncond. Q' is the bound with Q = P(|X0 - X1| <= r) "
        "(not a pointwise guarantee).",
        "",
        "| rho | removal | summary | change mean | change max | bound mean | bound max "
        "| tightness max | uncond. Q bound |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for rho, by_kind in report["model_perturbation"].items():
        for kind, row in by_kind.items():
            for name, v in row.items():
                unc = f"{v['bound_unconditional_q']:.3g}" if kind == "conditional" else ""
                lines.append(
                    f"| {rho} | {kind} | {name} | {v['change']['mean']:.3g} | "
                    f"{v['change']['max']:.3g} | {v['bound']['mean']:.3g} | "
                    f"{v['bound']['max']:.3g} | {v['tightness']['max']:.3f} | {unc} |"
                )
    lines += [
        "",
        "## Input perturbation: ||phi(x) - phi(x + delta)||_2, ||delta||_2 = eps",
        "",
        f"{c['input_points']} points; {c['random_directions']} random directions per point "
        f"(mean) and an adversarial direction per point ({c['adversarial_steps']} random-search "
        "steps; max over points). Bound = g h eps (g = L, or L + 2 B M for conditional).",
        "",
        "| rho | removal | summary | eps | random mean | adversarial max | bound "
        "| tightness (adv. max / bound) |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for rho, by_kind in report["input_perturbation"].items():
        for kind in REMOVALS:
            for name, rows in by_kind[kind].items():
                for row in rows:
                    lines.append(
                        f"| {rho} | {kind} | {name} | {row['eps']:g} | "
                        f"{row['random']['mean']:.3g} | {row['adversarial']['max']:.3g} | "
                        f"{row['bound']:.3g} | {row['tightness_adversarial_max']:.3f} |"
                    )
    lines += ["", "## Reading", "", *report["reading"], "", "![bounds](bounds_synthetic.png)", ""]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    mp = report["model_perturbation"]
    rhos = list(mp)
    pos = list(range(len(rhos)))
    ax = axes[0]
    for kind, color in zip(REMOVALS, ("C0", "C1", "C2")):
        change = [mp[r][kind]["shapley"]["change"]["mean"] for r in rhos]
        bound = [mp[r][kind]["shapley"]["bound"]["mean"] for r in rhos]
        ax.plot(pos, change, "o-", color=color, label=f"{kind}: change (mean)")
        ax.plot(pos, bound, "--", color=color, label=f"{kind}: bound (mean)")
    ax.set_xticks(pos, rhos)
    ax.set_yscale("symlog", linthresh=1e-3)  # linear below 1e-3: the 0 at rho = 1 shows
    ax.set_ylim(bottom=0.0, top=5.0)
    ax.set(
        xlabel="rho (corr(x0, x1))",
        ylabel="||phi(f) - phi(f')||_2",
        title="Model perturbation beta -> beta' (exact Shapley)",
    )
    ax.legend(fontsize=7)
    ax = axes[1]
    ip = report["input_perturbation"]
    rho = list(ip)[-1]
    for kind, color in zip(REMOVALS, ("C0", "C1", "C2")):
        rows = ip[rho][kind]["shapley"]
        eps = [row["eps"] for row in rows]
        for key, stat, style in (("adversarial", "max", "o-"), ("random", "mean", "x:")):
            values = [row[key][stat] for row in rows]
            ax.plot(eps, values, style, color=color, label=f"{kind}: {key} ({stat})")
        ax.plot(eps, [row["bound"] for row in rows], "--", color=color, label=f"{kind}: bound")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="eps = ||delta||_2",
        ylabel="||phi(x) - phi(x + delta)||_2",
        title=f"Input perturbation, rho = {rho} (exact Shapley)",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
