"""Traces: the tree of contexts a problem produces, derived once from the task protocol.

A :class:`Node` is one context: the problem it was opened with, the segments generated in it and, for each
call, the child context that answered it. Everything else (context text, training records, the oracle) is
read off this tree. Nodes hold rendered text only, so a trace is plain JSON whatever the task.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import BaseModel

from retune.core import text
from retune.core.errors import ProtocolError
from retune.core.task import Call, Task, as_answer

if TYPE_CHECKING:
    from retune.plugins.registry import Registry


class Step(BaseModel):
    """One generated segment of a context: a call (with the child that answered it) or the answer."""

    kind: Literal["call", "answer"]
    output: str
    tail: bool = False
    child: Optional["Node"] = None


class Node(BaseModel):
    task: str
    problem: str
    answer: str
    steps: list[Step]

    def segments(self) -> Iterator[tuple[str, str]]:
        """``(context so far, generated segment)`` for every generation in this context, in order."""
        context = text.prompt(self.problem)
        for step in self.steps:
            yield context, step.output
            if step.kind == "call" and step.tail:
                return
            context += step.output
            if step.kind == "call":
                context += text.return_text(step.child.answer)

    def context_text(self) -> str:
        """The whole context once it is finished (a tail call shows the value it returned)."""
        context = text.prompt(self.problem)
        for step in self.steps:
            context += step.output
            if step.kind == "call":
                context += text.return_text(step.child.answer)
        return context


Step.model_rebuild()


def walk(node: Node) -> Iterator[Node]:
    """Every node, parents before children."""
    yield node
    for step in node.steps:
        if step.child is not None:
            yield from walk(step.child)


def walk_postorder(node: Node) -> Iterator[Node]:
    """Every node, children before parents."""
    for step in node.steps:
        if step.child is not None:
            yield from walk_postorder(step.child)
    yield node


def resolve_callee(task: Task, call: Call, registry: "Registry | None" = None) -> Task:
    if call.task is None or call.task == task.name:
        return task
    if call.task not in task.callees:
        raise ProtocolError(f"task {task.name!r} calls {call.task!r}, which is not in its callees")
    if registry is None:
        from retune.plugins import get_registry

        registry = get_registry()
    return registry.get(call.task)


def build_trace(task: Task, problem: Any, registry: "Registry | None" = None) -> Node:
    """The full reference trace of ``problem``."""
    return _build(task, problem, registry)[0]


def _build(task: Task, problem: Any, registry) -> tuple[Node, Any]:
    steps: list[Step] = []
    if task.is_base_case(problem):
        answer = as_answer(task.base_case(problem))
    else:
        returns: list[Any] = []
        answer = None
        while (call := task.call(problem, returns)) is not None:
            callee = resolve_callee(task, call, registry)
            if callee is task and task.size(call.problem) >= task.size(problem):
                raise ProtocolError(
                    f"task {task.name!r}: call {task.render_problem(call.problem)!r} is not smaller than "
                    f"{task.render_problem(problem)!r}"
                )
            child, value = _build(callee, call.problem, registry)
            segment = text.call_segment(callee.render_problem(call.problem), call.before)
            steps.append(Step(kind="call", output=segment, tail=call.tail, child=child))
            returns.append(value)
            if call.tail:
                answer = as_answer(value)
                break
        if answer is None:
            if not returns:
                raise ProtocolError(f"task {task.name!r}: non-base problem made no call")
            answer = as_answer(task.combine(problem, returns))
    rendered = task.render_answer(answer.value)
    if not steps or not steps[-1].tail:
        steps.append(Step(kind="answer", output=text.answer_segment(rendered, answer.before)))
    return Node(task=task.name, problem=task.render_problem(problem), answer=rendered, steps=steps), answer.value
