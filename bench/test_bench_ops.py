"""Micro benchmarks of single xattr ops under pytest-benchmark.

Run with ``pytest bench/ --benchmark-only`` (bench/ is not part of the default
test run). Each op family contributes a few ops at small sizes, taken from the
``--quick`` cases of ``bench_ops.py``; every op is benchmarked next to its
pure-torch reference (same ``group``), and every test first asserts that the op
equals the reference on that input, so a wrong op cannot post a good number.
"""

from __future__ import annotations

import pytest
import torch

from bench import bench_ops

# One or a few ops per family, small sizes (bench_ops --quick).
SELECTED = {
    "masking": ["mask_apply[img64]", "mask_apply_sampled[bernoulli,mnist]"],
    "sampling": ["bernoulli_masks", "shapley_kernel_masks", "permutations"],
    "coalition": [
        "kernel_shap_solve[shared]",
        "linear_fit[ridge]",
        "permutation_accumulate",
        "banzhaf_msr",
        "exact_shapley",
        "unique_coalitions",
    ],
    "path": ["path_points", "path_integrate[mean]"],
}
PARAMS = [(family, case_id) for family, ids in SELECTED.items() for case_id in ids]


@pytest.fixture(scope="module")
def cases() -> dict[str, bench_ops.Case]:
    return {c.id: c for c in bench_ops.build_cases(quick=True)}


def test_selection_exists(cases):
    missing = [case_id for _, case_id in PARAMS if case_id not in cases]
    assert not missing, f"no such bench_ops case: {missing}"


@pytest.mark.parametrize("impl", ["op", "reference"])
@pytest.mark.parametrize(("family", "case_id"), PARAMS, ids=[c for _, c in PARAMS])
def test_op(benchmark, cases, family, case_id, impl):
    case = cases[case_id]
    torch.manual_seed(0)
    ok, err = bench_ops.compare(case, case.run_op(), case.run_ref())
    assert ok, f"{case_id}: the op differs from its reference (max abs diff {err:.3g})"
    benchmark.group = f"{family}: {case_id} {case.size}"
    benchmark.extra_info["size"] = case.size
    benchmark.extra_info["threads"] = torch.get_num_threads()
    fn = case.run_op if impl == "op" else case.run_ref
    result = benchmark(fn)
    ok, err = bench_ops.compare(case, result, case.run_ref())
    assert ok, f"{case_id}: the benchmarked {impl} differs from the reference ({err:.3g})"
