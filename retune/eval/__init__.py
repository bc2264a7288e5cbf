"""Evaluation by length: ``evaluate(run_dir, ...)``, results.json, plots and the ``retune eval`` command."""

from retune.eval.evaluate import OUTCOMES, evaluate, evaluate_policy, read_run_config

__all__ = ["OUTCOMES", "evaluate", "evaluate_policy", "read_run_config"]
