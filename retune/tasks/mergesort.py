"""Merge sort: two recursive calls per context (the left and the right half), then a merge.

``Sort [5, 1, 4, 2]`` calls ``Sort [5, 1]`` and ``Sort [4, 2]`` and answers the merge of the two sorted
halves it got back, ``[1, 2, 4, 5]``; a one-item list is its own answer. Lists print as Python lists.
"""

from __future__ import annotations

import random
import re

from pydantic import BaseModel, field_validator

from retune.core.task import Call, Task
from retune.core.trace import build_trace, walk_postorder
from retune.plugins import hookimpl
from retune.tasks._lists import parse_list, render_list

LO, HI = 0, 99
_PROBLEM = re.compile(r"Sort (\[.*\])")


class SortProblem(BaseModel):
    items: list[int]

    @field_validator("items")
    @classmethod
    def _nonempty(cls, items: list[int]) -> list[int]:
        if not items:
            raise ValueError("a sort problem needs at least one item")
        return items


def merge(left: list[int], right: list[int]) -> list[int]:
    """The sorted union of two sorted lists."""
    out, i, j = [], 0, 0
    while i < len(left) and j < len(right):
        if right[j] < left[i]:
            out.append(right[j])
            j += 1
        else:
            out.append(left[i])
            i += 1
    return out + left[i:] + right[j:]


class MergesortTask(Task[SortProblem, list[int]]):
    name = "mergesort"
    description = "Merge sort of a list of integers: sort both halves recursively, then merge."
    version = "1"
    problem_type = SortProblem
    min_length = 1
    default_train_lengths = (1, 8)
    default_eval_lengths = (1, 32)

    def generate(self, length: int, rng: random.Random) -> SortProblem:
        self.check_length(length)
        return SortProblem(items=[rng.randint(LO, HI) for _ in range(length)])

    def render_problem(self, problem: SortProblem) -> str:
        return f"Sort {render_list(problem.items)}"

    def parse_problem(self, text: str) -> SortProblem:
        text = text.strip()
        match = _PROBLEM.fullmatch(text)
        return SortProblem(items=parse_list(match[1] if match else text))  # a bare list is a problem too

    def render_answer(self, answer: list[int]) -> str:
        return render_list(answer)

    def parse_answer(self, text: str) -> list[int]:
        values = parse_list(text)
        if not values:
            raise ValueError("empty answer list")
        return values

    def reference(self, problem: SortProblem) -> list[int]:
        return sorted(problem.items)

    def size(self, problem: SortProblem) -> int:
        return len(problem.items)

    # ---- the recursion: left half, right half, merge --------------------------------------------
    def is_base_case(self, problem: SortProblem) -> bool:
        return len(problem.items) == 1

    def call(self, problem: SortProblem, returns: list[list[int]]) -> Call | None:
        half = len(problem.items) // 2
        if len(returns) == 0:
            return Call(SortProblem(items=problem.items[:half]))
        if len(returns) == 1:
            return Call(SortProblem(items=problem.items[half:]))
        return None

    def combine(self, problem: SortProblem, returns: list[list[int]]) -> list[int]:
        return merge(returns[0], returns[1])

    def is_tail_call(self, problem: SortProblem, index: int) -> bool:
        return False

    # scratchpad: every merge, bottom up; single items are their own answers and are left out
    def scratchpad_output(self, problem: SortProblem) -> str:
        trace = build_trace(self, problem)
        merges = [n for n in walk_postorder(trace) if n is trace or n.steps[0].kind == "call"]
        return "\n".join(self.scratchpad_line(n.problem, n.answer) for n in merges)


@hookimpl
def register_tasks(register):
    register(MergesortTask())
