"""Integer addition (Re-Tuning paper, section 2).

Operands are zero-padded to equal length; a k-digit pair calls the (k-1)-digit suffix pair and answers
``Carry c, Output s`` with ``s`` the k-digit sum of the suffixes.
"""

from __future__ import annotations

import random
import re

from pydantic import BaseModel, model_validator

from retune.core.task import Call, Task
from retune.plugins import hookimpl

_PROBLEM = re.compile(r"^(\d+) \+ (\d+)$")
_LENIENT = re.compile(r"^\s*(\d+)\s*\+\s*(\d+)\s*$")
_ANSWER = re.compile(r"^Carry ([01]), Output (\d+)$")


class AdditionProblem(BaseModel):
    a: str
    b: str

    @model_validator(mode="after")
    def _digits(self) -> "AdditionProblem":
        if not (self.a.isdigit() and self.b.isdigit() and self.a.isascii() and self.b.isascii()):
            raise ValueError("operands must be non-negative integers")
        if len(self.a) != len(self.b):
            raise ValueError("operands must be zero-padded to the same length")
        return self


class AdditionAnswer(BaseModel):
    carry: int
    output: str


class AdditionTask(Task[AdditionProblem, AdditionAnswer]):
    name = "addition"
    description = "Addition of two equal-length (zero-padded) integers, one digit per call."
    version = "1"
    problem_type = AdditionProblem
    min_length = 1
    default_train_lengths = (1, 8)
    default_eval_lengths = (1, 32)

    def generate(self, length: int, rng: random.Random) -> AdditionProblem:
        self.check_length(length)
        low = 10 ** (length - 1) if length > 1 else 0
        a, b = (str(rng.randint(low, 10**length - 1)) for _ in range(2))
        return AdditionProblem(a=a, b=b)

    def render_problem(self, problem: AdditionProblem) -> str:
        return f"{problem.a} + {problem.b}"

    def parse_problem(self, text: str) -> AdditionProblem:
        match = _PROBLEM.match(text) or _LENIENT.match(text)
        if not match:
            raise ValueError(f"not an addition problem: {text!r}")
        width = max(len(match[1]), len(match[2]))
        return AdditionProblem(a=match[1].zfill(width), b=match[2].zfill(width))

    def render_answer(self, answer: AdditionAnswer) -> str:
        return f"Carry {answer.carry}, Output {answer.output}"

    def parse_answer(self, text: str) -> AdditionAnswer:
        match = _ANSWER.match(text)
        if not match:
            raise ValueError(f"not an addition answer: {text!r}")
        return AdditionAnswer(carry=int(match[1]), output=match[2])

    def reference(self, problem: AdditionProblem) -> AdditionAnswer:
        n = len(problem.a)
        total = int(problem.a) + int(problem.b)
        return AdditionAnswer(carry=total // 10**n, output=str(total % 10**n).zfill(n))

    def size(self, problem: AdditionProblem) -> int:
        return len(problem.a)

    def is_base_case(self, problem: AdditionProblem) -> bool:
        return len(problem.a) == 1

    def call(self, problem: AdditionProblem, returns: list[AdditionAnswer]) -> Call | None:
        return None if returns else Call(AdditionProblem(a=problem.a[1:], b=problem.b[1:]))

    def combine(self, problem: AdditionProblem, returns: list[AdditionAnswer]) -> AdditionAnswer:
        digit = int(problem.a[0]) + int(problem.b[0]) + returns[0].carry
        return AdditionAnswer(carry=digit // 10, output=str(digit % 10) + returns[0].output)

    def is_tail_call(self, problem: AdditionProblem, index: int) -> bool:
        return False

    # final answers: the plain sum
    def format_final(self, problem: AdditionProblem, answer: AdditionAnswer) -> str:
        return str(answer.carry * 10 ** len(answer.output) + int(answer.output))

    def parse_final(self, problem: AdditionProblem, text: str) -> AdditionAnswer:
        if not text.isdigit():
            raise ValueError(f"not a number: {text!r}")
        n = len(problem.a)
        total = int(text)
        if total >= 2 * 10**n:
            raise ValueError(f"{text} is too large for a sum of two {n}-digit numbers")
        return AdditionAnswer(carry=total // 10**n, output=str(total % 10**n).zfill(n))

    # scratchpad: one Carry/Output line per suffix length 1..n
    def scratchpad_output(self, problem: AdditionProblem) -> str:
        n = len(problem.a)
        lines = []
        for k in range(1, n + 1):
            suffix = AdditionProblem(a=problem.a[n - k :], b=problem.b[n - k :])
            lines.append(self.render_answer(self.reference(suffix)))
        return "\n".join(lines)

    def parse_scratchpad(self, problem: AdditionProblem, output: str) -> AdditionAnswer:
        answer = self.parse_answer(output.rstrip("\n").rsplit("\n", 1)[-1])
        if len(answer.output) != len(problem.a):
            raise ValueError("scratchpad's last line is not the full-length sum")
        return answer


@hookimpl
def register_tasks(register):
    register(AdditionTask())
