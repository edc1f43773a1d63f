"""The loss log of a run: every term per step, kept on the device and read back in one transfer."""

from __future__ import annotations

import math
from collections import defaultdict

import torch

from pkd_lessons.errors import TrainingError


class LossLog:
    """Loss terms per step, and the steps' other numbers (learning rate, validation scores).

    A step's terms stay on the device (:meth:`add`) until the history is read (:meth:`read`), so
    that no step waits for the host; they are then checked and copied back in one transfer.

    Args:
        name: the run's name in messages (its method).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._history: dict[str, list[float]] = defaultdict(list)
        self._pending: list[tuple[tuple[str, ...], torch.Tensor]] = []
        self.diverged: int | None = None  # the step whose loss (or weights) was not finite

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        """Keep one step's loss terms (detached tensors on the device) until the next read."""
        self._pending.append((tuple(terms), torch.stack([v.float() for v in terms.values()])))

    def note(self, key: str, value: float) -> None:
        """Append a number known on the host (the learning rate, a validation score) to the history."""
        self._history[key].append(value)

    def read(self, step: int) -> dict[str, list[float]]:
        """Every term per step, as floats, after checking those not yet read (see :meth:`check_finite`)."""
        self.check_finite(step)
        self._record(self._pending)
        self._pending = []
        return self._history

    def restore(self, history: dict[str, list[float]]) -> None:
        """Start again from a stored history (a resumed run); terms not yet read are dropped."""
        self._history = defaultdict(list, {k: list(v) for k, v in history.items()})
        self._pending.clear()

    def _record(self, pending: list[tuple[tuple[str, ...], torch.Tensor]]) -> None:
        if pending:
            rows = torch.stack([t for _, t in pending]).cpu().tolist()
            for (keys, _), row in zip(pending, rows):
                for k, v in zip(keys, row):
                    self._history[k].append(v)

    def check_finite(self, step: int) -> None:
        """Refuse loss values that are not finite, naming the first such step and its terms.

        The terms of the steps since the last read are checked in one transfer from the device. A
        run whose loss is NaN or infinite has weights that are no longer usable: it must stop, not
        go on to write them into a checkpoint.

        Args:
            step: the run's current step (the last one added).

        Raises:
            TrainingError: a term is NaN or infinite (the message names the step and the term).
        """
        if not self._pending or bool(torch.isfinite(torch.cat([t for _, t in self._pending])).all()):
            return
        first = step - len(self._pending)
        for i, (keys, row) in enumerate(self._pending):
            bad = [f"{k} = {v}" for k, v in zip(keys, row.tolist()) if not math.isfinite(v)]
            if bad:
                good, self._pending = self._pending[:i], []  # the error is raised once
                self._record(good)  # the steps before it stay in the history
                self.diverged = first + i + 1
                raise TrainingError(
                    f"step {first + i + 1} of {self.name}: loss term {', '.join(bad)}: "
                    "training stopped (a lower --lr, another seed or checking the data may help)"
                )
