"""Every training method, by name: the list the trainer, the command line and the lessons read."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pkd_lessons.methods.baseline import Baseline
from pkd_lessons.methods.ckd import CKD
from pkd_lessons.methods.kd import KD
from pkd_lessons.methods.kdnet import KDNet
from pkd_lessons.methods.method import Method
from pkd_lessons.methods.pkl import PKL
from pkd_lessons.methods.protokd import ProtoKD
from pkd_lessons.methods.rkd import RKD
from pkd_lessons.methods.teacher import Teacher

#: name -> method, the teacher first, then the baseline, then the distilled students.
REGISTRY: Mapping[str, Method] = MappingProxyType(
    {m.name: m for m in (Teacher(), Baseline(), KD(), RKD(), CKD(), PKL(), KDNet(), ProtoKD())}
)
#: Every method but the teacher.
STUDENT_METHODS: tuple[str, ...] = tuple(name for name, m in REGISTRY.items() if m.student)
#: The methods that learn from a teacher.
DISTILLED_METHODS: tuple[str, ...] = tuple(name for name, m in REGISTRY.items() if m.needs_teacher)


def get_method(name: str) -> Method:
    """The method of that name.

    Raises:
        ValueError: an unknown name (the message lists the known ones).

    Examples:
        >>> get_method("pkl").teacher_outputs, get_method("pkl").weights["image"]
        (('logits', 'features'), 'image_weight')
        >>> get_method("protokd").defaults["pixel_weight"], get_method("protokd").teacher_arch
        (10.0, 'early')
        >>> get_method("distil")
        Traceback (most recent call last):
          ...
        ValueError: method must be one of teacher, baseline, kd, rkd, ckd, pkl, kdnet, protokd; got 'distil'
    """
    if name not in REGISTRY:
        raise ValueError(f"method must be one of {', '.join(REGISTRY)}; got {name!r}")
    return REGISTRY[name]
