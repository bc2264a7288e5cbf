"""The ``retune plugins`` report and the ``retune new-task`` scaffold (a pip-installable task plugin).

``new_task("listsum", "plugins/")`` writes ``plugins/retune-task-listsum/``: a package registering one task
through the ``retune`` entry-point group, whose template task (the sum of a list of digits, one item per call)
already works, with a README and tests that pass as generated (they run :func:`retune.testing.check_task`).
"""

from __future__ import annotations

import keyword
import os
import re
from pathlib import Path
from string import Template

from retune.core.errors import RetuneError
from retune.plugins.registry import ENTRY_POINT_GROUP, ENV_VAR, Registry

_NAME = re.compile(r"[a-z][a-z0-9_]*")


# ---- retune plugins ---------------------------------------------------------------------------------
def plugin_rows(registry: Registry) -> list[dict]:
    """One row per loaded (or failed) plugin: name, distribution, version, tasks, hooks and error."""
    return [
        {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "tasks": list(info.tasks),
            "hooks": list(info.hooks),
            "error": info.error,
        }
        for info in sorted(registry.plugins.values(), key=lambda info: info.name)
    ]


def plugins_filter_note() -> str | None:
    """A note when ``RETUNE_PLUGINS`` limits which plugins load."""
    only = os.environ.get(ENV_VAR)
    return f"{ENV_VAR}={only!r}: only these entry points were loaded" if only else None


# ---- retune new-task --------------------------------------------------------------------------------
def check_name(name: str, registry: Registry | None = None) -> None:
    """Refuse a task name that is not a lowercase identifier or that a registered task already uses."""
    if not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise RetuneError(
            f"bad task name {name!r}: use a lowercase Python identifier (letters, digits, underscores), e.g. listsum"
        )
    if registry is not None and name in registry.tasks:
        raise RetuneError(f"a task named {name!r} is already registered (by plugin {registry.task_plugin[name]!r})")


def package_dir(name: str, directory: str | os.PathLike = ".") -> Path:
    return Path(directory) / f"retune-task-{name}"


def new_task(name: str, directory: str | os.PathLike = ".", registry: Registry | None = None) -> list[Path]:
    """Write the package ``<directory>/retune-task-<name>/``; return the files written."""
    check_name(name, registry)
    root = package_dir(name, directory)
    if root.exists():
        raise RetuneError(f"{str(root)!r} already exists; choose another name or --dir")
    values = {
        "name": name,
        "module": f"retune_task_{name}",
        "cls": "".join(part.capitalize() for part in name.split("_")),
        "group": ENTRY_POINT_GROUP,
    }
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/{values['module']}/__init__.py": MODULE,
        f"tests/test_{name}.py": TESTS,
    }
    written = []
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(values))
        written.append(path)
    return written


# ---- templates (string.Template: $name, $module, $cls the class-name stem, $group) ---------------
PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "retune-task-$name"
version = "0.1.0"
description = "A retune task plugin: the $name task."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["retune"]

[project.optional-dependencies]
test = ["pytest>=8"]

# retune finds the task through this entry point: the module's register_tasks hook registers it.
[project.entry-points.$group]
$name = "$module"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["src"]
"""

README = """\
# retune-task-$name

A retune task plugin registering the task `$name` through the `$group` entry-point
group. As generated, `$name` is the sum of a list of digits, solved one item per recursive call:

```
What is the sum of [3, 1, 4]?
Solution: Call: What is the sum of [1, 4]?
Return: 5
Answer: 8
```

Edit `src/$module/__init__.py` to make it your task (the plugin author's guide, `docs/plugins.md` in
retune, describes every method), keeping the tests green.

## Install and use

```bash
pip install -e .                       # or: pip install ./retune-task-$name
retune plugins                         # $name is listed with this distribution
retune trace --task $name "What is the sum of [3, 1, 4]?"
retune solve --task $name --oracle "What is the sum of [3, 1, 4]?"
retune generate --task $name --lengths 1-8 --per-length 100 -o data/$name.jsonl
retune run --task $name                # train and evaluate a model on it
```

## Test

```bash
python -m pytest                       # works installed or not (pytest puts src/ on the path)
```

`tests/test_$name.py` runs `retune.testing.check_task`, the protocol checks every retune task must pass
(the oracle-driven solver reproduces the reference, render/parse round trips, calls shrink the problem,
training records agree with the trace, determinism), plus a golden example.
"""

MODULE = '''\
"""The $name task (a retune task plugin): the sum of a list of digits, one item per recursive call.

``What is the sum of [3, 1, 4]?`` calls ``What is the sum of [1, 4]?`` and, once it returns ``5``, answers
``8`` (the first item plus the returned sum). A one-item list is a base case, answered directly.
"""

from __future__ import annotations

import random
import re

from pydantic import BaseModel, field_validator

import retune
from retune import Call, Task

_PROBLEM = re.compile(r"What is the sum of \\[([0-9]+(?:, [0-9]+)*)\\]\\?")
_NUMBER = re.compile(r"[0-9]+")


class ${cls}Problem(BaseModel):
    items: list[int]

    @field_validator("items")
    @classmethod
    def _digits(cls, items: list[int]) -> list[int]:
        if not items or any(not 0 <= item <= 9 for item in items):
            raise ValueError("a problem is a non-empty list of digits 0-9")
        return items


class ${cls}Task(Task[${cls}Problem, int]):
    name = "$name"
    description = "Sum of a list of digits, one item per call."
    version = "1"
    problem_type = ${cls}Problem
    min_length = 1
    default_train_lengths = (1, 8)
    default_eval_lengths = (1, 32)

    # ---- problems and answers: generation, text round trips, ground truth ---------------------
    def generate(self, length: int, rng: random.Random) -> ${cls}Problem:
        self.check_length(length)
        return ${cls}Problem(items=[rng.randint(0, 9) for _ in range(length)])

    def render_problem(self, problem: ${cls}Problem) -> str:
        return "What is the sum of [" + ", ".join(map(str, problem.items)) + "]?"

    def parse_problem(self, text: str) -> ${cls}Problem:
        match = _PROBLEM.fullmatch(text.strip())
        if not match:
            raise ValueError(f"not a $name problem: {text!r}")
        return ${cls}Problem(items=[int(item) for item in match[1].split(", ")])

    def render_answer(self, answer: int) -> str:
        return str(answer)

    def parse_answer(self, text: str) -> int:
        if not _NUMBER.fullmatch(text):
            raise ValueError(f"not a $name answer: {text!r}")
        return int(text)

    def reference(self, problem: ${cls}Problem) -> int:
        return sum(problem.items)

    def size(self, problem: ${cls}Problem) -> int:
        return len(problem.items)  # every call must make this strictly smaller

    # ---- the recursion ----------------------------------------------------------------------------
    def is_base_case(self, problem: ${cls}Problem) -> bool:
        return len(problem.items) == 1

    def call(self, problem: ${cls}Problem, returns: list[int]) -> Call | None:
        if returns:  # one call per context, then combine
            return None
        return Call(${cls}Problem(items=problem.items[1:]))

    def combine(self, problem: ${cls}Problem, returns: list[int]) -> int:
        return problem.items[0] + returns[0]

    def is_tail_call(self, problem: ${cls}Problem, index: int) -> bool:
        return False

    # ---- scratchpad: the running sums in one context -----------------------------------------------
    def scratchpad_output(self, problem: ${cls}Problem) -> str:
        running, sums = 0, []
        for item in problem.items:
            running += item
            sums.append(str(running))
        return "Add one item at a time. " + " ".join(sums)

    def parse_scratchpad(self, problem: ${cls}Problem, output: str) -> int:
        return self.parse_answer(output.strip().rsplit(" ", 1)[-1])


@retune.hookimpl
def register_tasks(register):
    register(${cls}Task())
'''

TESTS = '''\
"""Tests of the $name task: retune's protocol checks and a golden example."""

from importlib.metadata import entry_points

import pytest

from retune.core.methods import records_for
from retune.core.trace import build_trace
from retune.testing import check_task
from $module import ${cls}Task


def test_short_problems_pass_the_protocol_checks():
    check_task(${cls}Task(), lengths=range(1, 13), per_length=4)


@pytest.mark.parametrize("seed", range(3))
def test_long_problems_pass_the_protocol_checks(seed):
    check_task(${cls}Task(), lengths=[30, 60], per_length=1, seed=seed)


def test_golden_example():
    task = ${cls}Task()
    problem = task.parse_problem("What is the sum of [3, 1, 4]?")
    trace = build_trace(task, problem)
    assert trace.context_text() == (
        "What is the sum of [3, 1, 4]?\\nSolution: Call: What is the sum of [1, 4]?\\nReturn: 5\\nAnswer: 8"
    )
    assert [r["output"] for r in records_for(task, problem, "retuning")] == [
        "Call: What is the sum of [1, 4]?\\n", "8", "Call: What is the sum of [4]?\\n", "5", "4",
    ]
    assert task.scratchpad_output(problem) == "Add one item at a time. 3 4 8"


def test_registered_through_the_entry_point():
    if not any(ep.name == "$name" for ep in entry_points(group="$group")):
        pytest.skip("the package is not installed (pip install -e .)")
    from retune.plugins import get_registry

    registry = get_registry()
    assert "$name" in registry.names(), registry.errors
'''
