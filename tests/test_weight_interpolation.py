"""benchmarks/weight_interpolation.py: a run's weights moved toward its base model, and evaluated."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from retune.engines.training import TrainConfig, train
from retune.eval.evaluate import evaluate


def test_interpolated_weights_lie_between_base_and_run_and_alpha_one_is_the_run(tmp_path, tiny_model_dir,
                                                                             benchmark_script):
    script = benchmark_script("weight_interpolation")
    base = tiny_model_dir
    run = train(TrainConfig(tasks=["parity"], method="retuning", lengths=(1, 3), per_length=8, model=str(base),
                            out=tmp_path / "run", finetune="full", lr=1e-2, max_steps=30, progress=False,
                            seed=3))
    assert script.base_dir(run) == base

    tuned, pretrained = load_file(run / "model.safetensors"), load_file(base / "model.safetensors")
    half = load_file(script.interpolate(run, base, 0.5, tmp_path / "half") / "model.safetensors")
    assert any(not torch.equal(tuned[name], pretrained[name]) for name in tuned)
    for name in tuned:
        torch.testing.assert_close(half[name], (tuned[name] + pretrained[name]) / 2)
    zero = load_file(script.interpolate(run, base, 0.0, tmp_path / "zero") / "model.safetensors")
    assert all(torch.equal(zero[name], pretrained[name]) for name in tuned)

    rows = script.measure(str(run), "2,5", 5, [1.0])
    plain = evaluate(run, "2,5", 5)
    assert rows[0]["seed"] == 3 and rows[0]["accuracy"] == {k: v["accuracy"] for k, v in plain["by_length"].items()}
    assert rows[0]["errors"] == {k: v["errors"] for k, v in plain["by_length"].items()}
