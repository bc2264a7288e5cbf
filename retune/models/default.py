"""The embedded default model: a small LLaMA-architecture causal LM built from a config, never downloaded.

Its size follows a measurement on 2 CPU cores, where updates per minute matter more than width: a 0.5M
parameter, 2-layer model at batch 16 and lr 1e-3 learned where a 1M, 4-layer one at batch 64 did not.
``build_default_model()`` gives about 0.55M parameters (hidden 128, 2 layers, 4 heads, MLP 512) over the
character-level tokenizer of :mod:`retune.models.tokenizer`; the weights are initialised from ``torch``'s
global RNG, so seed it first for reproducible runs. Its config names its position scheme
(``retune_position_scheme``, see :mod:`retune.models.positions`): training and inference must pass those
position ids. Saved with ``save_pretrained``, it loads with plain
``AutoModelForCausalLM.from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from retune.core.errors import RetuneError
from retune.models.positions import CONFIG_KEY
from retune.models.tokenizer import build_tokenizer

# Position ids of the default model (retune.models.positions): line/word/column ids put every copy of a
# recursive call at a constant relative offset, however long the problem (docs/length-generalization.md).
DEFAULT_POSITION_SCHEME = "words"
# The shipped weights of the default model after its task-agnostic pretraining (retune.models.pretraining).
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_ARCHITECTURE = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 4096,
}


def default_config(tokenizer: PreTrainedTokenizerFast, **overrides) -> LlamaConfig:
    """A ``LlamaConfig`` sized for ``tokenizer``; ``overrides`` replace any architecture setting."""
    return LlamaConfig(
        **{
            **DEFAULT_ARCHITECTURE,
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            CONFIG_KEY: DEFAULT_POSITION_SCHEME,
            **overrides,
        }
    )


def build_default_model(**overrides) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A freshly initialised default model and its tokenizer (``overrides`` as in :func:`default_config`)."""
    tokenizer = build_tokenizer(model_max_length=overrides.get("max_position_embeddings", 4096))
    model = LlamaForCausalLM(default_config(tokenizer, **overrides))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_default_model(pretrained: bool = True) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """The default model with its shipped pretrained weights (``pretrained=False``: freshly initialised,
    as :func:`build_default_model`). The weights come from ``python -m retune.models.pretraining --shipped``."""
    if not pretrained:
        return build_default_model()
    if not (PRETRAINED_DIR / "config.json").is_file():
        raise RetuneError(
            "the default model's pretrained weights are missing from the installed package "
            "(rebuild them with: python -m retune.models.pretraining --shipped --out retune/models/pretrained)"
        )
    model = LlamaForCausalLM.from_pretrained(PRETRAINED_DIR)
    tokenizer = build_tokenizer(model_max_length=model.config.max_position_embeddings)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
