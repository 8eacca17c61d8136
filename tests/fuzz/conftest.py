"""Hypothesis settings for the fuzzers in tests/fuzz/, chosen by the environment
variable ``XATTR_FUZZ``:

- unset or ``XATTR_FUZZ=default``: a short run (a few dozen examples per fuzzer),
  derandomized, so the default test suite tries the same examples every time and
  takes seconds;
- ``XATTR_FUZZ=long``: many random examples per fuzzer (a search, minutes), e.g.
  ``XATTR_FUZZ=long .venv/bin/python -m pytest tests/fuzz -p no:cacheprovider``.

A failing example is printed with a ``@reproduce_failure`` blob to replay it. Every
fuzzer in this folder uses these profiles; a new fuzzer needs nothing but
``@given`` (and ``settings`` only to scale its budget, e.g. with :func:`examples`).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("XATTR_FUZZ", "default")
_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
# No example database: nothing is written into the work tree; replay with the printed blob.
settings.register_profile(
    "default",
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=_CHECKS,
)
settings.register_profile(
    "long",
    max_examples=3000,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=_CHECKS,
)
settings.load_profile(PROFILE)


def examples(scale: float) -> int:
    """This profile's number of examples times ``scale`` (at least 1), for fuzzers
    whose examples cost more or less than the typical one."""
    return max(1, int(settings().max_examples * scale))
