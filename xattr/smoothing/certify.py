"""Certificates for MuS-smoothed classifiers.

With p_A >= p_B the two largest scores of g(x, alpha), every alpha' with
||alpha' - alpha||_1 <= r keeps the argmax when p_A - p_B > 2 * lambda * r (strict),
because every score moves by at most lambda * r. The certified integer radius is
the largest such r, computed so that rounding never certifies too much: with votes
in integers, r = floor((n_A - n_B - 1) / (2 L)) for counts n_A, n_B out of q and
L = lambda * q; with probabilities, a ratio (p_A - p_B) / (2 lambda) that is an
integer up to float error certifies one feature less, never one more. A radius of
-1 means the top two classes tie (not even alpha itself is certified).

The certificates are about g's label argmax g(x, 1), which need not be the base
model's: a model not fine-tuned for masking (:func:`~xattr.smoothing.finetune`) often
changes its decision under MuS noise. :func:`certify` (and the explanation functions)
warn when the two differ.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import Tensor

from xattr._core.progress import row_progress
from xattr.smoothing.mus import Features, MuS

# Relative slack below which a probability ratio counts as an integer.
RATIO_SLACK = 1e-9


class Certificate(NamedTuple):
    """What :func:`certify` returns, per example.

    Attributes:
        label: [B] argmax of g(x, alpha) (ties go to the lower class index).
        full_label: [B] argmax of g(x, 1), the prediction being explained.
        gap: [B] p_A - p_B of g(x, alpha).
        full_gap: [B] p_A - p_B of g(x, 1).
        consistent: [B] bool, label == full_label.
        incremental: [B] real radius gap / (2 lambda): adding fewer features than this
            to alpha keeps the label.
        incremental_int: [B] int64, the certified number of features that can be added.
        decremental: [B] real radius full_gap / (2 lambda).
        decremental_int: [B] int64, the certified number of features outside alpha that
            can be removed from the full input.
    """

    label: Tensor
    full_label: Tensor
    gap: Tensor
    full_gap: Tensor
    consistent: Tensor
    incremental: Tensor
    incremental_int: Tensor
    decremental: Tensor
    decremental_int: Tensor

    @classmethod
    def at(cls, at: tuple, full: tuple) -> Certificate:
        """From :func:`certified_radius`'s (label, gap, real, int radius) at alpha and
        at alpha = 1."""
        return cls(
            label=at[0],
            full_label=full[0],
            gap=at[1],
            full_gap=full[1],
            consistent=at[0] == full[0],
            incremental=at[2],
            incremental_int=at[3],
            decremental=full[2],
            decremental_int=full[3],
        )

    def stable(self, r: int) -> Tensor:
        """[B] bool: consistent, and both certified radii at least r."""
        return self.consistent & (self.incremental_int >= r) & (self.decremental_int >= r)


def certified_radius(scores: Tensor, level: int, q: int, voting: bool) -> tuple:
    """(label, gap, real radius, certified integer radius) of smoothed scores.

    Args:
        scores: [B, C]: vote counts (integers out of q) when ``voting``, else the
            probabilities g (in [0, 1]).
        level: L = lambda * q. q: rows of noise.
        voting: how ``scores`` are to be read.

    Example:
        >>> import torch
        >>> counts = torch.tensor([[50.0, 10.0, 4.0]])  # q = 64 votes, L = 16
        >>> label, gap, real, r = certified_radius(counts, 16, 64, True)
        >>> label.tolist(), gap.tolist(), real.tolist(), r.tolist()
        ([0], [0.625], [1.25], [1])
    """
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError(
            f"scores: expected [B, C] with at least 2 classes, got {tuple(scores.shape)} "
            "(a certificate is about which class wins; MuS gives a one-output model the "
            "two classes of a binary classifier)"
        )
    top2 = torch.topk(scores, 2, dim=1).values
    label = scores.argmax(1)
    lam = level / q
    if voting:
        n = top2.round().to(torch.int64)
        diff = n[:, 0] - n[:, 1]
        gap = diff.to(torch.float64) / q
        real = diff.to(torch.float64) / (2 * level)
        radius = torch.div(diff - 1, 2 * level, rounding_mode="floor")
    else:
        gap = (top2[:, 0] - top2[:, 1]).to(torch.float64)
        real = gap / (2 * lam)
        slack = RATIO_SLACK * real.abs().clamp_min(1.0)
        radius = torch.ceil(real - slack).to(torch.int64) - 1
    return label, gap, real, radius.clamp_min(-1)


def warn_if_relabelled(
    smoothed: MuS,
    x: Tensor,
    full_label: Tensor,
    features: Features | None = None,
    show_progress: bool | None = None,
    stacklevel: int = 3,
) -> None:
    """Warns when g's label argmax g(x, 1) differs from the base model's argmax h(x) on
    some example (one more forward row per example; none at lambda = 1, where g's label
    is h's)."""
    if smoothed.level == smoothed.q:
        return
    base = smoothed.base_labels(x, features=features, show_progress=show_progress).cpu()
    differ = (base != full_label.cpu()).nonzero().flatten()
    if differ.numel():
        b = int(differ[0])
        warnings.warn(
            f"MuS: the smoothed label argmax g(x, 1) differs from the base model's "
            f"argmax h(x) on {differ.numel()} of {x.shape[0]} example(s) (e.g. example "
            f"{b}: g says {int(full_label[b])}, h says {int(base[b])}); the certificates "
            f"are statements about g's label. A model not fine-tuned for masking at "
            f"lambda = {smoothed.lambda_:g} often changes its decision under MuS noise "
            "(xattr.smoothing.finetune adapts it).",
            UserWarning,
            stacklevel=stacklevel,
        )


def certify(
    smoothed: MuS,
    x: Tensor,
    alpha: Tensor | None = None,
    *,
    show_progress: bool | None = None,
) -> Certificate:
    """Certify the binary explanation ``alpha`` of g's prediction at x.

    Warns when g's label argmax g(x, 1) differs from the base model's on an example:
    the certificate is then about a label the base model does not give.

    Cost: 2 B q forward rows of the base model (B q with alpha None; B when
    lambda = 1) and B more for the base model's labels.

    Args:
        smoothed: a :class:`MuS` classifier (voting gives certificates in integers).
        x: [B, *F] inputs.
        alpha: [d] or [B, d] binary masks (bool or 0/1), column j the feature at
            position j (``smoothed.features(x).ids[j]``); None certifies the full input.
        show_progress: None (default): a progress bar counting model rows appears once the
            call is projected to take more than about 2 s; True: from the start; False:
            never. One bar per call: calls made inside it count in it. Default: the MuS's
            ``show_progress``.

    Returns:
        :class:`Certificate`: labels, gaps, consistency and the incremental (at alpha)
        and decremental (at alpha = 1) radii, real and integer.

    Example:
        >>> import torch
        >>> from xattr.smoothing import MuS
        >>> h = lambda t: torch.stack([t.sum(1), torch.full_like(t[:, 0], 2.0)], 1)
        >>> g = MuS(h, 1 / 2, q=16, output="logits")  # class 0 while 3 of 8 ones are kept
        >>> c = certify(g, torch.ones(2, 8), torch.ones(8, dtype=torch.bool))
        >>> c.consistent.tolist(), c.incremental_int.tolist(), c.incremental_int.dtype
        ([True, True], [0, 0], torch.int64)
    """
    if not isinstance(smoothed, MuS):
        raise TypeError(f"smoothed: expected a MuS classifier, got {type(smoothed).__name__}")

    show_progress = smoothed.shows_progress(show_progress)

    def read(a: Tensor | None) -> tuple:
        scores = smoothed.counts(x, a, show_progress=show_progress)
        scores = scores if smoothed.voting else scores / smoothed.q
        return certified_radius(scores.cpu(), smoothed.level, smoothed.q, smoothed.voting)

    B = x.shape[0] if isinstance(x, Tensor) else 0
    rows = smoothed.g_rows(B) * (1 if alpha is None else 2) + smoothed.label_rows(B)
    with row_progress(rows, show_progress, "MuS certify"):
        full = read(None)
        warn_if_relabelled(smoothed, x, full[0], show_progress=show_progress)
        return Certificate.at(full if alpha is None else read(alpha), full)
