"""Data-parallel training over several processes with PyTorch's own runtime (``torchrun``, DDP).

``torchrun --nproc-per-node N -m pkd_lessons train ...`` starts N processes (ranks); each holds a
replica of the network. One step of a run with global batch ``B`` on N ranks:

1. Every rank draws the same global batch from the run's seeded generator (the same crops, slices and
   augmentation as a single process would draw) and keeps its shard of ``B / N`` samples.
2. Each rank runs the network on its shard, then gathers every rank's outputs (with autograd: the
   gradients go back to the rank that made them) and computes the losses on the whole global
   batch, exactly as one process would: the losses of the method are batch-level (the class
   weights and Dice sums of ``L_seg``, the normalisation of ``L_rkd``, the negative pairs of
   ``L_image`` span the batch).
3. DDP averages the gradients over the ranks. Each rank's gradient is N times its share of the
   global gradient (every rank backpropagates the same global loss, and the gather sums the
   gradients of a shard over the ranks), so the average is the single-process gradient.

The network, the optimiser and the generator are the same on every rank, so a checkpoint (written by
rank 0 alone, atomically) resumes on any number of ranks. Dropout draws from a generator seeded by
(seed, step, rank) at every step, so that a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

#: Environment variables torchrun sets for every rank.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the processes of one run.

    Attributes:
        rank: this process's index, 0 to ``world - 1`` (0 writes the files and the logs).
        world: the number of processes.
        local_rank: its index on this machine (the GPU it uses).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the rank that writes checkpoints, histories and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when the run spans more than one process."""
        return self.world > 1

    def shard(self, batch_size: int) -> slice:
        """This rank's part of a global batch of ``batch_size`` samples.

        Raises:
            ValueError: the batch does not divide evenly among the ranks.
        """
        if batch_size % self.world:
            raise ValueError(
                f"batch size {batch_size} does not divide among {self.world} processes: use a multiple of {self.world}"
            )
        size = batch_size // self.world
        return slice(self.rank * size, (self.rank + 1) * size)


def ranks_from_env() -> Ranks:
    """The ranks torchrun describes in the environment (a single process when it is not set).

    Raises:
        ValueError: the variables are inconsistent.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of a run")
    return Ranks(rank, world, local)


def init_ranks(device: str = "auto") -> tuple[Ranks, str]:
    """Join the process group torchrun set up, and choose this rank's device.

    Args:
        device: the device request of the command line (``"auto"``, ``"cpu"``, ``"cuda"``...).

    Returns:
        The ranks, and the device for this rank: ``cuda:LOCAL_RANK`` where CUDA is asked for (or
        chosen by ``"auto"``); the backend is NCCL on CUDA, gloo on the CPU.
    """
    ranks = ranks_from_env()
    if not ranks.distributed:
        return ranks, device
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(ranks.local_rank)
        device = f"cuda:{ranks.local_rank}"
    elif device == "auto":
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return ranks, device


def close_ranks(ranks: Ranks) -> None:
    """Leave the process group (after the last collective of the run)."""
    if ranks.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    """Wait for every rank (a no-op for one process)."""
    if ranks.distributed:
        dist.barrier()


def gather(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Every rank's ``tensor``, concatenated along the batch in rank order, with gradients flowing
    back to each rank's own part (summed over the ranks; see the module docstring)."""
    if not ranks.distributed:
        return tensor
    if tensor.requires_grad:
        # PyTorch's own gather with autograd (its backward reduce-scatters the gradients with a sum);
        # the module is the one torch.distributed.nn.functional's deprecation notice points to.
        from torch.distributed._functional_collectives import all_gather_single

        return all_gather_single(tensor.contiguous(), 0, dist.group.WORLD)
    parts = [torch.empty_like(tensor) for _ in range(ranks.world)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of the dropout draws of one rank at one step (the same on a resumed run)."""
    return (seed * 1_000_003 + step) * 1_009 + rank


class Replica(nn.Module):
    """What DDP wraps: the network and the projection heads of one rank; its forward is the
    network's (the heads run on the gathered features, after it)."""

    def __init__(self, model: nn.Module, heads: nn.Module, forward=None) -> None:
        super().__init__()
        self.model = model
        self.heads = heads
        self._forward = forward or model.forward_all

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._forward(inputs)
