"""Benchmarks every xattr op against its pure-torch reference, in the same run.

Each case times three callables on the same inputs:

* ``op``: the public API (``xattr.ops.*``), as a user calls it: input checks,
  normalisation, the ``torch.library`` custom op and the C++ kernel;
* ``core``: the custom op (``torch.ops.xattr.*``) on already normalised inputs,
  i.e. without the public API's checks (dispatch, buffer set-up and kernel);
* ``ref``: the pure-torch reference (``xattr.ops._reference``) on exactly the
  same normalised inputs as ``core``, so that both do the same work.

After ``--warmup`` calls of each, every callable is timed ``--repeats`` times,
interleaved (op, core, ref, then core, ref, op, ...) so that drift of the
machine hits all three alike; one timing is a loop of enough calls to last
``--min-time`` seconds. The tables report medians, and the speedup is
``ref / op`` (``ref / core`` for the custom op alone). Before timing, each
case checks that the op's result equals the reference's (bit for bit for
masks and masked inputs, to rounding for the float64 solvers).

Large outputs (50-100 MB here) cost more in page faults than in compute when
they land on fresh memory, and whether they do depends on what earlier cases
freed; ``--malloc reuse`` (the default) makes every case reuse freed memory, as
a caching allocator would, ``--malloc fresh`` gives every case fresh pages.

Results: a table on stdout, ``bench/results/bench_ops.json`` (with machine
information) and ``bench/results/bench_ops.md``. Runs restricted by
``--quick`` or ``--only`` print only, unless ``--out`` is given.

Usage::

    python -m bench.bench_ops                 # full run (2-3 minutes on 2 cores)
    python -m bench.bench_ops --quick         # small sizes, a smoke run
    python -m bench.bench_ops --only kernel_shap --repeats 11
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench._harness import (
    MALLOC_MODES,
    interleaved,
    iqr,
    loadavg,
    machine_info,
    set_malloc,
    write_results,
)
from xattr import ops
from xattr.ops import _reference as ref
from xattr.ops.sampling import SAMPLE_DEFAULTS, SAMPLER_CODES, to_signed64

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SPEEDUP = 2.0
SEED = 12345
xops = torch.ops.xattr


@dataclass
class Case:
    """One benchmark: three callables doing the same work, and how to compare them."""

    op: str  # public op name
    tag: str  # variant (input family, method, mask sharing)
    size: str  # human-readable size
    run_op: Callable[[], Any]  # public API
    run_core: Callable[[], Any]  # torch.ops.xattr.* on the normalised inputs
    run_ref: Callable[[], Any]  # xattr.ops._reference on the same inputs
    rtol: float = 0.0  # 0 and 0: bit-for-bit equality
    atol: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.op}[{self.tag}]" if self.tag else self.op


# ------------------------------------------------------------------ inputs
def _gen(seed: int = SEED) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def patch_groups(h: int, w: int, p: int) -> torch.Tensor:
    """Feature ids of p x p patches on an h x w image, int64 [1, h, w]."""
    rows = torch.arange(h) // p
    cols = torch.arange(w) // p
    return (rows.unsqueeze(1) * (w // p) + cols.unsqueeze(0)).unsqueeze(0)


def kernel_weights(masks: torch.Tensor) -> torch.Tensor:
    """KernelSHAP weights of coalitions drawn by :func:`xattr.ops.shapley_kernel_masks`.

    The Shapley-kernel weight of a row of size k, (d - 1) / (C(d, k) k (d - k)),
    divided by the probability that the sampler draws that row, which is
    proportional to the same expression: equal weights, here 1 / n.
    """
    n = masks.shape[-2]
    return torch.full(masks.shape[:-1], 1.0 / n, dtype=torch.float32)


def _flat(out: Any) -> list[torch.Tensor]:
    items = out if isinstance(out, (tuple, list)) else (out,)
    return [t.reshape(-1) for t in items]


def compare(case: Case, got: Any, want: Any) -> tuple[bool, float]:
    """(equal within the case's tolerance, largest absolute difference)."""
    a, b = _flat(got), _flat(want)
    if len(a) != len(b) or any(x.shape != y.shape or x.dtype != y.dtype for x, y in zip(a, b)):
        return False, math.inf
    ok, err = True, 0.0
    for x, y in zip(a, b):
        if x.numel() == 0:
            continue
        if x.is_floating_point():
            x64, y64 = x.double(), y.double()
            same_nan = torch.isnan(x64) == torch.isnan(y64)
            x64, y64 = x64.nan_to_num(0.0), y64.nan_to_num(0.0)
            err = max(err, float((x64 - y64).abs().max()))
            close = torch.allclose(x64, y64, rtol=case.rtol, atol=case.atol)
            ok = ok and bool(same_nan.all()) and close
        else:
            diff = x.long() != y.long()
            err = max(err, float(diff.sum()))  # count of differing entries
            ok = ok and not bool(diff.any())
    return ok, err


# ------------------------------------------------------------------- cases
def masking_cases(quick: bool) -> list[Case]:
    cases = []
    # (tag, batch, channels, side, patch, shared masks S): MNIST-like 7 x 7 patches of
    # 4 x 4 pixels; a 64 x 64 RGB image in 8 x 8 patches shared across channels.
    families = [("mnist", 8, 1, 28, 4, 512), ("img64", 4, 3, 64, 8, 256)]
    if quick:
        families = [("mnist", 2, 1, 28, 4, 64), ("img64", 1, 3, 64, 8, 32)]
    for tag, B, C, side, patch, S in families:
        g = _gen()
        x = torch.randn(B, C, side, side, generator=g)
        fm = patch_groups(side, side, patch)  # [1, side, side]: shared by channels
        d = int(fm.max()) + 1
        E = C * side * side
        # Normalised as the public API does: x [B, E], group [1, E], base [1, E].
        x2 = x.reshape(B, E).contiguous()
        group = fm.expand(C, side, side).reshape(1, E).contiguous()
        base = torch.zeros(1, E)
        size = f"x[{B},{C},{side},{side}] S={S} d={d}"

        masks = ops.bernoulli_masks(S, d, 0.5, seed=SEED)
        m3 = masks.unsqueeze(0).contiguous()
        cases.append(
            Case(
                "mask_apply",
                tag,
                size,
                lambda x=x, masks=masks, fm=fm: ops.mask_apply(x, masks, fm, 0.0),
                lambda x2=x2, base=base, group=group, m3=m3: xops.mask_apply(x2, base, group, m3),
                lambda x2=x2, base=base, group=group, m3=m3: ref.mask_apply(x2, base, group, m3),
            )
        )

        # Fused sampling: Bernoulli(1/2) with S masks; MuS with q = 256, lambda = 1/2.
        q = 256 if not quick else 32
        for sampler, n_samples, p, lam, qq in (
            ("bernoulli", S, 0.5, None, 0),
            ("mus", min(S, q), 0.5, 0.5, q),
        ):
            level = int(lam * qq) if lam is not None else 0
            code = SAMPLER_CODES[sampler]
            sz = f"x[{B},{C},{side},{side}] S={n_samples} d={d}" + (
                f" q={qq} lambda={lam}" if sampler == "mus" else " p=0.5"
            )

            def run_op(x=x, fm=fm, sampler=sampler, n=n_samples, p=p, lam=lam, qq=qq):
                if sampler == "mus":
                    return ops.mask_apply_sampled(
                        x, fm, n, sampler="mus", lambda_=lam, q=qq, seed=SEED
                    )
                return ops.mask_apply_sampled(x, fm, n, sampler="bernoulli", p=p, seed=SEED)

            def run_core(x2=x2, base=base, group=group, d=d, n=n_samples, code=code, p=p,
                         qq=qq, level=level):  # fmt: skip
                return xops.mask_apply_sampled(
                    x2, base, group, d, n, code, to_signed64(SEED), p, qq, level, 0, False
                )

            def run_ref(x2=x2, base=base, group=group, d=d, n=n_samples, sampler=sampler, p=p,
                        qq=qq, level=level):  # fmt: skip
                return ref.mask_apply_sampled(
                    x2, base, group, d, n, sampler, SEED, p=p, q=qq, L=level
                )

            cases.append(
                Case("mask_apply_sampled", f"{sampler},{tag}", sz, run_op, run_core, run_ref)
            )
    return cases


def sampler_cases(quick: bool) -> list[Case]:
    n, d, d_enum = (4096, 64, 16) if not quick else (256, 16, 10)
    base_kw = SAMPLE_DEFAULTS
    # (public op, its call, sampler name, rows, columns, sampler arguments, out dtype)
    specs = [
        ("bernoulli_masks", lambda: ops.bernoulli_masks(n, d, 0.5, seed=SEED),
         "bernoulli", n, d, {}, torch.bool),
        ("shapley_kernel_masks", lambda: ops.shapley_kernel_masks(n, d, seed=SEED, paired=True),
         "shapley", n, d, {"paired": True}, torch.bool),
        ("permutations", lambda: ops.permutations(n, d, seed=SEED),
         "permutation", n, d, {}, torch.int32),
        ("mus_noise", lambda: ops.mus_noise(n, d, 0.5, seed=SEED),
         "mus", n, d, {"q": n, "L": n // 2}, torch.bool),
        ("stratified_masks", lambda: ops.stratified_masks(n // d, d, seed=SEED),
         "stratified", n, d, {"m": n // d}, torch.bool),
        ("subset_masks", lambda: ops.subset_masks(n, d, d // 4, seed=SEED),
         "exact_k", n, d, {"k": d // 4}, torch.bool),
        ("enumerate_coalitions", lambda: ops.enumerate_coalitions(d_enum),
         "enumerate", 2**d_enum, d_enum, {}, torch.bool),
    ]  # fmt: skip
    cases = []
    for name, run_op, sampler, rows, cols, kw, dtype in specs:
        args = base_kw | kw
        seed = 0 if sampler == "enumerate" else SEED

        def run_core(sampler=sampler, rows=rows, cols=cols, args=args, dtype=dtype, seed=seed):
            out = torch.empty((rows, cols), dtype=dtype)
            xops.sample_(out, SAMPLER_CODES[sampler], 0, to_signed64(seed), **args)
            return out

        def run_ref(sampler=sampler, rows=rows, cols=cols, args=args, seed=seed):
            ref_args = {k: v for k, v in args.items() if k != "sizes"}  # no size restriction
            return ref.sample(sampler, rows, cols, seed=seed, row_offset=0, **ref_args)

        extra = "" if not kw else " " + " ".join(f"{k}={v}" for k, v in kw.items())
        cases.append(Case(name, "", f"n={rows} d={cols}{extra}", run_op, run_core, run_ref))
    return cases


def solver_cases(quick: bool) -> list[Case]:
    cases = []
    f32 = torch.float32

    # KernelSHAP: B inputs x n kernel-sampled (paired) coalitions x d features, T = 1.
    B, n, d = (64, 2048, 64) if not quick else (4, 256, 16)
    g = _gen()
    phi = torch.randn(B, d, generator=g)
    for tag in ("shared", "per_example"):
        if tag == "shared":  # KernelShap's use: one set of coalitions for the batch
            masks = ops.shapley_kernel_masks(n, d, seed=SEED)
            values = masks.float() @ phi.T
            values = values.T.contiguous()  # [B, n]
            w = kernel_weights(masks)  # [n]
        else:
            masks = ops.shapley_kernel_masks(B * n, d, seed=SEED).view(B, n, d)
            values = torch.einsum("bnd,bd->bn", masks.float(), phi)
            w = kernel_weights(masks)  # [B, n]
        values = values + 0.01 * torch.randn(B, n, generator=g)
        v_empty = 0.01 * torch.randn(B, generator=g)
        v_full = phi.sum(1)
        m3 = masks if masks.dim() == 3 else masks.unsqueeze(0)
        w2 = w if w.dim() == 2 else w.unsqueeze(0)
        v3 = values.unsqueeze(-1).contiguous()
        ve, vf = v_empty.view(B, 1), v_full.view(B, 1)
        cases.append(
            Case(
                "kernel_shap_solve",
                tag,
                f"B={B} n={n} d={d} T=1 f32",
                lambda m=masks, w=w, v=values, e=v_empty, f=v_full: ops.kernel_shap_solve(
                    m, w, v, e, f
                ),
                lambda a=(m3, w2, v3, ve, vf): xops.kernel_shap_solve(*a),
                lambda a=(m3, w2, v3, ve, vf): ref.kernel_shap_solve(*a),
                rtol=1e-4,
                atol=1e-4,
            )
        )

    # LIME fits: shared Bernoulli masks, exponential-kernel similarity weights.
    B, n, d = (16, 1024, 32) if not quick else (2, 128, 8)
    masks = ops.bernoulli_masks(n, d, 0.5, seed=SEED)
    dist = 1.0 - masks.float().mean(1)
    w = torch.exp(-(dist**2) / 0.25**2)
    coef = torch.randn(B, d, generator=g)
    values = (masks.float() @ coef.T).T + 0.1 * torch.randn(B, n, generator=g)
    m3, w2, v3 = masks.unsqueeze(0), w.unsqueeze(0), values.unsqueeze(-1).contiguous()
    for method, alpha in (("ridge", 1.0), ("lasso", 0.01)):
        lasso = method == "lasso"
        cases.append(
            Case(
                "linear_fit",
                method,
                f"B={B} n={n} d={d} alpha={alpha} f32",
                lambda m=masks, w=w, v=values, a=alpha, meth=method: ops.linear_fit(
                    m, w, v, alpha=a, method=meth
                ),
                lambda a=(m3, w2, v3, alpha, lasso, 1000, 1e-7): xops.linear_fit(*a),
                lambda a=(m3, w2, v3, alpha, lasso, 1000, 1e-7): ref.linear_fit(*a),
                rtol=1e-3 if lasso else 1e-4,
                atol=1e-4,
            )
        )

    # Shapley sampling: B inputs x P shared permutations of d features.
    B, P, d = (16, 256, 64) if not quick else (2, 16, 8)
    perms = ops.permutations(P, d, seed=SEED)
    values = torch.randn(B, P, d + 1, generator=g).cumsum(2)
    p3, v4 = perms.unsqueeze(0), values.unsqueeze(-1).contiguous()
    cases.append(
        Case(
            "permutation_accumulate",
            "",
            f"B={B} P={P} d={d} f32",
            lambda p=perms, v=values: ops.permutation_accumulate(p, v, return_stderr=True),
            lambda p3=p3, v4=v4: xops.permutation_accumulate(p3, v4, 1),
            lambda p3=p3, v4=v4: ref.permutation_accumulate(p3, v4, 1),
            rtol=1e-5,
            atol=1e-5,
        )
    )

    # Banzhaf MSR: B inputs x n shared Bernoulli(1/2) coalitions of d features.
    B, n, d = (16, 2048, 64) if not quick else (2, 128, 16)
    masks = ops.bernoulli_masks(n, d, 0.5, seed=SEED)
    values = torch.randn(B, n, generator=g)
    m3, v3 = masks.unsqueeze(0), values.unsqueeze(-1).contiguous()
    counts = torch.ones((1, n), dtype=f32)
    cases.append(
        Case(
            "banzhaf_msr",
            "",
            f"B={B} n={n} d={d} f32",
            lambda m=masks, v=values: ops.banzhaf_msr(m, v),
            lambda a=(m3, counts, v3): xops.banzhaf_msr(*a),
            lambda a=(m3, counts, v3): ref.banzhaf_msr(*a),
            rtol=1e-5,
            atol=1e-5,
        )
    )

    # Exact Shapley values from all 2^d coalition values.
    B, d = (4, 16) if not quick else (2, 8)
    values = torch.randn(B, 2**d, generator=g)
    v3 = values.unsqueeze(-1).contiguous()
    cases.append(
        Case(
            "exact_shapley",
            "",
            f"B={B} d={d} (2^{d} rows) f32",
            lambda v=values: ops.exact_shapley(v),
            lambda v3=v3, d=d: xops.exact_values(v3, d, False),
            lambda v3=v3: ref.exact_values(v3, False),
            rtol=1e-5,
            atol=1e-5,
        )
    )

    # De-duplication: n rows drawn (with replacement) from u distinct coalitions.
    n, u, d = (8192, 512, 64) if not quick else (512, 64, 16)
    distinct = ops.bernoulli_masks(u, d, 0.5, seed=SEED)
    masks = distinct[torch.randint(0, u, (n,), generator=g)].contiguous()

    def _unique_keys(keys):
        # The op's own path: d <= 64 keys are one word, and a flat unique is much
        # faster than unique(dim=0); the reference gets the same trick, so the
        # comparison is of pack / unpack, not of two ways to call torch.unique.
        if keys.shape[1] == 1:
            uniq, inv, cnt = torch.unique(keys[:, 0], return_inverse=True, return_counts=True)
            return uniq.unsqueeze(1), inv, cnt
        return torch.unique(keys, dim=0, return_inverse=True, return_counts=True)

    def core_unique(m=masks, d=d):
        uniq, inv, cnt = _unique_keys(xops.pack_masks(m))
        return xops.unpack_masks(uniq, d), inv, cnt

    def ref_unique(m=masks, d=d):
        uniq, inv, cnt = _unique_keys(ref.pack_masks(m))
        return ref.unpack_masks(uniq, d), inv, cnt

    cases.append(
        Case(
            "unique_coalitions",
            "",
            f"n={n} d={d} ({u} distinct)",
            lambda m=masks: ops.unique_coalitions(m),
            core_unique,
            ref_unique,
        )
    )
    return cases


def path_cases(quick: bool) -> list[Case]:
    B, K, J, C, side = (16, 8, 64, 3, 32) if not quick else (2, 2, 8, 3, 8)
    g = _gen()
    E = C * side * side
    x = torch.randn(B, C, side, side, generator=g)
    baselines = torch.randn(B, K, C, side, side, generator=g)
    alphas, weights = ops.quadrature("gausslegendre", J, dtype=torch.float32)
    x2, b3 = x.reshape(B, E), baselines.reshape(B, K, E)
    size = f"B={B} K={K} J={J} x[{C},{side},{side}] f32"
    grads = torch.randn(B, K, J, C, side, side, generator=g)
    g4 = grads.reshape(B, K, J, E)
    return [
        Case(
            "path_points",
            "",
            size,
            lambda: ops.path_points(x, baselines, alphas),
            lambda: xops.path_points(x2, b3, alphas),
            lambda: ref.path_points(x2, b3, alphas),
            rtol=1e-6,
            atol=1e-6,
        ),
        Case(
            "path_integrate",
            "mean",
            size,
            lambda: ops.path_integrate(grads, x, baselines, weights),
            lambda: xops.path_integrate(g4, x2, b3, weights, 0, True),
            lambda: ref.path_integrate(g4, x2, b3, weights, "mean", True),
            rtol=1e-5,
            atol=1e-6,
        ),
    ]


def rule_cases(quick: bool) -> list[Case]:
    """DeepLift's rescale multiplier: an MLP layer's pre-activations of B inputs and one
    shared reference (relu), and a CNN's of 16 baselines per row (sigmoid), both f32."""
    g = _gen()
    B, H = (4, 16) if quick else (2048, 256)
    x = torch.randn(B + 1, H, generator=g)
    xs = torch.randn((4 + 1) * 2 if quick else (64 + 16) * 4, 8, 14, 14, generator=g)
    refs = 2 if quick else 16 * 4
    cases = []
    for tag, t, rows, kind, fn in (
        ("relu", x, 1, "relu", torch.relu),
        ("sigmoid,16 refs", xs, refs, "sigmoid", torch.sigmoid),
    ):
        y = fn(t)
        code = ops.rules.RESCALE_KINDS.index(kind)
        cases.append(
            Case(
                "rescale_multiplier",
                tag,
                f"{tuple(t.shape)} f32",
                lambda t=t, y=y, rows=rows, kind=kind: ops.rescale_multiplier(t, y, rows, kind),
                lambda t=t, y=y, rows=rows, code=code: xops.rescale_multiplier(
                    t, y, rows, code, 1e-10, None
                ),
                lambda t=t, y=y, rows=rows, kind=kind: ref.rescale_multiplier(
                    t, y, rows, kind, 1e-10
                ),
            )
        )
    return cases


def build_cases(quick: bool = False, only: str | None = None) -> list[Case]:
    """Every benchmark case (small sizes with ``quick``), optionally only those
    whose id contains ``only``."""
    builders = (masking_cases, sampler_cases, solver_cases, path_cases, rule_cases)
    cases = [c for build in builders for c in build(quick)]
    if only:
        cases = [c for c in cases if only.lower() in c.id.lower()]
    return cases


# ------------------------------------------------------------------ timing
def run_case(case: Case, repeats: int, warmup: int, min_time: float) -> dict[str, Any]:
    ok_op, err_op = compare(case, case.run_op(), case.run_ref())
    ok_core, err_core = compare(case, case.run_core(), case.run_ref())
    fns = {"op": case.run_op, "core": case.run_core, "ref": case.run_ref}
    s = interleaved(fns, repeats, warmup, min_time)
    op_s, core_s, ref_s = (s.median(k) for k in fns)
    return {
        "id": case.id,
        "op": case.op,
        "variant": case.tag,
        "size": case.size,
        "op_ms": op_s * 1e3,
        "core_ms": core_s * 1e3,
        "ref_ms": ref_s * 1e3,
        "speedup": ref_s / op_s,
        "core_speedup": ref_s / core_s,
        "match": ok_op and ok_core,
        "max_abs_diff": max(err_op, err_core),
        "calls_per_sample": s.calls,
        "samples_ms": {k: [round(v * 1e3, 6) for v in t] for k, t in s.seconds.items()},
        "min_ms": {k: min(t) * 1e3 for k, t in s.seconds.items()},
        "iqr_ms": {k: iqr(t) * 1e3 for k, t in s.seconds.items()},
        # First-touch faults of fresh outputs: 4 KiB each; they dominate large outputs.
        "page_faults_per_call": {k: statistics.median(f) for k, f in s.faults.items()},
    }


# ----------------------------------------------------------------- reports
def _fmt_ms(v: float) -> str:
    return f"{v:.3f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


HEADERS = ("op", "size", "op ms", "core ms", "ref ms", "speedup", "ref/core", "match")


def table_rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        flag = "" if r["speedup"] >= TARGET_SPEEDUP else " *"
        rows.append(
            (
                r["id"],
                r["size"],
                _fmt_ms(r["op_ms"]),
                _fmt_ms(r["core_ms"]),
                _fmt_ms(r["ref_ms"]),
                f"{r['speedup']:.2f}x{flag}",
                f"{r['core_speedup']:.2f}x",
                "yes" if r["match"] else f"NO ({r['max_abs_diff']:.3g})",
            )
        )
    return rows


def text_table(results: list[dict[str, Any]]) -> str:
    rows = [HEADERS, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    right = {2, 3, 4, 5, 6}
    lines = []
    for k, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(results: list[dict[str, Any]], info: dict[str, Any], config: dict[str, Any]) -> str:
    lines = [
        "# xattr ops vs pure-torch references",
        "",
        f"{info['date']}; torch {info['torch']}, {info['threads']} threads, "
        f"{info['cpu_count']} CPUs ({info['cpu']}); median of {config['repeats']} interleaved "
        f"timings after {config['warmup']} warm-up calls, each timing at least "
        f"{config['min_time']} s of calls; load average {info['loadavg_1_5_15']} before, "
        f"{config.get('loadavg_after')} after; large allocations: {config['malloc']} "
        "(see `--malloc`).",
        "",
        "`op`: the public API (checks + custom op + kernel); `core`: the custom op "
        "`torch.ops.xattr.*` on normalised inputs; `ref`: `xattr.ops._reference` on the same "
        f"inputs. Speedup = ref / op; `*` marks speedups below {TARGET_SPEEDUP:g}x. `match`: "
        "the op's result equals the reference's (exactly for masks, to rounding for solvers).",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * 5 + ["---"]) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines) + "\n"


def _case_in_child(
    case_id: str, quick: bool, repeats: int, warmup: int, min_time: float, malloc: str, threads: int
) -> dict[str, Any]:
    set_malloc(malloc)
    torch.set_num_threads(threads)
    (case,) = [c for c in build_cases(quick, case_id) if c.id == case_id]
    return run_case(case, repeats, warmup, min_time)


def run_isolated(
    case_id: str, quick: bool, repeats: int, warmup: int, min_time: float, malloc: str
) -> dict[str, Any]:
    """run_case in a fresh process: a reference's time once depended 3x on which cases ran
    before it (exact_shapley's: 9.6 ms after the others, 3.8 ms alone)."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        args = (case_id, quick, repeats, warmup, min_time, malloc, torch.get_num_threads())
        return pool.submit(_case_in_child, *args).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=None, help="timings per callable (9; quick 3)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (2)")
    parser.add_argument(
        "--min-time", type=float, default=None, help="seconds per timing (0.05; quick 0.002)"
    )
    parser.add_argument(
        "--malloc",
        choices=MALLOC_MODES,
        default="reuse",
        help="large allocations: reuse freed memory (default), fresh pages, or glibc's "
        "history-dependent default (see set_malloc)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", default=None, help="only cases whose id contains SUBSTRING")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="time every case in this process (default, except with --quick: each case in a "
        "fresh process, so that the allocator and caches left by earlier cases cannot "
        "change its timings)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="stem of the .json / .md results (default bench/results/bench_ops; "
        "--quick and --only runs write nothing unless given)",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 9)
    min_time = args.min_time if args.min_time is not None else (0.002 if args.quick else 0.05)
    if repeats < 1:
        parser.error("--repeats must be >= 1")

    malloc = set_malloc(args.malloc)
    torch.set_num_threads(args.threads if args.threads else torch.get_num_threads())
    info = machine_info()
    info["loadavg_1_5_15"] = info.pop("loadavg_before")  # this report's name since its start
    config = {
        "repeats": repeats,
        "warmup": args.warmup,
        "min_time": min_time,
        "quick": args.quick,
        "only": args.only,
        "malloc": malloc,
    }
    print(
        f"xattr {info['xattr']} (kernels: {info['kernels_available']}), torch {info['torch']}, "
        f"{info['threads']} threads, {info['cpu_count']} CPUs, malloc: {malloc}",
        flush=True,
    )
    if not info["kernels_available"]:
        print("warning: xattr._C is not loaded; the ops run the references", flush=True)

    cases = build_cases(args.quick, args.only)
    if not cases:
        print(f"no case id contains {args.only!r}", file=sys.stderr)
        return 2
    results = []
    t_start = time.perf_counter()
    for i, case in enumerate(cases, 1):
        t0 = time.perf_counter()
        if args.in_process or args.quick:  # a smoke run needs no isolation
            r = run_case(case, repeats, args.warmup, min_time)
        else:
            r = run_isolated(case.id, args.quick, repeats, args.warmup, min_time, args.malloc)
        results.append(r)
        print(
            f"[{i:2d}/{len(cases)}] {case.id:38s} op {_fmt_ms(r['op_ms']):>8s} ms  "
            f"ref {_fmt_ms(r['ref_ms']):>8s} ms  {r['speedup']:6.2f}x  "
            f"{'ok' if r['match'] else 'MISMATCH'}  ({time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
    config["seconds"] = round(time.perf_counter() - t_start, 1)
    config["loadavg_after"] = loadavg()

    print()
    print(text_table(results))
    slow = [r["id"] for r in results if r["speedup"] < TARGET_SPEEDUP]
    bad = [r["id"] for r in results if not r["match"]]
    print(f"\n{len(results)} cases in {config['seconds']} s; below {TARGET_SPEEDUP:g}x: "
          f"{', '.join(slow) if slow else 'none'}")  # fmt: skip
    if bad:
        print(f"MISMATCH with the reference: {', '.join(bad)}")

    out = args.out
    if out is None and not (args.quick or args.only):
        out = str(RESULTS / "bench_ops")
    if out is not None:
        payload = {"machine": info, "config": config, "results": results}
        write_results(out, payload, markdown(results, info, config), indent=2)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
