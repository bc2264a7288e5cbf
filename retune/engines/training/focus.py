"""Hard-example focus: extra examples in every micro-batch, drawn by how hard they were when last trained.

A recursive task's records are mostly easy once its format is learned; the decisions that are still wrong
(a sum in a combine, a flag in a call) sit in a few records whose one decisive token the model still misses,
and a uniform epoch shows them as rarely as the easy ones. With ``focus = K`` (:class:`TrainConfig.focus`)
every micro-batch gets ``K`` more examples, drawn with replacement from the task's examples trained so far
(never a replayed pretraining record: those keep generic skills at their own share) that are no longer than
the micro-batch's longest (so they add no padding), each in proportion to its *hardness* the last time it was
trained: 0 when the model's most likely next token was the right one at every supervised token (greedy decoding
would have written it), else the largest next-token loss among them (a record is right only when every token
is, so its hardest token says how far it is from right). So only examples the model still gets wrong are drawn,
and a step adds nothing once every example that fits it was right when last trained; a drawn example is trained
and its hardness updated like any other, so one that has been learned stops being drawn. The epochs' own
batches are unchanged: every example is still trained once per epoch.

The draw is a function of the seed, the step and the hardnesses, which every process keeps in full (the
step's hardnesses are gathered from all processes), so all processes draw the same extras; the hardnesses are
saved with every checkpoint, so a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

from pathlib import Path

import torch

from retune.core.errors import RetuneError

FILE = "hardness.pt"
SEED_BASE = 7_919  # keeps the focus generator's seeds apart from other seeded streams of the same run


def example_hardness(token_loss: torch.Tensor, supervised: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """Each row's largest loss over its supervised tokens where some supervised token is ``wrong`` (the model's
    most likely token is not the label), else 0."""
    losses = torch.where(supervised, token_loss.detach().float(), torch.zeros_like(token_loss, dtype=torch.float))
    return torch.where((wrong & supervised).any(dim=1), losses.amax(dim=1), losses.new_zeros(len(losses)))


class Focus:
    """The hardness of every example (0: never trained yet) and the draw of each step's extras; ``lengths`` are
    the examples' lengths in tokens, ``eligible`` which of them may be drawn (default: all)."""

    def __init__(self, lengths: list[int], per_batch: int, seed: int, eligible: list[bool] | None = None):
        self.lengths = torch.tensor(lengths, dtype=torch.long)
        self.eligible = torch.ones(len(lengths), dtype=torch.bool) if eligible is None else torch.tensor(eligible)
        self.hardness = torch.zeros(len(lengths), dtype=torch.float64)
        self.per_batch = per_batch
        self.seed = seed

    def draw(self, step: int, widths: list[int]) -> list[list[int]]:
        """The positions of the extra examples of each of the step's micro-batches, whose longest examples are
        ``widths`` tokens long (none for a micro-batch while no example that fits it has been trained)."""
        generator = torch.Generator().manual_seed(SEED_BASE * (self.seed + 1) + step)
        extras = []
        for width in widths:
            fits = (self.lengths <= width) & self.eligible
            weights = torch.where(fits, self.hardness, torch.zeros_like(self.hardness))
            if not bool((weights > 0).any()):
                extras.append([])
                continue
            extras.append(torch.multinomial(weights, self.per_batch, replacement=True, generator=generator).tolist())
        return extras

    def update(self, positions: list[int], values: torch.Tensor) -> None:
        """Record the hardness just measured of the examples at ``positions`` (a position drawn twice in one step
        keeps its last value)."""
        self.hardness[torch.tensor(positions, dtype=torch.long)] = values.detach().to("cpu", torch.float64)

    def save(self, directory: Path) -> None:
        torch.save(self.hardness, directory / FILE)

    def load(self, directory: Path) -> None:
        path = directory / FILE
        if not path.is_file():
            raise RetuneError(f"checkpoint {directory} holds no example hardness to resume a focused run from")
        hardness = torch.load(path)
        if hardness.shape != self.hardness.shape:
            raise RetuneError(f"checkpoint {directory} was trained on another number of examples")
        self.hardness = hardness
