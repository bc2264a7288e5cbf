"""The tasks beyond the paper: multiplication (calls addition), mergesort (two calls), gcd (tail calls)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retune.core.methods import records_for
from retune.core.oracle import OraclePolicy
from retune.core.solver import Outcome, solve
from retune.core.trace import build_trace, walk
from retune.plugins import get_registry
from retune.tasks.gcd import GcdProblem
from retune.tasks.mergesort import SortProblem
from retune.tasks.multiplication import MultiplicationProblem, MultiplicationTask
from retune.testing import check_problem, check_task

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NEW_TASKS = ("multiplication", "mergesort", "gcd")


def task(name):
    return get_registry().get(name)


def pairs(task_, problem):
    return [(r["input"], r["output"]) for r in records_for(task_, problem, "retuning")]


# ---- all three ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NEW_TASKS)
def test_registered_through_the_entry_point_group(name):
    registry = get_registry()
    assert name in registry.names()
    info = registry.plugins[name]
    assert info.distribution == "retune" and info.tasks == [name] and info.error is None


@pytest.mark.parametrize("name", NEW_TASKS)
def test_pass_the_protocol_checks(name):
    check_task(task(name), lengths=range(1, 9), per_length=2)
    check_task(task(name), lengths=[25, 60], per_length=1, seed=3)


@pytest.mark.parametrize("name", NEW_TASKS)
def test_generate_draws_only_from_rng_and_gives_the_asked_length(name):
    t = task(name)
    for length in (1, 2, 7, 60):
        first = t.generate(length, random.Random(length))
        random.seed(0)  # the global generator must not matter
        assert t.generate(length, random.Random(length)) == first
        assert t.length(first) == length


@pytest.mark.parametrize("name", NEW_TASKS)
@pytest.mark.parametrize("bad", ["", "hello", "[1, 2", "3 + 4"])
def test_malformed_problems_are_refused(name, bad):
    with pytest.raises(ValueError):
        task(name).parse_problem(bad)


# ---- multiplication -----------------------------------------------------------------------------------
def test_multiplication_single_digit_multiplier_golden():
    t = task("multiplication")
    problem = t.parse_problem("123 * 4")
    assert pairs(t, problem) == [
        ("123 * 4\nSolution: ", "Call: 23 * 4\n"),
        ("123 * 4\nSolution: Call: 23 * 4\nReturn: 092\nAnswer: ", "0492"),
        ("23 * 4\nSolution: ", "Call: 3 * 4\n"),
        ("23 * 4\nSolution: Call: 3 * 4\nReturn: 12\nAnswer: ", "092"),
        ("3 * 4\nSolution: ", "12"),
    ]
    assert t.format_final(problem, t.reference(problem)) == "492"
    assert t.scratchpad_output(problem) == "3 * 4 = 12\n23 * 4 = 092\n123 * 4 = 0492"
    (baseline,) = records_for(t, problem, "baseline")
    assert (baseline["input"], baseline["output"]) == ("123 * 4\nAnswer: ", "492")


def test_multiplication_calls_addition_to_add_partial_products():
    t = task("multiplication")
    problem = t.parse_problem("12 * 34")
    trace = build_trace(t, problem)
    assert trace.context_text() == (
        "12 * 34\nSolution: Call: 12 * 3\nReturn: 036\nAnswer: Call: 12 * 4\nReturn: 048\n"
        "Answer: Call: 0360 + 0048\nReturn: Carry 0, Output 0408\nAnswer: 0408"
    )
    assert [s.child.task for s in trace.steps if s.child] == ["multiplication", "multiplication", "addition"]
    records = records_for(t, problem, "retuning")
    assert {r["task"] for r in records} == {"multiplication", "addition"}
    assert ("0360 + 0048\nSolution: ", "Call: 360 + 048\n") in [(r["input"], r["output"]) for r in records]
    (solution,) = solve(t, [problem], OraclePolicy(t))
    assert solution.correct and solution.final == "408"
    assert t.scratchpad_output(problem).split("\n") == [
        "2 * 3 = 06", "12 * 3 = 036", "2 * 4 = 08", "12 * 4 = 048", "12 * 34 = 0408",
    ]


@SETTINGS
@given(st.integers(0, 10**12), st.integers(0, 10**4), st.integers(0, 2), st.integers(0, 2))
def test_multiplication_is_the_product(a, b, pad_a, pad_b):
    t = MultiplicationTask(max_multiplier_digits=5)
    problem = MultiplicationProblem(a="0" * pad_a + str(a), b="0" * pad_b + str(b))
    check_problem(t, problem)
    assert t.format_final(problem, t.reference(problem)) == str(a * b)
    assert any(n.task == "addition" for n in walk(build_trace(t, problem))) == (len(problem.b) > 1)


def test_multiplication_generates_one_and_two_digit_multipliers():
    t = task("multiplication")
    widths = {len(t.generate(10, random.Random(seed)).b) for seed in range(40)}
    assert widths == {1, 2}
    assert MultiplicationTask(max_multiplier_digits=3).generate(10, random.Random(0)).b


@pytest.mark.parametrize("text, a, b", [("12x34", "12", "34"), (" 7 × 8 ", "7", "8"), ("007 * 3", "007", "3")])
def test_multiplication_parses_lenient_spellings(text, a, b):
    assert task("multiplication").parse_problem(text) == MultiplicationProblem(a=a, b=b)


@pytest.mark.parametrize("bad", ["12 *", "-1 * 3", "1.5 * 2", "12 * 3\n5", "١٢ * 3"])
def test_multiplication_refuses_non_digit_operands(bad):
    with pytest.raises(ValueError):
        task("multiplication").parse_problem(bad)


def test_multiplication_final_answers():
    t = task("multiplication")
    problem = t.parse_problem("99 * 99")
    assert t.parse_final(problem, "9801") == "9801" and t.parse_final(problem, "0") == "0000"
    for bad in ("10000", "98x", ""):
        with pytest.raises(ValueError):
            t.parse_final(problem, bad)
    with pytest.raises(ValueError):
        t.parse_answer("0492\n")


# ---- mergesort ----------------------------------------------------------------------------------------
def test_mergesort_calls_both_halves_then_merges():
    t = task("mergesort")
    problem = t.parse_problem("Sort [5, 1, 4, 2]")
    trace = build_trace(t, problem)
    assert trace.context_text() == (
        "Sort [5, 1, 4, 2]\nSolution: Call: Sort [5, 1]\nReturn: [1, 5]\n"
        "Answer: Call: Sort [4, 2]\nReturn: [2, 4]\nAnswer: [1, 2, 4, 5]"
    )
    assert pairs(t, problem)[:2] == [
        ("Sort [5, 1, 4, 2]\nSolution: ", "Call: Sort [5, 1]\n"),
        ("Sort [5, 1, 4, 2]\nSolution: Call: Sort [5, 1]\nReturn: [1, 5]\nAnswer: ", "Call: Sort [4, 2]\n"),
    ]
    assert pairs(t, SortProblem(items=[7])) == [("Sort [7]\nSolution: ", "[7]")]
    assert t.scratchpad_output(problem).split("\n") == [
        "Sort [5, 1] = [1, 5]", "Sort [4, 2] = [2, 4]", "Sort [5, 1, 4, 2] = [1, 2, 4, 5]",
    ]
    assert t.scratchpad_output(SortProblem(items=[7])) == "Sort [7] = [7]"
    (baseline,) = records_for(t, problem, "baseline")
    assert (baseline["input"], baseline["output"]) == ("Sort [5, 1, 4, 2]\nAnswer: ", "[1, 2, 4, 5]")


@SETTINGS
@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=40))
def test_mergesort_sorts_any_list(items):
    t = task("mergesort")
    problem = SortProblem(items=items)
    check_problem(t, problem)
    trace = build_trace(t, problem)
    assert t.parse_answer(trace.answer) == sorted(items)
    if len(items) > 1:
        halves = [t.parse_problem(s.child.problem).items for s in trace.steps if s.child]
        assert halves == [items[: len(items) // 2], items[len(items) // 2 :]]


def test_mergesort_accepts_a_bare_list():
    assert task("mergesort").parse_problem("[3, 1, 2]") == SortProblem(items=[3, 1, 2])
    with pytest.raises(ValueError):
        task("mergesort").parse_problem("Sort []")


# ---- gcd --------------------------------------------------------------------------------------------
def test_gcd_tail_calls_return_straight_through():
    t = task("gcd")
    problem = t.parse_problem("gcd(84, 36)")
    trace = build_trace(t, problem)
    assert [(s.kind, s.tail) for s in trace.steps] == [("call", True)]  # nothing generated after the call
    assert trace.context_text() == "gcd(84, 36)\nSolution: 84 = 2 * 36 + 12. Call: gcd(36, 12)\nReturn: 12\nAnswer: "
    assert pairs(t, problem) == [
        ("gcd(84, 36)\nSolution: ", "84 = 2 * 36 + 12. Call: gcd(36, 12)\n"),
        ("gcd(36, 12)\nSolution: ", "36 = 3 * 12 + 0. Call: gcd(12, 0)\n"),
        ("gcd(12, 0)\nSolution: ", "12"),
    ]
    (solution,) = solve(t, [problem], OraclePolicy(t))
    assert solution.outcome is Outcome.ANSWERED and solution.final == "12" and solution.calls == 2
    assert t.scratchpad_output(problem) == "84 = 2 * 36 + 12\n36 = 3 * 12 + 0\ngcd(84, 36) = 12"
    assert t.is_tail_call(problem, 0) and not t.is_tail_call(t.parse_problem("gcd(5, 0)"), 0)


def test_gcd_smaller_first_swaps_in_one_step():
    t = task("gcd")
    assert pairs(t, GcdProblem(a=36, b=84))[0][1] == "36 = 0 * 84 + 36. Call: gcd(84, 36)\n"
    assert t.reference(GcdProblem(a=0, b=0)) == 0
    assert pairs(t, GcdProblem(a=0, b=0)) == [("gcd(0, 0)\nSolution: ", "0")]


@SETTINGS
@given(st.integers(0, 10**25), st.integers(0, 10**25))
def test_gcd_is_euclids(a, b):
    t = task("gcd")
    problem = GcdProblem(a=a, b=b)
    check_problem(t, problem)
    assert t.reference(problem) == math.gcd(a, b)
    assert all(s.tail for n in walk(build_trace(t, problem)) for s in n.steps if s.kind == "call")


def test_gcd_generated_answers_are_often_not_one():
    t = task("gcd")
    answers = [t.reference(t.generate(12, random.Random(seed))) for seed in range(50)]
    assert sum(answer > 1 for answer in answers) > 25


def test_gcd_parses_lenient_spacing():
    assert task("gcd").parse_problem(" gcd( 84 ,36 ) ") == GcdProblem(a=84, b=36)
    with pytest.raises(ValueError):
        task("gcd").parse_problem("gcd(-4, 2)")
