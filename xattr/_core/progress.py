"""Progress bars (tqdm when asked for and installed)."""

from __future__ import annotations


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


_NO_PROGRESS = _NoProgress()


def progress(total: int | None, enabled: bool, desc: str):
    """A tqdm progress bar when asked for and tqdm is installed, else a no-op."""
    if enabled:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, desc=desc)
        except ImportError:  # pragma: no cover
            pass
    return _NO_PROGRESS
