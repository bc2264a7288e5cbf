"""The text protocol of calls and returns: the single place where its markers are written or read.

A *context* starts with the problem's prompt and grows by generated *segments* and engine-written returns::

    73199 + 21439\\nSolution: Call: 3199 + 1439\\nReturn: Carry 0, Output 4638\\nAnswer: Carry 0, Output 94638
    `-------- prompt --------'`-- call segment ---'`------------ return ----------------'`--- answer segment ---'

A call segment is ``<before>Call: <problem>\\n`` (then the model emits EOS); an answer segment is
``<before><answer>``, where a non-empty ``before`` ends with ``Answer: ``. Training records and inference
contexts are both built from these functions, so the two can never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SOLUTION = "\nSolution: "
CALL = "Call: "
RETURN = "Return: "
ANSWER = "Answer: "

_CALL_RE = re.compile(r"^(?P<before>.*?)" + re.escape(CALL) + r"(?P<text>[^\n]*)\n$", re.DOTALL)


def prompt(problem_text: str) -> str:
    """The opening of a fresh context for a problem."""
    return problem_text + SOLUTION


def call_segment(problem_text: str, before: str = "") -> str:
    """What the model writes to call itself on ``problem_text``."""
    return f"{before}{CALL}{problem_text}\n"


def return_text(answer_text: str) -> str:
    """What the engine appends to a parent context once its call returned ``answer_text``."""
    return f"{RETURN}{answer_text}\n{ANSWER}"


def answer_segment(answer_text: str, before: str = "") -> str:
    """What the model writes to answer the problem of its context."""
    return before + answer_text


@dataclass(frozen=True)
class ParsedCall:
    before: str
    text: str


@dataclass(frozen=True)
class ParsedAnswer:
    before: str
    text: str


def parse_segment(segment: str) -> ParsedCall | ParsedAnswer:
    """Split a generated segment into a call or an answer (the answer text is still task-specific)."""
    match = _CALL_RE.match(segment)
    if match:
        return ParsedCall(match["before"], match["text"])
    cut = segment.rfind(ANSWER)
    if cut >= 0:
        cut += len(ANSWER)
        return ParsedAnswer(segment[:cut], segment[cut:])
    return ParsedAnswer("", segment)


def problem_of_context(context: str) -> str:
    """The problem text a context was opened with."""
    head, sep, _ = context.partition(SOLUTION)
    if not sep:
        raise ValueError("context has no Solution marker")
    return head
