"""Deterministic data sets: problems by length, and the training records of a method.

Problem ``i`` of length ``L`` of a task is drawn from ``Random(f"{seed}/{task}/{L}/{i}")`` alone (as in
reasoning-gym), so any slice of a data set can be regenerated without the rest, and the same seed always
gives the same bytes.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from retune.core.errors import RetuneError
from retune.core.methods import check_method, records_for
from retune.core.task import Task


def problem_rng(seed: int, task: str, length: int, index: int) -> random.Random:
    return random.Random(f"{seed}/{task}/{length}/{index}")


def generate_problems(
    task: Task, lengths: tuple[int, int] | Iterable[int], per_length: int, seed: int, *, distinct: bool = True
) -> list[tuple[int, Any]]:
    """``per_length`` problems of every length, as ``(length, problem)`` pairs.

    With ``distinct`` no problem repeats; a length with fewer possible problems than ``per_length``
    gives all it has (found within a bounded number of draws).
    """
    if per_length < 1:
        raise RetuneError(f"per-length must be at least 1, got {per_length}")
    lengths = range(lengths[0], lengths[1] + 1) if isinstance(lengths, tuple) else list(lengths)
    out: list[tuple[int, Any]] = []
    for length in lengths:
        task.check_length(length)
        seen: set[str] = set()
        index, found = 0, 0
        while found < per_length and index < per_length * 20 + 100:
            problem = task.generate(length, problem_rng(seed, task.name, length, index))
            index += 1
            key = task.render_problem(problem)
            if distinct and key in seen:
                continue
            seen.add(key)
            out.append((length, problem))
            found += 1
    return out


def build_records(
    tasks: list[str] | str,
    method: str,
    lengths: tuple[int, int],
    per_length: int,
    seed: int,
    registry=None,
) -> list[dict]:
    """Training records of ``method`` for problems of every length in ``lengths``, deduplicated by input.

    Records are dicts with ``task``, ``method``, ``length`` (of the context's own problem), ``input`` and
    ``output``; their order is a deterministic function of the arguments.
    """
    from retune.plugins import get_registry

    check_method(method)
    registry = registry or get_registry()
    names = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    records: list[dict] = []
    seen: set[str] = set()
    for name in names:
        task = registry.get(name)
        for _, problem in generate_problems(task, lengths, per_length, seed):
            for record in records_for(task, problem, method, registry):
                if record["input"] not in seen:
                    seen.add(record["input"])
                    records.append(record)
    return records


def write_jsonl(records: Iterable[dict], path: str | os.PathLike) -> None:
    """Write records as JSON lines, atomically (a reader never sees a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read records; every line must be a JSON object with string ``input`` and ``output``."""
    path = Path(path)
    if not path.is_file():
        raise RetuneError(f"data file {str(path)!r} does not exist")
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RetuneError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("input"), str) or not isinstance(
                record.get("output"), str
            ):
                raise RetuneError(f"{path}:{number}: a record needs string 'input' and 'output' fields")
            records.append(record)
    if not records:
        raise RetuneError(f"data file {str(path)!r} holds no records")
    return records
