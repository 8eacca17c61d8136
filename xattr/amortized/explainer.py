"""AmortizedExplainer: a network trained to predict removal-based Shapley values in
one forward pass.

The network maps an input x [B, *F] to d attributions for each of C outputs (C = 1:
the output chosen by the ``target`` given to :meth:`AmortizedExplainer.fit`; C =
``n_classes``: every class at once, a [C, d] head). Its raw output phi(x) is made
efficient additively (Jethani et al. 2022):

    phi_i <- phi_i + (v(N) - v(empty) - sum_j phi_j) / d,

so that sum_i phi_i = v(N) - v(empty) exactly, in training and in :meth:`attribute`.
The game v is xattr's (:class:`~xattr._core.game.Setup`: baselines, ``removal=``,
feature groups, the masking kernel and the model in forward batches under the memory
budget). Two training objectives:

* ``"fastshap"`` (Jethani et al. 2022), no targets: coalitions S drawn with
  P(|S| = k) proportional to (d - 1) / (k (d - k)), then uniformly among the sets of
  that size, each with its complement (:func:`xattr.ops.shapley_kernel_masks`); the
  loss mean (v(S) - v(empty) - 1_S' phi(x))^2 is KernelSHAP's weighted least-squares
  objective in expectation, whose minimiser under efficiency is the Shapley value.
* ``"regression"`` (Yang et al. 2023): mean (phi(x) - phi*(x))^2 to targets phi*
  from KernelShap or ShapleyValueSampling at a moderate budget, computed once in
  large batches and cached on the explainer (keyed by the data and the settings).

References: N. Jethani, M. Sudarshan, I. Covert, S.-I. Lee, R. Ranganath,
"FastSHAP: Real-Time Shapley Value Estimation", ICLR 2022; Y. Yang et al., "Efficient
Shapley Values Estimation by Amortization for Text Classification", ACL 2023.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from xattr import ops
from xattr._core import validation
from xattr._core.batching import rows_per_batch
from xattr._core.features import format_feature_mask, interpretable, spread
from xattr._core.game import Setup
from xattr._core.inputs import BaselineType, attribution_dtype, format_baselines
from xattr._core.model import outputs_at, warn_if_training
from xattr._core.progress import row_progress, with_row_progress
from xattr._core.removal import (
    BaselineRemoval,
    ConditionalRemoval,
    MarginalRemoval,
    Removal,
    check_removal,
)
from xattr._core.targets import Targets, TargetType
from xattr.amortized import backbones
from xattr.explainers.kernel_shap import KernelShap
from xattr.explainers.shapley_value_sampling import ShapleyValueSampling

OBJECTIVES = ("fastshap", "regression")
TARGET_EXPLAINERS: dict[str, type] = {
    "kernel_shap": KernelShap,
    "shapley_value_sampling": ShapleyValueSampling,
}
# ``target_samples=None``: about 512 model evaluations per input for either explainer
# (KernelShap: coalitions; ShapleyValueSampling: permutations of d evaluations each).
DEFAULT_TARGET_COALITIONS = 512

# torch's global RNG (dropout in a user's network) is forked and seeded from the seed
# xor this inside fit(), so that it draws a stream apart from the masks'.
GLOBAL_SEED_SALT = 0x5EED_A3071
# The validation coalitions are a Philox stream of their own: seed xor this.
VALIDATION_SEED_SALT = 0x9E37_79B9_7F4A_7C15
# Mask bytes per block of training examples whose game values are computed together.
BLOCK_BYTES = 16 * 2**20
SAVE_FORMAT = 1
# The removals whose v(empty) does not depend on the explained input when the baselines
# are shared (every feature takes the baselines / background / surrogate's value):
# attribute() evaluates it on one example. A removal written elsewhere may read the
# inputs in prepare(), so it gets v(empty) per example.
SHARED_EMPTY = (BaselineRemoval, MarginalRemoval, ConditionalRemoval)


def _shape(name: str, value: Any, allow_empty: bool = False) -> tuple[int, ...]:
    """A tuple of positive ints (a shape, or layer widths)."""
    if isinstance(value, torch.Size):
        value = tuple(value)
    if (
        not isinstance(value, (tuple, list))
        or not (value or allow_empty)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise TypeError(f"{name}: expected a tuple of positive ints, got {value!r}")
    return tuple(value)


def _fingerprint(*parts: Any) -> str:
    """A key for the cached regression targets: the data's bytes, shapes and dtypes
    and the settings' reprs."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, tuple) and all(isinstance(t, Tensor) for t in p):
            h.update(_fingerprint(*p).encode())
        elif isinstance(p, Tensor):
            t = p.detach().cpu().contiguous()
            h.update(repr((tuple(t.shape), t.dtype)).encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(p).encode())
    return h.hexdigest()


class AmortizedExplainer:
    """An explainer network trained once to predict removal-based Shapley values of
    ``model`` in one forward pass (see the module docstring).

    Args:
        model: the explained model (any callable [B, *F] -> outputs), in eval mode.
        explainer_net: ``"mlp"`` (default; tabular data: Linear-ReLU layers of widths
            ``hidden`` on the flattened input), ``"cnn"`` (images [C, H, W] or [H, W]:
            a patch-embedding convolution then strided 3 x 3 ones of widths
            ``channels``, a linear head: :func:`~xattr.amortized.backbones.cnn`),
            ``"tokens"`` (text: token ids [B, T]; an MLP of widths ``hidden`` per token
            over the frozen ``encoder``'s states, see
            :class:`~xattr.amortized.backbones.TokenHead`) or any
            ``nn.Module`` mapping [B, *F] to [B, d] (C = 1), [B, C, d] or [B, C * d]
            (class-major).
        input_shape: the shape of one example, F (keyword-only, as everything after
            ``explainer_net``).
        feature_mask: integer feature ids shaped [*F] or [1, *F], shared by every
            example (Captum's ``feature_mask``); the d players are its distinct ids in
            increasing order. Default: every element is a feature (d = prod(F)).
        n_classes: None (default): the network predicts d values for the one output
            chosen by ``fit(target=...)``. An int C: it predicts every class at once
            (a [C, d] head; the model returns [B, C]) and ``attribute(target=...)``
            chooses.
        hidden: the MLP's hidden widths (default (128, 128)).
        channels: the CNN's widths (default (8, 16)).
        encoder: the "tokens" backbone's frozen encoder, token ids [B, T] -> states
            [B, T, E] (e.g. the explained model's ``nn.Embedding``); never trained or
            saved. Only for "tokens".
        dtype: the network's dtype (default torch's default dtype).
        seed: seeds the initial weights of the built-in networks (default 0) and is
            :meth:`fit`'s default seed. The caller's random stream is left untouched.

    Attributes:
        d: the number of players. n_outputs: C. net: the network. history: one dict
        per epoch of the last :meth:`fit` (``epoch``, ``train_loss``, ``val_loss``);
        best_epoch: the epoch whose weights were kept.

    Example:
        >>> import torch
        >>> w = torch.tensor([1.0, -2.0, 0.5])
        >>> model = lambda x: x @ w
        >>> ae = AmortizedExplainer(model, "mlp", input_shape=(3,), hidden=(8,))
        >>> ae = ae.fit(torch.randn(32, 3), epochs=1, batch_size=16, show_progress=False)
        >>> x = torch.randn(4, 3)
        >>> phi = ae.attribute(x)
        >>> phi.shape, torch.allclose(phi.sum(1), model(x), atol=1e-5)
        (torch.Size([4, 3]), True)
    """

    def __init__(
        self,
        model: Callable[..., Any],
        explainer_net: str | nn.Module = "mlp",
        *,
        input_shape: Sequence[int],
        feature_mask: Tensor | None = None,
        n_classes: int | None = None,
        hidden: Sequence[int] = (128, 128),
        channels: Sequence[int] = (8, 16),
        encoder: Callable[[Tensor], Tensor] | None = None,
        dtype: torch.dtype | None = None,
        seed: int = 0,
    ) -> None:
        validation.check_forward_func(model)
        self.model = model
        self.input_shape = _shape("input_shape", input_shape)
        self.hidden = _shape("hidden", hidden, allow_empty=True)
        self.channels = _shape("channels", channels)
        self.dtype = torch.get_default_dtype() if dtype is None else dtype
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise TypeError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
        self.seed = validation.seed(seed)
        if n_classes is not None:
            n_classes = validation.positive_int("n_classes", n_classes)
        self.n_classes = n_classes
        self.n_outputs = 1 if n_classes is None else n_classes
        self.feature_mask, self.ids = self._format_mask(feature_mask)
        self.d = int(self.ids.numel())
        if encoder is not None and explainer_net != "tokens":
            raise ValueError("encoder: only the 'tokens' backbone takes an encoder")
        if isinstance(explainer_net, nn.Module):
            self.backbone, net = "custom", explainer_net
        elif isinstance(explainer_net, str):
            if explainer_net not in backbones.BACKBONES:
                raise ValueError(
                    f"explainer_net: expected one of {backbones.BACKBONES} or an nn.Module, "
                    f"got {explainer_net!r}"
                )
            self.backbone = explainer_net
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                if explainer_net == "mlp":
                    net = backbones.mlp(self.input_shape, self.n_outputs * self.d, self.hidden)
                elif explainer_net == "cnn":
                    net = backbones.cnn(self.input_shape, self.n_outputs * self.d, self.channels)
                else:
                    net = self._token_head(encoder)
            net = net.to(self.dtype)
        else:
            raise TypeError(
                f"explainer_net: expected one of {backbones.BACKBONES} or an nn.Module, "
                f"got {type(explainer_net).__name__}"
            )
        # token ids stay integers; every other backbone reads inputs in its dtype
        self.input_dtype = torch.int64 if self.backbone == "tokens" else self.dtype
        self.net: nn.Module = net.eval()
        self._check_net()
        self.fitted = False
        self.target: Any = None
        self.baselines: Tensor | None = None
        self.removal: Removal = BaselineRemoval()
        self.history: list[dict[str, float]] = []
        self.best_epoch = -1
        self._target_cache: dict[str, Tensor] = {}
        # v(empty) [1, C] of the fitted game under shared baselines, with the (dtype,
        # device) of the inputs it was computed for (see _remember_empty)
        self._v_empty: tuple[Tensor, tuple[torch.dtype, torch.device]] | None = None

    # ------------------------------------------------------------ helpers
    def _format_mask(self, feature_mask: Any) -> tuple[Tensor, Tensor]:
        """(ids [1, *F] in 0..d-1, the user's ids [d]) for a mask shared by the batch."""
        one = torch.zeros((1, *self.input_shape))
        if feature_mask is not None and isinstance(feature_mask, Tensor):
            if feature_mask.dim() == len(self.input_shape) + 1 and feature_mask.shape[0] != 1:
                raise ValueError(
                    "feature_mask: the amortized explainer needs one feature mask shared "
                    f"by every example, [*F] or [1, *F] with F = {self.input_shape}, got "
                    f"{tuple(feature_mask.shape)}"
                )
        groups, ids = format_feature_mask(feature_mask, (one,))
        return groups[0], ids

    def _token_head(self, encoder: Any) -> nn.Module:
        """The "tokens" backbone for inputs [B, T] of token ids."""
        if len(self.input_shape) != 1:
            raise ValueError(
                "input_shape: the 'tokens' backbone explains token ids [B, T]; give "
                f"input_shape=(T,), got {self.input_shape}"
            )
        if encoder is None:
            raise ValueError(
                "encoder: the 'tokens' backbone needs the frozen encoder of the token ids "
                "(e.g. the model's nn.Embedding): ids [B, T] -> states [B, T, E]"
            )
        return backbones.TokenHead(encoder, self.feature_mask[0], self.n_outputs, self.hidden)

    @property
    def _device(self) -> torch.device:
        p = next(iter(self.net.parameters()), None)
        return p.device if p is not None else torch.device("cpu")

    def _raw(self, x: Tensor) -> Tensor:
        """The network's output for inputs [B, *F]: [B, C, d] (before normalisation)."""
        if self.backbone != "custom" and x.dtype != self.input_dtype:
            x = x.to(dtype=self.input_dtype)
        if self.backbone != "custom" and x.device != (device := self._device):
            x = x.to(device=device)
        out = self.net(x)
        if not isinstance(out, Tensor) or out.numel() != x.shape[0] * self.n_outputs * self.d:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"explainer_net: expected [B, {self.d}]"
                + (f", [B, {self.n_outputs}, {self.d}] or [B, {self.n_outputs * self.d}]")
                * (self.n_outputs > 1)
                + f" outputs (B = {x.shape[0]}, d = {self.d} features, C = {self.n_outputs} "
                f"outputs), got {got}"
            )
        return out.reshape(x.shape[0], self.n_outputs, self.d)

    def _check_net(self) -> None:
        """One example through the network: its output size must be C * d."""
        with torch.no_grad():
            self._raw(
                torch.zeros((1, *self.input_shape), dtype=self.input_dtype, device=self._device)
            )

    def _check_inputs(self, inputs: Any, name: str = "inputs") -> Tensor:
        if isinstance(inputs, (tuple, list)):
            raise TypeError(
                f"{name}: the amortized explainer explains one input tensor, got a "
                f"{type(inputs).__name__}"
            )
        if not isinstance(inputs, Tensor):
            raise TypeError(f"{name}: expected a tensor, got {type(inputs).__name__}")
        if self.backbone == "tokens" and (inputs.is_floating_point() or inputs.is_complex()):
            raise TypeError(f"{name}: the 'tokens' backbone takes token ids, got {inputs.dtype}")
        if inputs.dim() < 1 or tuple(inputs.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{name}: expected [B, {', '.join(map(str, self.input_shape))}] "
                f"(input_shape {self.input_shape}), got {tuple(inputs.shape)}"
            )
        return inputs

    def _mask_for(self, feature_mask: Any) -> tuple[Tensor, Tensor]:
        """The feature mask of a call (ids in 0..d-1 [1, *F], the user's ids [d]): the
        explainer's, or one with the same d."""
        if feature_mask is None:
            return self.feature_mask, self.ids
        groups, ids = self._format_mask(feature_mask)
        if ids.numel() != self.d:
            raise ValueError(
                f"feature_mask: gives d = {ids.numel()} features, the explainer predicts "
                f"d = {self.d}"
            )
        return groups, ids

    def _shared_baselines(self, baselines: BaselineType) -> Tensor:
        """Baselines shared by every example, [1, *F] (in the network's dtype for float)."""
        one = torch.zeros((1, *self.input_shape), dtype=self.input_dtype)
        if (
            isinstance(baselines, Tensor)
            and baselines.dim() == len(self.input_shape) + 1
            and baselines.shape[0] != 1
        ):
            raise ValueError(
                "baselines: the amortized explainer needs baselines shared by every "
                f"example (a number, [*F] or [1, *F] with F = {self.input_shape}), got "
                f"{tuple(baselines.shape)}"
            )
        (b,) = format_baselines(baselines, (one,))
        return b.clone()

    def _fit_target(self, target: TargetType) -> Any:
        """The target of the game in training: "all" for a [C, d] head, else the fixed
        output (None, an int or a tuple) the network learns."""
        if self.n_classes is not None:
            if target is not None:
                raise ValueError(
                    "target: with n_classes the network learns every class at once; "
                    "choose the class in attribute(target=...)"
                )
            return "all"
        if isinstance(target, Tensor) and target.numel() == 1:
            target = int(target.item())
        if target is None or (isinstance(target, int) and not isinstance(target, bool)):
            return target
        if isinstance(target, tuple) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in target
        ):
            return target
        raise TypeError(
            "target: the network learns one fixed output (None, an int or a tuple of "
            f"ints); for per-example classes build it with n_classes=, got {target!r}"
        )

    def _class_index(self, target: TargetType, B: int) -> tuple[Tensor | None, Any]:
        """(class of each (example, target) int64 [B, T], or None without n_classes
        (the one output the network learns); the game's target)."""
        if self.n_classes is None:
            if target is not None and self._fit_target(target) != self.target:
                raise ValueError(
                    f"target: the network was trained for target={self.target!r}, got "
                    f"{target!r}; build the explainer with n_classes= to choose per call"
                )
            return None, self.target
        C = self.n_classes
        if isinstance(target, str):
            if target != "all":
                raise ValueError(f"target: the only string accepted is 'all', got {target!r}")
            return torch.arange(C).expand(B, C), "all"
        if target is None:
            if C != 1:
                raise ValueError(
                    f"target: the network predicts {C} classes; give target= (an int, "
                    "one int per example, or 'all')"
                )
            target = 0
        if isinstance(target, Tensor):
            if target.is_floating_point() or target.dtype == torch.bool:
                raise TypeError(f"target: expected integer class indices, got {target.dtype}")
            target = int(target.item()) if target.numel() == 1 else target.tolist()
        if isinstance(target, int) and not isinstance(target, bool):
            index = torch.full((B, 1), target, dtype=torch.int64)
        elif isinstance(target, list) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in target
        ):
            if len(target) != B:
                raise ValueError(
                    f"target: a list target needs {B} entries (one per example), got {len(target)}"
                )
            index = torch.tensor(target, dtype=torch.int64).view(B, 1)
        else:
            raise TypeError(
                f"target: expected an int, a list or 1-D tensor of B ints, or 'all', got {target!r}"
            )
        if index.numel() and not (-C <= int(index.min()) and int(index.max()) < C):
            bad = int(index.max()) if int(index.max()) >= C else int(index.min())
            raise ValueError(f"target: index {bad} out of range for n_classes = {C}")
        return index % C, target

    @staticmethod
    def _normalize(phi: Tensor, gap: Tensor) -> Tensor:
        """Additive efficiency: phi [B, T, d] + (gap [B, T] - sum phi) / d."""
        return phi + ((gap - phi.sum(-1)) / phi.shape[-1]).unsqueeze(-1)

    def _game_args(
        self,
        feature_mask: Tensor,
        target: Any,
        memory_budget: int | str | None,
        baselines: Tensor | None = None,
        removal: Removal | None = None,
    ) -> dict[str, Any]:
        """The game's arguments, as the explainers' ``attribute`` and ``Setup`` take them
        (``baselines`` and ``removal`` default to the explainer's)."""
        return {
            "baselines": self.baselines if baselines is None else baselines,
            "target": target,
            "feature_mask": feature_mask,
            "removal": self.removal if removal is None else removal,
            "memory_budget": memory_budget,
        }

    def _setup(
        self, x: Tensor, feature_mask: Tensor, target: Any, memory_budget: int | str | None, **kw
    ) -> Setup:
        return Setup(self.model, x, **self._game_args(feature_mask, target, memory_budget, **kw))

    def _gaps(self, setup: Setup) -> tuple[Tensor, Tensor]:
        """(v(N) - v(empty), v(empty)), each [B, T] float64, with T checked."""
        full, empty = setup.game.full_and_empty()
        self._check_outputs(full.shape[1])
        return full - empty, empty

    def _check_outputs(self, T: int) -> None:
        """The model's T outputs (for the fit's target) must be the network's C."""
        if T != self.n_outputs:
            raise ValueError(
                f"n_classes: the explainer predicts {self.n_outputs} output(s) per feature, "
                f"the model returns {T}"
                + (" (give n_classes= equal to the model's classes)" if self.n_classes else "")
            )

    # ------------------------------------------------------------ training
    @with_row_progress("AmortizedExplainer fit")
    def fit(
        self,
        x_train: Tensor,
        *,
        objective: str = "fastshap",
        x_val: Tensor | None = None,
        val_fraction: float = 0.2,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        n_coalitions: int = 16,
        patience: int | None = 10,
        seed: int | None = None,
        show_progress: bool | None = None,
        removal: Removal | None = None,
        baselines: BaselineType = None,
        target: TargetType = None,
        target_explainer: str = "kernel_shap",
        target_samples: int | None = None,
        memory_budget: int | str | None = None,
    ) -> AmortizedExplainer:
        """Trains the network (Adam) from its current weights and keeps the weights of
        the epoch with the lowest validation loss.

        Args:
            x_train: training inputs [N, *F].
            objective: ``"fastshap"`` (default; no targets) or ``"regression"``
                (targets from ``target_explainer``).
            x_val: validation inputs [M, *F]; default a seeded ``val_fraction`` of
                ``x_train`` (at least one example) held out.
            val_fraction: the share held out when ``x_val`` is None (default 0.2).
            epochs: passes over the training inputs (default 100).
            batch_size: inputs per step (default 64).
            lr: Adam's learning rate (default 1e-3).
            n_coalitions: FastSHAP's coalitions per input per step, each drawn with its
                complement: 2 * n_coalitions game values per input (default 16). The
                validation loss uses one fixed draw of as many.
            patience: stop after this many epochs without a lower validation loss
                (default 10; None: run every epoch).
            seed: seeds the validation split, the shuffling, the coalitions (Philox,
                :func:`xattr.ops.shapley_kernel_masks`), the regression targets and
                torch's global RNG inside the call (forked, then restored); default the
                explainer's ``seed``. The same seed, data and initial weights give the
                same weights, bit for bit, on the CPU.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.
            removal: how features off a coalition are removed (default
                ``BaselineRemoval()``); kept for :meth:`attribute`.
            baselines: Captum's baselines, shared by every example (a number, [*F] or
                [1, *F]; default zeros); kept for :meth:`attribute`.
            target: the output explained when ``n_classes`` is None (None for a model
                with one output, an int or a tuple); must be None with ``n_classes``.
            target_explainer: ``"kernel_shap"`` (default) or
                ``"shapley_value_sampling"``: the regression targets' estimator.
            target_samples: its ``n_samples`` (default about 512 model evaluations per
                input: 512 coalitions, or ceil(512 / d) permutations).
            memory_budget: forward batches' memory (default xattr's budget).

        Returns:
            ``self``, in eval mode.
        """
        x_train = self._check_inputs(x_train, "x_train")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
        epochs = validation.positive_int("epochs", epochs)
        batch_size = validation.positive_int("batch_size", batch_size)
        n_coalitions = validation.positive_int("n_coalitions", n_coalitions)
        if patience is not None:
            patience = validation.positive_int("patience", patience)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"lr: expected a positive float, got {lr!r}")
        if objective == "regression" and target_explainer not in TARGET_EXPLAINERS:
            raise ValueError(
                f"target_explainer: expected one of {tuple(TARGET_EXPLAINERS)}, got "
                f"{target_explainer!r}"
            )
        if target_samples is not None:
            target_samples = validation.positive_int("target_samples", target_samples)
        if objective == "fastshap" and self.d < 2:
            raise ValueError(f"objective: FastSHAP needs d >= 2 features, got d = {self.d}")
        seed = self.seed if seed is None else validation.seed(seed)
        self.removal = check_removal(removal)
        self.baselines = self._shared_baselines(baselines)
        self.target = self._fit_target(target)
        gen = torch.Generator().manual_seed(seed)
        if x_val is None:
            if not (isinstance(val_fraction, float) and 0.0 < val_fraction < 1.0):
                raise ValueError(f"val_fraction: expected a float in (0, 1), got {val_fraction!r}")
            N = x_train.shape[0]
            if N < 2:
                raise ValueError(
                    f"x_train: needs at least 2 inputs to hold some out for validation, got {N}"
                )
            n_val = min(N - 1, max(1, round(val_fraction * N)))
            perm = torch.randperm(N, generator=gen)
            x_val, x_train = x_train[perm[:n_val]], x_train[perm[n_val:]]
        else:
            x_val = self._check_inputs(x_val, "x_val")
        if x_val.shape[0] == 0 or x_train.shape[0] == 0:
            raise ValueError("x_train: needs at least one training and one validation input")

        fm = self.feature_mask
        gap_t, v0_t = self._gaps(self._setup(x_train, fm, self.target, memory_budget))
        setup_v = self._setup(x_val, fm, self.target, memory_budget)
        gap_v, v0_v = self._gaps(setup_v)
        if objective == "regression":
            ref_t = self._targets(x_train, target_explainer, target_samples, seed, memory_budget)
            ref_v = self._targets(x_val, target_explainer, target_samples, seed, memory_budget)
            val_data: tuple[Tensor, ...] = (ref_v,)
        else:
            masks_v = ops.shapley_kernel_masks(
                x_val.shape[0] * 2 * n_coalitions,
                self.d,
                seed=seed ^ VALIDATION_SEED_SALT,
                device=x_val.device,
            ).view(x_val.shape[0], 2 * n_coalitions, self.d)
            values_v = setup_v.game(masks_v)
            val_data = (masks_v, values_v - v0_v.unsqueeze(1))

        device = self._device
        params = [p for p in self.net.parameters() if p.requires_grad]
        if not params:
            raise ValueError("explainer_net: has no parameters that require gradients")
        optimizer = torch.optim.Adam(params, lr=float(lr))
        N = x_train.shape[0]
        rows = 2 * n_coalitions
        block = max(1, BLOCK_BYTES // (rows * self.d)) // batch_size * batch_size or batch_size
        self.history, best, best_state, waited = [], math.inf, None, 0
        self.best_epoch = -1
        cuda = [device.index or 0] if device.type == "cuda" else []
        try:
            # FastSHAP's games: 2 * n_coalitions coalitions per input per epoch (the
            # bar ends short when early stopping ends the fit)
            fit_rows = epochs * N * rows * setup_v.game.copies if objective == "fastshap" else None
            with (
                torch.random.fork_rng(devices=cuda),
                row_progress(fit_rows, show_progress, "") as bar,
            ):
                torch.manual_seed(seed ^ GLOBAL_SEED_SALT)
                for epoch in range(epochs):
                    self.net.train()
                    order = torch.randperm(N, generator=gen)
                    total = 0.0
                    for a in range(0, N, block):
                        idx = order[a : a + block]
                        if objective == "regression":
                            data: tuple[Tensor, ...] = (ref_t[idx],)
                        else:
                            masks = ops.shapley_kernel_masks(
                                idx.numel() * rows,
                                self.d,
                                seed=seed,
                                row_offset=(epoch * N + a) * rows,
                                device=x_train.device,
                            ).view(idx.numel(), rows, self.d)
                            setup = self._setup(x_train[idx], fm, self.target, memory_budget)
                            data = (masks, setup.game(masks) - v0_t[idx].unsqueeze(1))
                        for s in range(0, idx.numel(), batch_size):
                            part = slice(s, s + batch_size)
                            j = idx[part]
                            loss = self._loss(x_train[j], gap_t[j], *(t[part] for t in data))
                            optimizer.zero_grad(set_to_none=True)
                            loss.backward()
                            optimizer.step()
                            total += float(loss.detach()) * j.numel()
                    self.net.eval()
                    with torch.no_grad():
                        val = self._batched_loss(x_val, gap_v, val_data, batch_size)
                    self.history.append(
                        {"epoch": float(epoch), "train_loss": total / N, "val_loss": val}
                    )
                    bar.postfix(train_loss=f"{total / N:.3g}", val_loss=f"{val:.3g}")
                    if val < best:
                        best, waited, self.best_epoch = val, 0, epoch
                        best_state = copy.deepcopy(self.net.state_dict())
                    else:
                        waited += 1
                        if patience is not None and waited >= patience:
                            break
        finally:
            self.net.eval()
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self._remember_empty(x_train, memory_budget)
        self.fitted = True
        return self

    def _loss(self, x: Tensor, gap: Tensor, *data: Tensor) -> Tensor:
        """The objective on one batch: FastSHAP's (data = masks [b, S, d], v(S) -
        v(empty) [b, S, T]) or the regression's (data = targets [b, T, d])."""
        device = self._device
        phi = self._normalize(self._raw(x), gap.to(device=device, dtype=self.dtype))
        if len(data) == 1:  # regression
            return ((phi - data[0].to(device=device, dtype=self.dtype)) ** 2).mean()
        masks, values = data
        pred = masks.to(device=device, dtype=self.dtype) @ phi.transpose(1, 2)  # [b, S, T]
        return ((values.to(device=device, dtype=self.dtype) - pred) ** 2).mean()

    def _batched_loss(
        self, x: Tensor, gap: Tensor, data: tuple[Tensor, ...], batch_size: int
    ) -> float:
        total = 0.0
        for s in range(0, x.shape[0], batch_size):
            part = slice(s, s + batch_size)
            n = x[part].shape[0]
            total += float(self._loss(x[part], gap[part], *(t[part] for t in data))) * n
        return total / x.shape[0]

    def _targets(
        self,
        x: Tensor,
        name: str,
        samples: int | None,
        seed: int,
        memory_budget: int | str | None,
    ) -> Tensor:
        """Regression targets [N, T, d] float64 from KernelShap or ShapleyValueSampling,
        all of ``x`` in one call, cached per (data, settings)."""
        if samples is None:
            samples = (
                DEFAULT_TARGET_COALITIONS
                if name == "kernel_shap"
                else math.ceil(DEFAULT_TARGET_COALITIONS / self.d)
            )
        removal = (
            type(self.removal).__name__,
            getattr(self.removal, "background", None),
            id(getattr(self.removal, "surrogate", None)),
        )
        key = _fingerprint(
            x, name, samples, seed, self.target, self.baselines, self.feature_mask, *removal
        )
        if key not in self._target_cache:
            explainer = TARGET_EXPLAINERS[name](self.model)
            phi = explainer.attribute(
                x,
                n_samples=samples,
                seed=seed,
                return_input_shape=False,
                **self._game_args(self.feature_mask, self.target, memory_budget),
            )
            phi = phi if self.n_classes is not None else phi.unsqueeze(1)  # [N, T, D]
            cols = (self.ids - self.ids[0]).to(phi.device)
            self._target_cache[key] = phi[..., cols].to(torch.float64)
        return self._target_cache[key]

    # ------------------------------------------------------------ explaining
    @with_row_progress("AmortizedExplainer attribute")
    def attribute(
        self,
        inputs: Tensor,
        baselines: BaselineType = None,
        target: TargetType = None,
        feature_mask: Tensor | None = None,
        *,
        removal: Removal | None = None,
        return_input_shape: bool = True,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> Tensor:
        """Attributions in one forward pass of the network, made efficient with the
        game's v(N) and v(empty). v(N) is one model row per input: the model on the
        inputs themselves under baseline and marginal removal (nothing is removed),
        through the game under a conditional one. v(empty), which shared baselines
        make the same for every input, is the one :meth:`fit` (or :meth:`load`) kept
        when ``baselines`` and ``removal`` are the fit's, else one model row (one per
        background row under marginal removal); a removal written outside xattr gets
        v(empty) per input. A model whose weights change after :meth:`fit` needs a new
        fit (the network learned the old model; the kept v(empty) is the old one too).

        Args:
            inputs: [B, *F].
            baselines: Captum's baselines, shared by every example; default those given
                to :meth:`fit`.
            target: with ``n_classes``: an int, a list / 1-D tensor of B ints, or
                ``"all"``; None only when C = 1. Without: None (the output given to
                :meth:`fit`) or that same output.
            feature_mask: feature ids ([*F] or [1, *F]) with the explainer's d; default
                the explainer's.
            removal: default the one given to :meth:`fit`.
            return_input_shape: Captum's layout, shaped like the inputs (default; every
                element of a feature carries its value), or per feature [B, d] (ids
                shifted to start at 0, as the perturbation explainers return them).
            memory_budget: forward batches' memory.
            show_progress: None (default): a progress bar counting model rows appears once
                the call is projected to take more than about 2 s; True: from the start;
                False: never. One bar per call: calls made inside it count in it.

        Returns:
            [B, *F] (one target) or [B, T, *F] (``"all"``: T = C); [B, d] / [B, T, d]
            with ``return_input_shape=False``. Sums over each example's features equal
            v(N) - v(empty) to rounding.
        """
        if not self.fitted:
            raise ValueError("attribute: the explainer is not trained; call fit() or load() first")
        x = self._check_inputs(inputs)
        validation.flag("return_input_shape", return_input_shape)
        index, game_target = self._class_index(target, x.shape[0])
        fm, ids = self._mask_for(feature_mask)
        gap, out_dtype = self._gap(x, index, game_target, fm, memory_budget, baselines, removal)
        phi = self._explain(x, gap, index, out_dtype)
        multi = isinstance(game_target, str)  # "all": a target dimension
        if return_input_shape:
            return spread(phi, (fm,), (x,), multi, out_dtype)[0]
        phi = interpretable(phi, ids)
        return phi if multi else phi[:, 0]

    def _gap(
        self,
        x: Tensor,
        index: Tensor | None,
        game_target: Any,
        feature_mask: Tensor,
        memory_budget: int | str | None,
        baselines: BaselineType = None,
        removal: Removal | None = None,
    ) -> tuple[Tensor, torch.dtype]:
        """(v(N) - v(empty) float64 [B, T], the model's output dtype) of a call's game:
        what :meth:`_explain` makes the network's output sum to.

        v(N) is the model on x itself under baseline and marginal removal (every
        feature present: nothing is replaced), one model row per input; the game
        (masking kernel) otherwise. v(empty) under shared baselines (SHARED_EMPTY) is
        the same for every input: the one :meth:`fit` kept when the call's baselines
        and removal are the fit's, else one model row (one per background row).
        """
        b = None if baselines is None else self._shared_baselines(baselines)
        r = None if removal is None else check_removal(removal)
        kind = type(self.removal if r is None else r)
        B = x.shape[0]
        if kind in (BaselineRemoval, MarginalRemoval):
            warn_if_training(self.model)
            rows = rows_per_batch((x,), None, memory_budget)
            out = outputs_at(self.model, (x,), (), Targets(game_target, B), rows)
            full, out_dtype = out.to(torch.float64), out.dtype
        else:
            setup = self._setup(x, feature_mask, game_target, memory_budget, baselines=b, removal=r)
            ones = torch.ones((1, self.d), dtype=torch.bool, device=x.device)
            full, out_dtype = setup.game(ones)[:, 0], setup.game.output_dtype
            if kind not in SHARED_EMPTY:  # v(empty) may differ per input
                return full - setup.game(~ones)[:, 0], out_dtype
        v0 = self._empty_of(x, b, r, memory_budget)  # [1, C]
        empty = v0.expand(B, -1)
        if index is not None:  # each example's classes of a [C, d] head
            empty = empty.gather(1, index.to(empty.device))
        return full - empty.to(full.device), out_dtype

    def _empty_of(
        self, x: Tensor, baselines: Tensor | None, removal: Removal | None, memory_budget: Any
    ) -> Tensor:
        """v(empty) [1, C] float64 under shared baselines: kept from :meth:`fit` when
        the baselines and removal are the fit's (and x the dtype and device it was
        computed for), else computed on one input."""
        same_removal = (
            removal is None
            or removal is self.removal
            or (type(removal) is BaselineRemoval and type(self.removal) is BaselineRemoval)
        )
        same_baselines = baselines is None or (
            self.baselines is not None and torch.equal(baselines, self.baselines)
        )
        kept = self._v_empty
        if kept is not None and same_removal and same_baselines and kept[1] == (x.dtype, x.device):
            return kept[0]
        one = self._setup(x[:1], self.feature_mask, self.target, memory_budget,
                          baselines=baselines, removal=removal)  # fmt: skip
        return one.game(torch.zeros((1, self.d), dtype=torch.bool, device=x.device))[:, 0]

    def _remember_empty(self, x: Tensor, memory_budget: int | str | None) -> None:
        """Keeps v(empty) [1, C] of the fitted game for :meth:`attribute` under shared
        baselines (SHARED_EMPTY), computed on x[:1] as :meth:`_empty_of` computes it,
        and checks that the model gives the explainer's number of outputs."""
        self._v_empty = None
        v0 = self._empty_of(x[:1], None, None, memory_budget)
        self._check_outputs(v0.shape[1])
        if type(self.removal) in SHARED_EMPTY:
            self._v_empty = (v0, (x.dtype, x.device))

    def _explain(
        self, x: Tensor, gap: Tensor, index: Tensor | None, out_dtype: torch.dtype
    ) -> Tensor:
        """The network's attributions [B, T, d] for the call's targets (``index``, None:
        the one output it learns), made to sum to ``gap`` [B, T] (float64), in the
        attributions' dtype (the input's; the model output's for integer inputs)."""
        with torch.no_grad():
            raw = self._raw(x).to(torch.float64)  # [B, C, d]
        if index is not None:
            raw = torch.gather(raw, 1, index.to(raw.device).unsqueeze(-1).expand(-1, -1, self.d))
        phi = self._normalize(raw, gap.to(raw.device))
        return phi.to(attribution_dtype(x, out_dtype))

    # ------------------------------------------------------------ saving
    def config(self) -> dict[str, Any]:
        """What :meth:`load` needs besides the weights (JSON-able)."""
        target = list(self.target) if isinstance(self.target, tuple) else self.target
        return {
            "format": SAVE_FORMAT,
            "backbone": self.backbone,
            "input_shape": list(self.input_shape),
            "d": self.d,
            "n_classes": self.n_classes,
            "hidden": list(self.hidden),
            "channels": list(self.channels),
            "dtype": str(self.dtype).replace("torch.", ""),
            "seed": self.seed,
            "fitted": self.fitted,
            "target": target,
            "target_is_tuple": isinstance(self.target, tuple),
            "removal": type(self.removal).__name__,
        }

    def save(self, path: Any) -> None:
        """Writes the weights, :meth:`config` (as JSON), the feature mask and the
        baselines to ``path`` (``torch.save``). The removal is not saved: load an
        explainer trained with another removal than ``BaselineRemoval`` with
        ``removal=``."""
        torch.save(
            {
                "config": json.dumps(self.config()),
                "state_dict": self.net.state_dict(),
                "feature_mask": self.feature_mask,
                "ids": self.ids,
                "baselines": self.baselines,
            },
            path,
        )

    @classmethod
    def load(
        cls,
        path: Any,
        model: Callable[..., Any],
        *,
        explainer_net: nn.Module | None = None,
        encoder: Callable[[Tensor], Tensor] | None = None,
        input_shape: Sequence[int] | None = None,
        feature_mask: Tensor | None = None,
        removal: Removal | None = None,
    ) -> AmortizedExplainer:
        """An explainer written by :meth:`save`, for ``model``.

        Args:
            path: the file.
            model: the explained model; it must take the saved input shape and return
                the saved number of outputs (checked on the saved baselines).
            explainer_net: the network, for an explainer saved with a user's module.
            encoder: the frozen encoder, for the "tokens" backbone (it is not saved).
            input_shape, feature_mask: when given, checked against the saved ones.
            removal: needed when the explainer was trained with a removal other than
                ``BaselineRemoval`` (removals are not saved).

        Returns:
            The explainer, with the saved weights, baselines and target.
        """
        blob = torch.load(path, map_location="cpu", weights_only=True)
        cfg = json.loads(blob["config"])
        if cfg.get("format") != SAVE_FORMAT:
            raise ValueError(f"path: unknown save format {cfg.get('format')!r}")
        saved_shape = tuple(cfg["input_shape"])
        if input_shape is not None and _shape("input_shape", input_shape) != saved_shape:
            raise ValueError(
                f"input_shape: the saved explainer takes inputs {saved_shape}, got "
                f"{tuple(input_shape)}"
            )
        if cfg["backbone"] == "custom":
            if not isinstance(explainer_net, nn.Module):
                raise ValueError(
                    "explainer_net: the explainer was saved with a user's network; pass "
                    "an instance of it (the weights are loaded into it)"
                )
            net: str | nn.Module = explainer_net
        else:
            if explainer_net is not None:
                raise ValueError(
                    f"explainer_net: the explainer was saved with the {cfg['backbone']!r} "
                    "backbone; leave explainer_net out"
                )
            net = cfg["backbone"]
        saved_mask = blob["feature_mask"]
        out = cls(
            model,
            net,
            input_shape=saved_shape,
            feature_mask=blob["ids"][saved_mask],
            n_classes=cfg["n_classes"],
            hidden=tuple(cfg["hidden"]),
            channels=tuple(cfg["channels"]),
            encoder=encoder,
            dtype=getattr(torch, cfg["dtype"]),
            seed=cfg["seed"],
        )
        if out.d != cfg["d"]:
            raise ValueError(f"path: the saved feature mask has d = {out.d}, config d = {cfg['d']}")
        if feature_mask is not None:
            groups, ids = out._format_mask(feature_mask)
            if ids.numel() != out.d or not torch.equal(groups, out.feature_mask):
                raise ValueError(
                    f"feature_mask: gives d = {ids.numel()} features"
                    + (" grouped differently" if ids.numel() == out.d else "")
                    + f"; the saved explainer has d = {out.d}"
                )
        out.net.load_state_dict(blob["state_dict"])
        out.net.eval()
        target = cfg["target"]
        out.target = tuple(target) if cfg["target_is_tuple"] else target
        out.baselines = blob["baselines"]
        if removal is None and cfg["removal"] != "BaselineRemoval":
            raise ValueError(
                f"removal: the explainer was trained with {cfg['removal']}, which is not "
                "saved; pass it as removal="
            )
        out.removal = check_removal(removal)
        out.fitted = cfg["fitted"]
        if out.baselines is not None:  # the model must give the saved number of outputs;
            # v(empty) is that of the model given here (kept for attribute)
            out._remember_empty(out.baselines, None)
        return out
