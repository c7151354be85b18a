"""Progress bars that show on a terminal and stay quiet in CI, tests and logs."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm import tqdm  # not tqdm.auto: no ipywidgets dependency in notebooks

__all__ = ["progress", "progress_enabled"]


def progress_enabled() -> bool:
    """True when stderr is a terminal and ``URBANUNITS_PROGRESS`` is not ``0``.

    ``URBANUNITS_PROGRESS=1`` forces bars on (e.g. in a notebook).
    """
    flag = os.environ.get("URBANUNITS_PROGRESS", "")
    if flag in {"0", "false", "no"}:
        return False
    if flag in {"1", "true", "yes"}:
        return True
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(**kwargs: Any) -> tqdm[Any]:
    """A tqdm bar, disabled unless :func:`progress_enabled`; use as a context manager."""
    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("leave", False)
    kwargs.setdefault("mininterval", 0.3)
    return tqdm(**kwargs)
