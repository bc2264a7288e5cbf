"""The recursive-task protocol: what a task declares so that core can trace, render, train and solve it.

A task is a class with a validated problem type (a pydantic model) and these pieces:

* ``generate(length, rng)``: a random problem of a given length, drawn only from ``rng``;
* ``render_problem`` / ``parse_problem`` and ``render_answer`` / ``parse_answer``: text round trips;
* ``reference(problem)``: the ground-truth answer, computed directly (not by recursion);
* ``size(problem)``: a measure that every call to the same task strictly decreases;
* the recursion: ``is_base_case``, ``base_case``, ``call(problem, returns)`` (the next subproblem given the
  answers returned so far, or ``None`` when it is time to combine) and ``combine(problem, returns)``.

A call may carry text written before it (``Call(..., before="...")``), may be a tail call (its returned
value is the context's answer, with no generation after it) and may name another registered task
(``Call(..., task="addition")``); such tasks must be listed in ``callees``. Baseline and scratchpad wordings
have generic defaults that tasks override with their paper wording.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from retune.core import text

P = TypeVar("P", bound=BaseModel)
A = TypeVar("A")

#: separates a problem from its answer on a line of the generic scratchpad
SCRATCHPAD_EQUALS = " = "


@dataclass(frozen=True)
class Call:
    """A call to a subproblem. ``task`` names another registered task (``None``: the calling task)."""

    problem: Any
    before: str = ""
    task: str | None = None
    tail: bool = False


@dataclass(frozen=True)
class Answer:
    """An answer with optional text the model writes before it (a non-empty ``before`` ends in ``Answer: ``)."""

    value: Any
    before: str = ""


def as_answer(result: Any) -> Answer:
    return result if isinstance(result, Answer) else Answer(result)


class Task(ABC, Generic[P, A]):
    """Base class of every task. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    problem_type: ClassVar[type[BaseModel]]
    #: other registered tasks whose problems this task may call
    callees: ClassVar[tuple[str, ...]] = ()
    #: the shortest length ``generate`` accepts
    min_length: ClassVar[int] = 1
    #: suggested training and evaluation lengths for ``retune run`` (inclusive ranges)
    default_train_lengths: ClassVar[tuple[int, int]] = (1, 8)
    default_eval_lengths: ClassVar[tuple[int, int]] = (1, 32)

    # ---- problems and answers -------------------------------------------------------------------
    @abstractmethod
    def generate(self, length: int, rng: random.Random) -> P:
        """A random problem of ``length``; all randomness comes from ``rng``."""

    @abstractmethod
    def render_problem(self, problem: P) -> str: ...

    @abstractmethod
    def parse_problem(self, text: str) -> P:
        """Parse a problem; raise ``ValueError`` (or ``ProblemParseError``) on malformed text."""

    @abstractmethod
    def render_answer(self, answer: A) -> str: ...

    @abstractmethod
    def parse_answer(self, text: str) -> A:
        """Parse an answer as written in a context; raise ``ValueError`` on malformed text."""

    @abstractmethod
    def reference(self, problem: P) -> A:
        """The ground-truth answer of a problem, computed directly."""

    @abstractmethod
    def size(self, problem: P) -> int:
        """A non-negative measure that every same-task call strictly decreases."""

    def length(self, problem: P) -> int:
        """The problem's length as users count it (digits, list length); defaults to ``size``."""
        return self.size(problem)

    # ---- the recursion --------------------------------------------------------------------------
    @abstractmethod
    def is_base_case(self, problem: P) -> bool: ...

    def base_case(self, problem: P) -> A | Answer:
        """The answer of a base case (optionally with text before it)."""
        return self.reference(problem)

    @abstractmethod
    def call(self, problem: P, returns: list[A]) -> Call | None:
        """The next call after ``len(returns)`` calls returned ``returns``; ``None`` when it is time to combine."""

    @abstractmethod
    def combine(self, problem: P, returns: list[A]) -> A | Answer:
        """The answer of a non-base problem from the answers its calls returned."""

    def is_tail_call(self, problem: P, index: int) -> bool:
        """Whether the ``index``-th call of ``problem``'s context is a tail call (generic: from the reference)."""
        returns: list[Any] = []
        for _ in range(index + 1):
            if self.is_base_case(problem):
                return False
            nxt = self.call(problem, returns)
            if nxt is None:
                return False
            if len(returns) == index:
                return nxt.tail
            returns.append(self._callee_reference(nxt))
        return False

    def _callee_reference(self, call: Call) -> Any:
        if call.task is None or call.task == self.name:
            return self.reference(call.problem)
        from retune.plugins import get_registry

        return get_registry().get(call.task).reference(call.problem)

    # ---- final answers, baseline and scratchpad wordings ----------------------------------------
    def format_final(self, problem: P, answer: A) -> str:
        """The answer as a user reads it (``retune solve`` prints this)."""
        return self.render_answer(answer)

    def parse_final(self, problem: P, text: str) -> A:
        """Inverse of ``format_final``."""
        return self.parse_answer(text)

    def baseline_prompt(self, problem: P) -> str:
        return self.render_problem(problem) + "\n" + text.ANSWER

    def baseline_output(self, problem: P) -> str:
        return self.format_final(problem, self.reference(problem))

    def parse_baseline(self, problem: P, output: str) -> A:
        return self.parse_final(problem, output.strip())

    def scratchpad_prompt(self, problem: P) -> str:
        return text.prompt(self.render_problem(problem))

    def scratchpad_output(self, problem: P) -> str:
        """All intermediate results in one context. Generic default: every subproblem's answer, innermost
        first, one ``<problem> = <answer>`` line each, the last line being the problem itself."""
        from retune.core.trace import build_trace, walk_postorder

        return "\n".join(self.scratchpad_line(n.problem, n.answer) for n in walk_postorder(build_trace(self, problem)))

    @staticmethod
    def scratchpad_line(problem_text: str, answer_text: str) -> str:
        """One ``<problem> = <answer>`` line of the generic scratchpad; ``parse_scratchpad`` reads the last one."""
        return f"{problem_text}{SCRATCHPAD_EQUALS}{answer_text}"

    def parse_scratchpad(self, problem: P, output: str) -> A:
        last = output.rstrip("\n").rsplit("\n", 1)[-1]
        head, sep, answer = last.rpartition(SCRATCHPAD_EQUALS)
        if not sep or head != self.render_problem(problem):
            raise ValueError("scratchpad does not end with the problem's answer")
        return self.parse_answer(answer)

    # ---- helpers --------------------------------------------------------------------------------
    def check_length(self, length: int) -> None:
        from retune.core.errors import RetuneError

        if length < self.min_length:
            raise RetuneError(f"task {self.name!r}: length {length} is below its minimum {self.min_length}")

    def __repr__(self) -> str:
        return f"<task {self.name}>"
