"""The training engine: ``train(TrainConfig(...), records=None) -> run_dir``, and the ``retune train`` command.

See :mod:`retune.engines.training.trainer` for the loop and the multi-GPU launch command,
:mod:`~retune.engines.training.modeling` for what a run dir holds, :mod:`~retune.engines.training.data`
for masking and batching, :mod:`~retune.engines.training.focus` for the extra examples drawn by hardness, and
:mod:`~retune.engines.training.checkpoint` for checkpoints and resuming.
``train`` is imported on first use, so that the command line starts without loading torch.
"""

from retune.engines.training.config import TrainConfig, make_config

__all__ = ["TrainConfig", "make_config", "train"]


def __getattr__(name: str):
    if name == "train":
        from retune.engines.training.trainer import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
