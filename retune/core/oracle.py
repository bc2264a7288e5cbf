"""Oracle policies: answer contexts from the task's own reference, so the solver runs with no model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from retune.core import text
from retune.core.task import Task
from retune.core.trace import build_trace, walk


class OraclePolicy:
    """Writes the reference segment for any context of the given tasks (and the tasks they call).

    A context that left the reference path (nothing the reference would have produced) gets an empty
    segment, which the solver counts as malformed.
    """

    def __init__(self, tasks: Task | Iterable[Task], registry=None):
        from retune.plugins import get_registry

        self._registry = registry or get_registry()
        pending = [tasks] if isinstance(tasks, Task) else list(tasks)
        self.tasks: list[Task] = []
        while pending:
            task = pending.pop(0)
            if task not in self.tasks:
                self.tasks.append(task)
                pending.extend(self._registry.get(name) for name in task.callees)
        self._segments: dict[str, str] = {}

    def __call__(self, contexts: Sequence[str]) -> list[str]:
        return [self._segment(context) for context in contexts]

    def _segment(self, context: str) -> str:
        if context not in self._segments:
            try:
                problem_text = text.problem_of_context(context)
            except ValueError:
                return ""
            for task in self.tasks:
                try:
                    problem = task.parse_problem(problem_text)
                except ValueError:
                    continue
                if task.render_problem(problem) != problem_text:
                    continue
                for node in walk(build_trace(task, problem, self._registry)):
                    for ctx, output in node.segments():
                        self._segments[ctx] = output
                break
        return self._segments.get(context, "")


class RecordPolicy:
    """Answers each context with the output of the training record whose input it is (any method)."""

    def __init__(self, records: Iterable[dict]):
        self._table = {r["input"]: r["output"] for r in records}

    def __call__(self, contexts: Sequence[str]) -> list[str]:
        return [self._table.get(context, "") for context in contexts]
