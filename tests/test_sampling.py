"""Mask samplers: bitwise agreement with the pure-torch reference, invariance
to chunking and thread count, the distributions they promise (statistical
tests at fixed seeds with p-value thresholds far from flaky), and input checks.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from _devices import DEVICES, cpu_launch, on, pytest_generate_tests  # noqa: F401
from scipy import stats

from xattr import _ext, ops
from xattr.ops import _reference

SEEDS = (0, 1, 2**40 + 7, 2**64 - 1)
DIMS = (1, 2, 3, 7, 64, 65, 130)
P_MIN = 1e-4  # statistical tests fail below this p-value


# ------------------------------------------------------------------ helpers
def ref(name, n, d, seed, row_offset=0, p=0.5, k=0, paired=False, q=0, L=0, m=0):
    """The reference sampler with every argument spelled out."""
    return _reference.sample(
        name,
        n,
        d,
        seed=seed,
        row_offset=row_offset,
        p=p,
        k=k,
        paired=paired,
        q=q,
        L=L,
        m=m,
        device="cpu",
    )


def call(name, n, d, seed, row_offset=0, device="cpu"):
    """The public sampler ``name`` with fixed parameters derived from d."""
    kw = {"seed": seed, "row_offset": row_offset, "device": device}
    if name == "bernoulli":
        return ops.bernoulli_masks(n, d, 0.3, **kw)
    if name == "exact_k":
        return ops.subset_masks(n, d, d // 3, **kw)
    if name in ("shapley", "shapley_unpaired"):
        return ops.shapley_kernel_masks(n, d, paired=name == "shapley", **kw)
    if name in ("permutation", "permutation_antithetic"):
        return ops.permutations(n, d, antithetic=name == "permutation_antithetic", **kw)
    raise AssertionError(name)


def call_ref(name, n, d, seed, row_offset=0):
    """The reference for :func:`call`."""
    if name == "bernoulli":
        return ref("bernoulli", n, d, seed, row_offset, p=0.3)
    if name == "exact_k":
        return ref("exact_k", n, d, seed, row_offset, k=d // 3)
    if name in ("shapley", "shapley_unpaired"):
        return ref("shapley", n, d, seed, row_offset, paired=name == "shapley")
    if name in ("permutation", "permutation_antithetic"):
        return ref("permutation", n, d, seed, row_offset, paired=name == "permutation_antithetic")
    raise AssertionError(name)


CHUNKABLE = (
    "bernoulli",
    "exact_k",
    "shapley",
    "shapley_unpaired",
    "permutation",
    "permutation_antithetic",
)


def chi2_uniform(counts) -> float:
    """p-value of a chi-square test that ``counts`` are uniform."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    return float(stats.chisquare(counts).pvalue)


def row_codes(masks: torch.Tensor) -> np.ndarray:
    """Each bool row as the integer with bit i = feature i."""
    w = 2 ** torch.arange(masks.shape[1], dtype=torch.int64)
    return (masks.long() * w).sum(1).numpy()


@pytest.fixture
def threads():
    """Lets a test change torch's thread count, restoring it afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


# -------------------------------------------------------- vs the reference
# Samplers are integer work: every device (the CPU's fast path and element launch,
# CUDA) must give the reference's bits.
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "name,d",
    [(name, d) for name in CHUNKABLE for d in DIMS if d >= 2 or not name.startswith("shapley")],
)
def test_matches_reference(name, d, seed, device):
    with on(device) as dev:
        for n, row_offset in ((1, 0), (37, 0), (8, 5), (6, 2**32 - 3), (300, 5)):
            out = call(name, n, d, seed, row_offset, dev)
            want = call_ref(name, n, d, seed, row_offset)
            assert out.shape == (n, d) and out.device.type == dev
            assert out.dtype == want.dtype
            assert torch.equal(out.cpu(), want), (name, n, d, seed, row_offset)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("d", DIMS)
def test_mus_matches_reference(d, seed, device):
    with on(device) as dev:
        for q, lam in ((1, 1.0), (4, 0.25), (10, 0.3), (16, 0.5), (33, 0.0), (100, 0.5)):
            L = round(lam * q)
            out = ops.mus_noise(q, d, lam, seed=seed, device=dev)
            want = ref("mus", q, d, seed, q=q, L=L)
            assert torch.equal(out.cpu(), want), (q, lam, d, seed)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("d", DIMS)
def test_stratified_matches_reference(d, seed, device):
    with on(device) as dev:
        for m in (1, 3):
            out = ops.stratified_masks(m, d, seed=seed, device=dev)
            assert torch.equal(out.cpu(), ref("stratified", m * d, d, seed, m=m)), (m, d, seed)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("d", (1, 2, 3, 7, 12, 16))
def test_enumerate_matches_reference(d, device):
    with on(device) as dev:
        out = ops.enumerate_coalitions(d, device=dev)
    assert torch.equal(out.cpu(), ref("enumerate", 2**d, d, 0))


# Philox4x32-10's known answers, from Random123's kat_vectors (Salmon et al. 2011,
# github.com/DEShawResearch/random123, tests/kat_vectors): counter, key, result.
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
        (0xFFFFFFFF, 0xFFFFFFFF),
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("counter,key,want", PHILOX_KAT)
def test_philox_known_answers(counter, key, want):
    # The C++ generator itself (csrc/include/xattr/philox.h), which every sampler on
    # every device draws from, and the reference's vectorised copy of it.
    assert _ext.lib().philox4x32_10(counter, *key) == want
    words = _reference.philox4x32_10(*(torch.tensor([c]) for c in counter), *key)
    assert tuple(int(w) for w in words) == want


@pytest.mark.parametrize("p", (0.0, 1e-9, 0.1, 0.5, 0.9, 1 - 1e-9, 1.0))
def test_bernoulli_matches_reference_over_p(p):
    out = ops.bernoulli_masks(50, 9, p, seed=123)
    assert torch.equal(out, ref("bernoulli", 50, 9, 123, p=p))


def test_subset_matches_reference_over_k():
    for k in range(0, 8):
        out = ops.subset_masks(40, 7, k, seed=9)
        assert torch.equal(out, ref("exact_k", 40, 7, 9, k=k)), k


# ------------------------------------------------- chunking and threading
@pytest.mark.parametrize("name", CHUNKABLE)
@pytest.mark.parametrize("d", (3, 65))
def test_chunking_is_bitwise_invariant(name, d):
    n, seed = 101, 2**40 + 7
    whole = call(name, n, d, seed)
    # Odd chunk sizes split complement / antithetic pairs across chunks.
    for sizes in ((101,), (1, 100), (3, 7, 50, 41), (50, 1, 1, 49)):
        offsets = np.cumsum((0,) + sizes[:-1]).tolist()
        parts = [call(name, size, d, seed, o) for size, o in zip(sizes, offsets)]
        assert torch.equal(torch.cat(parts), whole), (name, sizes)


def test_chunking_across_the_32_bit_row_boundary():
    start = 2**32 - 4
    whole = ops.bernoulli_masks(8, 5, seed=3, row_offset=start)
    parts = [ops.bernoulli_masks(4, 5, seed=3, row_offset=start + i) for i in (0, 4)]
    assert torch.equal(torch.cat(parts), whole)
    # Rows 2^32 + r must not repeat rows r (the counter holds all 64 row bits).
    low = ops.bernoulli_masks(4, 64, seed=3, row_offset=0)
    high = ops.bernoulli_masks(4, 64, seed=3, row_offset=2**32)
    assert not torch.equal(low, high)


SAMPLER_CALLS = {
    "bernoulli": lambda n, d, s: ops.bernoulli_masks(n, d, 0.5, seed=s),
    "exact_k": lambda n, d, s: ops.subset_masks(n, d, d // 2, seed=s),
    "shapley": lambda n, d, s: ops.shapley_kernel_masks(n, d, seed=s),
    "permutation": lambda n, d, s: ops.permutations(n, d, seed=s),
    "mus": lambda n, d, s: ops.mus_noise(n, d, 0.5, seed=s),
    "stratified": lambda n, d, s: ops.stratified_masks(max(n // d, 1), d, seed=s),
}


@pytest.mark.parametrize("name", sorted(SAMPLER_CALLS))
def test_thread_count_is_bitwise_invariant(name, threads):
    n, d = 4000, 33  # large enough for the kernels to go parallel
    threads(1)
    one = SAMPLER_CALLS[name](n, d, 77)
    threads(2)
    two = SAMPLER_CALLS[name](n, d, 77)
    assert torch.equal(one, two)


@pytest.mark.parametrize("name", sorted(SAMPLER_CALLS))
def test_different_seeds_differ(name):
    n, d = 64, 20
    for a, b in ((0, 1), (1, 2**32 + 1), (2**63 - 1, 2**64 - 1), (2**40 + 7, 2**40 + 8)):
        assert not torch.equal(SAMPLER_CALLS[name](n, d, a), SAMPLER_CALLS[name](n, d, b)), (a, b)


@pytest.mark.parametrize("name", sorted(SAMPLER_CALLS))
def test_same_seed_same_output(name):
    assert torch.equal(SAMPLER_CALLS[name](64, 20, 5), SAMPLER_CALLS[name](64, 20, 5))


def test_seed_none_follows_torch_manual_seed():
    torch.manual_seed(1234)
    a = ops.bernoulli_masks(32, 16)
    b = ops.bernoulli_masks(32, 16)
    torch.manual_seed(1234)
    c = ops.bernoulli_masks(32, 16)
    assert torch.equal(a, c)
    assert not torch.equal(a, b)


def test_samplers_use_separate_streams():
    # Same seed, different samplers: the streams are tagged apart.
    a = ops.bernoulli_masks(200, 10, 0.5, seed=0)
    b = ops.stratified_masks(20, 10, seed=0)
    c = ops.shapley_kernel_masks(200, 10, seed=0, paired=False)
    assert not torch.equal(a, b) and not torch.equal(b, c) and not torch.equal(a, c)


def test_shapes_and_dtypes():
    assert ops.bernoulli_masks(0, 4, seed=0).shape == (0, 4)
    assert ops.bernoulli_masks(3, 4, seed=0).dtype == torch.bool
    assert ops.subset_masks(3, 4, 2, seed=0).dtype == torch.bool
    assert ops.shapley_kernel_masks(3, 4, seed=0).dtype == torch.bool
    assert ops.permutations(3, 4, seed=0).dtype == torch.int32
    assert ops.mus_noise(4, 5, 0.5, seed=0).shape == (4, 5)
    assert ops.stratified_masks(2, 5, seed=0).shape == (10, 5)
    assert ops.enumerate_coalitions(3).shape == (8, 3)


# ------------------------------------------------------------ Bernoulli
@pytest.mark.parametrize("p", (0.1, 0.5, 0.9))
def test_bernoulli_column_frequencies(p):
    n, d = 20000, 70  # 70 columns span several Philox blocks
    m = ops.bernoulli_masks(n, d, p, seed=2024)
    counts = m.sum(0).tolist()
    for i, c in enumerate(counts):
        assert stats.binomtest(c, n, p).pvalue > P_MIN, (i, c, n * p)
    # Rows, too: the number of ones per row is Binomial(d, p).
    sizes = np.bincount(m.sum(1).numpy(), minlength=d + 1)
    expected = n * stats.binom.pmf(np.arange(d + 1), d, p)
    keep = expected >= 5
    obs = np.append(sizes[keep], sizes[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > P_MIN


def test_bernoulli_pairs_of_columns_independent():
    m = ops.bernoulli_masks(20000, 6, 0.5, seed=11)
    for i, j in itertools.combinations(range(6), 2):
        table = np.array(
            [
                [int((~m[:, i] & ~m[:, j]).sum()), int((~m[:, i] & m[:, j]).sum())],
                [int((m[:, i] & ~m[:, j]).sum()), int((m[:, i] & m[:, j]).sum())],
            ]
        )
        assert stats.chi2_contingency(table).pvalue > P_MIN, (i, j)


def test_bernoulli_extreme_p():
    assert not ops.bernoulli_masks(500, 9, 0.0, seed=1).any()
    assert ops.bernoulli_masks(500, 9, 1.0, seed=1).all()


# ------------------------------------------------------------- exactly k
@pytest.mark.parametrize("d,k", ((7, 3), (65, 20), (5, 0), (5, 5), (1, 1)))
def test_subset_rows_sum_to_k_and_inclusion_uniform(d, k):
    n = 20000
    m = ops.subset_masks(n, d, k, seed=31)
    assert (m.sum(1) == k).all()
    if 0 < k < d:
        for i, c in enumerate(m.sum(0).tolist()):
            assert stats.binomtest(c, n, k / d).pvalue > P_MIN, (i, c)


@pytest.mark.parametrize("d,k", ((5, 2), (6, 3), (4, 1)))
def test_subset_all_subsets_equally_likely(d, k):
    n = 24000
    codes = row_codes(ops.subset_masks(n, d, k, seed=5))
    valid = [sum(1 << i for i in c) for c in itertools.combinations(range(d), k)]
    counts = np.array([(codes == v).sum() for v in valid])
    assert counts.sum() == n  # nothing outside the size-k subsets
    assert len(valid) == math.comb(d, k)
    assert chi2_uniform(counts) > P_MIN


# -------------------------------------------------------- Shapley kernel
def shapley_size_probs(d: int) -> np.ndarray:
    w = np.array([(d - 1) / (k * (d - k)) for k in range(1, d)])
    return w / w.sum()


@pytest.mark.parametrize("d", (2, 3, 6, 10, 65))
def test_shapley_size_distribution(d):
    n = 30000
    m = ops.shapley_kernel_masks(n, d, seed=8, paired=False)
    sizes = m.sum(1).numpy()
    assert sizes.min() >= 1 and sizes.max() <= d - 1
    obs = np.bincount(sizes, minlength=d)[1:d]
    exp = n * shapley_size_probs(d)
    if d == 2:
        assert obs.tolist() == [n]
        return
    keep = exp >= 5
    obs2 = np.append(obs[keep], obs[~keep].sum())
    exp2 = np.append(exp[keep], exp[~keep].sum())
    if exp2[-1] == 0:
        obs2, exp2 = obs2[:-1], exp2[:-1]
    assert stats.chisquare(obs2, exp2).pvalue > P_MIN


def test_shapley_uniform_within_size():
    d, n = 5, 40000
    m = ops.shapley_kernel_masks(n, d, seed=21, paired=False)
    codes = row_codes(m)
    sizes = m.sum(1).numpy()
    for k in range(1, d):
        valid = [sum(1 << i for i in c) for c in itertools.combinations(range(d), k)]
        counts = np.array([(codes[sizes == k] == v).sum() for v in valid])
        assert counts.sum() == (sizes == k).sum()
        assert chi2_uniform(counts) > P_MIN, k


@pytest.mark.parametrize("d", (2, 5, 64, 130))
def test_shapley_paired_rows_are_complements(d):
    m = ops.shapley_kernel_masks(200, d, seed=4)
    assert (m[0::2] ^ m[1::2]).all()
    # And the even rows are the unpaired draws 0, 1, 2, ...
    unpaired = ops.shapley_kernel_masks(100, d, seed=4, paired=False)
    assert torch.equal(m[0::2], unpaired)


def test_shapley_paired_odd_offset_starts_with_complement():
    m = ops.shapley_kernel_masks(10, 9, seed=4)
    part = ops.shapley_kernel_masks(3, 9, seed=4, row_offset=3)
    assert torch.equal(part, m[3:6])
    assert torch.equal(part[0], ~m[2])


# ----------------------------------------------------------- permutations
@pytest.mark.parametrize("d", (1, 2, 7, 65))
def test_permutations_are_permutations(d):
    p = ops.permutations(300, d, seed=13)
    assert torch.equal(p.sort(1).values, torch.arange(d, dtype=torch.int32).expand(300, d))


@pytest.mark.parametrize("d", (3, 6, 10))
def test_permutation_positions_uniform(d):
    n = 30000
    p = ops.permutations(n, d, seed=17).long()
    table = torch.zeros(d, d, dtype=torch.int64)
    table.index_put_(
        (p.flatten(), torch.arange(d).repeat(n)),
        torch.ones(n * d, dtype=torch.int64),
        accumulate=True,
    )
    assert (table.sum(0) == n).all() and (table.sum(1) == n).all()
    # Each row of the table is Multinomial(n, 1/d); the rows are tied by the
    # permutation constraint, under which the Pearson statistic is
    # d / (d - 1) times a chi-square with (d - 1)^2 degrees of freedom.
    t = table.double().numpy()
    stat = ((t - n / d) ** 2 / (n / d)).sum() * (d - 1) / d
    assert stats.chi2.sf(stat, (d - 1) ** 2) > P_MIN


def test_all_permutations_equally_likely():
    d, n = 4, 24000
    p = ops.permutations(n, d, seed=99).long()
    codes = (p * torch.tensor([64, 16, 4, 1])).sum(1).numpy()
    valid = [
        sum(v * 4 ** (3 - i) for i, v in enumerate(perm))
        for perm in itertools.permutations(range(4))
    ]
    counts = np.array([(codes == v).sum() for v in valid])
    assert counts.sum() == n
    assert chi2_uniform(counts) > P_MIN


def test_permutations_antithetic_rows_reversed():
    p = ops.permutations(100, 9, seed=3, antithetic=True)
    assert torch.equal(p[1::2], p[0::2].flip(1))
    plain = ops.permutations(50, 9, seed=3)
    assert torch.equal(p[0::2], plain)


# --------------------------------------------------------------- MuS noise
MUS_CASES = [
    (q, lam, d, seed)
    for (q, lam) in (
        (1, 0.0),
        (1, 1.0),
        (2, 0.5),
        (4, 0.25),
        (8, 0.375),
        (10, 0.3),
        (10, 0.7),
        (16, 0.5),
        (33, 2 / 33),
        (64, 1.0),
        (100, 0.01),
    )
    for d in (1, 7, 65)
    for seed in (0, 2**64 - 1)
]


@pytest.mark.parametrize("q,lam,d,seed", MUS_CASES)
def test_mus_column_sums_exact(q, lam, d, seed):
    s = ops.mus_noise(q, d, lam, seed=seed)
    L = round(lam * q)
    assert (s.sum(0) == L).all()
    # Every column follows the formula for some c_i in [0, q): recover it.
    j = torch.arange(q)
    patterns = torch.stack([(2 * c + 2 * j + 1) % (2 * q) < 2 * L for c in range(q)])  # [c, j]
    found = (s.T.unsqueeze(1) == patterns.unsqueeze(0)).all(2).any(1)  # [d]
    assert found.all(), (q, lam, d, seed, torch.nonzero(~found).flatten().tolist())


def test_mus_offsets_uniform():
    q, d = 10, 3000
    s = ops.mus_noise(q, d, 0.3, seed=6)
    j = torch.arange(q)
    patterns = torch.stack([(2 * c + 2 * j + 1) % (2 * q) < 6 for c in range(q)])  # [c, j]
    # Each column matches exactly one c (0 < L < q makes shifts distinct).
    eq = (s.T.unsqueeze(1) == patterns.unsqueeze(0)).all(2)  # [d, c]
    assert (eq.sum(1) == 1).all()
    c = eq.float().argmax(1).numpy()
    assert chi2_uniform(np.bincount(c, minlength=q)) > P_MIN


def test_mus_lambda_one_all_ones_and_zero_all_zeros():
    assert ops.mus_noise(7, 11, 1.0, seed=2).all()
    assert ops.mus_noise(7, 11, 1, seed=2).all()
    assert not ops.mus_noise(7, 11, 0.0, seed=2).any()


def test_mus_marginal_keep_probability():
    # Over a uniformly chosen row each feature is kept with probability lambda.
    s = ops.mus_noise(20, 50, 0.35, seed=1)
    assert torch.equal(s.double().mean(0), torch.full((50,), 7 / 20, dtype=torch.float64))


def test_mus_accepts_float_rounding_of_multiples():
    s = ops.mus_noise(10, 4, 0.1 * 3, seed=0)  # 0.30000000000000004
    assert (s.sum(0) == 3).all()


def test_mus_lambda_not_multiple_names_nearest_values():
    with pytest.raises(ValueError, match=r"2/8 = 0\.25.*3/8 = 0\.375"):
        ops.mus_noise(8, 5, 0.3, seed=0)
    with pytest.raises(ValueError, match="lambda_"):
        ops.mus_noise(10, 5, 0.55, seed=0)


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        ({"q": 0, "lambda_": 0.0}, ValueError),
        ({"q": -3, "lambda_": 0.5}, ValueError),
        ({"q": 4, "lambda_": 1.5}, ValueError),
        ({"q": 4, "lambda_": -0.25}, ValueError),
        ({"q": 4.0, "lambda_": 0.5}, TypeError),
        ({"q": True, "lambda_": 1.0}, TypeError),
        ({"q": 4, "lambda_": True}, TypeError),
        ({"q": 4, "lambda_": "0.5"}, TypeError),
    ],
)
def test_mus_bad_inputs(kwargs, exc):
    with pytest.raises(exc):
        ops.mus_noise(d=5, seed=0, **kwargs)


# -------------------------------------------------------------- stratified
@pytest.mark.parametrize("d,m", ((1, 4), (4, 3), (9, 5), (65, 2)))
def test_stratified_sizes_in_order(d, m):
    s = ops.stratified_masks(m, d, seed=12)
    assert s.shape == (m * d, d)
    assert torch.equal(s.sum(1), torch.arange(d).repeat_interleave(m))


def test_stratified_uniform_within_size():
    d, m = 4, 6000
    s = ops.stratified_masks(m, d, seed=14)
    codes = row_codes(s)
    for k in range(1, d):
        block = codes[k * m : (k + 1) * m]
        valid = [sum(1 << i for i in c) for c in itertools.combinations(range(d), k)]
        counts = np.array([(block == v).sum() for v in valid])
        assert counts.sum() == m
        assert chi2_uniform(counts) > P_MIN, k


# --------------------------------------------------------------- enumerate
@pytest.mark.parametrize("d", (1, 2, 5, 11))
def test_enumerate_rows_are_bits(d):
    e = ops.enumerate_coalitions(d)
    r = torch.arange(2**d).unsqueeze(1)
    assert torch.equal(e, ((r >> torch.arange(d)) & 1).bool())


def test_enumerate_limit():
    e = ops.enumerate_coalitions(20)
    assert e.shape == (2**20, 20)
    assert e[-1].all() and not e[0].any()
    assert torch.equal(e[12345], torch.tensor([(12345 >> i) & 1 for i in range(20)]).bool())
    with pytest.raises(ValueError, match="d"):
        ops.enumerate_coalitions(21)
    with pytest.raises(ValueError):
        ops.enumerate_coalitions(0)
    with pytest.raises(TypeError):
        ops.enumerate_coalitions(True)


# ------------------------------------------------------------- bad inputs
BAD_CALLS = [
    (lambda: ops.bernoulli_masks(-1, 4, seed=0), ValueError),
    (lambda: ops.bernoulli_masks(3, 0, seed=0), ValueError),
    (lambda: ops.bernoulli_masks(3, -2, seed=0), ValueError),
    (lambda: ops.bernoulli_masks(3, 4, 1.5, seed=0), ValueError),
    (lambda: ops.bernoulli_masks(3, 4, -0.1, seed=0), ValueError),
    (lambda: ops.bernoulli_masks(3, 4, float("nan"), seed=0), ValueError),
    (lambda: ops.bernoulli_masks(3, 4, "0.5", seed=0), TypeError),
    (lambda: ops.bernoulli_masks(3, 4, True, seed=0), TypeError),
    (lambda: ops.bernoulli_masks(3, 4, seed=1.0), TypeError),
    (lambda: ops.bernoulli_masks(3, 4, seed="1"), TypeError),
    (lambda: ops.bernoulli_masks(3, 4, seed=True), TypeError),
    (lambda: ops.bernoulli_masks(3, 4, seed=-1), ValueError),
    (lambda: ops.bernoulli_masks(3, 4, seed=2**64), ValueError),
    (lambda: ops.bernoulli_masks(3, 4, seed=0, row_offset=-1), ValueError),
    (lambda: ops.bernoulli_masks(3.0, 4, seed=0), TypeError),
    (lambda: ops.bernoulli_masks(True, 4, seed=0), TypeError),
    (lambda: ops.bernoulli_masks(3, True, seed=0), TypeError),
    (lambda: ops.subset_masks(3, 4, 5, seed=0), ValueError),
    (lambda: ops.subset_masks(3, 4, -1, seed=0), ValueError),
    (lambda: ops.subset_masks(3, 4, True, seed=0), TypeError),
    (lambda: ops.subset_masks(3, 4, 2.0, seed=0), TypeError),
    (lambda: ops.subset_masks(-1, 4, 2, seed=0), ValueError),
    (lambda: ops.shapley_kernel_masks(3, 1, seed=0), ValueError),
    (lambda: ops.shapley_kernel_masks(3, 0, seed=0), ValueError),
    (lambda: ops.shapley_kernel_masks(-3, 4, seed=0), ValueError),
    (lambda: ops.shapley_kernel_masks(3, 4, seed=2**64), ValueError),
    (lambda: ops.permutations(-1, 4, seed=0), ValueError),
    (lambda: ops.permutations(3, 0, seed=0), ValueError),
    (lambda: ops.permutations(3, 4, seed=-5), ValueError),
    (lambda: ops.stratified_masks(0, 4, seed=0), ValueError),
    (lambda: ops.stratified_masks(2, 0, seed=0), ValueError),
    (lambda: ops.stratified_masks(True, 4, seed=0), TypeError),
    (lambda: ops.mus_noise(4, 0, 0.5, seed=0), ValueError),
    (lambda: ops.mus_noise(4, 3, 0.5, seed=2**64), ValueError),
    (lambda: ops.enumerate_coalitions(2.0), TypeError),
]


@pytest.mark.parametrize("i", range(len(BAD_CALLS)))
def test_bad_inputs(i):
    call, exc = BAD_CALLS[i]
    with pytest.raises(exc):
        call()


def test_bad_input_messages_name_the_argument():
    with pytest.raises(ValueError, match="^n:"):
        ops.bernoulli_masks(-1, 4, seed=0)
    with pytest.raises(ValueError, match="^d:"):
        ops.bernoulli_masks(1, 0, seed=0)
    with pytest.raises(ValueError, match="^p:"):
        ops.bernoulli_masks(1, 2, 2.0, seed=0)
    with pytest.raises(ValueError, match="^k:"):
        ops.subset_masks(1, 2, 3, seed=0)
    with pytest.raises(ValueError, match="^seed:"):
        ops.bernoulli_masks(1, 2, seed=-1)
    with pytest.raises(TypeError, match="^seed:"):
        ops.bernoulli_masks(1, 2, seed=1.5)


def test_extreme_seeds_accepted():
    a = ops.bernoulli_masks(4, 8, seed=2**64 - 1)
    b = ops.bernoulli_masks(4, 8, seed=2**63)
    assert a.shape == b.shape == (4, 8)
    assert not torch.equal(
        ops.bernoulli_masks(16, 64, seed=2**63), ops.bernoulli_masks(16, 64, seed=0)
    )


# --------------------------------------------------- Shapley size table
def test_shapley_size_table_is_exact():
    # The kernels draw size s + 1 when T[s - 1] <= r < T[s] for a 64-bit word r,
    # T[s] = floor(P(size <= s + 1) * 2^64), the last entry 2^64 - 1. Computed
    # here independently in exact rationals.
    from fractions import Fraction

    from xattr.ops.sampling import _size_thresholds

    for d in (2, 3, 6, 8, 22, 65, 130):
        got = [v % 2**64 for v in _size_thresholds(d, (), torch.device("cpu")).tolist()]
        mass = [Fraction(d - 1, k * (d - k)) for k in range(1, d)]
        total, cum, want = sum(mass), Fraction(0), []
        for m in mass:
            cum += m
            want.append(min(int(cum / total * 2**64), 2**64 - 1))
        want[-1] = 2**64 - 1
        assert got == want, d


# --------------------------------------------------------- row range
def test_row_offset_near_the_int64_limit():
    o = 2**63 - 9  # rows up to 2**63 - 2 (the reference's arange needs its end < 2**63)
    whole = ops.bernoulli_masks(8, 5, seed=1, row_offset=o)
    assert torch.equal(whole, ref("bernoulli", 8, 5, 1, o, p=0.5))


def test_row_offset_beyond_int64_is_a_value_error():
    with pytest.raises(ValueError, match="row_offset"):
        ops.bernoulli_masks(1, 5, seed=1, row_offset=2**63)


def test_shapley_sizes_restrict_the_draw():
    # Only sizes 3 and 5 of d = 8, paired: the kernel renormalised over them
    # (1/(3*5) each: equally likely), complements kept, the bits the reference draws.
    m = ops.shapley_kernel_masks(4000, 8, seed=5, sizes=[3, 5])
    counts = torch.bincount(m.sum(1), minlength=9)
    assert counts[[0, 1, 2, 4, 6, 7, 8]].sum() == 0
    assert counts[3] == counts[5] == 2000
    assert bool((m[0::2] ^ m[1::2]).all())
    first = m[0::2].sum(1)
    assert abs(int((first == 3).sum()) - 1000) < 4 * 1000**0.5
    table = _reference.shapley_size_thresholds(8, [3, 5])
    want = _reference.sample("shapley", 4000, 8, seed=5, paired=True, thresholds=table)
    assert torch.equal(m, want)
    # all sizes given is the default draw
    assert torch.equal(
        ops.shapley_kernel_masks(64, 8, seed=1, sizes=range(1, 8)),
        ops.shapley_kernel_masks(64, 8, seed=1),
    )
    with pytest.raises(ValueError, match="sizes"):
        ops.shapley_kernel_masks(4, 8, seed=1, sizes=[0])
    with pytest.raises(ValueError, match="sizes"):
        ops.shapley_kernel_masks(4, 8, seed=1, sizes=[])
