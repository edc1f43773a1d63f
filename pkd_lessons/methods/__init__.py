"""Training methods as objects: what each needs from the teacher, what it trains, its loss terms.

========  ===============================================================  ==================
method    loss (``a = pixel_weight``, ``b = image_weight``)                teacher
========  ===============================================================  ==================
teacher   ``L_seg`` (all modalities in)                                    -
baseline  ``L_seg`` (one modality in)                                      -
kd        ``L_seg + a L_kd(z_s, z_t, T)``                                  logits
rkd       ``L_seg + a L_rkd(z_s, z_t, y, T)``                              logits
ckd       ``L_seg + b L_ckd(h_s(f_s), h_t(f_t))``                          logits, features
pkl       ``L_seg + a L_rkd + b L_ckd`` (the paper, a = b = 0.5)           logits, features
kdnet     ``L_seg + a L_kd + b KL(bottleneck_t || bottleneck_s)``          logits, bottleneck
protokd   ``L_seg + a L_kd' + b L_proto`` (a = 10, b = 0.1, early fusion)  logits, features
========  ===============================================================  ==================

* :mod:`~pkd_lessons.methods.method` - :class:`Method`, what a method declares.
* :mod:`~pkd_lessons.methods.registry` - :data:`REGISTRY` and :func:`get_method`.
* one module per method: ``teacher``, ``baseline``, ``kd``, ``rkd``, ``ckd``, ``pkl``, ``kdnet``, ``protokd``.
"""

from pkd_lessons.methods.method import Method
from pkd_lessons.methods.registry import DISTILLED_METHODS, REGISTRY, STUDENT_METHODS, get_method

__all__ = ["DISTILLED_METHODS", "REGISTRY", "STUDENT_METHODS", "Method", "get_method"]
