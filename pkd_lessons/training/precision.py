"""Mixed precision chosen per device: bf16 where supported, fp16 with a loss scaler otherwise, off on CPU."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    """How a run computes.

    Attributes:
        dtype: autocast dtype, or None for full precision.
        scaler: whether fp16 gradients need a ``GradScaler`` (bf16 has float32's range and does not).
    """

    dtype: torch.dtype | None
    scaler: bool

    @property
    def name(self) -> str:
        """``"bf16"``, ``"fp16"`` or ``"fp32"``."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[self.dtype]

    def autocast(self, device: torch.device):
        """Context manager running the forward pass in this precision."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler:
        """A ``GradScaler`` that is active only for fp16."""
        return torch.amp.GradScaler(device.type if device.type != "mps" else "cpu", enabled=self.scaler)


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX).

    On such CPUs oneDNN's bf16 convolutions are faster than float32 ones (the quick profile's student
    on 2 cores of an AVX512-BF16 machine, ``docs/benchmarks/cpu_speedups.py`` over repeated runs:
    inference 2.2-2.9x, a training step 1.2-1.7x); elsewhere bf16 is emulated and slower, so the
    quick profile asks for it only here (``amp="native"``).
    """
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_amp(request: str, device_type: str) -> str:
    """A profile's ``amp`` as a :class:`~pkd_lessons.training.config.TrainConfig` takes it.

    Args:
        request: ``"native"`` (bf16 on a CPU that computes it in hardware, ``"auto"`` otherwise) or
            any of ``TrainConfig.amp``'s values, returned as they are.
        device_type: the device the runs use.

    Returns:
        ``"bf16"``, or ``request`` (``"auto"`` for ``"native"`` off such a CPU).

    Examples:
        >>> resolve_amp("off", "cpu"), resolve_amp("native", "cuda")
        ('off', 'auto')
    """
    if request != "native":
        return request
    return "bf16" if device_type == "cpu" and cpu_bf16_native() else "auto"


def choose_precision(device_type: str, request: str = "auto", bf16_supported: bool | None = None) -> Precision:
    """Pick the precision for a device.

    ``auto``: bf16 on CUDA GPUs that support it (Ampere and later), fp16 with a loss scaler on older
    ones (e.g. Colab's T4), full precision on CPU and MPS (CPU autocast is slower than float32 for
    these convolutions, and keeping the CPU in float32 keeps runs bit-for-bit repeatable).

    Args:
        device_type: ``"cuda"``, ``"cpu"`` or ``"mps"``.
        request: ``"auto"``, ``"off"``, ``"bf16"`` or ``"fp16"``.
        bf16_supported: override the CUDA capability query (for tests).

    Returns:
        The :class:`Precision`.

    Raises:
        ValueError: a precision the device cannot run.

    Examples:
        >>> choose_precision("cpu").name
        'fp32'
        >>> p = choose_precision("cuda", bf16_supported=True)  # Ampere or later
        >>> p.name, p.scaler
        ('bf16', False)
        >>> p = choose_precision("cuda", bf16_supported=False)  # e.g. a T4: fp16 needs a loss scaler
        >>> p.name, p.scaler
        ('fp16', True)
    """
    if request == "off":
        return Precision(None, False)
    if device_type == "cuda":
        if bf16_supported is None:
            bf16_supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if request == "auto":
            return Precision(torch.bfloat16, False) if bf16_supported else Precision(torch.float16, True)
        if request == "bf16" and not bf16_supported:
            raise ValueError("this GPU does not support bf16; use amp='fp16' or 'auto'")
        return Precision(torch.bfloat16, False) if request == "bf16" else Precision(torch.float16, True)
    if request == "auto":
        return Precision(None, False)
    if request == "bf16" and device_type == "cpu":
        return Precision(torch.bfloat16, False)
    raise ValueError(f"amp={request!r} is not supported on {device_type}; use 'auto' or 'off'")
