"""Input checks shared by every op: each failure is a ValueError or TypeError
that names the argument, what was expected and what was received."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

FLOATS = (torch.float32, torch.float64)
MAX_SEED = 2**64


def tensor(
    name: str,
    t: object,
    *,
    dtypes: Sequence[torch.dtype] | None = None,
    ndim: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Checks that ``t`` is a tensor of an allowed dtype and rank; returns it."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if dtypes is not None and t.dtype not in dtypes:
        allowed = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(
            f"{name}: expected dtype {allowed}, got {str(t.dtype).replace('torch.', '')}"
        )
    if ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.dim() not in ranks:
            want = " or ".join(str(r) for r in ranks)
            raise ValueError(f"{name}: expected {want} dimensions, got shape {tuple(t.shape)}")
    return t


def device(name: str, value: object) -> torch.device:
    """A device to allocate on that this torch can use: a CUDA device needs a GPU that
    torch sees (not torch's own AssertionError)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, torch.device)):
        raise TypeError(f"{name}: expected a string or torch.device, got {type(value).__name__}")
    try:
        dev = torch.device(value)
    except RuntimeError:
        raise ValueError(f"{name}: not a device torch knows, got {value!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{name}: {str(dev)!r} asked for, but torch sees no CUDA GPU "
                "(torch.cuda.is_available() is False); use 'cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"{name}: {str(dev)!r} asked for, but torch sees "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    return dev


def same_device(**tensors: torch.Tensor | None) -> torch.device:
    """Checks that all given tensors live on one device; returns it."""
    devices = {k: v.device for k, v in tensors.items() if v is not None}
    first = next(iter(devices.values()))
    for k, dev in devices.items():
        if dev != first:
            listing = ", ".join(f"{n} on {d}" for n, d in devices.items())
            raise ValueError(f"all tensors must be on one device, got {listing} ({k} differs)")
    return first


def all_finite(t: torch.Tensor) -> bool:
    """Whether a tensor holds no NaN and no infinity (integer tensors always do).

    One min-max reduction: NaN propagates through both and an infinity is an extreme,
    so the two extremes are finite iff every element is; 5-20x faster than
    ``torch.isfinite(t).all()``, which writes a bool tensor first.
    """
    if t.numel() == 0 or not (t.is_floating_point() or t.is_complex()):
        return True
    if t.is_complex():
        return bool(torch.isfinite(t).all())
    lo, hi = torch.aminmax(t)
    return math.isfinite(lo.item()) and math.isfinite(hi.item())


def finite(name: str, t: torch.Tensor) -> None:
    """Rejects NaN and infinity in a floating tensor (they would poison the result)."""
    if not all_finite(t):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name}: contains {bad} non-finite value(s) (NaN or inf)")


def finite_result(op: str, inputs: str, *results: torch.Tensor) -> None:
    """The overflow check every solver op ends with.

    The ops reject NaN and infinity in their inputs (:func:`finite`), so a non-finite
    result can only come from arithmetic on finite numbers that overflowed: products or
    sums past the float64 range inside the kernel, or a float64 result past float32's
    range when it is cast back. Says so, naming the op and the inputs to rescale,
    instead of returning inf or NaN.
    """
    for t in results:
        if not all_finite(t):
            dtype = str(t.dtype).replace("torch.", "")
            raise ValueError(
                f"{op}: the result overflowed to inf or NaN although every input is finite: "
                f"{inputs} are too large in magnitude for {dtype} arithmetic; rescale them "
                "(e.g. divide by their largest absolute value)"
            )


def int_arg(name: str, v: object, minimum: int | None = None, maximum: int | None = None) -> int:
    """Checks an integer argument (bools are refused) and its range."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {v}")
    return v


def prob(name: str, p: object) -> float:
    """Checks a probability in [0, 1]."""
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{name}: expected a float in [0, 1], got {type(p).__name__}")
    if not (0.0 <= float(p) <= 1.0):
        raise ValueError(f"{name}: must be in [0, 1], got {p}")
    return float(p)


def seed(value: int | None) -> int:
    """A 64-bit seed; None draws one from torch's global generator, so that
    ``torch.manual_seed`` keeps code reproducible."""
    if value is None:
        return int(torch.randint(0, 2**62, (), dtype=torch.int64).item())
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"seed: expected an int or None, got {type(value).__name__}")
    if not (0 <= value < MAX_SEED):
        raise ValueError(f"seed: must be in [0, 2**64), got {value}")
    return value


def mus_level(lambda_: float, q: int) -> int:
    """L = lambda * q, which must be an integer: MuS noise keeps each feature
    in exactly L of its q rows, so lambda must be a multiple of 1/q."""
    # q < 2^31: the reference maps random words to [0, q) exactly only below that.
    q = int_arg("q", q, minimum=1, maximum=2**31 - 1)
    if isinstance(lambda_, bool) or not isinstance(lambda_, (int, float)):
        raise TypeError(f"lambda_: expected a float in [0, 1], got {type(lambda_).__name__}")
    if not (0.0 <= lambda_ <= 1.0):
        raise ValueError(f"lambda_: must be in [0, 1], got {lambda_}")
    scaled = lambda_ * q
    level = round(scaled)
    if abs(scaled - level) > 1e-9 * max(1.0, scaled):
        lo, hi = math.floor(scaled), math.ceil(scaled)
        raise ValueError(
            f"lambda_: must be a multiple of 1/q = 1/{q}, got {lambda_}; "
            f"nearest valid values are {lo}/{q} = {lo / q:.6g} and {hi}/{q} = {hi / q:.6g}"
        )
    return level
