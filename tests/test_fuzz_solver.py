"""Adversarial policies through the real solver, for every registered task.

A hypothesis-driven policy answers each context with anything a broken model could write: random text,
malformed or unparsable calls, calls to the context's own problem or to larger ones, calls to other tasks,
endless valid calls, empty and enormous outputs, wrong answers, non-strings, and now and then the reference
segment (so recursion really happens). Every problem must end with a classified outcome, nothing may escape
``solve``, and the work stays bounded. The evaluation's tree analysis must digest every tree too.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pydantic import BaseModel

from retune.core import text
from retune.core.oracle import OraclePolicy
from retune.core.solver import Limits, Outcome, Solver, reference_bounds
from retune.core.task import Call, Task
from retune.eval.analysis import TreeChecker, visited_contexts
from retune.plugins import get_registry
from retune.testing import _registry_with

# ---- a task that tail-calls itself but may call another task: the tail value must be its own answer ------
class _WrapProblem(BaseModel):
    n: int


class _WrapTask(Task):
    """``wrap n`` tail-calls ``wrap n-1``; it may also call ``addition``, whose answers it cannot render."""

    name = "wrap"
    problem_type = _WrapProblem
    callees = ("addition",)

    def generate(self, length, rng):
        return _WrapProblem(n=length)

    def render_problem(self, problem):
        return f"wrap {problem.n}"

    def parse_problem(self, text_):
        if not text_.startswith("wrap ") or not text_[5:].isdigit():
            raise ValueError(text_)
        return _WrapProblem(n=int(text_[5:]))

    def render_answer(self, answer):
        return f"value {answer['v']}"  # raises on anything but its own answers

    def parse_answer(self, text_):
        if not text_.startswith("value "):
            raise ValueError(text_)
        return {"v": text_[6:]}

    def reference(self, problem):
        return {"v": str(problem.n)}

    def size(self, problem):
        return problem.n

    def is_base_case(self, problem):
        return problem.n == 1

    def call(self, problem, returns):
        return None if returns else Call(_WrapProblem(n=problem.n - 1), tail=True)

    def combine(self, problem, returns):
        return returns[0]



INSTALLED = get_registry()
REGISTRY = _registry_with(_WrapTask(), INSTALLED)  # every installed task, and one tail-calling across tasks
TASKS = REGISTRY.names()
assert set(INSTALLED.names()) < set(TASKS)


KINDS = (
    "reference", "reference", "reference", "random_text", "empty", "huge", "huge_call", "garbage_call",
    "self_call", "larger_call", "smaller_call", "other_task_call", "before_call", "call_then_more",
    "answer_valid", "answer_wrong", "answer_other", "answer_prefixed", "markers", "not_a_string",
)
ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs",))
MARKERS = [text.CALL, text.RETURN, text.ANSWER, text.SOLUTION, "\n", "[", "]", ", ", "Carry 1, Output ", " + "]


def _task_of_context(context: str, tasks):
    """The task and problem a context was opened with (as the solver wrote it), or ``(None, None)``."""
    try:
        problem_text = text.problem_of_context(context)
    except ValueError:
        return None, None
    for task in tasks:
        try:
            problem = task.parse_problem(problem_text)
        except Exception:
            continue
        if task.render_problem(problem) == problem_text:
            return task, problem
    return None, None


class AdversarialPolicy:
    """Draws, for every context, what kind of output to write and its details from hypothesis ``data``."""

    def __init__(self, data, task, max_calls: int):
        self.data = data
        self.task = task
        self.tasks = [task] + [REGISTRY.get(name) for name in task.callees]
        self.oracle = OraclePolicy(task, REGISTRY)
        self.invocations = 0
        self.segments = 0
        self.max_calls = max_calls

    def __call__(self, contexts):
        self.invocations += 1
        # a runaway solver would keep asking: fail loudly instead of exhausting hypothesis' data
        assert self.invocations <= 4 * self.max_calls + 20, "the solver keeps asking for segments"
        self.segments += len(contexts)
        return [self._one(context) for context in contexts]

    def _one(self, context: str):
        kind = self.data.draw(st.sampled_from(KINDS), label="kind")
        task, problem = _task_of_context(context, self.tasks)
        rng = random.Random(self.data.draw(st.integers(0, 2**16), label="rng"))
        if kind == "reference":
            return self.oracle([context])[0]
        if kind == "random_text":
            return self.data.draw(st.text(ALPHABET, max_size=60), label="text")
        if kind == "empty":
            return ""
        if kind == "huge":
            return "9" * self.data.draw(st.sampled_from([4096, 4097, 20_000]), label="size")
        if kind == "huge_call":
            return text.CALL + "1" * 5000 + "\n"
        if kind == "garbage_call":
            return text.CALL + self.data.draw(st.text(ALPHABET, max_size=30).filter(lambda s: "\n" not in s)) + "\n"
        if kind == "markers":
            parts = self.data.draw(st.lists(st.sampled_from(MARKERS), max_size=8), label="markers")
            return "".join(parts)
        if kind == "not_a_string":
            return self.data.draw(st.sampled_from([None, 7, b"Call: x\n", ["0"]]), label="value")
        if task is None:
            return "?"
        size = task.length(problem)
        if kind == "self_call":
            return text.call_segment(task.render_problem(problem))
        if kind == "larger_call":
            bigger = task.generate(size + rng.randint(1, 3), rng)
            return text.call_segment(task.render_problem(bigger))
        if kind == "smaller_call":  # a valid, shrinking call: endless recursion when repeated
            if size <= task.min_length:
                return text.call_segment(task.render_problem(problem))
            smaller = task.generate(rng.randint(task.min_length, size - 1), rng)
            return text.call_segment(task.render_problem(smaller))
        if kind == "other_task_call":
            other = REGISTRY.get(rng.choice(TASKS))
            return text.call_segment(other.render_problem(other.generate(rng.randint(1, 3), rng)))
        if kind == "before_call":
            return "Thinking... " + text.call_segment(task.render_problem(task.generate(max(1, size), rng)))
        if kind == "call_then_more":
            return text.call_segment(task.render_problem(problem)) + "more text"
        if kind == "answer_other":  # a well-formed answer, of another problem
            return task.render_answer(task.reference(task.generate(max(size, task.min_length), rng)))
        if kind in ("answer_valid", "answer_wrong", "answer_prefixed"):
            answer = task.render_answer(task.reference(problem))
            if kind == "answer_wrong":
                answer = answer[::-1] + "0"
            if kind == "answer_prefixed":
                return "Some reasoning.\n" + text.ANSWER + answer
            return answer
        raise AssertionError(kind)


def _problems(task, rng: random.Random, count: int):
    return [task.generate(rng.randint(task.min_length, task.min_length + 4), rng) for _ in range(count)]


@pytest.mark.parametrize("task_name", TASKS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), seed=st.integers(0, 10_000), count=st.integers(1, 4),
       limits=st.sampled_from([None, Limits(max_depth=3, max_calls=5, max_segment_chars=200),
                               Limits(max_depth=1), Limits(max_calls=0), Limits(max_segment_chars=10)]))
def test_adversarial_policy_always_ends_with_a_classified_outcome(task_name, data, seed, count, limits):
    task = REGISTRY.get(task_name)
    problems = _problems(task, random.Random(seed), count)
    bounds = [reference_bounds(task, p, REGISTRY) for p in problems]
    max_calls = [
        (limits.max_calls if limits and limits.max_calls is not None else 4 * calls + 8) for _, calls in bounds
    ]
    policy = AdversarialPolicy(data, task, max(max_calls))
    solutions = Solver(policy, limits, REGISTRY).solve(task, problems)

    assert len(solutions) == len(problems)
    checker = TreeChecker(lambda name: REGISTRY.get(name), REGISTRY)
    for problem, solution, cap in zip(problems, solutions, max_calls):
        assert isinstance(solution.outcome, Outcome)
        assert solution.calls <= cap + 1
        # each segment makes a call, answers a context (at most one per call, plus the top) or ends the run
        assert solution.segments <= 2 * (cap + 1) + 1
        if solution.outcome is Outcome.ANSWERED:
            assert solution.answer is not None and solution.final is not None and solution.detail is None
            assert solution.correct == (task.parse_answer(solution.answer) == task.reference(problem))
        else:
            assert not solution.correct and solution.answer is None and solution.detail
        # the evaluation's analysis reads every tree the solver can produce
        per_call = checker.per_call(solution.tree)
        assert per_call["right"] + per_call["unfinished"] <= per_call["nodes"]
        error = checker.first_error(solution.tree)  # (a right answer may still come by another path)
        if not solution.correct:
            assert error is not None and error["kind"] in ("wrong_call", "wrong_base_case", "wrong_combine")
        assert visited_contexts(solution)
    assert policy.invocations <= max(s.segments for s in solutions)
    assert policy.segments == sum(s.segments for s in solutions)


@pytest.mark.parametrize("method", ["scratchpad", "baseline"])
@settings(max_examples=30, deadline=None)
@given(outputs=st.lists(st.one_of(st.text(ALPHABET, max_size=40), st.none(), st.just("9" * 5000)), min_size=1,
                        max_size=5))
def test_adversarial_single_context_outputs(method, outputs):
    for name in TASKS:
        task = REGISTRY.get(name)
        problems = _problems(task, random.Random(len(outputs)), len(outputs))
        solutions = Solver(lambda contexts: list(outputs[: len(contexts)]), None, REGISTRY).solve(
            task, problems, method)
        assert [s.segments for s in solutions] == [1] * len(problems)
        for s in solutions:
            assert isinstance(s.outcome, Outcome)
            assert s.outcome in (Outcome.ANSWERED, Outcome.MALFORMED, Outcome.BUDGET_EXCEEDED)


def test_endless_valid_calls_end_in_budget_or_depth():
    """A policy that always calls a valid smaller problem, never answering, must be stopped by the limits."""
    for name in TASKS:
        task = REGISTRY.get(name)
        problem = task.generate(task.min_length + 3, random.Random(0))
        asked = []

        def policy(contexts):
            asked.append(len(contexts))
            out = []
            for context in contexts:
                t, p = _task_of_context(context, [task] + [REGISTRY.get(c) for c in task.callees])
                if t is None or t.length(p) <= t.min_length:
                    out.append(text.call_segment(task.render_problem(problem)))  # a cycle or not smaller
                else:
                    out.append(text.call_segment(t.render_problem(t.generate(t.length(p) - 1, random.Random(1)))))
            return out

        solution = Solver(policy, None, REGISTRY).solve(task, [problem])[0]
        assert solution.outcome in (Outcome.DEPTH_EXCEEDED, Outcome.BUDGET_EXCEEDED, Outcome.CYCLE,
                                    Outcome.NOT_SMALLER, Outcome.MALFORMED)
        assert len(asked) <= 2 * 40


def test_tail_call_to_another_task_returning_a_foreign_answer_is_malformed():
    """Regression: a tail call into a callee task passed the callee's answer up as the caller's own, and the
    caller's ``render_answer`` raised out of ``solve`` (TypeError)."""
    registry = REGISTRY
    task = registry.get("wrap")

    def policy(contexts):
        return [text.call_segment("1 + 2") if c.startswith("wrap") else "Carry 0, Output 3" for c in contexts]

    solution = Solver(policy, None, registry).solve(task, [_WrapProblem(n=3)])[0]
    assert solution.outcome is Outcome.MALFORMED and "tail call returned" in solution.detail
    checker = TreeChecker(registry.get, registry)
    assert checker.first_error(solution.tree)["kind"] == "wrong_call"
    assert checker.per_call(solution.tree) == {"nodes": 2, "right": 1, "unfinished": 1}  # the addition was right

    # a tail value the caller can read is passed up as the caller's answer
    def readable(contexts):
        return [text.call_segment("wrap 1") if c.startswith("wrap 3") else "value 3" for c in contexts]

    solution = Solver(readable, None, registry).solve(task, [_WrapProblem(n=3)])[0]
    assert solution.correct and solution.final == "value 3"
