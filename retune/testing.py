"""Property checks that every retune task must pass, for plugin authors' own test suites.

A plugin package tests its task with one call::

    from retune.testing import check_task

    def test_my_task():
        check_task(MyTask())                          # lengths min_length .. min_length + 9, 3 problems each
        check_task(MyTask(), lengths=range(1, 61), per_length=1, seed=7)

The task does not need to be installed: it is checked together with the registered tasks it calls. Every
check raises :class:`TaskCheckError` (an ``AssertionError``) naming the task, the problem and what failed:

* ``generate`` is deterministic (same ``rng`` seed, same problem) and gives problems of the asked length;
* problems, answers and final answers survive ``render``/``parse`` round trips, at every level of the trace;
* every same-task call strictly decreases ``size``, other tasks are called only if listed in ``callees``,
  and every context's answer equals its problem's ``reference`` (the recursion computes the right thing);
* the oracle-driven solver reproduces the reference answer and the reference call tree;
* each Re-Tuning record's input is a context of the trace, and its output ends after a call
  (``Call: ...\\n``) or is that context's answer;
* scratchpad and baseline outputs parse back to the reference answer;
* the records of every method are the same bytes when built twice.

``check_registry()`` runs ``check_task`` on every registered task (built-in or installed plugin).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from typing import Any

from retune.core import text
from retune.core.data import generate_problems
from retune.core.methods import METHODS, parse_single_context, records_for
from retune.core.oracle import OraclePolicy
from retune.core.solver import Outcome, solve
from retune.core.task import Task
from retune.core.trace import Node, build_trace, walk
from retune.plugins import get_registry, hookimpl
from retune.plugins.registry import Registry

__all__ = ["TaskCheckError", "check_task", "check_problem", "check_registry"]


class TaskCheckError(AssertionError):
    """A task broke the recursive-task protocol; the message says which task, which problem and how."""


def check_task(
    task: Task,
    lengths: Iterable[int] | tuple[int, int] | None = None,
    *,
    per_length: int = 3,
    seed: int = 0,
    registry: Registry | None = None,
) -> None:
    """Run every check on ``per_length`` generated problems of each length.

    ``lengths`` is an iterable of lengths or an inclusive ``(lo, hi)`` range (default: the task's
    ``min_length`` to ``min_length + 9``). Problems come from the same deterministic generator as
    ``retune generate`` (so ``seed`` picks them). ``registry`` supplies the tasks that ``task`` calls
    (default: the installed plugins).
    """
    if not isinstance(task, Task):
        raise TaskCheckError(f"{task!r} is not an instance of retune.Task")
    registry = _registry_with(task, registry)
    _expect(task, None, bool(getattr(task, "name", "")), "has no name")
    for callee in task.callees:
        _expect(task, None, callee in registry.tasks, f"calls task {callee!r}, which is not registered")
    if lengths is None:
        lengths = (task.min_length, task.min_length + 9)
    lengths = range(lengths[0], lengths[1] + 1) if isinstance(lengths, tuple) else list(lengths)
    for length in lengths:
        first = task.generate(length, random.Random(f"{seed}/{length}"))
        again = task.generate(length, random.Random(f"{seed}/{length}"))
        _expect(task, first, task.render_problem(first) == task.render_problem(again),
                "generate is not deterministic: the same rng seed gave different problems")
        for _, problem in generate_problems(task, [length], per_length, seed):
            _expect(task, problem, task.length(problem) == length,
                    f"generate({length}, rng) gave a problem of length {task.length(problem)}")
            check_problem(task, problem, registry=registry)


def check_problem(task: Task, problem: Any, *, registry: Registry | None = None) -> None:
    """Run every per-problem check on one problem of ``task``."""
    registry = _registry_with(task, registry)
    answer = task.reference(problem)
    _check_round_trips(task, problem, answer)
    try:
        trace = build_trace(task, problem, registry)
    except Exception as exc:  # a protocol error (e.g. a call that does not shrink) is a failed check
        raise TaskCheckError(_where(task, problem) + f"building the trace failed: {type(exc).__name__}: {exc}")
    _expect(task, problem, trace.answer == task.render_answer(answer),
            f"the recursion answers {trace.answer!r}, the reference {task.render_answer(answer)!r}")
    for node in walk(trace):
        _check_node(registry, node)
    _check_retuning_records(task, problem, trace, registry)
    _check_single_context(task, problem, answer, registry)
    (solution,) = solve(task, [problem], OraclePolicy(task, registry), registry=registry)
    _expect(task, problem, solution.outcome is Outcome.ANSWERED,
            f"the oracle-driven solver failed: {solution.outcome.value} ({solution.detail})")
    _expect(task, problem, solution.correct and solution.final == task.format_final(problem, answer),
            f"the oracle-driven solver answered {solution.final!r}, not {task.format_final(problem, answer)!r}")
    _expect(task, problem, solution.tree == trace,
            "the oracle-driven solver's call tree differs from the reference trace (is_tail_call?)")


def check_registry(registry: Registry | None = None, **kwargs: Any) -> None:
    """``check_task`` on every registered task; a broken plugin fails the check too."""
    registry = registry or get_registry()
    if registry.errors:
        broken = "; ".join(f"{name}: {error}" for name, error in registry.errors.items())
        raise TaskCheckError(f"broken plugins: {broken}")
    for name in registry.names():
        check_task(registry.get(name), registry=registry, **kwargs)


# ---- the checks -------------------------------------------------------------------------------------
def _check_round_trips(task: Task, problem: Any, answer: Any) -> None:
    rendered = _attempt(task, problem, "render_problem", task.render_problem, problem)
    parsed = _attempt(task, problem, f"parse_problem({rendered!r})", task.parse_problem, rendered)
    _expect(task, problem, parsed == problem, "parse_problem(render_problem(p)) != p")
    rendered_answer = _attempt(task, problem, "render_answer", task.render_answer, answer)
    parsed_answer = _attempt(task, problem, f"parse_answer({rendered_answer!r})", task.parse_answer, rendered_answer)
    _expect(task, problem, parsed_answer == answer, f"parse_answer(render_answer(a)) != a for {rendered_answer!r}")
    final = _attempt(task, problem, "format_final", task.format_final, problem, answer)
    parsed_final = _attempt(task, problem, f"parse_final({final!r})", task.parse_final, problem, final)
    _expect(task, problem, parsed_final == answer, f"parse_final(format_final(a)) != a for {final!r}")


def _check_node(registry: Registry, node: Node) -> None:
    owner = registry.get(node.task)
    sub = _attempt(owner, None, f"parse_problem({node.problem!r})", owner.parse_problem, node.problem)
    _expect(owner, sub, owner.render_problem(sub) == node.problem, "a subproblem does not render back to its text")
    parsed = _attempt(owner, sub, f"parse_answer({node.answer!r})", owner.parse_answer, node.answer)
    _expect(owner, sub, owner.render_answer(parsed) == node.answer,
            f"the answer {node.answer!r} does not render back to its text")
    reference = owner.render_answer(owner.reference(sub))
    _expect(owner, sub, node.answer == reference, f"the recursion answers {node.answer!r}, the reference {reference!r}")
    size = owner.size(sub)
    _expect(owner, sub, isinstance(size, int) and size >= 0, f"size is {size!r}, not a non-negative int")
    for step in node.steps:
        if step.child is None:
            continue
        if step.child.task == node.task:
            child = _attempt(owner, sub, f"parse_problem({step.child.problem!r})", owner.parse_problem,
                             step.child.problem)
            child_size = owner.size(child)
            _expect(owner, sub, child_size < size,
                    f"the call {step.child.problem!r} has size {child_size}, not below {size}")
        else:
            _expect(owner, sub, step.child.task in owner.callees,
                    f"calls task {step.child.task!r}, which is not in its callees")


def _check_retuning_records(task: Task, problem: Any, trace: Node, registry: Registry) -> None:
    records = records_for(task, problem, "retuning", registry)
    expected = [(context, output, node) for node in walk(trace) for context, output in node.segments()]
    _expect(task, problem, len(records) == len(expected),
            f"{len(records)} retuning records for {len(expected)} generation segments")
    for record, (context, output, node) in zip(records, expected):
        _expect(task, problem, (record["input"], record["output"]) == (context, output),
                f"a retuning record differs from the trace's segment after {context[-80:]!r}")
        _expect(task, problem, context.startswith(text.prompt(node.problem)),
                "a context does not open with its problem")
        parsed = text.parse_segment(output)
        if isinstance(parsed, text.ParsedCall):
            _expect(task, problem, output.endswith("\n"), f"the call segment {output!r} does not end with a newline")
        else:
            _expect(task, problem, parsed.text == node.answer and output == node.steps[-1].output,
                    f"the segment {output!r} is neither a call nor the answer {node.answer!r}")
        tail = node.steps[-1].kind == "call" and node.steps[-1].tail
        _expect(task, problem, tail or node.context_text().startswith(context + output),
                "a record's input and output are not a prefix of its finished context")
    for method in METHODS:
        first = json.dumps(records_for(task, problem, method, registry))
        _expect(task, problem, first == json.dumps(records_for(task, problem, method, registry)),
                f"{method} records differ between two builds")


def _check_single_context(task: Task, problem: Any, answer: Any, registry: Registry) -> None:
    for method in ("scratchpad", "baseline"):
        (record,) = records_for(task, problem, method, registry)
        _expect(task, problem, bool(record["input"]) and bool(record["output"]), f"empty {method} prompt or output")
        try:
            parsed = parse_single_context(task, problem, method, record["output"])
        except ValueError as exc:
            raise TaskCheckError(_where(task, problem) + f"its {method} output does not parse: {exc}") from None
        _expect(task, problem, parsed == answer, f"its {method} output parses to {parsed!r}, not the reference")


# ---- helpers ----------------------------------------------------------------------------------------
class _Tasks:
    """A plugin object registering given task instances (for tasks checked without being installed)."""

    def __init__(self, tasks: list[Task]):
        self.tasks = tasks

    @hookimpl
    def register_tasks(self, register):
        for task in self.tasks:
            register(task)


def _registry_with(task: Task, registry: Registry | None) -> Registry:
    """``registry`` (default: the installed plugins) if it holds ``task`` itself, else a copy that does."""
    base = registry or get_registry()
    if base.tasks.get(task.name) is task:
        return base
    out = Registry()
    out.add_plugin(_Tasks([task, *(t for name, t in base.tasks.items() if name != task.name)]), "retune.testing")
    return out


def _where(task: Task, problem: Any) -> str:
    if problem is None:
        return f"task {task.name!r}: "
    try:
        shown = task.render_problem(problem)
    except Exception:
        shown = repr(problem)
    return f"task {task.name!r}, problem {shown!r}: "


def _attempt(task: Task, problem: Any, what: str, function, *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as exc:
        raise TaskCheckError(_where(task, problem) + f"{what} raised {type(exc).__name__}: {exc}") from None


def _expect(task: Task, problem: Any, ok: bool, message: str) -> None:
    if not ok:
        raise TaskCheckError(_where(task, problem) + message)
