"""Registry-wide properties: every registered task, built-in or installed as a plugin, must pass these."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retune.core import text
from retune.core.data import build_records, generate_problems, problem_rng
from retune.core.methods import records_for
from retune.core.oracle import OraclePolicy
from retune.core.solver import Outcome, solve
from retune.core.trace import build_trace, walk
from retune.plugins import get_registry

REGISTRY = get_registry()
TASKS = REGISTRY.names()
MAX_LENGTH = 60
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def problems(task, max_length=MAX_LENGTH):
    """A strategy of generated problems of every length from the task's minimum to ``max_length``."""
    return st.builds(
        lambda length, seed: task.generate(length, problem_rng(seed, task.name, length, 0)),
        st.integers(task.min_length, max_length),
        st.integers(0, 2**32),
    )


def task_of(name):
    return REGISTRY.get(name)


@pytest.fixture(params=TASKS)
def task(request):
    return task_of(request.param)


def test_registry_has_the_paper_tasks():
    assert {"addition", "dp", "parity"} <= set(TASKS)
    assert not REGISTRY.errors


@pytest.mark.parametrize("name", TASKS)
def test_oracle_solver_reproduces_the_reference(name):
    task = task_of(name)

    @SETTINGS
    @given(problems(task))
    def check(problem):
        (solution,) = solve(task, [problem], OraclePolicy(task))
        assert solution.outcome is Outcome.ANSWERED, solution.detail
        assert solution.correct
        assert solution.final == task.format_final(problem, task.reference(problem))
        assert solution.tree == build_trace(task, problem)

    check()


@pytest.mark.parametrize("name", TASKS)
def test_problems_and_answers_round_trip(name):
    task = task_of(name)

    @SETTINGS
    @given(problems(task))
    def check(problem):
        rendered = task.render_problem(problem)
        assert task.parse_problem(rendered) == problem
        answer = task.reference(problem)
        assert task.parse_answer(task.render_answer(answer)) == answer
        assert task.parse_final(problem, task.format_final(problem, answer)) == answer
        for node in walk(build_trace(task, problem)):
            owner = task_of(node.task)
            assert owner.render_problem(owner.parse_problem(node.problem)) == node.problem
            assert owner.render_answer(owner.parse_answer(node.answer)) == node.answer

    check()


@pytest.mark.parametrize("name", TASKS)
def test_every_call_strictly_shrinks_the_problem(name):
    task = task_of(name)

    @SETTINGS
    @given(problems(task))
    def check(problem):
        for node in walk(build_trace(task, problem)):
            owner = task_of(node.task)
            size = owner.size(owner.parse_problem(node.problem))
            for step in node.steps:
                if step.child is not None and step.child.task == node.task:
                    assert owner.size(owner.parse_problem(step.child.problem)) < size
                elif step.child is not None:
                    assert step.child.task in owner.callees

    check()


@pytest.mark.parametrize("name", TASKS)
def test_retuning_records_agree_with_the_trace(name):
    task = task_of(name)

    @SETTINGS
    @given(problems(task, max_length=20))
    def check(problem):
        trace = build_trace(task, problem)
        nodes = list(walk(trace))
        records = records_for(task, problem, "retuning")
        assert len(records) == sum(len(list(n.segments())) for n in nodes)
        by_input = {}
        for node in nodes:
            full = node.context_text()
            for context, output in node.segments():
                by_input[context] = (node, output)
                assert full.startswith(context + output) or node.steps[-1].tail
        for record in records:
            node, output = by_input[record["input"]]
            assert record["output"] == output
            assert record["input"].startswith(text.prompt(node.problem))
            parsed = text.parse_segment(record["output"])
            if isinstance(parsed, text.ParsedCall):
                assert record["output"].endswith("\n")
                assert any(s.output == record["output"] and s.child is not None for s in node.steps)
            else:
                assert parsed.text == node.answer
                assert record["output"] == node.steps[-1].output
        # the root's last segment is its answer, or a tail call whose value is the answer
        last = trace.steps[-1]
        assert (last.kind == "answer") or (last.tail and last.child.answer == trace.answer)

    check()


@pytest.mark.parametrize("name", TASKS)
def test_scratchpad_and_baseline_outputs_are_the_reference(name):
    task = task_of(name)

    @SETTINGS
    @given(problems(task, max_length=30))
    def check(problem):
        reference = task.reference(problem)
        for method, parse in (("scratchpad", task.parse_scratchpad), ("baseline", task.parse_baseline)):
            (record,) = records_for(task, problem, method)
            assert parse(problem, record["output"]) == reference
            assert record["input"] and record["output"]

    check()


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize("method", ["retuning", "scratchpad", "baseline"])
def test_same_seed_gives_the_same_bytes(name, method):
    task = task_of(name)
    lengths = (task.min_length, task.min_length + 4)
    first = json.dumps(build_records(name, method, lengths, 5, seed=7))
    assert first == json.dumps(build_records(name, method, lengths, 5, seed=7))
    assert first != json.dumps(build_records(name, method, lengths, 5, seed=8))
    inputs = [r["input"] for r in json.loads(first)]
    assert len(inputs) == len(set(inputs))


@pytest.mark.parametrize("name", TASKS)
def test_oracle_solves_200_problems_of_length_60(name):
    task = task_of(name)
    problems_ = [p for _, p in generate_problems(task, [MAX_LENGTH], 200, seed=11)]
    solutions = solve(task, problems_, OraclePolicy(task))
    assert len(solutions) == 200
    assert all(s.correct for s in solutions), [s.detail for s in solutions if not s.correct][:3]
