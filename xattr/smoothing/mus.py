"""MuS: multiplicative smoothing (Xue, Alur & Wong, "Stability Guarantees for Feature
Attributions with Multiplicative Smoothing", NeurIPS 2023).

The smoothed classifier ``g(x, alpha) = (1/q) sum_j h(x (.) (alpha * s_j))`` averages a
base classifier h with outputs in [0, 1]^C over the q rows s_j of MuS structured noise
(every column has exactly lambda * q ones, so each feature is kept with probability
exactly lambda). Whatever h is, every class score of g is lambda-Lipschitz in the
binary feature mask alpha:

    max_c |g_c(x, alpha) - g_c(x, alpha')| <= lambda * ||alpha - alpha'||_1,

because flipping feature i changes only the L = lambda * q terms whose row keeps i,
each by at most 1 / q. g is exact with q forward passes and deterministic given the
seed; the q * B perturbed inputs go through the model in large batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from xattr._core import validation
from xattr._core.batching import rows_per_batch
from xattr._core.features import format_feature_mask
from xattr._core.game import Game
from xattr._core.inputs import format_inputs
from xattr._core.model import check_model_output
from xattr._core.progress import check_show_progress, model_rows, row_progress
from xattr._core.targets import Targets
from xattr._core.validation import flag, positive_int
from xattr.ops.masking import mask_apply
from xattr.ops.sampling import mus_noise

OUTPUTS = ("logits", "probs")


def grid_patches(patch: int | tuple[int, int]) -> Callable[[Tensor], Tensor]:
    """A segmenter for images [B, C, H, W]: features are patch x patch squares (all
    channels of a square together), numbered row by row; edge patches may be smaller.

    Example:
        >>> import torch
        >>> grid_patches(2)(torch.zeros(1, 3, 4, 4))[0, 0].tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    """
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    positive_int("patch", ph)
    positive_int("patch", pw)

    def segment(x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"inputs: grid patches need images [B, C, H, W], got {tuple(x.shape)}")
        H, W = x.shape[2], x.shape[3]
        rows = torch.arange(H, device=x.device) // ph
        cols = torch.arange(W, device=x.device) // pw
        ids = rows[:, None] * ((W + pw - 1) // pw) + cols[None, :]
        return ids.expand(1, x.shape[1], H, W)

    return segment


def columns() -> Callable[[Tensor], Tensor]:
    """A segmenter for tabular inputs [B, d] (or token ids [B, T]): every column (token
    position) is a feature.

    Example:
        >>> import torch
        >>> columns()(torch.zeros(2, 3)).tolist()
        [[0, 1, 2]]
    """

    def segment(x: Tensor) -> Tensor:
        if x.dim() != 2:
            raise ValueError(f"inputs: columns need [B, d] inputs, got {tuple(x.shape)}")
        return torch.arange(x.shape[1], device=x.device).view(1, -1)

    return segment


tokens = columns


class Features(NamedTuple):
    """The features of a batch, as :meth:`MuS.features` returns them.

    Attributes:
        groups: int64 [1 or B, *F], every element's feature as a position 0..d-1.
        d: the number of features.
        ids: int64 [d], the user's feature id at each position (ids in increasing
            order: column j of an alpha [B, d] is the feature with id ``ids[j]``).
        kept: the positions of the ``always_keep`` ids.
    """

    groups: Tensor
    d: int
    ids: Tensor
    kept: tuple[int, ...]


def keep_positions(always_keep: Sequence[int], ids: Tensor) -> tuple[int, ...]:
    """The positions (0..d-1) of the feature ids ``always_keep`` among the sorted
    feature ids ``ids`` (ValueError naming ``always_keep`` for an id not there).

    Example:
        >>> keep_positions([1, 9], torch.tensor([1, 5, 9]))
        (0, 2)
    """
    ids = ids.cpu()
    out = []
    for i in always_keep:
        j = int(torch.searchsorted(ids, torch.tensor(int(i))))
        if j >= ids.numel() or int(ids[j]) != int(i):
            shown = ids.tolist() if ids.numel() <= 12 else f"{ids[0]}..{ids[-1]}"
            raise ValueError(
                f"always_keep: feature id {i} is not among the feature ids of the inputs ({shown})"
            )
        out.append(j)
    return tuple(out)


class MuS(nn.Module):
    """A classifier smoothed by MuS, lambda-Lipschitz with respect to feature masking.

    Args:
        model: the base model, [B, *F] -> [B, C] (logits or probabilities, see
            ``output``). A model with one output ([B] or [B, 1]) is a binary
            classifier whose output is the logit (``output="logits"``) or the
            probability (``"probs"``) of class 1: h has the two classes
            (1 - p, p), class 1 when p > 1/2, and g and its certificates are about
            those two classes.
        lambda_: keep probability and Lipschitz constant, a multiple of 1/q in (0, 1]
            (ValueError naming the nearest valid values otherwise); 1 gives g = h.
        q: rows of structured noise = forward passes per input (default 64).
        feature_mask: feature ids per input element ([*F] or [1 or B, *F], as Captum's),
            or a segmenter ``f(x) -> ids`` (:func:`grid_patches`, :func:`columns`,
            :func:`tokens`); default every element is a feature.
        voting: h = one-hot of the model's argmax (default True, used for certificates,
            which are then computed in integers), else probabilities.
        output: what the model returns, "logits" (softmax applied for probabilities)
            or "probs" (used as they are; must lie in [0, 1]). Required: never guessed.
        mask_value: what a masked feature becomes (default 0; for token ids the mask /
            pad token id).
        always_keep: feature ids never masked (e.g. BOS / EOS tokens): the ids of
            ``feature_mask`` (or of the segmenter's output), whatever they are.
        seed: seed of the noise (default 1234).
        memory_budget: bytes (or "512MB") per batch of model rows.
        show_progress: the default of every call's ``show_progress`` (None: a bar
            counting model rows appears once a call is projected to take more than
            about 2 s; True: always; False: never; one bar per call).

    ``smoothed(x)`` is g(x, 1) and ``smoothed(x, alpha)`` is g(x, alpha) for binary
    alpha [d] or [B, d] (bool or 0/1): both [B, C], float64 (C = 2 for a model with
    one output). Column j of alpha is the feature at position j: the d feature ids of
    the inputs in increasing order (ids 1, 5, 9 are columns 0, 1, 2;
    ``smoothed.features(x).ids`` lists them). With probabilities
    (``voting=False``) and inputs that require grad, g is differentiable in x, so
    gradient explainers (Saliency, IntegratedGradients) can explain g itself.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(6, 3).eval()
        >>> g = MuS(model, 0.25, q=8, output="logits")
        >>> g(torch.randn(2, 6)).sum(1).tolist()
        [1.0, 1.0]
    """

    def __init__(
        self,
        model: Callable[..., Tensor],
        lambda_: float,
        q: int = 64,
        feature_mask: Tensor | Callable[[Tensor], Tensor] | None = None,
        voting: bool = True,
        output: str | None = None,
        mask_value: float | int = 0,
        always_keep: list[int] | tuple[int, ...] | None = None,
        seed: int = 1234,
        memory_budget: int | str | None = None,
        show_progress: bool | None = None,
    ) -> None:
        super().__init__()
        if not callable(model):
            raise TypeError(f"model: expected a callable, got {type(model).__name__}")
        if output not in OUTPUTS:
            raise ValueError(
                f"output: say what the model returns, 'logits' or 'probs' (got {output!r})"
            )
        self.q = positive_int("q", q)
        self.level = validation.mus_level(lambda_, self.q)  # L = lambda * q
        if self.level == 0:
            raise ValueError(f"lambda_: must be > 0 (at least 1/q = 1/{self.q}), got {lambda_}")
        self.lambda_ = self.level / self.q
        if not (isinstance(feature_mask, Tensor) or feature_mask is None or callable(feature_mask)):
            raise TypeError(
                "feature_mask: expected a tensor of feature ids or a segmenter function, "
                f"got {type(feature_mask).__name__}"
            )
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise TypeError(f"mask_value: expected a number, got {type(mask_value).__name__}")
        self.model = model
        self.feature_mask = feature_mask
        self.voting = flag("voting", voting)
        self.output = output
        self.mask_value = mask_value
        if always_keep is not None and (
            isinstance(always_keep, (str, bytes, Tensor)) or not isinstance(always_keep, Sequence)
        ):
            raise TypeError(
                f"always_keep: expected a list of feature ids, got {type(always_keep).__name__}"
            )
        self.always_keep = tuple(int(i) for i in (always_keep or ()))
        self.seed = validation.seed(seed)
        self.memory_budget = memory_budget
        self.show_progress = check_show_progress(show_progress)
        # The noise depends only on (d, device) and a tensor feature mask's ids only on
        # the inputs' shape: both are computed once and kept.
        self._noise: dict[tuple, Tensor] = {}
        self._features: dict[tuple, Features] = {}
        # In the model's mode (eval for a model in eval), without changing the model's.
        self.train(bool(getattr(model, "training", False)))

    # ------------------------------------------------------------------ parts
    def features(self, x: Tensor) -> Features:
        """The :class:`Features` of inputs x: (groups [1 or B, *F], every element's
        feature as a position 0..d-1; d; ids [d], the feature id at each position;
        kept, the positions of ``always_keep``)."""
        key = (tuple(x.shape), str(x.device))
        if not callable(self.feature_mask) and key in self._features:
            return self._features[key]
        mask = self.feature_mask(x) if callable(self.feature_mask) else self.feature_mask
        groups, ids = format_feature_mask(mask, (x,))
        out = Features(groups[0], int(ids.numel()), ids, keep_positions(self.always_keep, ids))
        if not callable(self.feature_mask):
            self._features[key] = out
        return out

    def noise(self, d: int, device: Any = "cpu") -> Tensor:
        """The q x d MuS masks s_j (bool): every column has exactly lambda * q ones."""
        key = (d, str(device))
        if key not in self._noise:
            self._noise[key] = mus_noise(self.q, d, self.lambda_, seed=self.seed, device=device)
        return self._noise[key]

    def classes(self, outputs: Tensor) -> Tensor:
        """Model outputs [..., C] as class scores [..., C]: unchanged for C >= 2; one
        output (a binary classifier's logit z or probability p of class 1) becomes the
        two classes (0, z) (softmax: 1 - sigmoid(z), sigmoid(z)) or (1 - p, p)."""
        if outputs.shape[-1] != 1:
            return outputs
        if self.output == "logits":
            return torch.cat([torch.zeros_like(outputs), outputs], -1)
        return torch.cat([1 - outputs, outputs], -1)

    def base_scores(self, outputs: Tensor) -> Tensor:
        """h on model outputs [..., C]: one-hot votes or probabilities, in [0, 1] (two
        classes for a model with one output, see :meth:`classes`)."""
        if outputs.shape[-1] == 1 and self.output == "probs":
            self._check_probs(outputs)
        outputs = self.classes(outputs)
        if self.voting:
            return nn.functional.one_hot(outputs.argmax(-1), outputs.shape[-1]).to(torch.float64)
        if self.output == "logits":
            return torch.softmax(outputs.to(torch.float64), dim=-1)
        self._check_probs(outputs)
        return outputs.to(torch.float64)

    @staticmethod
    def _check_probs(outputs: Tensor) -> None:
        if bool(((outputs < 0) | (outputs > 1)).any()):
            raise ValueError(
                "output: the model was said to return probabilities, but returned values "
                "outside [0, 1]; use output='logits'"
            )

    def _alpha(self, alpha: Any, B: int, d: int, device: Any) -> Tensor:
        if alpha is None:
            return torch.ones((1, d), dtype=torch.bool, device=device)
        if not isinstance(alpha, Tensor):
            raise TypeError(f"alpha: expected a tensor, got {type(alpha).__name__}")
        a = alpha.unsqueeze(0) if alpha.dim() == 1 else alpha
        if a.dim() != 2 or a.shape[1] != d or a.shape[0] not in (1, B):
            raise ValueError(
                f"alpha: expected [d] or [B, d] with d = {d}, got {tuple(alpha.shape)}"
            )
        if a.dtype != torch.bool:
            if not bool(((a == 0) | (a == 1)).all()):
                raise ValueError("alpha: expected a binary mask (bool or 0/1 values)")
            a = a != 0
        return a.to(device)

    def counts(
        self,
        x: Tensor,
        alpha: Tensor | None = None,
        *,
        features: Features | None = None,
        show_progress: bool | None = None,
    ) -> Tensor:
        """sum_j h(x (.) (alpha * s_j)): [B, C] float64 (integer vote counts when
        voting); ``smoothed(x, alpha) = counts / q``. ``features``: the
        :class:`Features` of :meth:`features`, when the caller already has them (e.g.
        for rows taken from a larger batch whose segmentation they must keep).
        ``show_progress``: a bar over the B * q model rows (default: the MuS's)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"inputs: expected a tensor, got {type(x).__name__}")
        format_inputs(x)
        groups, d, _, kept = self.features(x) if features is None else features
        shown = self.shows_progress(show_progress)
        B = x.shape[0]
        a = self._alpha(alpha, B, d, x.device)
        # lambda = 1 keeps every row whole: one evaluation stands for all q
        rows = self.q if self.level < self.q else 1
        s = self.noise(d, x.device)[:rows]  # [q, d]
        masks = a.unsqueeze(1) & s.unsqueeze(0)  # [1 or B, q, d]
        if kept:
            masks[..., list(kept)] = True
        if x.requires_grad and torch.is_grad_enabled() and not self.voting:
            return self._differentiable_counts(x, groups, masks, rows)
        game = self._game(x, groups, d, shown, "MuS g(x, alpha)")
        return self.summed_scores(game(masks)) * (self.q // rows)

    def g_rows(self, B: int) -> int:
        """Model rows of one evaluation of g on B inputs: B q (B at lambda = 1)."""
        return B * (self.q if self.level < self.q else 1)

    def label_rows(self, B: int) -> int:
        """Model rows of the base labels' check (``warn_if_relabelled``): B, none at
        lambda = 1."""
        return B if self.level < self.q else 0

    def shows_progress(self, show_progress: bool | None) -> bool | None:
        """A call's ``show_progress`` (see :mod:`xattr._core.progress`): its own, else
        the MuS's."""
        if show_progress is None:
            return self.show_progress
        return check_show_progress(show_progress)

    def _game(
        self, x: Tensor, groups: Tensor, d: int, show_progress: bool | None, desc: str
    ) -> Game:
        """The model on x with masked features set to ``mask_value``, every output."""
        return Game(
            self.model,
            (x,),
            (torch.full((1, *x.shape[1:]), self.mask_value, dtype=x.dtype, device=x.device),),
            (groups,),
            d,
            Targets("all", x.shape[0]),
            rows=rows_per_batch((x,), None, self.memory_budget),
            show_progress=show_progress,
            desc=desc,
        )

    def base_labels(
        self,
        x: Tensor,
        *,
        features: Features | None = None,
        show_progress: bool | None = None,
    ) -> Tensor:
        """argmax h(x), the base model's own labels on the full inputs: [B] int64 on
        x's device (one forward row per example; ties go to the lower class, as g's)."""
        groups, d = (self.features(x) if features is None else features)[:2]
        shown = self.shows_progress(show_progress)
        game = self._game(x, groups, d, shown, "MuS h(x)")
        full = torch.ones((1, d), dtype=torch.bool, device=x.device)
        return self.classes(game(full)[:, 0]).argmax(-1)

    def summed_scores(self, outputs: Tensor) -> Tensor:
        """sum_j h over the rows of model outputs [B, R, C]: [B, C] float64 (votes are
        counted directly, the same as summing one-hot rows)."""
        if not self.voting:
            return self.base_scores(outputs).sum(1)
        if outputs.shape[-1] == 1 and self.output == "probs":
            self._check_probs(outputs)
        outputs = self.classes(outputs)
        B, _, C = outputs.shape
        votes = torch.zeros((B, C), dtype=torch.float64, device=outputs.device)
        return votes.scatter_add_(1, outputs.argmax(-1), torch.ones_like(outputs[..., 0]))

    def _differentiable_counts(self, x: Tensor, groups: Tensor, masks: Tensor, rows: int) -> Tensor:
        """counts with gradients to x (probabilities only: votes have none), so that
        gradient explainers can explain g itself: the masked copies are built with the
        differentiable masking op and go through the model in one call per batch of x
        (gradient explainers batch their inputs themselves)."""
        B = x.shape[0]
        pert = mask_apply(x, masks.expand(B, -1, -1).contiguous(), groups, self.mask_value)
        with row_progress(B * rows, self.show_progress, "MuS g(x, alpha)"), model_rows(B * rows):
            out = self.model(pert.reshape(B * rows, *x.shape[1:]))
        out = check_model_output(out, B * rows).reshape(B, rows, -1)
        return self.summed_scores(out) * (self.q // rows)

    def forward(self, x: Tensor, alpha: Tensor | None = None) -> Tensor:
        """g(x, alpha): [B, C] float64 (alpha None: all features kept)."""
        return self.counts(x, alpha) / self.q
