"""Reading a solution against the reference: per-call accuracy, the first wrong node, tokens per problem.

Everything here works on the :class:`~retune.core.solver.Solution` the solver returns (its call tree holds
rendered text only) and the tasks' own ``reference``; nothing is task-specific.

*First wrong node*: the model's call tree is walked in the order the solver ran it (a context's calls, each
child before the parent goes on). At each context the model's call segments are compared with the calls the
reference makes from the same problem (the earlier returns being right, or the walk would have stopped), and
its answer with the reference answer. The first disagreement is the error:

* ``wrong_call``: a call segment differs from the reference's call at that step (or the model answered where
  the reference calls, or called where it answers);
* ``wrong_base_case``: a base case answered wrongly;
* ``wrong_combine``: every call right, the answer wrong;

and when the problem ended without an answer (malformed, cycle, ...), the context where it stopped is the
error, classified by what the reference would have written there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from retune.core import text
from retune.core.solver import Solution
from retune.core.task import Task
from retune.core.trace import Node, resolve_callee, walk

ERROR_KINDS = ("wrong_call", "wrong_base_case", "wrong_combine")

TaskLookup = Callable[[str], Task]


def finished(node: Node) -> bool:
    """Whether a context of the model's tree got its answer."""
    if not node.steps:
        return False
    last = node.steps[-1]
    if last.kind == "answer":
        return True
    # a tail call answers the context with what it returned (unless the solver refused that value)
    return last.tail and last.child is not None and finished(last.child) and (node.answer != "" or last.child.answer == "")


def stopped_context(root: Node) -> Node:
    """The context where an unfinished tree stopped: the deepest open context on the path of last calls."""
    node = root
    while node.steps and node.steps[-1].kind == "call" and node.steps[-1].child is not None:
        child = node.steps[-1].child
        if finished(child):
            break
        node = child
    return node


def visited_contexts(solution: Solution, first_context: str | None = None) -> list[str]:
    """Every context the policy was asked to continue for this problem, in order of the tree (recursive
    methods), or the single context (``first_context``) of a single-context method."""
    if solution.tree is None:
        return [first_context] if first_context is not None else []
    contexts = []
    for node in walk(solution.tree):
        contexts.extend(context for context, _ in node.segments())
    if not (solution.outcome.value == "answered"):
        contexts.append(stopped_context(solution.tree).context_text())
    return contexts


def reference_calls(task: Task, problem: Any, registry=None) -> list[str]:
    """The call segments the reference writes in ``problem``'s context, in order (empty for a base case)."""
    if task.is_base_case(problem):
        return []
    segments: list[str] = []
    returns: list[Any] = []
    while (call := task.call(problem, returns)) is not None:
        callee = resolve_callee(task, call, registry)
        segments.append(text.call_segment(callee.render_problem(call.problem), call.before))
        returns.append(callee.reference(call.problem))
        if call.tail:
            break
    return segments


class TreeChecker:
    """Compares model call trees with the reference; reference answers are memoised by (task, problem)."""

    def __init__(self, lookup: TaskLookup, registry=None):
        self.lookup = lookup
        self.registry = registry
        self._answers: dict[tuple[str, str], str] = {}
        self._calls: dict[tuple[str, str], list[str]] = {}

    def _parsed(self, node: Node) -> tuple[Task, Any]:
        task = self.lookup(node.task)
        return task, task.parse_problem(node.problem)

    def reference_answer(self, node: Node) -> str:
        key = (node.task, node.problem)
        if key not in self._answers:
            task, problem = self._parsed(node)
            self._answers[key] = task.render_answer(task.reference(problem))
        return self._answers[key]

    def reference_calls(self, node: Node) -> list[str]:
        key = (node.task, node.problem)
        if key not in self._calls:
            task, problem = self._parsed(node)
            self._calls[key] = reference_calls(task, problem, self.registry)
        return self._calls[key]

    def node_right(self, node: Node) -> bool:
        return finished(node) and node.answer == self.reference_answer(node)

    def per_call(self, root: Node) -> dict:
        """``{"nodes", "right", "unfinished"}`` over every context of the tree."""
        nodes = right = unfinished = 0
        for node in walk(root):
            nodes += 1
            if not finished(node):
                unfinished += 1
            elif node.answer == self.reference_answer(node):
                right += 1
        return {"nodes": nodes, "right": right, "unfinished": unfinished}

    def first_error(self, root: Node) -> dict | None:
        """The first wrong node in call order, or ``None`` when the whole tree is right."""
        return self._first_error(root, 0)

    def _first_error(self, node: Node, depth: int) -> dict | None:
        calls = self.reference_calls(node)
        task, problem = self._parsed(node)
        for index, step in enumerate(node.steps):
            if step.kind != "call":
                break
            expected = calls[index] if index < len(calls) else None
            if step.output != expected:
                return self._error(node, depth, "wrong_call", index, step.output, expected)
            if step.child is not None:
                error = self._first_error(step.child, depth + 1)
                if error is not None:
                    return error
        steps = len(node.steps) - (1 if node.steps and node.steps[-1].kind == "answer" else 0)
        expected_call = calls[steps] if steps < len(calls) else None
        if not finished(node):
            kind = "wrong_call" if expected_call is not None else self._answer_kind(task, problem)
            return self._error(node, depth, kind, steps, None, expected_call or self.reference_answer(node),
                               stopped=True)
        if node.answer != self.reference_answer(node):
            kind = "wrong_call" if expected_call is not None else self._answer_kind(task, problem)
            got = node.steps[-1].output if node.steps[-1].kind == "answer" else node.answer
            return self._error(node, depth, kind, steps, got, expected_call or self.reference_answer(node))
        return None

    @staticmethod
    def _answer_kind(task: Task, problem: Any) -> str:
        return "wrong_base_case" if task.is_base_case(problem) else "wrong_combine"

    @staticmethod
    def _error(node: Node, depth: int, kind: str, step: int, got: str | None, expected: str | None,
               stopped: bool = False) -> dict:
        return {
            "kind": kind,
            "task": node.task,
            "problem": node.problem,
            "depth": depth,
            "step": step,
            "got": got,
            "expected": expected,
            "stopped": stopped,
        }
