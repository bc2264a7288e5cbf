"""retune's own models: the character-level tokenizer and the small default LLaMA-architecture model."""

from retune.models.default import DEFAULT_ARCHITECTURE, build_default_model, default_config, load_default_model
from retune.models.tokenizer import build_tokenizer

__all__ = ["DEFAULT_ARCHITECTURE", "build_default_model", "build_tokenizer", "default_config", "load_default_model"]
