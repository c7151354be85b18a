"""Update units (更新单元) — being built (issue #3)."""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def update_units(*_args: Any, **_kwargs: Any) -> Any:
    """Not built yet."""
    from urbanunits.pipeline import NotBuiltError

    raise NotBuiltError("issue #3")
