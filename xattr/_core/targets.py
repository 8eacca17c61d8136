"""``target=``: which model outputs are explained, in Captum's forms and two of ours."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Union, cast

import torch
from torch import Tensor

from xattr._core.inputs import n_elements

TargetType = Union[None, int, tuple, list, Tensor, str]


# ------------------------------------------------------------------ targets
def _indices(values: Sequence[Any]) -> tuple[int, ...]:
    """Output indices: Python ints (or integer scalar tensors); a float is refused rather
    than truncated to another output."""
    out = []
    for v in values:
        if isinstance(v, Tensor) and v.numel() == 1 and not v.is_floating_point():
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(
                f"target: expected integer output indices, got {v!r} ({type(v).__name__})"
            )
        out.append(v)
    return tuple(out)


class Targets:
    """A normalised ``target``: selects T outputs per example from model outputs.

    Forms (Captum's, plus two of ours):
      None              the model returns one value per example
      int / tuple       the same output index for every example
      list / 1-D tensor of B ints (or B tuples): one index per example
      list of B lists of T ints: T targets per example (ours)
      "all"             every output (ours)
    ``multi`` says whether attributions get a target dimension (after the batch).
    """

    def __init__(self, target: TargetType, batch: int):
        self.batch = batch
        self.multi = False
        self.kind = "none"
        self.index: Tensor | None = None
        self.fixed: tuple = ()  # the indices of the "fixed" and "per_example_tuple" kinds
        # Captum's Shapley methods read target None on a model with several outputs per
        # example as every output: the first selection then turns "none" into "all"
        self.none_as_all = False
        if target is None:
            return
        if isinstance(target, str):
            if target != "all":
                raise ValueError(f"target: the only string accepted is 'all', got {target!r}")
            self.kind, self.multi = "all", True
            return
        if isinstance(target, Tensor):
            if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
                raise TypeError(
                    f"target: expected integer output indices, got a {target.dtype} tensor"
                )
            if target.numel() == 1:
                target = int(target.item())
            else:
                if target.dim() != 1 or target.shape[0] != batch:
                    raise ValueError(
                        f"target: a tensor target needs {batch} entries (one per example), "
                        f"got shape {tuple(target.shape)}"
                    )
                target = target.tolist()
        if isinstance(target, bool):
            raise TypeError("target: expected an int, tuple, list, tensor or 'all', got bool")
        if isinstance(target, int):
            self.kind, self.fixed = "fixed", (target,)
            return
        if isinstance(target, tuple):
            self.kind, self.fixed = "fixed", _indices(target)
            return
        if isinstance(target, list):
            target = [
                t.item()
                if isinstance(t, Tensor) and t.numel() == 1 and not t.is_floating_point()
                else t
                for t in target
            ]
            if len(target) != batch:
                raise ValueError(
                    f"target: a list target needs {batch} entries (one per example), "
                    f"got {len(target)}"
                )
            if all(isinstance(t, int) and not isinstance(t, bool) for t in target):
                self.kind = "per_example"
                self._set_index(torch.tensor(target, dtype=torch.long).view(batch, 1))
                return
            if all(isinstance(t, tuple) for t in target):
                self.kind = "per_example_tuple"
                self.fixed = tuple(_indices(t) for t in target)
                return
            if all(isinstance(t, list) for t in target):
                lens = {len(t) for t in target}
                if len(lens) != 1 or 0 in lens:
                    raise ValueError(
                        "target: a list of lists needs the same, "
                        "non-zero number of targets per example"
                    )
                for t in target:
                    _indices(t)
                self.kind, self.multi = "per_example", True
                self._set_index(torch.tensor(target, dtype=torch.long))
                return
        if isinstance(target, (int, float)):
            _indices((target,))  # a float: refused with the index message
        if isinstance(target, list) and not any(isinstance(t, (tuple, list)) for t in target):
            _indices(target)
        raise TypeError(
            "target: expected None, an int, a tuple, a list of ints (or of tuples, or of "
            f"lists), a tensor of ints or 'all', got {target!r}"
        )

    def select(self, out: Tensor, rows_per_example: int, first_example: int = 0) -> Tensor:
        """Model outputs for rows ordered example-major -> [rows, T] (also for 0 rows)."""
        n = out.shape[0]
        if self.kind == "none" and self.none_as_all and n and n_elements(out) != 1:
            self.kind, self.multi = "all", True
        if self.kind == "none":
            if n_elements(out) != 1:
                raise ValueError(
                    f"target: the model returns {tuple(out.shape[1:])} values per example; "
                    "give target= to choose one (or target='all')"
                )
            return out.reshape(n, 1)
        if self.kind == "all":
            return out.reshape(n, n_elements(out))
        if self.kind == "fixed":
            if out.dim() - 1 < len(self.fixed):
                raise ValueError(
                    f"target: index {self.fixed} needs {len(self.fixed)} output dimensions, "
                    f"the model returns {tuple(out.shape[1:])}"
                )
            self._check_range(out, self.fixed)
            sel = out[(slice(None), *self.fixed)]
            return sel.reshape(n, n_elements(sel))
        if self.kind == "per_example_tuple":
            ex = torch.arange(n) // rows_per_example + first_example
            sel = [out[(r, *self.fixed[int(e)])] for r, e in enumerate(ex.tolist())]
            return torch.stack(sel).reshape(n, -1) if sel else out.new_empty((0, 1))
        if out.dim() != 2:
            raise ValueError(
                "target: per-example indices need outputs [batch, classes], "
                f"the model returns {tuple(out.shape)}"
            )
        C = out.shape[1]
        if self.top >= C or self.bottom < -C:
            raise ValueError(f"target: index out of range for {C} outputs")
        idx = self._wrapped(C, out.device)  # [B, T] in [0, C)
        if n % rows_per_example == 0:  # whole examples: one gather, no row index
            nb, T = n // rows_per_example, idx.shape[1]
            idx = idx[first_example : first_example + nb].unsqueeze(1)
            out3 = out.view(nb, rows_per_example, C)
            return torch.gather(out3, 2, idx.expand(nb, rows_per_example, T)).view(n, T)
        ex = torch.arange(n, device=out.device) // rows_per_example + first_example
        return torch.gather(out, 1, idx[ex])

    def take(self, start: int, stop: int, repeat: int = 1) -> Targets:
        """The targets of examples start..stop, for a batch in which each of them is
        repeated ``repeat`` times example-major (row b * repeat + j copies example b)."""
        out = copy.copy(self)
        out.batch = (stop - start) * repeat
        if self.kind == "per_example_tuple":
            out.fixed = tuple(t for t in self.fixed[start:stop] for _ in range(repeat))
        elif self.index is not None:
            out._set_index(self.index[start:stop].repeat_interleave(repeat, dim=0))
        return out

    def _set_index(self, index: Tensor) -> None:
        """Per-example indices [B, T] and their range (checked against the outputs)."""
        self.index = index
        empty = index.numel() == 0  # an empty batch: nothing to check
        self.bottom, self.top = (0, -1) if empty else (int(index.min()), int(index.max()))
        self._cache: tuple = (None, None, None)

    def _wrapped(self, C: int, device: torch.device) -> Tensor:
        """The indices taken modulo C on ``device`` (kept for the next chunk)."""
        if self._cache[:2] != (C, device):
            self._cache = (C, device, cast(Tensor, self.index).to(device) % C)
        return self._cache[2]

    @staticmethod
    def _check_range(out: Tensor, fixed: tuple) -> None:
        for dim, (i, size) in enumerate(zip(fixed, out.shape[1:])):
            if not -size <= i < size:
                raise ValueError(
                    f"target: index {i} out of range for output dimension {dim + 1} of size {size}"
                )
