"""Call interception: run a model while chosen torch functions are replaced, whatever way
the model calls them (an ``nn.ReLU`` module, ``F.relu``, ``torch.relu``, ``x.relu()``; a
module called twice is two calls). DeepLift and the modified-ReLU methods (GuidedBackprop,
Deconvolution) replace nonlinearities with autograd Functions whose backward is their
rule; Captum hooks modules instead, which misses functional calls and mixes up the calls
of a module used twice.

:class:`Intercept` is a ``TorchFunctionMode``: every torch function call made by the
model passes through it. Calls whose function has a rule are handed to the rule. With
``strict=True`` the mode also traces which tensors derive from the model's inputs and
refuses any call on such a tensor that is neither a rule nor a known linear operation
(:data:`LINEAR`, :data:`PRODUCTS`, :data:`METADATA`): a method that is exact only for
piecewise-linear compositions of known nonlinearities (DeepLift's rescale rule) then
never returns a silently wrong answer.

:class:`Pairing` tells rules which rows of a tensor are the inputs and which are their
references, for methods that run inputs and references in one batch (DeepLift):
``[inputs (n_x rows); references (n_ref rows)]``, input row ``r`` paired with reference
row ``r mod n_ref`` (n_ref divides n_x). Every intermediate tensor keeps that order in
its first dimension, possibly with each row split into k sub-rows (a reshape
``[N, T, D] -> [N * T, D]``), so a rule sees ``[(n_x + n_ref) * k, ...]``.

Example:
    >>> import torch
    >>> import torch.nn.functional as F
    >>> def doubled_relu(func, args, kwargs):
    ...     return 2 * func(*args, **kwargs)
    >>> with Intercept({f: doubled_relu for f in RELU}, name="demo"):
    ...     y = F.relu(torch.tensor([-1.0, 3.0]))
    >>> y
    tensor([0., 6.])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

T = torch.Tensor

Rule = Callable[[Callable, tuple, dict], Any]
"""A replacement: ``rule(func, args, kwargs)`` returns what ``func(*args, **kwargs)``
would (the mode is off while it runs, so it may call torch freely)."""

# --------------------------------------------------------------------- function groups
# (the aten overloads are what a torch.export program's graph calls)
RELU = (F.relu, torch.relu, T.relu, torch.ops.aten.relu.default)
RELU_INPLACE = (F.relu_, torch.relu_, T.relu_, torch.ops.aten.relu_.default)
SIGMOID = (torch.sigmoid, F.sigmoid, T.sigmoid)
TANH = (torch.tanh, F.tanh, T.tanh)
SOFTMAX = (F.softmax, torch.softmax, T.softmax)
MAX_POOL = {  # function -> number of pooled dimensions
    F.max_pool1d: 1,
    F.max_pool2d: 2,
    F.max_pool3d: 3,
    F.max_pool1d_with_indices: 1,
    F.max_pool2d_with_indices: 2,
    F.max_pool3d_with_indices: 3,
    F.adaptive_max_pool1d: 1,
    F.adaptive_max_pool2d: 2,
    F.adaptive_max_pool3d: 3,
    F.adaptive_max_pool1d_with_indices: 1,
    F.adaptive_max_pool2d_with_indices: 2,
    F.adaptive_max_pool3d_with_indices: 3,
}
# other elementwise nonlinearities (any elementwise function obeys the rescale rule)
ELEMENTWISE_OTHER = (
    F.elu,
    F.leaky_relu,
    F.softplus,
    F.gelu,
    F.silu,
    F.mish,
    F.hardtanh,
    F.relu6,
    F.selu,
    F.celu,
    F.hardsigmoid,
    F.hardswish,
    F.logsigmoid,
    F.softsign,
    F.tanhshrink,
    torch.exp,
    T.exp,
)

# Linear (affine) in every traced argument: sums, shape and layout changes, selections
# by untraced indices, linear layers and pooling by averages. Checked further in
# ``_check_linear`` where an argument makes them nonlinear (dropout or batch norm in
# training mode).
LINEAR = frozenset(
    {
        F.linear,
        F.conv1d,
        F.conv2d,
        F.conv3d,
        F.conv_transpose1d,
        F.conv_transpose2d,
        F.conv_transpose3d,
        F.avg_pool1d,
        F.avg_pool2d,
        F.avg_pool3d,
        F.adaptive_avg_pool1d,
        F.adaptive_avg_pool2d,
        F.adaptive_avg_pool3d,
        F.pad,
        F.interpolate,
        F.pixel_shuffle,
        F.pixel_unshuffle,
        F.unfold,
        F.fold,
        F.batch_norm,
        F.dropout,
        F.dropout1d,
        F.dropout2d,
        F.dropout3d,
        F.alpha_dropout,
        F.feature_alpha_dropout,
        torch.add,
        torch.sub,
        torch.subtract,
        torch.neg,
        torch.negative,
        torch.cat,
        torch.concat,
        torch.concatenate,
        torch.stack,
        torch.hstack,
        torch.vstack,
        torch.flatten,
        torch.reshape,
        torch.squeeze,
        torch.unsqueeze,
        torch.transpose,
        torch.permute,
        torch.movedim,
        torch.swapaxes,
        torch.narrow,
        torch.select,
        torch.index_select,
        torch.gather,
        torch.chunk,
        torch.split,
        torch.unbind,
        torch.flip,
        torch.roll,
        torch.tile,
        torch.sum,
        torch.mean,
        torch.cumsum,
        torch.clone,
        torch.t,
        T.add,
        T.add_,
        T.__add__,
        T.__radd__,
        T.__iadd__,
        T.sub,
        T.sub_,
        T.__sub__,
        T.__rsub__,
        T.__isub__,
        T.neg,
        T.__neg__,
        T.__pos__,
        T.__getitem__,
        T.view,
        T.view_as,
        T.reshape,
        T.reshape_as,
        T.flatten,
        T.unflatten,
        T.squeeze,
        T.unsqueeze,
        T.permute,
        T.transpose,
        T.t,
        T.movedim,
        T.swapaxes,
        T.expand,
        T.expand_as,
        T.repeat,
        T.repeat_interleave,
        T.contiguous,
        T.clone,
        T.to,
        T.float,
        T.double,
        T.type_as,
        T.narrow,
        T.select,
        T.index_select,
        T.gather,
        T.chunk,
        T.split,
        T.unbind,
        T.flip,
        T.roll,
        T.tile,
        T.sum,
        T.mean,
        T.cumsum,
    }
)

# Linear when at most one of the tensor arguments is traced (a product of two traced
# tensors is not); for divisions only the numerator may be traced.
PRODUCTS = frozenset(
    {
        torch.mul,
        torch.multiply,
        torch.matmul,
        torch.mm,
        torch.bmm,
        torch.einsum,
        torch.tensordot,
        T.mul,
        T.mul_,
        T.__mul__,
        T.__rmul__,
        T.__imul__,
        T.matmul,
        T.__matmul__,
        T.__rmatmul__,
        T.mm,
        T.bmm,
    }
)
DIVISIONS = frozenset({torch.div, torch.true_divide, T.div, T.div_, T.__truediv__, T.__itruediv__})

# Calls that only read a tensor's metadata.
METADATA = frozenset(
    {
        T.size,
        T.dim,
        T.numel,
        T.__len__,
        T.stride,
        T.is_contiguous,
        T.is_floating_point,
        T.element_size,
        T.data_ptr,
        T.get_device,
        T.storage_offset,
        T.__format__,
    }
)
_PROPERTIES_READ = ("shape", "dtype", "device", "ndim", "is_cuda", "layout", "requires_grad")


def _getter(name: str) -> Callable:
    """What the mode receives when a tensor property is read."""
    return getattr(T, name).__get__


_PROPERTY_GETTERS = frozenset(_getter(p) for p in _PROPERTIES_READ)
_PROPERTY_LINEAR = frozenset(_getter(p) for p in ("T", "mT"))
_TRAINING_ARG = {  # functions that mix or randomise rows in training mode: training's place
    F.batch_norm: 5,
    F.dropout: 2,
    F.dropout1d: 2,
    F.dropout2d: 2,
    F.dropout3d: 2,
    F.alpha_dropout: 2,
    F.feature_alpha_dropout: 2,
}
_TRAINING_DEFAULT = {F.batch_norm: False}


_TRANSPOSES = frozenset({T.t, torch.t, _getter("T")})
_SWAPS = frozenset({T.transpose, torch.transpose, T.swapaxes, torch.swapaxes})
_PERMUTES = frozenset({T.permute, torch.permute})
_MOVES = frozenset({T.movedim, torch.movedim})
_JOINS = frozenset({torch.cat, torch.concat, torch.concatenate})  # (tensors, dim=0)
_SPLITS = {T.chunk: 2, torch.chunk: 2, T.split: 2, torch.split: 2, T.unbind: 1, torch.unbind: 1}


def _dim_arg(args: tuple, kwargs: dict, place: int) -> int:
    value = kwargs.get("dim", args[place] if len(args) > place else 0)
    return int(value)


def _moves_batch(func: Callable, args: tuple, kwargs: dict) -> bool:
    """Whether a layout change moves dimension 0 (the batch) elsewhere, or joins or
    splits tensors along it (which would mix up the rows of inputs and references)."""
    if args and func in _JOINS | {torch.stack} and isinstance(args[0], (tuple, list)):
        first = args[0][0] if args[0] else None
        n = max(1, first.dim()) + (func is torch.stack) if isinstance(first, Tensor) else 1
        return _dim_arg(args, kwargs, 1) % n == 0
    if func is torch.vstack:
        return True
    if not args or not isinstance(args[0], Tensor):
        return False
    n = max(1, args[0].dim())
    if func in _SPLITS:
        return _dim_arg(args, kwargs, _SPLITS[func]) % n == 0
    if func in _TRANSPOSES:
        return n >= 2
    if func == _getter("mT"):
        return n == 2
    rest = list(args[1:]) + list(kwargs.values())
    if func in _SWAPS and len(rest) >= 2:
        a, b = int(rest[0]) % n, int(rest[1]) % n
        return a != b and 0 in (a, b)
    if func in _PERMUTES and rest:
        dims = rest[0] if isinstance(rest[0], (tuple, list)) else rest
        return int(dims[0]) % n != 0
    if func in _MOVES and len(rest) >= 2:
        src, dst = (v if isinstance(v, (tuple, list)) else (v,) for v in rest[:2])
        return any(
            int(s) % n != int(d) % n and 0 in (int(s) % n, int(d) % n) for s, d in zip(src, dst)
        )
    return False


def function_name(func: Callable) -> str:
    """A readable name: ``torch.nn.functional.layer_norm``, ``Tensor.max``, ``torch.where``."""
    name = getattr(func, "__name__", None) or repr(func)
    if func in _PROPERTY_GETTERS or func in _PROPERTY_LINEAR or name == "__get__":
        owner = getattr(func, "__self__", None)
        return f"Tensor.{getattr(owner, '__name__', 'property')}"
    module = getattr(func, "__module__", None)
    if module is None or module.startswith("torch._C") and module != "torch._C._nn":
        qual = getattr(func, "__qualname__", name)
        if qual.startswith("TensorBase."):
            return "Tensor." + qual.split(".", 1)[1]
        return f"torch.{name}" if module is None and "Tensor" not in qual else qual
    if module == "torch._tensor":
        return f"Tensor.{name}"
    if module == "torch._C._nn":
        module = "torch.nn.functional"
    if module.startswith("torch.nn.functional") or module == "torch":
        return f"{module}.{name}"
    return f"{module}.{name}"


class Pairing:
    """Which rows of a batch are inputs and which their references: ``[inputs (n_x);
    references (n_ref)]``, input row r paired with reference row ``r mod n_ref``.

    Args:
        n_x: input rows; n_ref: reference rows, 1 (shared) up to n_x, dividing n_x.
        name: the method, for error messages.
    """

    def __init__(self, n_x: int, n_ref: int, name: str) -> None:
        if n_ref < 1 or n_x % n_ref:
            raise ValueError(f"Pairing: n_ref ({n_ref}) must divide n_x ({n_x})")
        self.n_x, self.n_ref, self.name = n_x, n_ref, name

    def sub_rows(self, t: Tensor, what: str) -> int:
        """k: ``t`` has (n_x + n_ref) * k rows (each row split into k), else ValueError."""
        rows = self.n_x + self.n_ref
        if t.dim() == 0 or t.shape[0] % rows:
            raise ValueError(
                f"{self.name}: {what} received a tensor of shape {tuple(t.shape)}, whose first "
                f"dimension is not a multiple of the {rows} rows of [inputs ({self.n_x}); "
                f"references ({self.n_ref})]: the batch must stay the first dimension of "
                "every tensor the model computes (e.g. batch_first=True)"
            )
        return t.shape[0] // rows

    def split(self, t: Tensor, what: str) -> tuple[Tensor, Tensor]:
        """``t`` [(n_x + n_ref) * k, *rest] -> (inputs' rows [n_x / n_ref, n_ref, k, *rest],
        references' rows [1, n_ref, k, *rest]): broadcasting pairs them."""
        k = self.sub_rows(t, what)
        rest = t.shape[1:]
        x = t[: self.n_x * k].reshape(self.n_x // self.n_ref, self.n_ref, k, *rest)
        r = t[self.n_x * k :].reshape(1, self.n_ref, k, *rest)
        return x, r

    def join(self, x_part: Tensor, shape: tuple[int, ...], factor: Tensor | None = None) -> Tensor:
        """A tensor of ``shape`` whose inputs' rows are ``x_part`` (times ``factor``, both
        shaped as :meth:`split` gives them) and whose references' rows are zero."""
        out = x_part.new_empty(shape)
        k = shape[0] // (self.n_x + self.n_ref)
        head = out[: self.n_x * k].view(x_part.shape)
        if factor is None:
            head.copy_(x_part)
        else:
            torch.mul(x_part, factor, out=head)
        out[self.n_x * k :].zero_()
        return out


class UnsupportedOperation(ValueError):
    """A call that a strict :class:`Intercept` cannot give an exact rule for."""


class Intercept(TorchFunctionMode):
    """A ``TorchFunctionMode`` that hands calls of chosen functions to rules.

    Args:
        rules: function -> rule (``rule(func, args, kwargs)``); applied to every call of
            the function while the mode is on (in strict mode only to calls on traced
            tensors).
        name: the method, for error messages.
        strict: trace the tensors derived from ``sources`` and refuse (``ValueError``
            naming the operation) any call on them that is neither a rule nor linear.
        sources: the tensors the model receives (strict mode, or ``trace``).
        trace: trace the tensors derived from ``sources`` without refusing any call, so
            that :meth:`check_output` can tell whether the output was computed by calls
            the mode saw (strict mode traces too).

    Example:
        >>> import torch
        >>> x = torch.randn(2, 3)
        >>> with Intercept({}, name="demo", strict=True, sources=(x,)):
        ...     y = (2 * x).sum(1)
        >>> try:
        ...     with Intercept({}, name="demo", strict=True, sources=(x,)):
        ...         x.max(1)
        ... except ValueError as e:
        ...     print(str(e).split(":")[1].strip())
        unsupported operation Tensor.max
    """

    def __init__(
        self,
        rules: Mapping[Callable, Rule],
        *,
        name: str,
        strict: bool = False,
        sources: tuple[Tensor, ...] = (),
        trace: bool = False,
    ) -> None:
        super().__init__()
        self.rules = rules
        self.name = name
        self.strict = strict
        self.trace = trace or strict
        self._traced: dict[int, Tensor] = {}  # id -> tensor (kept alive so ids stay unique)
        for s in sources:
            self._traced[id(s)] = s

    def traced(self, t: Any) -> bool:
        return isinstance(t, Tensor) and id(t) in self._traced

    def _mark(self, out: Any) -> None:
        if isinstance(out, Tensor):
            self._traced[id(out)] = out
        elif isinstance(out, (tuple, list)):
            for o in out:
                if isinstance(o, Tensor):
                    self._traced[id(o)] = o

    def _count(self, args: tuple, kwargs: dict) -> int:
        n = 0
        for a in (*args, *kwargs.values()):
            if isinstance(a, Tensor):
                n += id(a) in self._traced
            elif isinstance(a, (tuple, list)):
                n += sum(isinstance(b, Tensor) and id(b) in self._traced for b in a)
        return n

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        if not self.trace:
            rule = self.rules.get(func)
            if rule is not None:
                return rule(func, args, kwargs)
            return func(*args, **kwargs)
        n = self._count(args, kwargs)
        if n == 0:
            return func(*args, **kwargs)
        rule = self.rules.get(func)
        if not self.strict:
            out = func(*args, **kwargs) if rule is None else rule(func, args, kwargs)
            self._mark(out)
            return out
        if rule is not None:
            out = rule(func, args, kwargs)
        elif func in LINEAR or func in _PROPERTY_LINEAR:
            self._check_linear(func, args, kwargs)
            out = func(*args, **kwargs)
        elif func in PRODUCTS:
            if n > 1:
                self._refuse(func, "a product of two tensors that both depend on the inputs")
            out = func(*args, **kwargs)
        elif func in DIVISIONS:
            if n > 1 or not self.traced(args[0] if args else kwargs.get("input")):
                self._refuse(func, "a division by a tensor that depends on the inputs")
            out = func(*args, **kwargs)
        elif func in METADATA or func in _PROPERTY_GETTERS:
            return func(*args, **kwargs)
        else:
            self._refuse(func, "no rule for it")
        self._mark(out)
        return out

    def check_output(self, out: Any) -> None:
        """Refuses a model output (a tensor, or the tensors of a tuple / list) that the
        traced calls did not compute: the model ran operations out of the mode's sight (a
        TorchScript module or function, a C++ extension), whose nonlinearities no rule
        replaced, so the attributions would silently be plain gradients."""
        outs = out if isinstance(out, (tuple, list)) else (out,)
        tensors = [o for o in outs if isinstance(o, Tensor)]
        if tensors and not any(self.traced(o) for o in tensors):
            raise UnsupportedOperation(
                f"{self.name}: the model's output was computed by operations that xattr "
                "cannot see (a TorchScript module or function, or another compiled call), "
                f"so {self.name}'s rules could not replace its nonlinearities; explain the "
                "eager (Python) model instead"
            )

    def _check_linear(self, func: Callable, args: tuple, kwargs: dict) -> None:
        if _moves_batch(func, args, kwargs):
            self._refuse(func, "it moves, joins or splits the batch (dimension 0)")
        place = _TRAINING_ARG.get(func)
        if place is None:
            return
        training = kwargs.get(
            "training", args[place] if len(args) > place else _TRAINING_DEFAULT.get(func, True)
        )
        p = kwargs.get("p", args[1] if len(args) > 1 and func is not F.batch_norm else 0.5)
        if training and (func is F.batch_norm or p):
            self._refuse(func, "in training mode (call model.eval() first)")

    def _refuse(self, func: Callable, why: str) -> None:
        raise UnsupportedOperation(
            f"{self.name}: unsupported operation {function_name(func)}: {why}. "
            f"{self.name} is exact for networks of linear operations and the "
            "nonlinearities it has rules for; rewrite the model without it, or use "
            "IntegratedGradients"
        )
