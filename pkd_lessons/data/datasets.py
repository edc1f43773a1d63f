"""PyTorch datasets over loaded cases: 2D slices for the lessons, 3D crops for the reproduction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import SpatialCrop, SpatialPad
from torch.utils.data import Dataset

from pkd_lessons.data.volumes import CaseVolume


def _channels(volume: CaseVolume, modalities: Sequence[str] | None) -> list[int]:
    if modalities is None:
        return list(range(len(volume.modalities)))
    missing = [m for m in modalities if m not in volume.modalities]
    if missing:
        raise ValueError(f"modalities {missing} not in case {volume.case_id} ({volume.modalities})")
    return [volume.modalities.index(m) for m in modalities]


def _targets(volume: CaseVolume, index: tuple) -> dict[str, torch.Tensor]:
    out = {}
    for key in ("label", "truth"):
        array = getattr(volume, key)
        if array is not None:
            out[key] = torch.from_numpy(np.ascontiguousarray(array[index])).long()
    return out


class SliceDataset(Dataset):
    """2D slices of loaded cases along one axis.

    Each item is a dict: ``image`` ``(C, H, W)`` float tensor of the chosen modalities, ``label``
    (the annotation) and ``truth`` (the scoring reference) as ``(H, W)`` long tensors, ``case`` and
    ``slice``.

    Args:
        volumes: loaded cases.
        modalities: channels to return, e.g. ``("t1ce",)`` for a student; all when None.
        axis: spatial axis to slice along (2: axial for brain, short-axis slices for heart).
        min_foreground: keep slices whose foreground (brain) covers at least this fraction.
    """

    def __init__(
        self,
        volumes: Sequence[CaseVolume],
        modalities: Sequence[str] | None = None,
        axis: int = 2,
        min_foreground: float = 0.05,
    ) -> None:
        if not volumes:
            raise ValueError("SliceDataset needs at least one case")
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
        self.volumes = list(volumes)
        self.axis = axis
        self.channels = [_channels(v, modalities) for v in self.volumes]
        self.modalities = tuple(modalities) if modalities else self.volumes[0].modalities
        self.index: list[tuple[int, int]] = []
        for i, v in enumerate(self.volumes):
            self.index += [(i, int(s)) for s in v.foreground_slices(axis, min_foreground)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict:
        i, s = self.index[item]
        v = self.volumes[i]
        where = [slice(None)] * 3
        where[self.axis] = s
        where = tuple(where)
        image = v.image[(self.channels[i], *where)]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            **_targets(v, where),
            "case": v.case_id,
            "slice": s,
        }


class CropDataset(Dataset):
    """Random 3D crops inside each case's foreground bounding box, as in the reference code.

    Item ``k`` is always the same crop for the same ``seed`` (a fixed random stream per item), so
    that a training run is repeatable whatever the number of data-loader workers. Cases are visited
    in turn; volumes smaller than the crop are zero-padded.

    Args:
        volumes: loaded cases.
        size: crop size, e.g. ``(80, 80, 80)``.
        samples: number of items (crops) in the dataset.
        modalities: channels to return; all when None.
        seed: random seed of the crop positions.
    """

    def __init__(
        self,
        volumes: Sequence[CaseVolume],
        size: Sequence[int],
        samples: int,
        modalities: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        if not volumes:
            raise ValueError("CropDataset needs at least one case")
        if len(size) != 3 or min(size) < 1:
            raise ValueError(f"size must be three positive integers, got {size}")
        self.volumes = list(volumes)
        self.size = tuple(int(s) for s in size)
        self.samples = samples
        self.seed = seed
        self.channels = [_channels(v, modalities) for v in self.volumes]
        self.pad = SpatialPad(self.size, mode="constant")
        self.boxes = []
        for v in self.volumes:
            idx = np.argwhere(v.mask)
            self.boxes.append((idx.min(0), idx.max(0) + 1) if len(idx) else (np.zeros(3, int), np.asarray(v.shape)))

    def __len__(self) -> int:
        return self.samples

    def crop_start(self, item: int) -> tuple[int, tuple[int, int, int]]:
        """Which case item ``item`` cuts from, and the crop's first voxel."""
        i = item % len(self.volumes)
        v = self.volumes[i]
        rng = np.random.default_rng([self.seed, item])
        lo, hi = self.boxes[i]
        start = []
        for a in range(3):
            free = max(int(hi[a] - lo[a]) - self.size[a], 0)
            first = int(lo[a]) + int(rng.integers(free + 1))
            start.append(min(first, max(v.shape[a] - self.size[a], 0)))
        return i, tuple(start)

    def __getitem__(self, item: int) -> dict:
        i, start = self.crop_start(item)
        v = self.volumes[i]
        crop = SpatialCrop(roi_start=start, roi_end=[s + n for s, n in zip(start, self.size)])
        # MONAI's crop and pad return MetaTensors; plain tensors keep the batches light.
        cut = lambda a: self.pad(crop(torch.from_numpy(np.ascontiguousarray(a)))).as_subclass(torch.Tensor)
        out = {"image": cut(v.image[self.channels[i]]).float(), "case": v.case_id, "start": tuple(start)}
        for key in ("label", "truth"):
            array = getattr(v, key)
            if array is not None:
                out[key] = cut(array[None].astype(np.int64))[0]
        return out


def split_cases(items: Sequence, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> list[list]:
    """Split cases into groups (e.g. train / validation / test) at random, by case not by slice.

    Args:
        items: cases or volumes.
        fractions: share of each group; they are normalised to sum to 1. Every group with a
            positive share gets at least one case when there are enough cases.
        seed: random seed.

    Returns:
        One list per fraction.

    Raises:
        ValueError: fewer cases than groups with a positive share.

    Examples:
        Ten cases into 60/20/20 %: every case lands in exactly one group, so no slice of a test
        case is ever seen in training. Three cases still give three non-empty groups:

        >>> train, val, test = split_cases([f"case{i}" for i in range(10)], seed=0)
        >>> len(train), len(val), len(test)
        (6, 2, 2)
        >>> sorted(train + val + test) == sorted(f"case{i}" for i in range(10))
        True
        >>> [len(group) for group in split_cases(["a", "b", "c"])]
        [1, 1, 1]
    """
    fractions = np.asarray(fractions, dtype=float)
    if (fractions < 0).any() or fractions.sum() <= 0:
        raise ValueError(f"fractions must be non-negative and not all zero, got {fractions.tolist()}")
    wanted = int((fractions > 0).sum())
    if len(items) < wanted:
        raise ValueError(f"cannot split {len(items)} cases into {wanted} non-empty groups")
    order = np.random.default_rng(seed).permutation(len(items))
    counts = np.floor(fractions / fractions.sum() * len(items)).astype(int)
    counts[(fractions > 0) & (counts == 0)] = 1
    while counts.sum() > len(items):
        counts[np.argmax(counts)] -= 1
    counts[np.argmax(fractions)] += len(items) - counts.sum()
    groups, start = [], 0
    for n in counts:
        groups.append([items[j] for j in order[start : start + n]])
        start += n
    return groups
