"""Parsing of length ranges given on the command line."""

from __future__ import annotations

import re

from retune.core.errors import RetuneError

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_lengths(text: str) -> tuple[int, int]:
    """``"1-8"`` -> ``(1, 8)``; ``"5"`` -> ``(5, 5)``. Raises :class:`RetuneError` on anything else."""
    match = _RANGE.match(str(text))
    if not match:
        raise RetuneError(f"bad length range {text!r}: expected LO-HI (e.g. 1-8) or a single length")
    lo = int(match[1])
    hi = int(match[2]) if match[2] is not None else lo
    if lo < 1 or hi < lo:
        raise RetuneError(f"bad length range {text!r}: need 1 <= LO <= HI")
    return lo, hi


def length_list(text: str) -> list[int]:
    """A comma-separated mix of ranges and single lengths: ``"2-5,10,20"`` -> ``[2, 3, 4, 5, 10, 20]``."""
    out: list[int] = []
    for part in str(text).split(","):
        lo, hi = parse_lengths(part)
        out.extend(range(lo, hi + 1))
    return sorted(set(out))
