"""The input path of training: slices stacked in one tensor, placed once, drawn by index.

**Batches** (:class:`SliceBank`). Indexing one stacked tensor is much cheaper than a ``DataLoader``
assembling dicts slice by slice, and it makes batch order a function of one random generator, so
runs repeat exactly and resume exactly. The frozen teacher's outputs for the same slices can be
cached once (:func:`teacher_cache`); :mod:`pkd_lessons.training.augment` transforms the images and
the cached outputs together.

**Placement** (:class:`BatchFeed`). A training step on a GPU takes a few milliseconds; assembling
its batch on the CPU and copying it synchronously can take longer than that, and then the GPU
waits. So the stacked training slices (``float16`` images, ``uint8`` labels) and the teacher's
cached outputs are placed once:

* ``"device"``: on the compute device, when they fit in a fraction of its free memory (always on
  the CPU); a batch is then one ``index_select`` per tensor, no copy at all;
* ``"pinned"``: in page-locked host memory otherwise (e.g. real BraTS at 1 mm); a batch is gathered
  into a pinned buffer and copied with ``non_blocking=True``, so the copy overlaps the previous
  step's kernels. PyTorch's caching host allocator keeps a buffer alive until its copy is done.
  It also rounds each pinned block up to a power of two, so pinned data may take up to twice
  their size in host memory; the trainer keeps no second, pageable copy.

Batches are stored in the compact dtypes and converted to ``float32`` / ``int64`` on the device.
For 3D training, :class:`CropFeed` does the same with whole volumes and cuts each crop on the
device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from pkd_lessons.data.datasets import CropDataset
from pkd_lessons.data.volumes import CaseVolume
from pkd_lessons.training.config import PLACEMENTS


@dataclass
class SliceBank:
    """Stacked 2D slices of a set of cases, zero-padded to one size.

    Attributes:
        images: ``(N, C, H, W)`` ``float16`` (normalised intensities), all modalities.
        labels: ``(N, H, W)`` ``uint8`` annotation (rater's label) classes.
        modalities: channel names.
        origin: ``(N, 2)`` case index and slice index of each slice.
    """

    images: torch.Tensor
    labels: torch.Tensor
    modalities: tuple[str, ...]
    origin: np.ndarray

    @classmethod
    def from_volumes(
        cls,
        volumes: Sequence[CaseVolume],
        axis: int = 2,
        min_foreground: float = 0.05,
        multiple: int = 8,
        target: str = "label",
    ) -> SliceBank:
        """Stack the slices (along ``axis``) whose foreground covers at least ``min_foreground``.

        Slices are padded to a multiple of ``multiple`` (the networks' down-sampling factor), so that
        the networks need no padding of their own and a flip of a slice flips its teacher outputs,
        bottleneck included, exactly. ``target`` chooses what ``labels`` holds: ``"label"`` (the
        annotation, what every method learns from) or ``"truth"`` (the clean truth: the positive control).

        Raises:
            ValueError: no volumes, volumes without labels, or modalities that differ between cases.
        """
        if not volumes:
            raise ValueError("no training cases")
        mods = volumes[0].modalities
        if any(v.modalities != mods for v in volumes):
            raise ValueError("all cases must have the same modalities")
        if target not in ("label", "truth"):
            raise ValueError(f"target must be 'label' or 'truth', got {target!r}")
        if any(getattr(v, target) is None for v in volumes):
            raise ValueError(
                f"training needs a {target}; case(s) without: "
                + ", ".join(v.case_id for v in volumes if getattr(v, target) is None)
            )
        planes = [tuple(np.delete(np.asarray(v.shape), axis)) for v in volumes]
        h, w = (-(-max(p[i] for p in planes) // multiple) * multiple for i in range(2))
        images, labels, origin = [], [], []
        for c, v in enumerate(volumes):
            keep = v.foreground_slices(axis, min_foreground)
            img = np.moveaxis(v.image, axis + 1, 1)[:, keep]  # (C, n, a, b)
            lab = np.moveaxis(getattr(v, target), axis, 0)[keep]  # (n, a, b)
            pad = ((0, 0), (0, 0), (0, h - img.shape[2]), (0, w - img.shape[3]))
            images.append(np.pad(img, pad).transpose(1, 0, 2, 3))
            labels.append(np.pad(lab, pad[1:]))
            origin += [(c, int(s)) for s in keep]
        return cls(
            torch.from_numpy(np.concatenate(images)).half(),
            torch.from_numpy(np.concatenate(labels)).to(torch.uint8),
            mods,
            np.asarray(origin),
        )

    def __len__(self) -> int:
        return len(self.images)

    def channels(self, modalities: Sequence[str]) -> list[int]:
        """Indices of the given modalities."""
        return [self.modalities.index(m) for m in modalities]


@dataclass
class TeacherOutputs:
    """The frozen teacher's outputs for every slice of a :class:`SliceBank`.

    Attributes:
        logits: ``(N, K, H, W)`` ``float16``.
        features: ``(N, C, H, W)`` ``float16`` last decoder features (what the projection head embeds;
            spatial, so they are flipped and warped together with the slice).
        bottleneck: ``(N, C', h, w)`` ``float16`` deepest features (used by KD-Net), or None.
    """

    logits: torch.Tensor
    features: torch.Tensor
    bottleneck: torch.Tensor | None


@torch.no_grad()
def teacher_cache(
    teacher: nn.Module,
    bank: SliceBank,
    device: torch.device,
    batch_size: int = 32,
    bottleneck: bool = False,
    autocast=None,
    progress: bool = True,
) -> TeacherOutputs:
    """Run the frozen teacher once over every slice of ``bank``.

    Args:
        teacher: the teacher (its input channels are the bank's modalities).
        bank: the training slices.
        device: where to run.
        batch_size: slices per forward pass.
        bottleneck: also keep the bottleneck features (needed by KD-Net).
        autocast: a precision context factory (``Precision.autocast``), or None.
        progress: show a progress bar.

    Returns:
        :class:`TeacherOutputs` on the CPU.
    """
    teacher.eval()
    logits, features, deep = [], [], []
    for start in tqdm(
        range(0, len(bank), batch_size), desc="teacher cache", unit="batch", disable=not progress, leave=False
    ):
        x = bank.images[start : start + batch_size].to(device).float()
        with autocast(device) if autocast else torch.autocast(device.type, enabled=False):
            out = teacher.forward_all(x)
        logits.append(out["logits"].half().cpu())
        features.append(out["features"].half().cpu())
        if bottleneck:
            deep.append(out["bottleneck"].half().cpu())
    return TeacherOutputs(torch.cat(logits), torch.cat(features), torch.cat(deep) if bottleneck else None)


#: Compute dtype of each entry, after the transfer.
COMPUTE_DTYPES = {
    "images": torch.float32,
    "labels": torch.int64,
    "t_logits": torch.float32,
    "t_features": torch.float32,
    "t_bottleneck": torch.float32,
}


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def choose_placement(
    nbytes: int, device: torch.device, request: str = "auto", headroom: float = 0.5, free_bytes: int | None = None
) -> str:
    """Where the training tensors go.

    Args:
        nbytes: their total size.
        device: the compute device.
        request: ``"auto"``, ``"device"`` or ``"pinned"``.
        headroom: ``auto`` puts them on a GPU only if they take at most this fraction of its free
            memory (the rest is for the networks' activations).
        free_bytes: free device memory (for tests; queried from CUDA otherwise).

    Returns:
        ``"device"`` or ``"pinned"``.

    Raises:
        ValueError: unknown request, or ``"pinned"`` for a device that has no separate memory.
    """
    if request not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {request!r}")
    if device.type != "cuda":
        if request == "pinned":
            raise ValueError(f"placement 'pinned' needs a CUDA device; on {device.type} the data stay in memory")
        return "device"
    if request != "auto":
        return request
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(device)
    return "device" if nbytes <= headroom * free_bytes else "pinned"


@dataclass
class BatchFeed:
    """The training tensors, placed for one device; :meth:`draw` returns a batch on that device.

    Attributes:
        tensors: name -> ``(N, ...)`` tensor (``images``, ``labels``, optionally ``t_logits``,
            ``t_features``, ``t_bottleneck``), in storage dtypes.
        device: the compute device.
        placement: ``"device"`` or ``"pinned"``.
    """

    tensors: dict[str, torch.Tensor]
    device: torch.device
    placement: str

    @classmethod
    def build(
        cls,
        bank: SliceBank,
        cached: TeacherOutputs | None,
        device: torch.device,
        placement: str = "auto",
        bottleneck: bool = False,
        free_bytes: int | None = None,
        features: bool = True,
    ) -> BatchFeed:
        """Place a slice bank (and the teacher's cached outputs) for ``device``.

        Args:
            bank: the training slices.
            cached: the teacher's outputs for them, or None.
            device: compute device.
            placement: see :func:`choose_placement`.
            bottleneck: keep the teacher's bottleneck features (KD-Net).
            features: keep the teacher's last feature maps (what the contrastive loss embeds).
            free_bytes: free device memory (tests).
        """
        tensors = {"images": bank.images, "labels": bank.labels}
        if cached is not None:
            tensors["t_logits"] = cached.logits
            if features:
                tensors["t_features"] = cached.features
            if bottleneck:
                tensors["t_bottleneck"] = cached.bottleneck
        where = choose_placement(_nbytes(tensors.values()), device, placement, free_bytes=free_bytes)
        if where == "device":
            tensors = {k: v.to(device) for k, v in tensors.items()}
        else:
            tensors = {k: v.pin_memory() for k, v in tensors.items()}
        return cls(tensors, device, where)

    @property
    def nbytes(self) -> int:
        """Bytes held (on the device or pinned)."""
        return _nbytes(self.tensors.values())

    def __len__(self) -> int:
        return len(self.tensors["images"])

    def draw(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The samples ``index`` (a CPU ``int64`` tensor) as a batch on the device, in compute dtypes."""
        out = {}
        if self.placement == "device":
            index = index.to(self.device, non_blocking=True)
            for k, v in self.tensors.items():
                out[k] = v.index_select(0, index).to(COMPUTE_DTYPES[k])
        else:
            pin = self.device.type == "cuda"  # (unpinned only where no GPU exists: the logic's tests)
            for k, v in self.tensors.items():
                staging = torch.empty((len(index), *v.shape[1:]), dtype=v.dtype, pin_memory=pin)
                torch.index_select(v, 0, index, out=staging)
                out[k] = staging.to(self.device, non_blocking=True).to(COMPUTE_DTYPES[k])
        return out


@dataclass
class CropFeed:
    """3D training: the whole training volumes placed for the device; crops cut there.

    The crop positions are :class:`~pkd_lessons.data.datasets.CropDataset`'s (same seed, same crops);
    the crops differ from it only by the ``float16`` storage of the images.

    Attributes:
        crops: where the crops are.
        images: per case ``(C, X, Y, Z)`` ``float16``.
        labels: per case ``(X, Y, Z)`` ``uint8``.
        device: the compute device.
        placement: ``"device"`` or ``"pinned"``.
    """

    crops: CropDataset
    images: list[torch.Tensor]
    labels: list[torch.Tensor]
    device: torch.device
    placement: str

    @classmethod
    def build(
        cls, crops: CropDataset, device: torch.device, placement: str = "auto", free_bytes: int | None = None
    ) -> CropFeed:
        """Place the volumes of ``crops`` (see :func:`choose_placement`).

        Raises:
            ValueError: a volume without its label.
        """
        if any(v.label is None for v in crops.volumes):
            raise ValueError(
                "training needs labels; case(s) without: "
                + ", ".join(v.case_id for v in crops.volumes if v.label is None)
            )
        images = [torch.from_numpy(v.image[ch]).half() for v, ch in zip(crops.volumes, crops.channels)]
        labels = [torch.from_numpy(v.label) for v in crops.volumes]
        where = choose_placement(_nbytes(images + labels), device, placement, free_bytes=free_bytes)
        move = (lambda t: t.to(device)) if where == "device" else (lambda t: t.pin_memory())
        return cls(crops, [move(t) for t in images], [move(t) for t in labels], device, where)

    @property
    def nbytes(self) -> int:
        """Bytes held (on the device or pinned)."""
        return _nbytes(self.images + self.labels)

    def _cut(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, start = self.crops.crop_start(item)
        where = tuple(slice(s, s + n) for s, n in zip(start, self.crops.size))
        image, label = self.images[i][(slice(None), *where)], self.labels[i][where]
        short = [n - d for n, d in zip(self.crops.size, label.shape)]
        if any(short):  # zero padding split evenly before and after, as MONAI's SpatialPad does
            pad = [p for d in reversed(short) for p in (d // 2, d - d // 2)]
            image, label = F.pad(image, pad), F.pad(label, pad)
        return image, label

    def draw(self, items: range) -> dict[str, torch.Tensor]:
        """Crops ``items`` of the crop sequence as a batch on the device, in compute dtypes."""
        images, labels = zip(*(self._cut(k) for k in items))
        images, labels = torch.stack(images), torch.stack(labels)
        if self.placement == "pinned":
            images = images.pin_memory().to(self.device, non_blocking=True)
            labels = labels.pin_memory().to(self.device, non_blocking=True)
        return {"images": images.float(), "labels": labels.long()}
