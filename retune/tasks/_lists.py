"""Rendering and parsing of Python-style integer lists (``[3, -2, 5]``), shared by list tasks."""

from __future__ import annotations

import re

_LIST = re.compile(r"^\[\s*(-?\d+(?:\s*,\s*-?\d+)*)?\s*\]$")


def render_list(values: list[int]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def parse_list(text: str) -> list[int]:
    match = _LIST.match(text.strip())
    if not match:
        raise ValueError(f"not a list of integers: {text!r}")
    return [int(v) for v in match[1].split(",")] if match[1] else []
