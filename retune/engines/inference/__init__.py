"""Inference engine: model policies for the core solver (batched recursive generation with real models)."""

from retune.engines.inference.policy import (
    GeneratePolicy,
    ModelPolicy,
    PolicyStats,
    load_model,
    load_policy,
)

__all__ = ["GeneratePolicy", "ModelPolicy", "PolicyStats", "load_model", "load_policy"]
