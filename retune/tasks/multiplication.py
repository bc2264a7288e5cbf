"""Long multiplication, calling the addition task to add partial products (a cross-task recursion).

A problem ``a * b`` multiplies two digit strings (leading zeros allowed, as in subproblems). Its answer is
the product zero-padded to ``len(a) + len(b)`` digits, the width the product always fits in, so that every
answer has a fixed, predictable shape (``123 * 4`` -> ``0492``); the final answer is the plain product.

The recursion, one digit at a time:

* single-digit multiplier ``a * d`` (``len(a) > 1``): call ``a[1:] * d`` (the multiplicand without its
  leading digit); the returned product's first digit is the carry, so the answer is ``a[0]*d + carry`` as two
  digits followed by the rest of the returned product (``123 * 4`` -> ``Call: 23 * 4`` / ``Return: 092``
  -> ``0492``), as the addition task combines a digit sum with its carry;
* multi-digit multiplier ``a * b``: call ``a * b[:-1]`` and ``a * b[-1]``, then call **addition** on the
  first product shifted one place (``P1`` + ``0``) and the second, both ``len(a) + len(b)`` digits wide; the
  answer is the sum's output::

      12 * 34 -> Call: 12 * 3 / 036 -> Call: 12 * 4 / 048 -> Call: 0360 + 0048 / Carry 0, Output 0408 -> 0408

* base case: two single digits (``7 * 8`` -> ``56``).

``size`` is ``len(a) + len(b)``: every multiplication call removes at least one digit. ``length`` is the
number of digits of the multiplicand; generated multipliers have 1 to ``max_multiplier_digits`` digits.
"""

from __future__ import annotations

import random
import re

from pydantic import BaseModel, model_validator

from retune.core.task import Call, Task
from retune.plugins import hookimpl
from retune.tasks.addition import AdditionAnswer, AdditionProblem

OPERATOR = " * "
_PROBLEM = re.compile(r"([0-9]+)" + re.escape(OPERATOR) + r"([0-9]+)")
_LENIENT = re.compile(r"\s*([0-9]+)\s*[*x×]\s*([0-9]+)\s*")
_DIGITS = re.compile(r"[0-9]+")


class MultiplicationProblem(BaseModel):
    a: str
    b: str

    @model_validator(mode="after")
    def _digits(self) -> "MultiplicationProblem":
        for operand in (self.a, self.b):
            if not _DIGITS.fullmatch(operand):
                raise ValueError("operands must be non-negative integers written in digits")
        return self

    @property
    def width(self) -> int:
        """The number of digits of every answer: the product always fits in ``len(a) + len(b)``."""
        return len(self.a) + len(self.b)


class MultiplicationTask(Task[MultiplicationProblem, str]):
    name = "multiplication"
    description = "Long multiplication, one digit per call, adding partial products with the addition task."
    version = "1"
    problem_type = MultiplicationProblem
    callees = ("addition",)
    min_length = 1
    default_train_lengths = (1, 6)
    default_eval_lengths = (1, 24)

    def __init__(self, max_multiplier_digits: int = 2):
        #: generated multipliers have 1 to this many digits
        self.max_multiplier_digits = max_multiplier_digits

    # ---- problems and answers -------------------------------------------------------------------
    def generate(self, length: int, rng: random.Random) -> MultiplicationProblem:
        self.check_length(length)
        low = 10 ** (length - 1) if length > 1 else 0
        a = rng.randint(low, 10**length - 1)
        digits = rng.randint(1, self.max_multiplier_digits)
        b = rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)
        return MultiplicationProblem(a=str(a), b=str(b))

    def render_problem(self, problem: MultiplicationProblem) -> str:
        return f"{problem.a}{OPERATOR}{problem.b}"

    def parse_problem(self, text: str) -> MultiplicationProblem:
        match = _PROBLEM.fullmatch(text) or _LENIENT.fullmatch(text)
        if not match:
            raise ValueError(f"not a multiplication problem: {text!r}")
        return MultiplicationProblem(a=match[1], b=match[2])

    def render_answer(self, answer: str) -> str:
        return answer

    def parse_answer(self, text: str) -> str:
        if not _DIGITS.fullmatch(text):
            raise ValueError(f"not a multiplication answer: {text!r}")
        return text

    def reference(self, problem: MultiplicationProblem) -> str:
        return str(int(problem.a) * int(problem.b)).zfill(problem.width)

    def size(self, problem: MultiplicationProblem) -> int:
        return problem.width

    def length(self, problem: MultiplicationProblem) -> int:
        return len(problem.a)

    # ---- the recursion --------------------------------------------------------------------------
    def is_base_case(self, problem: MultiplicationProblem) -> bool:
        return len(problem.a) == 1 and len(problem.b) == 1

    def call(self, problem: MultiplicationProblem, returns: list) -> Call | None:
        a, b = problem.a, problem.b
        if len(b) == 1:
            return None if returns else Call(MultiplicationProblem(a=a[1:], b=b))
        if not returns:
            return Call(MultiplicationProblem(a=a, b=b[:-1]))
        if len(returns) == 1:
            return Call(MultiplicationProblem(a=a, b=b[-1]))
        if len(returns) == 2:
            shifted, partial = returns[0] + "0", returns[1].zfill(problem.width)
            return Call(AdditionProblem(a=shifted, b=partial), task="addition")
        return None

    def combine(self, problem: MultiplicationProblem, returns: list) -> str:
        if len(problem.b) == 1:
            rest = returns[0]
            return str(int(problem.a[0]) * int(problem.b) + int(rest[0])).zfill(2) + rest[1:]
        total: AdditionAnswer = returns[-1]
        return total.output

    def is_tail_call(self, problem: MultiplicationProblem, index: int) -> bool:
        return False

    # ---- final answers and scratchpad -----------------------------------------------------------
    def format_final(self, problem: MultiplicationProblem, answer: str) -> str:
        return str(int(answer))

    def parse_final(self, problem: MultiplicationProblem, text: str) -> str:
        if not _DIGITS.fullmatch(text):
            raise ValueError(f"not a number: {text!r}")
        if len(text.lstrip("0")) > problem.width:
            raise ValueError(f"{text} is too large for a product of {len(problem.a)} and {len(problem.b)} digits")
        return text.zfill(problem.width)

    def scratchpad_output(self, problem: MultiplicationProblem) -> str:
        """Every multiplication subproblem with its product, innermost first, in ``<problem> = <product>``
        lines: for each multiplier digit, the products of the multiplicand's suffixes by it, then the running
        product of the multiplier's prefix; the last line is the problem itself."""
        lines = []
        for j, digit in enumerate(problem.b, 1):
            for k in range(len(problem.a) - 1, -1, -1):
                lines.append(self._line(MultiplicationProblem(a=problem.a[k:], b=digit)))
            if j > 1:
                lines.append(self._line(MultiplicationProblem(a=problem.a, b=problem.b[:j])))
        return "\n".join(lines)

    def _line(self, problem: MultiplicationProblem) -> str:
        return self.scratchpad_line(self.render_problem(problem), self.render_answer(self.reference(problem)))


@hookimpl
def register_tasks(register):
    register(MultiplicationTask())
