"""The one list of explainers: every explainer class registers itself here
(``@register``), and the package's exports and the cross-cutting tests (Captum's API,
batch invariance, targets, errors) read this list instead of keeping their own.

Example:
    >>> import xattr
    >>> info = xattr.EXPLAINERS["KernelShap"]
    >>> info.kind, info.captum, info.standalone
    ('perturbation', True, True)
    >>> "Saliency" in explainer_names("gradient", captum=True)
    True
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from xattr._core.attribution import GradientAttribution, PerturbationAttribution

KINDS = ("perturbation", "gradient", "wrapper")


@dataclass(frozen=True)
class ExplainerInfo:
    """One registered explainer.

    Attributes:
        name: the class name (the name xattr exports).
        cls: the class.
        kind: "perturbation" (a ``PerturbationAttribution``: differences of model
            outputs), "gradient" (a ``GradientAttribution``) or "wrapper" (wraps
            another explainer: NoiseTunnel).
        captum: ``captum.attr`` has a class of this name, with the same arguments.
        standalone: constructed from the model alone (``cls(model)``); False for a
            wrapper and for explainers that need more (LayerIntegratedGradients: a layer).
    """

    name: str
    cls: type
    kind: str
    captum: bool
    standalone: bool


_REGISTRY: dict[str, ExplainerInfo] = {}
EXPLAINERS: Mapping[str, ExplainerInfo] = MappingProxyType(_REGISTRY)
"""Every explainer by name (read-only; the order is the order of registration)."""

T = TypeVar("T", bound=type)


def register(*, captum: bool) -> Callable[[T], T]:
    """Class decorator: adds the explainer to :data:`EXPLAINERS` (its kind read off its
    base class, whether it is built from the model alone off its constructor).

    Args:
        captum: whether ``captum.attr`` has a class of the same name and arguments.
    """

    def add(cls: T) -> T:
        if issubclass(cls, PerturbationAttribution):
            kind = "perturbation"
        elif issubclass(cls, GradientAttribution):
            kind = "gradient"
        else:
            kind = "wrapper"
        required = [
            p
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        standalone = kind != "wrapper" and len(required) == 2  # self, forward_func
        if cls.__name__ in _REGISTRY:
            raise ValueError(f"register: an explainer named {cls.__name__} is registered")
        _REGISTRY[cls.__name__] = ExplainerInfo(cls.__name__, cls, kind, captum, standalone)
        return cls

    return add


def explainer_names(
    kind: str | None = None, *, captum: bool | None = None, standalone: bool | None = None
) -> list[str]:
    """The names of the registered explainers of ``kind`` (any when None), filtered by
    ``captum`` and ``standalone`` when given, sorted.

    Example:
        >>> import xattr
        >>> explainer_names("perturbation", captum=False)
        ['Banzhaf', 'ExactShapley', 'MeanWhenIncluded']
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS} or None, got {kind!r}")
    return sorted(
        name
        for name, e in _REGISTRY.items()
        if (kind is None or e.kind == kind)
        and (captum is None or e.captum == captum)
        and (standalone is None or e.standalone == standalone)
    )
