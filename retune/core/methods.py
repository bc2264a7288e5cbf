"""Training methods: how a problem becomes training records, and how a single-context output is read back.

``retuning`` cuts every context of the trace into one record per generated segment; ``scratchpad`` and
``baseline`` put the whole solution (or just the answer) in one context, in the task's own wording.
"""

from __future__ import annotations

from typing import Any

from retune.core.errors import RetuneError
from retune.core.task import Task
from retune.core.trace import Node, build_trace, walk

METHODS = ("retuning", "scratchpad", "baseline")


def check_method(method: str) -> str:
    if method not in METHODS:
        raise RetuneError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    return method


def retuning_records(trace: Node, task_of: dict[str, Task]) -> list[dict]:
    """One record per generation segment of every context in the trace, parents first."""
    records = []
    for node in walk(trace):
        task = task_of[node.task]
        length = task.length(task.parse_problem(node.problem))
        for context, output in node.segments():
            records.append({"task": node.task, "length": length, "input": context, "output": output})
    return records


def records_for(task: Task, problem: Any, method: str, registry=None) -> list[dict]:
    """The training records of one problem under ``method``, each tagged with task, method and length."""
    check_method(method)
    if method == "retuning":
        from retune.plugins import get_registry

        trace = build_trace(task, problem, registry)
        reg = registry or get_registry()
        task_of = {t: (task if t == task.name else reg.get(t)) for t in {n.task for n in walk(trace)}}
        records = retuning_records(trace, task_of)
    elif method == "scratchpad":
        records = [{"task": task.name, "length": task.length(problem), "input": task.scratchpad_prompt(problem),
                    "output": task.scratchpad_output(problem)}]
    else:
        records = [{"task": task.name, "length": task.length(problem), "input": task.baseline_prompt(problem),
                    "output": task.baseline_output(problem)}]
    return [{"task": r["task"], "method": method, "length": r["length"], "input": r["input"],
             "output": r["output"]} for r in records]


def single_context_prompt(task: Task, problem: Any, method: str) -> str:
    """The one context a scratchpad or baseline model answers in."""
    return task.scratchpad_prompt(problem) if method == "scratchpad" else task.baseline_prompt(problem)


def parse_single_context(task: Task, problem: Any, method: str, output: str) -> Any:
    """The answer a scratchpad or baseline model gave; raises ``ValueError`` when unreadable."""
    if method == "scratchpad":
        return task.parse_scratchpad(problem, output)
    return task.parse_baseline(problem, output)
