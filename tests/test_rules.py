"""DeepLift's rescale-rule kernel (``xattr.ops.rescale_multiplier``) against its pure-torch
reference, bit for bit, on every device and CPU launcher; its limits (the derivative
where x meets its reference, NaN); and its input checks, in Python and in the binding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _devices import DEVICES, assert_same_bits, held_to_cpu, on, to

from xattr import _ext, ops
from xattr.ops import _reference

F64 = torch.float64
FUNCTIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "given": F.gelu}


def batch(n_in: int, ref_rows: int, rest=(3, 5), dtype=torch.float32, seed=0):
    """x [n_in + ref_rows, *rest] with ties: some input elements equal their reference's,
    some lie within eps of it, and some references are 0 (ReLU's kink)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_in + ref_rows, *rest, generator=g, dtype=F64).to(dtype)
    x[n_in:, 0] = 0
    for i in range(0, n_in, 3):  # input i pairs with reference n_in + i mod ref_rows
        x[i, 1] = x[n_in + i % ref_rows, 1]
        x[i, 2] = x[n_in + i % ref_rows, 2] + 1e-13
    return x


def multiplier_args(kind, x, ref_rows):
    y = FUNCTIONS[kind](x)
    n = x.shape[0] - ref_rows
    deriv = None
    if kind == "given":
        g = torch.Generator().manual_seed(5)
        deriv = torch.rand((n, *x.shape[1:]), generator=g, dtype=F64).to(x.dtype)
    return y, deriv


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("kind", list(FUNCTIONS))
@pytest.mark.parametrize("n_in,ref_rows", [(6, 1), (12, 3), (4, 4), (0, 2)])
def test_kernel_equals_reference(device, dtype, kind, n_in, ref_rows):
    x = batch(n_in, ref_rows, dtype=dtype, seed=n_in + ref_rows)
    y, deriv = multiplier_args(kind, x, ref_rows)
    want = _reference.rescale_multiplier(x, y, ref_rows, kind, 1e-10, deriv)
    with on(device) as dev:
        xd, yd, dd = to(dev, x, y, deriv)
        got = ops.rescale_multiplier(xd, yd, ref_rows, kind, 1e-10, dd)
    assert got.shape == (n_in, 3, 5) and got.device.type == dev
    # one subtraction, one division and one select in the same order: the same bits
    held_to_cpu(device, got, want, rtol=0, atol=0)


def test_the_unchecked_entry_is_the_same_kernel():
    x = batch(9, 3)
    y = torch.sigmoid(x)
    assert_same_bits(
        ops.rules.rescale_multiplier_unchecked(x, y, 3, "sigmoid", 1e-10),
        ops.rescale_multiplier(x, y, 3, "sigmoid"),
    )
    half = x.to(torch.bfloat16)  # no kernel for it: the reference, in its dtype
    got = ops.rules.rescale_multiplier_unchecked(half, torch.sigmoid(half), 3, "sigmoid", 1e-10)
    assert got.dtype == torch.bfloat16
    assert_same_bits(
        got, _reference.rescale_multiplier(half, torch.sigmoid(half), 3, "sigmoid", 1e-10)
    )


def test_values_of_the_rule():
    # input row i pairs with reference row i mod 2
    x = torch.tensor([[2.0, -1.0], [3.0, 0.5], [-2.0, 4.0], [1.0, 0.5], [0.0, 1.0], [1.0, 0.5]])
    m = ops.rescale_multiplier(x, torch.relu(x), ref_rows=2)
    secant = (torch.relu(x[:4]) - torch.relu(x[4:].repeat(2, 1))) / (x[:4] - x[4:].repeat(2, 1))
    want = torch.where(x[:4] - x[4:].repeat(2, 1) == 0, (x[:4] > 0).float(), secant)
    assert torch.equal(m, want)
    assert m[1, 1] == 1.0  # 0.5 against 0.5: relu'(0.5), not 0 / 0
    assert m[3, 1] == 1.0 and m[0, 1] == 0.5  # (0 - 1) / (-1 - 1)


def test_eps_decides_between_secant_and_derivative():
    x = torch.tensor([[1e-3], [-1e-3], [0.0]], dtype=F64)
    y = torch.sigmoid(x)
    secant = ops.rescale_multiplier(x, y, 1, "sigmoid", eps=1e-4)
    tangent = ops.rescale_multiplier(x, y, 1, "sigmoid", eps=1e-2)
    assert torch.equal(secant[:, 0], (y[:2, 0] - y[2, 0]) / x[:2, 0])
    assert torch.equal(tangent[:, 0], y[:2, 0] * (1 - y[:2, 0]))


def test_nan_propagates():
    x = torch.tensor([[float("nan"), 1.0], [0.5, 0.5]])
    m = ops.rescale_multiplier(x, torch.tanh(x), 1, "tanh")
    assert torch.isnan(m[0, 0]) and m[0, 1] == (torch.tanh(x[0, 1]) - torch.tanh(x[1, 1])) / 0.5


def test_input_checks():
    x = batch(4, 2)
    y = torch.relu(x)
    with pytest.raises(ValueError, match="ref_rows"):
        ops.rescale_multiplier(x, y, 4)  # 2 input rows, not a multiple of 4
    with pytest.raises(ValueError, match="ref_rows"):
        ops.rescale_multiplier(x, y, 0)
    with pytest.raises(ValueError, match="kind"):
        ops.rescale_multiplier(x, y, 2, "softsign")
    with pytest.raises(ValueError, match="deriv"):
        ops.rescale_multiplier(x, y, 2, "given")
    with pytest.raises(ValueError, match="deriv"):
        ops.rescale_multiplier(x, y, 2, "relu", deriv=torch.ones(4, 3, 5))
    with pytest.raises(ValueError, match="deriv: expected shape"):
        ops.rescale_multiplier(x, y, 2, "given", deriv=torch.ones(3, 3, 5))
    with pytest.raises(ValueError, match="x, y"):
        ops.rescale_multiplier(x, y[:, :2], 2)
    with pytest.raises(TypeError, match="y: expected dtype float32"):
        ops.rescale_multiplier(x, y.double(), 2)
    with pytest.raises(TypeError, match="x: expected dtype"):
        ops.rescale_multiplier(x.long(), y.long(), 2)
    with pytest.raises(ValueError, match="eps"):
        ops.rescale_multiplier(x, y, 2, eps=-1.0)


def test_the_binding_checks_sizes():
    # the kernel must never be pointed past a buffer, whatever Python passes
    C = _ext.lib()
    x = torch.randn(6, 4)
    y = torch.relu(x)
    m = torch.empty(4, 4)
    kw = dict(x=_ext.buf(x), y=_ext.buf(y), m=_ext.buf(m), rows=4, R=4, P=8, kind=0, eps=1e-10)
    kw.update(_ext.where(x))
    C.rescale_multiplier(**kw)
    assert torch.equal(m, ops.rescale_multiplier(x, y, 2))
    with pytest.raises(ValueError, match="m: expected 16 elements"):
        C.rescale_multiplier(**{**kw, "m": _ext.buf(torch.empty(3, 4))})
    with pytest.raises(ValueError, match="x: expected 40 elements"):
        C.rescale_multiplier(**{**kw, "rows": 8})  # 32 + 8 elements would be read
    with pytest.raises(ValueError, match="P: "):
        C.rescale_multiplier(**{**kw, "P": 12})  # does not divide rows * R
    with pytest.raises(ValueError, match="P: "):
        C.rescale_multiplier(**{**kw, "P": 6})  # not a multiple of R
    with pytest.raises(ValueError, match="kind"):
        C.rescale_multiplier(**{**kw, "kind": 7})
    with pytest.raises(ValueError, match="deriv: required"):
        C.rescale_multiplier(**{**kw, "kind": 3})
    with pytest.raises(ValueError, match="deriv: given only"):
        C.rescale_multiplier(**{**kw, "deriv": _ext.buf(m)})
    with pytest.raises(ValueError, match="eps"):
        C.rescale_multiplier(**{**kw, "eps": float("nan")})
    with pytest.raises(ValueError, match="expected float32 or float64"):
        C.rescale_multiplier(**{**kw, "x": _ext.buf(x.long())})
    with pytest.raises(ValueError, match="y: expected dtype float32"):
        C.rescale_multiplier(**{**kw, "y": _ext.buf(y.double())})


def test_opcheck():
    x = batch(6, 3, dtype=F64)
    y, _ = multiplier_args("tanh", x, 3)
    code = ops.rules.RESCALE_KINDS.index("tanh")
    result = torch.library.opcheck(
        torch.ops.xattr.rescale_multiplier.default, (x, y, 3, code, 1e-10, None)
    )
    assert all(v == "SUCCESS" for v in result.values()), result
    y, d = multiplier_args("given", x, 3)
    result = torch.library.opcheck(
        torch.ops.xattr.rescale_multiplier.default, (x, y, 3, 3, 1e-10, d)
    )
    assert all(v == "SUCCESS" for v in result.values()), result
