"""The recursive solver: batching, tail calls, outcomes and limits, with scripted policies."""

from __future__ import annotations

from retune.core import text
from retune.core.oracle import OraclePolicy, RecordPolicy
from retune.core.data import build_records, generate_problems
from retune.core.solver import Limits, Outcome, Solver, solve
from retune.plugins import get_registry

REG = get_registry()
PARITY = REG.get("parity")
DP = REG.get("dp")


class Recording:
    """Wraps a policy and records every batch it is given."""

    def __init__(self, policy):
        self.policy, self.batches = policy, []

    def __call__(self, contexts):
        self.batches.append(list(contexts))
        return self.policy(contexts)


def parity(bits):
    return PARITY.parse_problem(str(bits))


def test_all_problems_advance_together_in_one_batch_per_round():
    problems = [parity([1, 0, 1]), parity([1, 1]), parity([0])]
    policy = Recording(OraclePolicy(PARITY))
    solutions = solve(PARITY, problems, policy)
    assert [s.final for s in solutions] == ["0", "0", "0"] and all(s.correct for s in solutions)
    assert [len(b) for b in policy.batches] == [3, 2, 2, 1, 1]


def test_tail_call_returns_straight_through():
    problem = DP.parse_problem("[3, -2, 5]")
    policy = Recording(OraclePolicy(DP))
    (solution,) = solve(DP, [problem], policy)
    assert solution.correct and solution.final == "[1, 2, 1]"
    top = [c for b in policy.batches for c in b if c.startswith("Compute")]
    assert len(top) == 2  # no generation after the tail call
    assert solution.tree.steps[-1].tail and solution.tree.answer == "[1, 2, 1]"


def test_malformed_call_and_answer():
    (s,) = solve(PARITY, [parity([1, 0])], lambda cs: ["Call: What is the parity of [0]\n"] * len(cs))
    assert s.outcome is Outcome.MALFORMED and not s.correct
    (s,) = solve(PARITY, [parity([1, 0])], lambda cs: ["banana"] * len(cs))
    assert s.outcome is Outcome.MALFORMED
    (s,) = solve(PARITY, [parity([1, 0])], lambda cs: [""] * len(cs))
    assert s.outcome is Outcome.MALFORMED


def test_cycle_and_not_smaller():
    p = parity([1, 0, 1])
    (s,) = solve(PARITY, [p], lambda cs: [text.call_segment(PARITY.render_problem(p))] * len(cs))
    assert s.outcome is Outcome.CYCLE
    # a call to a larger problem
    big = parity([1, 0, 1, 1])
    (s,) = solve(PARITY, [p], lambda cs: [text.call_segment(PARITY.render_problem(big))] * len(cs))
    assert s.outcome is Outcome.NOT_SMALLER
    # cycle across tasks kinds: dp's top calls "Create dp array" forever with the same list
    dp_call = text.call_segment("Create dp array [1, 2]")
    (s,) = solve(DP, [DP.parse_problem("[1, 2]")], lambda cs: [dp_call] * len(cs))
    assert s.outcome is Outcome.CYCLE


def test_depth_and_call_budget():
    p = parity([1, 0, 1, 1, 0, 1])
    oracle = OraclePolicy(PARITY)
    (s,) = Solver(oracle, Limits(max_depth=3)).solve(PARITY, [p])
    assert s.outcome is Outcome.DEPTH_EXCEEDED
    (s,) = Solver(oracle, Limits(max_calls=2)).solve(PARITY, [p])
    assert s.outcome is Outcome.BUDGET_EXCEEDED
    (s,) = Solver(lambda cs: ["1" * 50] * len(cs), Limits(max_segment_chars=10)).solve(PARITY, [p])
    assert s.outcome is Outcome.BUDGET_EXCEEDED


def test_default_limits_allow_exactly_the_reference_with_room():
    p = parity([1] * 30)
    (s,) = solve(PARITY, [p], OraclePolicy(PARITY))
    assert s.correct and s.calls == 29 and s.segments == 59


def test_wrong_answers_are_answered_but_not_correct():
    flip = OraclePolicy(PARITY)

    def policy(contexts):  # only the top context answers wrongly
        return [
            {"0": "1", "1": "0"}.get(o, o) if c.startswith("What is the parity of [1, 1, 0]") else o
            for c, o in zip(contexts, flip(contexts))
        ]

    (s,) = solve(PARITY, [parity([1, 1, 0])], policy)
    assert s.outcome is Outcome.ANSWERED and not s.correct and s.expected == "0"


def test_single_context_methods_use_the_record_formats():
    for method in ("scratchpad", "baseline"):
        problems = [p for _, p in generate_problems(DP, (2, 6), 5, seed=3)]
        records = build_records("dp", method, (2, 6), 5, seed=3)
        solutions = solve(DP, problems, RecordPolicy(records), method=method)
        assert all(s.correct for s in solutions)
        (bad,) = solve(DP, problems[:1], lambda cs: ["nonsense"] * len(cs), method=method)
        assert bad.outcome is Outcome.MALFORMED
