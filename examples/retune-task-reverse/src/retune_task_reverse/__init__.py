"""The ``reverse`` task, a retune task plugin: reverse a word, one letter per recursive call.

``Reverse stone`` calls ``Reverse tone``; once that returns ``enot``, the answer is the returned word followed
by the first letter, ``enots``. A one-letter word is a base case: its own reverse. Words are lowercase
letters ``a``-``z``; a word's length is its number of letters.

    Reverse stone
    Solution: Call: Reverse tone
    Return: enot
    Answer: enots
"""

from __future__ import annotations

import random
import re
import string

from pydantic import BaseModel, field_validator

import retune
from retune import Call, Task

PREFIX = "Reverse "
_WORD = re.compile(r"[a-z]+")


class ReverseProblem(BaseModel):
    word: str

    @field_validator("word")
    @classmethod
    def _letters(cls, word: str) -> str:
        if not _WORD.fullmatch(word):
            raise ValueError("a word is one or more lowercase letters a-z")
        return word


class ReverseTask(Task[ReverseProblem, str]):
    name = "reverse"
    description = "Reverse a word, one letter per call (example plugin package)."
    version = "1"
    problem_type = ReverseProblem
    min_length = 1
    default_train_lengths = (1, 8)
    default_eval_lengths = (1, 32)

    # ---- problems and answers -------------------------------------------------------------------
    def generate(self, length: int, rng: random.Random) -> ReverseProblem:
        self.check_length(length)
        return ReverseProblem(word="".join(rng.choice(string.ascii_lowercase) for _ in range(length)))

    def render_problem(self, problem: ReverseProblem) -> str:
        return PREFIX + problem.word

    def parse_problem(self, text: str) -> ReverseProblem:
        text = text.strip()
        if not text.startswith(PREFIX):
            raise ValueError(f"not a reverse problem: {text!r}")
        return ReverseProblem(word=text[len(PREFIX):])

    def render_answer(self, answer: str) -> str:
        return answer

    def parse_answer(self, text: str) -> str:
        if not _WORD.fullmatch(text):
            raise ValueError(f"not a word: {text!r}")
        return text

    def reference(self, problem: ReverseProblem) -> str:
        return problem.word[::-1]

    def size(self, problem: ReverseProblem) -> int:
        return len(problem.word)

    # ---- the recursion --------------------------------------------------------------------------
    def is_base_case(self, problem: ReverseProblem) -> bool:
        return len(problem.word) == 1

    def call(self, problem: ReverseProblem, returns: list[str]) -> Call | None:
        return None if returns else Call(ReverseProblem(word=problem.word[1:]))

    def combine(self, problem: ReverseProblem, returns: list[str]) -> str:
        return returns[0] + problem.word[0]

    def is_tail_call(self, problem: ReverseProblem, index: int) -> bool:
        return False

    # ---- scratchpad: the reverse of every prefix, in one context ---------------------------------
    def scratchpad_output(self, problem: ReverseProblem) -> str:
        prefixes = [problem.word[:k][::-1] for k in range(1, len(problem.word) + 1)]
        return "Reverse one letter at a time: " + " ".join(prefixes)

    def parse_scratchpad(self, problem: ReverseProblem, output: str) -> str:
        return self.parse_answer(output.strip().rsplit(" ", 1)[-1])


@retune.hookimpl
def register_tasks(register):
    register(ReverseTask())
