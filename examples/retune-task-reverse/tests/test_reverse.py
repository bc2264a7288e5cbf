"""Tests of the reverse task: retune's protocol checks and golden examples."""

from importlib.metadata import entry_points

import pytest

from retune.core.methods import records_for
from retune.core.trace import build_trace
from retune.testing import check_task
from retune_task_reverse import ReverseTask


def test_short_words_pass_the_protocol_checks():
    check_task(ReverseTask(), lengths=range(1, 13), per_length=4)


@pytest.mark.parametrize("seed", range(3))
def test_long_words_pass_the_protocol_checks(seed):
    check_task(ReverseTask(), lengths=[30, 60], per_length=1, seed=seed)


def test_golden_trace_and_records():
    task = ReverseTask()
    problem = task.parse_problem("Reverse abc")
    context = build_trace(task, problem).context_text()
    assert context == "Reverse abc\nSolution: Call: Reverse bc\nReturn: cb\nAnswer: cba"
    assert [(r["input"], r["output"]) for r in records_for(task, problem, "retuning")] == [
        ("Reverse abc\nSolution: ", "Call: Reverse bc\n"),
        ("Reverse abc\nSolution: Call: Reverse bc\nReturn: cb\nAnswer: ", "cba"),
        ("Reverse bc\nSolution: ", "Call: Reverse c\n"),
        ("Reverse bc\nSolution: Call: Reverse c\nReturn: c\nAnswer: ", "cb"),
        ("Reverse c\nSolution: ", "c"),
    ]
    (scratchpad,) = records_for(task, problem, "scratchpad")
    assert scratchpad["output"] == "Reverse one letter at a time: a ba cba"
    (baseline,) = records_for(task, problem, "baseline")
    assert (baseline["input"], baseline["output"]) == ("Reverse abc\nAnswer: ", "cba")


@pytest.mark.parametrize("text", ["Reverse ", "Reverse Abc", "Reverse ab1", "reverse abc", "abc"])
def test_malformed_problems_are_refused(text):
    with pytest.raises(ValueError):
        ReverseTask().parse_problem(text)


def test_registered_through_the_entry_point():
    if not any(ep.name == "reverse" for ep in entry_points(group="retune")):
        pytest.skip("the package is not installed (pip install ./examples/retune-task-reverse)")
    from retune.plugins import get_registry

    registry = get_registry()
    assert registry.get("reverse").name == "reverse", registry.errors
    assert registry.plugins["reverse"].distribution == "retune-task-reverse"
