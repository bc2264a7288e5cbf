"""The model-agnostic recursive solver (RecursiveGenerate, batched and breadth-first).

The solver drives a *policy*: a callable that takes a batch of context strings and returns, for each, the
segment generated after it (the text up to EOS). It solves many problems at once: at every round, the one
pending context of every unfinished problem goes to the policy as a single batch. A call suspends its
context and opens a fresh one for the subproblem; an answer closes the context and is returned to the parent
(``Return: ...\\nAnswer: `` is appended) or, after a tail call, straight through to the grandparent.

Every problem ends with an :class:`Outcome`. Limits bound the work: the depth of the call stack, the calls
per problem and the characters per segment; a call equal to one of its ancestors is a cycle, a same-task call
that does not shrink the problem is ``not_smaller``. Nothing the policy returns can raise out of ``solve``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydantic import BaseModel

from retune.core import text
from retune.core.methods import check_method, parse_single_context, single_context_prompt
from retune.core.task import Task
from retune.core.trace import Node, Step, build_trace, walk

Policy = Callable[[Sequence[str]], Sequence[str]]


class Outcome(str, Enum):
    ANSWERED = "answered"
    MALFORMED = "malformed"
    DEPTH_EXCEEDED = "depth_exceeded"
    BUDGET_EXCEEDED = "budget_exceeded"
    CYCLE = "cycle"
    NOT_SMALLER = "not_smaller"


class Limits(BaseModel):
    """Bounds on the work for one problem. ``None`` derives the bound from the problem's reference trace:
    depth at most twice the reference depth plus 2, calls at most four times the reference calls plus 8."""

    max_depth: int | None = None
    max_calls: int | None = None
    max_segment_chars: int = 4096


class Solution(BaseModel):
    task: str
    problem: str
    outcome: Outcome
    answer: str | None = None  # the rendered answer of the top context
    final: str | None = None  # the answer as users read it
    expected: str
    correct: bool
    detail: str | None = None  # why a problem ended without an answer
    calls: int = 0
    segments: int = 0
    tree: Node | None = None  # the call tree the policy produced (retuning only)


@dataclass
class _Frame:
    task: Task
    problem: Any
    key: tuple[str, str]
    context: str
    node: Node
    returns: list = field(default_factory=list)
    tail_pending: bool = False


@dataclass
class _Run:
    task: Task
    problem: Any
    max_depth: int
    max_calls: int
    stack: list[_Frame] = field(default_factory=list)
    calls: int = 0
    segments: int = 0
    outcome: Outcome | None = None
    value: Any = None
    detail: str | None = None


def reference_bounds(task: Task, problem: Any, registry=None) -> tuple[int, int]:
    """``(depth, calls)`` of the problem's reference trace."""
    trace = build_trace(task, problem, registry)

    def depth(node: Node) -> int:
        return 1 + max((depth(s.child) for s in node.steps if s.child is not None), default=0)

    return depth(trace), sum(1 for _ in walk(trace)) - 1


class Solver:
    def __init__(self, policy: Policy, limits: Limits | None = None, registry=None):
        self.policy = policy
        self.limits = limits or Limits()
        self._registry = registry

    @property
    def registry(self):
        if self._registry is None:
            from retune.plugins import get_registry

            self._registry = get_registry()
        return self._registry

    # ---- public ---------------------------------------------------------------------------------
    def solve(self, task: Task, problems: Sequence[Any], method: str = "retuning") -> list[Solution]:
        check_method(method)
        if method == "retuning":
            return self._solve_recursive(task, problems)
        return self._solve_single(task, problems, method)

    # ---- single context (scratchpad, baseline) --------------------------------------------------
    def _solve_single(self, task: Task, problems: Sequence[Any], method: str) -> list[Solution]:
        outputs = self._ask([single_context_prompt(task, p, method) for p in problems])
        solutions = []
        for problem, output in zip(problems, outputs):
            run = _Run(task, problem, 0, 0, segments=1)
            if len(output) > self.limits.max_segment_chars:
                self._finish(run, Outcome.BUDGET_EXCEEDED, f"output of {len(output)} characters")
            else:
                try:
                    run.value = parse_single_context(task, problem, method, output)
                    run.outcome = Outcome.ANSWERED
                except ValueError as exc:
                    self._finish(run, Outcome.MALFORMED, f"unreadable output: {exc}")
            solutions.append(self._solution(run, None))
        return solutions

    # ---- recursion ------------------------------------------------------------------------------
    def _solve_recursive(self, task: Task, problems: Sequence[Any]) -> list[Solution]:
        runs, roots = [], []
        for problem in problems:
            depth, calls = reference_bounds(task, problem, self._registry)
            run = _Run(
                task,
                problem,
                self.limits.max_depth if self.limits.max_depth is not None else 2 * depth + 2,
                self.limits.max_calls if self.limits.max_calls is not None else 4 * calls + 8,
            )
            rendered = task.render_problem(problem)
            root = Node(task=task.name, problem=rendered, answer="", steps=[])
            run.stack.append(_Frame(task, problem, (task.name, rendered), text.prompt(rendered), root))
            runs.append(run)
            roots.append(root)
        while active := [run for run in runs if run.outcome is None]:
            outputs = self._ask([run.stack[-1].context for run in active])
            for run, output in zip(active, outputs):
                self._advance(run, output)
        return [self._solution(run, root) for run, root in zip(runs, roots)]

    def _advance(self, run: _Run, segment: str) -> None:
        run.segments += 1
        frame = run.stack[-1]
        if len(segment) > self.limits.max_segment_chars:
            return self._finish(run, Outcome.BUDGET_EXCEEDED, f"segment of {len(segment)} characters")
        parsed = text.parse_segment(segment)
        if isinstance(parsed, text.ParsedAnswer):
            try:
                value = frame.task.parse_answer(parsed.text)
            except ValueError:
                return self._finish(run, Outcome.MALFORMED, f"unreadable answer {parsed.text[:80]!r}")
            frame.node.steps.append(Step(kind="answer", output=segment))
            return self._return(run, value)
        callee, sub = self._parse_call(frame.task, parsed.text)
        if callee is None:
            return self._finish(run, Outcome.MALFORMED, f"unreadable call {parsed.text[:80]!r}")
        key = (callee.name, parsed.text)
        if any(f.key == key for f in run.stack):
            return self._finish(run, Outcome.CYCLE, f"call {parsed.text[:80]!r} repeats an ancestor")
        if callee is frame.task and callee.size(sub) >= frame.task.size(frame.problem):
            return self._finish(run, Outcome.NOT_SMALLER, f"call {parsed.text[:80]!r} does not shrink the problem")
        if len(run.stack) >= run.max_depth:
            return self._finish(run, Outcome.DEPTH_EXCEEDED, f"depth {len(run.stack) + 1} > {run.max_depth}")
        run.calls += 1
        if run.calls > run.max_calls:
            return self._finish(run, Outcome.BUDGET_EXCEEDED, f"more than {run.max_calls} calls")
        frame.tail_pending = frame.task.is_tail_call(frame.problem, len(frame.returns))
        child = Node(task=callee.name, problem=parsed.text, answer="", steps=[])
        frame.node.steps.append(Step(kind="call", output=segment, tail=frame.tail_pending, child=child))
        frame.context += segment
        run.stack.append(_Frame(callee, sub, key, text.prompt(parsed.text), child))

    def _parse_call(self, task: Task, call_text: str) -> tuple[Task | None, Any]:
        for name in (task.name, *task.callees):
            candidate = task if name == task.name else self.registry.get(name)
            try:
                sub = candidate.parse_problem(call_text)
            except ValueError:
                continue
            if candidate.render_problem(sub) == call_text:  # the call must be written exactly
                return candidate, sub
        return None, None

    def _return(self, run: _Run, value: Any) -> None:
        while True:
            frame = run.stack.pop()
            frame.node.answer = frame.task.render_answer(value)
            if not run.stack:
                run.outcome, run.value = Outcome.ANSWERED, value
                return
            parent = run.stack[-1]
            parent.returns.append(value)
            if not parent.tail_pending:
                parent.context += text.return_text(frame.node.answer)
                return
            if parent.task is not frame.task:  # a tail call's returned text becomes the parent's own answer
                try:
                    value = parent.task.parse_answer(frame.node.answer)
                except ValueError:
                    return self._finish(run, Outcome.MALFORMED, f"tail call returned {frame.node.answer[:80]!r}, "
                                                                f"not an answer of {parent.task.name!r}")

    # ---- helpers --------------------------------------------------------------------------------
    def _ask(self, contexts: list[str]) -> list[str]:
        outputs = list(self.policy(contexts))
        if len(outputs) != len(contexts):
            raise RuntimeError(f"policy returned {len(outputs)} segments for {len(contexts)} contexts")
        return [o if isinstance(o, str) else "" for o in outputs]

    @staticmethod
    def _finish(run: _Run, outcome: Outcome, detail: str) -> None:
        run.outcome, run.detail = outcome, detail

    @staticmethod
    def _solution(run: _Run, root: Node | None) -> Solution:
        task, problem = run.task, run.problem
        reference = task.reference(problem)
        answered = run.outcome is Outcome.ANSWERED
        return Solution(
            task=task.name,
            problem=task.render_problem(problem),
            outcome=run.outcome,
            answer=task.render_answer(run.value) if answered else None,
            final=task.format_final(problem, run.value) if answered else None,
            expected=task.format_final(problem, reference),
            correct=answered and run.value == reference,
            detail=run.detail,
            calls=run.calls,
            segments=run.segments,
            tree=root,
        )


def solve(task: Task, problems: Sequence[Any], policy: Policy, method: str = "retuning", limits: Limits | None = None,
          registry=None) -> list[Solution]:
    """Solve ``problems`` of ``task`` with ``policy``; see :class:`Solver`."""
    return Solver(policy, limits, registry).solve(task, problems, method)
