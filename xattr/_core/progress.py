"""One progress bar per public call, counting model rows.

Every public call that evaluates a model (explainers, metrics, MuS, training) runs
inside :func:`row_progress` (:func:`with_row_progress` for a whole function); every
model evaluation runs inside :func:`model_rows`, which counts its rows (training
loops count theirs with :func:`count_rows`). A call made inside another one (MuS certify -> an
explainer -> the game; a metric -> an explainer) does not open a second bar: the
open bar is held in a context variable and the inner work advances it.

The bar's total is the sum of the row counts announced by nested
``row_progress(rows, ...)`` blocks: a block that announces its rows covers every
block inside it (their announcements are part of it and are not added again); a
block that announces nothing (``rows=None``) leaves it to the blocks inside. So a
call that knows its model rows up front announces them once at the top, and one
that does not (a metric around a user's explanation function) gets the total of
each inner loop as it starts; a bar whose blocks announce nothing counts rows
without a total. A block may announce an upper bound (a search, training with early
stopping): when it ends after fewer rows, the unused ones leave the total.

``show_progress``: True shows the bar from the start, False never, None (the
default everywhere) decides from the cost: the bar appears once the call has run
:data:`SHOW_AFTER_S` seconds, or, after :data:`DECIDE_AFTER_S` seconds, once the
rows done so far project the whole call to take longer than :data:`SHOW_AFTER_S`;
a call that finishes quickly prints nothing. The time is read through
:func:`clock` only (tests substitute it). Bars are tqdm's, written to stderr, and
left on screen when they finish.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import CodeType
from typing import Any, ParamSpec, TypeVar, cast

# A call projected (or seen) to take longer than this shows its bar.
SHOW_AFTER_S = 2.0
# Projections from fewer seconds than this are not trusted (first calls warm up).
DECIDE_AFTER_S = 0.5


def clock() -> float:
    """Seconds on a monotonic clock: the only clock the bars read."""
    return time.perf_counter()


def check_show_progress(value: Any) -> bool | None:
    """``show_progress``: None, True or False (ints refused, as for every flag)."""
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"show_progress: expected None, True or False, got {type(value).__name__}")
    return value


class RowBar:
    """The bar of one top-level call: rows counted, the total announced so far, and
    a tqdm bar once it is shown (see the module docstring)."""

    def __init__(self, show: bool | None, desc: str, unit: str = "rows"):
        self.show, self.desc, self.unit = show, desc, unit
        self.n = 0
        self.total: int | None = None
        self.start = clock()
        self._tqdm: Any = None
        if show:
            self._open()

    def _open(self) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm(
            total=self.total, desc=self.desc, unit=self.unit, initial=self.n, file=sys.stderr
        )

    @property
    def shown(self) -> bool:
        """Whether the bar is on screen."""
        return self._tqdm is not None

    def expect(self, rows: int) -> None:
        """Adds ``rows`` to the total."""
        self.total = (self.total or 0) + int(rows)
        if self._tqdm is not None:
            self._tqdm.total = self.total
            self._tqdm.refresh()

    def settle(self, announced: int, done: int) -> None:
        """A block that announced ``announced`` rows ended after ``done``: a block that
        stopped early (a search that found its answer, early stopping) takes its
        unused rows off the total, so that a finished bar ends at 100%."""
        if done < announced and self.total is not None:
            self.expect(done - announced)

    def update(self, rows: int) -> None:
        """Counts ``rows`` model rows done; shows the bar when the call turns out long."""
        self.n += int(rows)
        if self._tqdm is not None:
            self._tqdm.update(int(rows))
        elif self.show is None and self._long():
            self._open()

    def _long(self) -> bool:
        elapsed = clock() - self.start
        if elapsed >= SHOW_AFTER_S:
            return True
        if elapsed < DECIDE_AFTER_S or not self.n or not self.total:
            return False
        return elapsed * self.total / self.n > SHOW_AFTER_S

    def postfix(self, **values: Any) -> None:
        """Shows ``values`` after the bar (e.g. a training loss), when it is shown."""
        if self._tqdm is not None:
            self._tqdm.set_postfix(**values)

    def close(self) -> None:
        """Leaves a shown bar on screen at its final count."""
        if self._tqdm is not None:
            self._tqdm.close()


class _ModelCall:
    """A model call of ``rows`` rows in progress (see :func:`model_rows`)."""

    def __init__(self, rows: int):
        self.rows, self.replaced = rows, False


# (the open bar, whether an enclosing block announced the rows of the current one,
# the model call in progress if any)
_ACTIVE: ContextVar[tuple[RowBar, bool, _ModelCall | None] | None] = ContextVar(
    "xattr_row_bar", default=None
)


@contextmanager
def row_progress(
    rows: int | None, show_progress: bool | None, desc: str, unit: str = "rows"
) -> Iterator[RowBar]:
    """A block that evaluates ``rows`` model rows (None: not known here).

    At the top level it opens the call's bar (shown as ``show_progress`` says,
    labelled ``desc``) and closes it on exit; inside an open bar it adds ``rows`` to
    the total unless an enclosing block already announced them, and opens nothing.

    Example:
        >>> with row_progress(6, False, "demo") as bar:
        ...     count_rows(4)
        ...     count_rows(2)
        >>> bar.n, bar.total
        (6, 6)
    """
    show = check_show_progress(show_progress)
    active = _ACTIVE.get()
    if active is not None:
        bar, covered, call = active
        if call is not None and rows is not None:
            # the model of a model call is itself an xattr call (a MuS smoothed model
            # explained by an explainer): its rows stand for the call's rows
            bar.expect(rows - call.rows if covered and not call.replaced else rows)
            call.replaced = True
        elif covered or rows is None:
            yield bar
            return
        else:
            bar.expect(rows)
        token = _ACTIVE.set((bar, True, None))
        start = bar.n
        try:
            yield bar
        finally:
            _ACTIVE.reset(token)
            bar.settle(rows, bar.n - start)
        return
    bar = RowBar(show, desc, unit)
    if rows is not None:
        bar.expect(rows)
    token = _ACTIVE.set((bar, rows is not None, None))
    try:
        yield bar
    finally:
        _ACTIVE.reset(token)
        if rows is not None:
            bar.settle(rows, bar.n)
        bar.close()


@contextmanager
def model_rows(rows: int) -> Iterator[None]:
    """Around a model evaluated on ``rows`` rows: counts them for the open bar once the
    model returns. A model that is itself an xattr call (a MuS smoothed model, whose
    evaluations announce and count the base model's rows) counts its own rows in
    place of these, so a bar always counts the rows of the innermost model.

    Example:
        >>> with row_progress(3, False, "demo") as bar:
        ...     with model_rows(3):
        ...         pass  # the model runs here
        >>> bar.n
        3
    """
    active = _ACTIVE.get()
    if active is None:
        yield
        return
    bar, covered, _ = active
    call = _ModelCall(int(rows))
    token = _ACTIVE.set((bar, covered, call))
    try:
        yield
    finally:
        _ACTIVE.reset(token)
    if not call.replaced:
        bar.update(call.rows)


def expect_rows(rows: int) -> None:
    """Announces ``rows`` more model rows for the open bar's total, as a
    ``row_progress(rows, ...)`` around the rest of the current block would (nothing
    when an enclosing block announced them, or when no bar is open)."""
    active = _ACTIVE.get()
    if active is not None and not active[1]:
        active[0].expect(rows)


def count_rows(rows: int) -> None:
    """Advances the open bar by ``rows`` model rows (nothing when no bar is open)."""
    active = _ACTIVE.get()
    if active is not None:
        active[0].update(rows)


P = ParamSpec("P")
R = TypeVar("R")
_WRAPPERS: set[CodeType] = set()  # the code of with_row_progress's wrapper


def with_row_progress(desc: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates a public method or function that takes ``show_progress``: the call
    runs inside ``row_progress(None, show_progress, desc)``, so every model row the
    code inside counts advances one bar, whose total the inner blocks announce.
    ``desc`` None: ``"<self.get_name()> attribution"`` (Captum's label) for an
    explainer, else the function's name."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)
        if "show_progress" not in signature.parameters:  # pragma: no cover
            raise TypeError(f"{func.__qualname__} takes no show_progress")
        param = signature.parameters["show_progress"]
        # where a positional show_progress would sit (None: keyword-only), read without
        # binding the whole signature on every call
        names = list(signature.parameters)
        place = names.index("show_progress") if param.kind == param.POSITIONAL_OR_KEYWORD else None

        @functools.wraps(func)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if _ACTIVE.get() is not None:  # nested: the open bar counts
                return func(*args, **kwargs)
            if "show_progress" in kwargs:
                show = kwargs["show_progress"]
            elif place is not None and place < len(args):
                show = args[place]
            else:
                show = param.default
            label = desc
            if label is None:
                owner = args[0] if args else None
                name = getattr(owner, "get_name", None)
                label = f"{name()} attribution" if callable(name) else func.__name__
            with row_progress(None, cast(Any, show), label):
                return func(*args, **kwargs)

        _WRAPPERS.add(cast(Any, call).__code__)
        return call

    return decorate


def warn_level(level: int) -> int:
    """``warnings.warn``'s stacklevel for a warning issued by the caller at ``level``,
    counting past the frames of :func:`with_row_progress`'s wrapper, so that a
    warning still points at the user's line.

    Example:
        >>> warn_level(2)  # no wrapper between here and the caller's caller
        2
    """
    frame = sys._getframe(1)  # the function that warns: level 1
    k = 1
    while frame is not None and k < level:
        frame = frame.f_back
        if frame is not None and frame.f_code in _WRAPPERS:
            level += 1
        k += 1
    return level
