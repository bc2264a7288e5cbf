"""Parity of the number of 1s in a bit list (Re-Tuning paper, section 4). Recurses on ``bits[1:]``."""

from __future__ import annotations

import random
import re

from pydantic import BaseModel, field_validator

from retune.core.task import Call, Task
from retune.plugins import hookimpl
from retune.tasks._lists import parse_list, render_list

_PROBLEM = re.compile(r"^What is the parity of (\[.*\])\?$")


class ParityProblem(BaseModel):
    bits: list[int]

    @field_validator("bits")
    @classmethod
    def _bits(cls, bits: list[int]) -> list[int]:
        if not bits:
            raise ValueError("a parity problem needs at least one bit")
        if any(b not in (0, 1) for b in bits):
            raise ValueError("parity bits must be 0 or 1")
        return bits


class ParityTask(Task[ParityProblem, int]):
    name = "parity"
    description = "Parity of the number of 1s in a list of bits."
    version = "1"
    problem_type = ParityProblem
    min_length = 1
    default_train_lengths = (1, 10)
    default_eval_lengths = (1, 50)

    def generate(self, length: int, rng: random.Random) -> ParityProblem:
        self.check_length(length)
        return ParityProblem(bits=[rng.randint(0, 1) for _ in range(length)])

    def render_problem(self, problem: ParityProblem) -> str:
        return f"What is the parity of {render_list(problem.bits)}?"

    def parse_problem(self, text: str) -> ParityProblem:
        text = text.strip()
        match = _PROBLEM.match(text)
        return ParityProblem(bits=parse_list(match[1] if match else text))

    def render_answer(self, answer: int) -> str:
        return str(answer)

    def parse_answer(self, text: str) -> int:
        if text not in ("0", "1"):
            raise ValueError(f"not a parity answer: {text!r}")
        return int(text)

    def reference(self, problem: ParityProblem) -> int:
        return sum(problem.bits) % 2

    def size(self, problem: ParityProblem) -> int:
        return len(problem.bits)

    def is_base_case(self, problem: ParityProblem) -> bool:
        return len(problem.bits) == 1

    def call(self, problem: ParityProblem, returns: list[int]) -> Call | None:
        return None if returns else Call(ParityProblem(bits=problem.bits[1:]))

    def combine(self, problem: ParityProblem, returns: list[int]) -> int:
        return problem.bits[0] ^ returns[0]

    def is_tail_call(self, problem: ParityProblem, index: int) -> bool:
        return False

    # scratchpad: the running parity of every prefix
    def scratchpad_output(self, problem: ParityProblem) -> str:
        running, steps = 0, []
        for bit in problem.bits:
            running ^= bit
            steps.append(str(running))
        return "Compute one element at a time. " + " ".join(steps)

    def parse_scratchpad(self, problem: ParityProblem, output: str) -> int:
        return self.parse_answer(output.strip().rsplit(" ", 1)[-1])


@hookimpl
def register_tasks(register):
    register(ParityTask())
