"""Greatest common divisor by Euclid's algorithm: every call is a tail call.

``gcd(a, b)`` with ``b > 0`` writes the division step ``a = q * b + r`` and tail-calls ``gcd(b, r)``: the
value that call returns is the context's answer, so nothing is generated after it. ``gcd(a, 0)`` is ``a``::

    gcd(84, 36)\\nSolution: 84 = 2 * 36 + 12. Call: gcd(36, 12)\\n     (returns 12, the answer)

``size`` is ``b``, which every call replaces by ``a mod b < b``. ``length`` is the number of digits of the
larger number; generated problems have two numbers of exactly that many digits sharing a random factor, so
that answers other than 1 are common.
"""

from __future__ import annotations

import random
import re

from pydantic import BaseModel, Field

from retune.core.task import Call, Task
from retune.plugins import hookimpl

_PROBLEM = re.compile(r"gcd\(([0-9]+), ([0-9]+)\)")
_LENIENT = re.compile(r"\s*gcd\s*\(\s*([0-9]+)\s*,\s*([0-9]+)\s*\)\s*")
_NUMBER = re.compile(r"[0-9]+")


class GcdProblem(BaseModel):
    a: int = Field(ge=0)
    b: int = Field(ge=0)


def division_step(a: int, b: int) -> str:
    """Euclid's step for ``gcd(a, b)``, written as ``a = q * b + r``."""
    return f"{a} = {a // b} * {b} + {a % b}"


class GcdTask(Task[GcdProblem, int]):
    name = "gcd"
    description = "Greatest common divisor by Euclid's algorithm, one tail call per division step."
    version = "1"
    problem_type = GcdProblem
    min_length = 1
    default_train_lengths = (1, 8)
    default_eval_lengths = (1, 32)

    def generate(self, length: int, rng: random.Random) -> GcdProblem:
        self.check_length(length)
        lo, hi = 10 ** (length - 1), 10**length - 1
        digits = rng.randint(1, max(1, length // 2))
        factor = rng.randint(10 ** (digits - 1), 10**digits - 1)
        a, b = (factor * rng.randint(-(-lo // factor), hi // factor) for _ in range(2))
        return GcdProblem(a=a, b=b)

    def render_problem(self, problem: GcdProblem) -> str:
        return f"gcd({problem.a}, {problem.b})"

    def parse_problem(self, text: str) -> GcdProblem:
        match = _PROBLEM.fullmatch(text) or _LENIENT.fullmatch(text)
        if not match:
            raise ValueError(f"not a gcd problem: {text!r}")
        return GcdProblem(a=int(match[1]), b=int(match[2]))

    def render_answer(self, answer: int) -> str:
        return str(answer)

    def parse_answer(self, text: str) -> int:
        if not _NUMBER.fullmatch(text):
            raise ValueError(f"not a gcd answer: {text!r}")
        return int(text)

    def reference(self, problem: GcdProblem) -> int:
        a, b = problem.a, problem.b
        while b:
            a, b = b, a % b
        return a

    def size(self, problem: GcdProblem) -> int:
        return problem.b

    def length(self, problem: GcdProblem) -> int:
        return len(str(max(problem.a, problem.b)))

    # ---- the recursion: one tail call per division step -----------------------------------------
    def is_base_case(self, problem: GcdProblem) -> bool:
        return problem.b == 0

    def call(self, problem: GcdProblem, returns: list[int]) -> Call | None:
        if returns:
            return None
        a, b = problem.a, problem.b
        return Call(GcdProblem(a=b, b=a % b), before=division_step(a, b) + ". ", tail=True)

    def combine(self, problem: GcdProblem, returns: list[int]) -> int:
        return returns[0]  # unused: the tail call's value is the answer

    def is_tail_call(self, problem: GcdProblem, index: int) -> bool:
        return index == 0 and not self.is_base_case(problem)

    # scratchpad: the division steps, then the answer
    def scratchpad_output(self, problem: GcdProblem) -> str:
        lines, a, b = [], problem.a, problem.b
        while b:
            lines.append(division_step(a, b))
            a, b = b, a % b
        lines.append(self.scratchpad_line(self.render_problem(problem), self.render_answer(a)))
        return "\n".join(lines)


@hookimpl
def register_tasks(register):
    register(GcdTask())
