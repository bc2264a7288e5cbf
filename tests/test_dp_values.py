"""benchmarks/dp_values.py: how far DP's values reach past those of its training range."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from retune.tasks.dp import HI, LO, dp_array

def test_dp_values_prints_the_share_of_problems_past_the_range_by_length(run_benchmark):
    done = run_benchmark("dp_values", "--train", "1-5", "--lengths", "5,20", "--n", "300")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["length"] for row in rows] == [5, 20]
    assert all(row["training_bound"] == 15 and row["training_seen"] <= 15 for row in rows)
    assert rows[0]["share_above_bound"] == 0  # a problem in range never exceeds the bound
    assert rows[1]["share_above_bound"] > 0.5 and rows[1]["median"] > rows[0]["median"]


def test_dp_values_rejects_bad_lengths_in_one_line(run_benchmark):
    done = run_benchmark("dp_values", "--train", "5-x")
    assert done.returncode == 2 and "expected --train LO-HI" in done.stderr.strip().splitlines()[-1]


@given(st.lists(st.integers(LO, HI), min_size=1, max_size=5))
def test_no_problem_in_the_range_holds_a_dp_value_above_the_bound(items):
    assert max(dp_array(items)) <= HI * ((5 + 1) // 2)
