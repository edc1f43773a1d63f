"""Choose the compute device: CUDA, Apple's MPS or the CPU."""

from __future__ import annotations

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """The device to run on.

    Args:
        preference: ``"auto"`` (CUDA, then MPS, then CPU), or a device name such as ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``, ``"mps"``.

    Returns:
        The device.

    Raises:
        ValueError: the name is not a device's, or the requested device is not available here.
    """
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {preference!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} requested but no CUDA GPU is available")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {preference!r} requested but Apple MPS is not available")
    return device


def describe_device(device: torch.device) -> str:
    """One line naming the device, e.g. ``cuda: NVIDIA T4 (15.0 GiB)``."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda: {props.name} ({props.total_memory / 2**30:.1f} GiB)"
    if device.type == "mps":
        return "mps: Apple GPU"
    return f"cpu: {torch.get_num_threads()} threads"


def synchronize(device: torch.device) -> None:
    """Wait until the device has finished its queued work (a no-op on the CPU); for timing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
