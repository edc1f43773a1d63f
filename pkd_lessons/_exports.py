"""Lazy re-exports: a package names what it offers without importing it all up front.

``import pkd_lessons`` and ``pkd-lessons --help`` stay fast (no torch, MONAI or matplotlib until a
name that needs them is used), yet ``from pkd_lessons import Lesson`` works as if it were eager.
Ten lines of PEP 562 rather than the ``lazy_loader`` package: one dependency fewer for a pattern
this small.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, modules: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """Module ``__getattr__``, ``__dir__`` and ``__all__`` that import each name on first use.

    Args:
        package: the package's ``__name__``.
        modules: module, relative to ``package`` (e.g. ``".trainer"``) -> the names it exports,
            separated by spaces.

    Returns:
        ``(__getattr__, __dir__, __all__)`` for the package's namespace.
    """
    where = {name: module for module, names in modules.items() for name in names.split()}

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        globals_of(package)[name] = value  # the next look-up is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals_of(package)) | set(where))

    return __getattr__, __dir__, sorted(where)


def globals_of(package: str) -> dict:
    """The namespace of an imported package."""
    return vars(importlib.import_module(package))
