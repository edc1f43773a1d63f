"""What both phantoms share: the generated case, per-case tissue variation, scanner units."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class PhantomCase:
    """One generated case, in memory.

    Attributes:
        images: modality -> ``int16`` volume in scanner units.
        label: the rater's label, in the data set's own values.
        truth: the clean label, in the data set's own values.
        affine: voxel-to-world matrix.
        info: provenance (rater, lesion or infarct size and site), written to the set's manifest.
        tissues: tissue fractions on the grid, kept in memory for inspection and tests, not written.
    """

    images: dict[str, np.ndarray]
    label: np.ndarray
    truth: np.ndarray
    affine: np.ndarray
    info: dict
    tissues: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def stored(self, modalities: Iterable[str], layout: str, name: str) -> dict[str, np.ndarray]:
        """The images a data set's layout stores, in its order; any other simulated sequence is left out.

        Args:
            modalities: the layout's modalities.
            layout: its name, for the message.
            name: the case's name, for the message.

        Raises:
            ValueError: a modality the layout stores was not simulated.
        """
        modalities = tuple(modalities)
        missing = [m for m in modalities if m not in self.images]
        if missing:
            raise ValueError(
                f"{name}: the {layout} layout stores {', '.join(missing)}, which the phantom did not simulate"
            )
        return {m: self.images[m] for m in modalities}


def vary_tissues(
    table: dict[str, dict[str, float]], rng: np.random.Generator, sd: float, fixed: Iterable[str] = ()
) -> dict[str, dict[str, float]]:
    """Multiply every tissue property by ``exp(N(0, sd))``: no two patients are quite alike.

    Args:
        table: tissue -> property -> value.
        rng: random generator.
        sd: relative spread (0.05 is about 5 %).
        fixed: properties left as they are (e.g. contrast uptake, set by the lesion model).
    """
    fixed = set(fixed)
    return {
        name: {k: v if k in fixed else v * float(np.exp(rng.normal(0.0, sd))) for k, v in props.items()}
        for name, props in table.items()
    }


def scanner_units(signal: np.ndarray, reference: float, rng: np.random.Generator, gain_sd: float = 0.2) -> np.ndarray:
    """Scale a signal so that ``reference`` reads about 1000, with a random per-scan gain, as ``int16``.

    Real scanners store arbitrary units that differ between scans; this is why intensities are
    normalised per case before training.
    """
    gain = 1000.0 / reference * float(np.exp(rng.normal(0.0, gain_sd)))
    return np.clip(signal * gain, 0, 32767).round().astype(np.int16)
