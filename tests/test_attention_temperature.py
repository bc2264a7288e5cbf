"""benchmarks/attention_temperature.py: a sharper attention past the training range, 1 inside it."""

from __future__ import annotations

import math

import torch
from transformers import DynamicCache

import retune.engines.inference.policy as policy_module
from retune.engines.training import TrainConfig, train
from retune.plugins import get_registry


def test_the_factor_is_one_in_range_and_grows_with_the_log_of_the_length_past_it(benchmark_script):
    script = benchmark_script("attention_temperature")
    addition = get_registry().get("addition")
    assert script._factor(addition, "1234 + 5678\nSolution: ", 8, 0.1) == 1.0
    assert script._factor(addition, "1" * 16 + " + " + "2" * 16 + "\nSolution: ", 8, 0.1) == 1 + 0.1 * math.log(2)
    assert script._factor(addition, "What is the parity of [1, 0]?\nSolution: ", 8, 0.1) == 1.0  # not addition's


def test_a_run_in_range_is_unchanged_and_the_engine_is_restored(tmp_path, tiny_model_dir, benchmark_script):
    script = benchmark_script("attention_temperature")
    torch.manual_seed(0)
    run = train(TrainConfig(tasks=["parity"], method="retuning", lengths=(1, 3), per_length=8,
                            model=str(tiny_model_dir), out=tmp_path / "run", finetune="full", lr=1e-2,
                            max_steps=30, progress=False))
    generate, select = policy_module.ModelPolicy._generate_batch, DynamicCache.batch_select_indices
    rows = script.measure(str(run), "3,6", 6, [0.0, 5.0])
    assert rows[0]["accuracy"]["3"] == rows[1]["accuracy"]["3"] and rows[0]["errors"]["3"] == rows[1]["errors"]["3"]
    assert policy_module.ModelPolicy._generate_batch is generate and DynamicCache.batch_select_indices is select
