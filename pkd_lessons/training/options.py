"""TrainConfig's fields as command-line options: one home for each default and each help text.

``pkd-lessons train`` offers every setting of :class:`~pkd_lessons.training.config.TrainConfig`
that does not come from the data (the modalities, the classes) as ``--field-name``, typed by the
field's default, with the field's own description from the class's ``Attributes:`` section as
its help (nanoGPT's configurator and nbdev's ``call_parse`` do the same from a config or a
signature); argparse takes the rest. A new field is a new option without touching the command line.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from dataclasses import fields

from pkd_lessons.training.config import AMP_CHOICES, METHODS, PLACEMENTS, TrainConfig

#: Fields the data decide (or that have their own option with a data-dependent default).
FROM_DATA = ("modalities", "modality", "num_classes")
#: Fields whose default is the method's own (None until the method resolves it).
METHOD_DEFAULTS = ("temperature", "pixel_weight", "image_weight", "arch")
#: Other names an option is known by.
ALIASES = {"spatial_dims": ("--dims",)}
#: Values a field accepts, where they are a short list (TrainConfig checks the rest).
CHOICES = {
    "method": tuple(METHODS),
    "spatial_dims": (2, 3),
    "arch": ("attention", "early"),
    "optimizer": ("adam", "sgd"),
    "train_on": ("annotation", "truth"),
    "amp": AMP_CHOICES,
    "placement": PLACEMENTS,
}


def positive(text: str) -> int:
    """An integer of at least 1 (for argparse)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def integers(text: str, example: str) -> tuple[int, ...]:
    """Comma-separated integers (``example`` shows the expected form in the error)."""
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}") from None


def widths(text: str) -> tuple[int, ...]:
    """Channel counts of the U-Net stages, such as ``16,32,64,128``."""
    values = integers(text, "comma-separated channel counts such as 16,32,64,128")
    if len(values) < 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected at least two positive channel counts, got {text!r}")
    return values


def crop(text: str) -> tuple[int, int, int]:
    """A 3D crop: one size or three, such as ``80`` or ``80,80,64``."""
    sizes = integers(text, "a crop size such as 80 or 80,80,80")
    if len(sizes) == 1:
        sizes = sizes * 3
    if len(sizes) != 3 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected one or three positive sizes, got {text!r}")
    return sizes


def slice_crop(text: str) -> tuple[int, int] | None:
    """A 2D window ``h,w`` (one size for a square), or ``none`` for whole slices."""
    if text.strip().lower() == "none":
        return None
    sizes = integers(text, "a window size such as 64 or 64,64, or none")
    sizes = sizes * 2 if len(sizes) == 1 else sizes
    if len(sizes) != 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected one or two positive sizes, or none, got {text!r}")
    return sizes


#: How a field's value is read from the command line, beyond its default's type.
PARSERS = {
    "widths": widths,
    "crop": crop,
    "slice_crop": slice_crop,
    "steps": positive,
    "batch_size": positive,
    "lr_step_every": positive,
}


def field_help(cls: type = TrainConfig) -> dict[str, str]:
    """Each attribute's description from a class's Google-style ``Attributes:`` section, as plain text.

    Examples:
        >>> field_help()["lr_step_every"].split(":")[0]
        'steps between learning-rate updates'
    """
    doc = cls.__doc__ or ""
    section = doc.split("Attributes:", 1)[1].split("\n\n", 1)[0]
    found: dict[str, list[str]] = {}
    current = None
    for line in section.splitlines():
        match = re.match(r"^\s{8}(\w+): (.*)$", line)
        if match:
            current = match.group(1)
            found[current] = [match.group(2)]
        elif current and line.strip():
            found[current].append(line.strip())
    return {name: _plain(" ".join(words)) for name, words in found.items()}


def _plain(text: str) -> str:
    """reStructuredText roles and literals as plain text: ``x`` -> x, :func:`~a.b` -> b."""
    text = re.sub(r":\w+:`~?([\w.]+\.)?([\w]+)`", r"\2", text)
    return text.replace("``", "").replace("%", "%%")  # argparse formats help with %


def add_config_options(parser: argparse.ArgumentParser, defaults: TrainConfig, skip: Iterable[str] = ()) -> None:
    """One option per TrainConfig field (but :data:`FROM_DATA` and ``skip``), defaulting to ``defaults``.

    The fields of :data:`METHOD_DEFAULTS` default to None: the method's own value.

    Args:
        parser: the ``train`` command's parser.
        defaults: where the options take their defaults (a preset's configuration).
        skip: fields the command offers otherwise.
    """
    helps = field_help()
    for f in fields(TrainConfig):
        if f.name in FROM_DATA or f.name in skip:
            continue
        default = None if f.name in METHOD_DEFAULTS else getattr(defaults, f.name)
        flags = [f"--{f.name.replace('_', '-')}", *ALIASES.get(f.name, ())]
        shown = "the method's" if default is None else _shown(default)
        kwargs: dict = {"dest": f.name, "default": default, "help": f"{helps[f.name].rstrip('.')} (default {shown})"}
        if isinstance(getattr(defaults, f.name), bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kind = type(getattr(defaults, f.name))
            kwargs["type"] = PARSERS.get(f.name, kind if kind in (int, float, str) else str)
            if f.name in CHOICES:
                kwargs["choices"] = CHOICES[f.name]
        parser.add_argument(*flags, **kwargs)


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def config_settings(args: argparse.Namespace, skip: Iterable[str] = ()) -> dict:
    """The TrainConfig settings an ``add_config_options`` parser read (None where the method decides)."""
    skip = set(skip)
    return {
        f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in FROM_DATA and f.name not in skip
    }
