"""Maximum-sum non-adjacent subsequence by dynamic programming (Re-Tuning paper, section 3).

One task with three kinds of problem, as in the paper's three prompt families:

* ``top``: ``Compute the maximum sum of nonadjacent subsequences of [..]``: calls ``dp`` on the list, then
  tail-calls ``chosen`` with the dp array it got back;
* ``dp``: ``Create dp array [..]``: recurses on ``items[1:]``;
* ``chosen``: ``Create chosen indices array: sum array [..], item array [..], can use item True``: recurses
  on the suffixes.

Answers are Python-style lists: the dp array, or 1 (chosen) / 2 (unchosen) flags.
"""

from __future__ import annotations

import random
import re
from typing import Literal

from pydantic import BaseModel, model_validator

from retune.core.task import Answer, Call, Task
from retune.plugins import hookimpl
from retune.tasks._lists import parse_list, render_list

LO, HI = -5, 5
_TOP = re.compile(r"^Compute the maximum sum of nonadjacent subsequences of (\[.*\])$")
_DP = re.compile(r"^Create dp array (\[.*\])$")
_CHOSEN = re.compile(
    r"^Create chosen indices array: sum array (\[.*\]), item array (\[.*\]), can use item (True|False)$"
)

DP_CALL = "Call with array minus first element. "
DP_COMBINE = "Append max(return[0], array[0] + return[1]) to return.\nAnswer: "
DP_BASE = "Return [0] if negative else element.\nAnswer: "
CHOSEN_RULE = "If there is only 1 item, return 1 if we should use it else 2."
CHOSEN_CALL = CHOSEN_RULE + " If we should use the first item to get the sum, call False else True. "
CHOSEN_BASE = CHOSEN_RULE + "\nAnswer: "
BASELINE_WORDING = (
    "Given a sequence of integers, find a subsequence with the highest sum, such that no two numbers in the "
    "subsequence are adjacent in the original sequence.\n\nOutput a list with \"1\" for chosen numbers and "
    "\"2\" for unchosen ones. If multiple solutions exist, select the lexicographically smallest. "
)


class DPProblem(BaseModel):
    kind: Literal["top", "dp", "chosen"] = "top"
    items: list[int]
    sums: list[int] | None = None
    can_use: bool = True

    @model_validator(mode="after")
    def _check(self) -> "DPProblem":
        if not self.items:
            raise ValueError("the item list is empty")
        if (self.kind == "chosen") != (self.sums is not None):
            raise ValueError("exactly the chosen-indices problems carry a sum array")
        if self.sums is not None and len(self.sums) != len(self.items):
            raise ValueError("sum array and item array differ in length")
        return self


def dp_array(items: list[int]) -> list[int]:
    """``dp[i]``: the best non-adjacent sum of ``items[i:]`` (never below 0)."""
    n = len(items)
    dp = [0] * n
    for i in range(n - 1, -1, -1):
        if i == n - 1:
            dp[i] = max(items[i], 0)
        elif i == n - 2:
            dp[i] = max(items[i + 1], items[i], 0)
        else:
            dp[i] = max(dp[i + 1], items[i] + dp[i + 2], 0)
    return dp


def use_first(sums: list[int], items: list[int], can_use: bool) -> bool:
    """Whether the first item is chosen, by the paper's reconstruction rule."""
    rest = sums[2] if len(sums) > 2 else 0
    return can_use and sums[0] == items[0] + rest


def chosen(sums: list[int], items: list[int], can_use: bool) -> list[int]:
    out = []
    for i in range(len(items)):
        use = use_first(sums[i:], items[i:], can_use)
        out.append(1 if use else 2)
        can_use = not use
    return out


class DPTask(Task[DPProblem, list[int]]):
    name = "dp"
    description = "Maximum-sum non-adjacent subsequence (dynamic programming), as 1/2 choice flags."
    version = "1"
    problem_type = DPProblem
    min_length = 1
    default_train_lengths = (1, 5)
    default_eval_lengths = (1, 24)

    def generate(self, length: int, rng: random.Random) -> DPProblem:
        self.check_length(length)
        return DPProblem(items=[rng.randint(LO, HI) for _ in range(length)])

    def render_problem(self, problem: DPProblem) -> str:
        items = render_list(problem.items)
        if problem.kind == "top":
            return f"Compute the maximum sum of nonadjacent subsequences of {items}"
        if problem.kind == "dp":
            return f"Create dp array {items}"
        return (
            f"Create chosen indices array: sum array {render_list(problem.sums)}, item array {items}, "
            f"can use item {problem.can_use}"
        )

    def parse_problem(self, text: str) -> DPProblem:
        text = text.strip()
        if match := _TOP.match(text):
            return DPProblem(items=parse_list(match[1]))
        if match := _DP.match(text):
            return DPProblem(kind="dp", items=parse_list(match[1]))
        if match := _CHOSEN.match(text):
            return DPProblem(
                kind="chosen", sums=parse_list(match[1]), items=parse_list(match[2]), can_use=match[3] == "True"
            )
        return DPProblem(items=parse_list(text))  # a bare list is a top-level problem

    def render_answer(self, answer: list[int]) -> str:
        return render_list(answer)

    def parse_answer(self, text: str) -> list[int]:
        values = parse_list(text)
        if not values:
            raise ValueError("empty answer list")
        return values

    def reference(self, problem: DPProblem) -> list[int]:
        if problem.kind == "dp":
            return dp_array(problem.items)
        if problem.kind == "chosen":
            return chosen(problem.sums, problem.items, problem.can_use)
        return chosen(dp_array(problem.items), problem.items, True)

    def size(self, problem: DPProblem) -> int:
        return len(problem.items) + (problem.kind == "top")

    def length(self, problem: DPProblem) -> int:
        return len(problem.items)

    def is_base_case(self, problem: DPProblem) -> bool:
        return problem.kind != "top" and len(problem.items) == 1

    def base_case(self, problem: DPProblem) -> Answer:
        before = DP_BASE if problem.kind == "dp" else CHOSEN_BASE
        return Answer(self.reference(problem), before)

    def call(self, problem: DPProblem, returns: list[list[int]]) -> Call | None:
        items = problem.items
        if problem.kind == "top":
            if not returns:
                return Call(DPProblem(kind="dp", items=items))
            if len(returns) == 1:
                return Call(DPProblem(kind="chosen", sums=returns[0], items=items, can_use=True), tail=True)
            return None
        if returns:
            return None
        if problem.kind == "dp":
            return Call(DPProblem(kind="dp", items=items[1:]), before=DP_CALL)
        use = use_first(problem.sums, items, problem.can_use)
        sub = DPProblem(kind="chosen", sums=problem.sums[1:], items=items[1:], can_use=not use)
        return Call(sub, before=CHOSEN_CALL)

    def combine(self, problem: DPProblem, returns: list[list[int]]) -> Answer:
        ret = returns[0]
        if problem.kind == "dp":
            best = max(ret[0], problem.items[0] + (ret[1] if len(ret) > 1 else 0))
            return Answer([best] + ret, DP_COMBINE)
        use = use_first(problem.sums, problem.items, problem.can_use)
        return Answer([1 if use else 2] + ret, f"Append 1 if {not use} else 2.\nAnswer: ")

    def is_tail_call(self, problem: DPProblem, index: int) -> bool:
        return problem.kind == "top" and index == 1

    # ---- baseline and scratchpad (paper wording, top-level problems) ----------------------------
    def baseline_prompt(self, problem: DPProblem) -> str:
        if problem.kind != "top":
            return super().baseline_prompt(problem)
        return f"{BASELINE_WORDING}Input = {render_list(problem.items)}.\nAnswer: "

    def scratchpad_prompt(self, problem: DPProblem) -> str:
        if problem.kind != "top":
            return super().scratchpad_prompt(problem)
        return f"Question: Let's solve input = {render_list(problem.items)}.\n"

    def scratchpad_output(self, problem: DPProblem) -> str:
        if problem.kind != "top":
            return super().scratchpad_output(problem)
        a, n = problem.items, len(problem.items)
        dp = dp_array(a)
        lines = [f"dp[{n - 1}] = max(input[{n - 1}], 0) = max({a[n - 1]}, 0) = {dp[n - 1]}"]
        if n > 1:
            i = n - 2
            lines.append(
                f"dp[{i}] = max(input[{i + 1}], input[{i}], 0) = max({a[i + 1]}, {a[i]}, 0) = {dp[i]}"
            )
        for i in range(n - 3, -1, -1):
            lines.append(
                f"dp[{i}] = max(dp[{i + 1}], input[{i}] + dp[{i + 2}], 0) = "
                f"max({dp[i + 1]}, {a[i]} + {dp[i + 2]}, 0) = {dp[i]}"
            )
        lines.append("Reconstruct the lexicographically smallest choice from left to right.")
        lines.append("can_use_next_item = True")
        can_use, out = True, []
        for i in range(n):
            rest = f" + dp[{i + 2}]" if i < n - 2 else ""
            rest_v = f" + {dp[i + 2]}" if i < n - 2 else ""
            use = use_first(dp[i:], a[i:], can_use)
            relation = "==" if dp[i] == a[i] + (dp[i + 2] if i < n - 2 else 0) else "!="
            lines.append(
                f"dp[{i}] {relation} input[{i}]{rest} ({dp[i]} {relation} {a[i]}{rest_v}) and "
                f"can_use_next_item == {can_use}, so output[{i}] = {1 if use else 2}; "
                f"can_use_next_item = {not use}"
            )
            out.append(1 if use else 2)
            can_use = not use
        lines.append(f"Reconstructing all together, output={render_list(out)}.")
        return "\n".join(lines)

    def parse_scratchpad(self, problem: DPProblem, output: str) -> list[int]:
        if problem.kind != "top":
            return super().parse_scratchpad(problem, output)
        match = re.search(r"output=(\[[^\]]*\])\.?\s*$", output)
        if not match:
            raise ValueError("scratchpad does not end with the reconstructed output")
        return self.parse_answer(match[1])


@hookimpl
def register_tasks(register):
    register(DPTask())
