"""Argument checks shared by the frozen dataclasses (`MLP`, the rules, the driver's config): each
raises an error that names the field, the value and what is allowed."""

from __future__ import annotations

import numpy as np


def check_int(name: str, value, minimum: int) -> None:
    """``value`` must be an int (not a bool) and at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_choice(name: str, value, choices) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(choices)}")


def check_positive(name: str, value, allow_zero: bool = False) -> None:
    """``value`` must be a number > 0 (>= 0 with ``allow_zero``); NaN is refused."""
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        raise ValueError(f"{name} must be {'>=' if allow_zero else '>'} 0, got {value}")
