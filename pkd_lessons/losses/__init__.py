"""Losses of the method and its baselines.

==================================  ============================================  ===============
function                            formula (see its docstring)                   paper's term
==================================  ============================================  ===============
:func:`segmentation_loss`           soft Dice + class-weighted cross-entropy      ``L_seg``
:func:`kd_loss`                     ``T^2 KL(p_t^T || p_s^T)``                    plain KD baseline
:func:`regularization_weights`      ``max(0, CE_s - CE_t) [argmax p_t = y]``      the regularization factor
:func:`regularized_kd_loss`         ``sum w_i l_i / sum w_i``                     ``L_pixel`` (regularized KD)
:func:`contrastive_kd_loss`         Hadsell margin loss over (s_i, t_j) pairs     ``L_image`` (contrastive KD)
:func:`equidistant_loss`            ``m^2 (B-1) / B^2``: images not told apart    reading aid for ``L_image``
:func:`infonce_kd_loss`             InfoNCE over the batch                        extension, not in the paper
:func:`kdnet_loss`                  KD + bottleneck KL                            KD-Net competitor
:func:`protokd_kd_loss`             ``mean_{c,i} KL`` at ``T = 10``, no ``T^2``   ProtoKD's ``L_kd``
:func:`prototype_loss`              ``mean (cos(f, p_k)_s - cos(f, p_k)_t)^2``    ProtoKD's ``L_proto``
==================================  ============================================  ===============

The full student objective of the paper is ``L_seg + 0.5 L_rkd + 0.5 L_ckd``.
"""

from pkd_lessons.losses.contrastive import contrastive_kd_loss, equidistant_loss, infonce_kd_loss, pairwise_sq_distances
from pkd_lessons.losses.kdnet import feature_kl_loss, kdnet_loss, kdnet_terms
from pkd_lessons.losses.pixel import kd_loss, regularization_weights, regularized_kd_loss
from pkd_lessons.losses.protokd import protokd_kd_loss, prototype_loss, prototype_maps
from pkd_lessons.losses.segmentation import class_weights, segmentation_loss

__all__ = [
    "class_weights",
    "contrastive_kd_loss",
    "equidistant_loss",
    "feature_kl_loss",
    "infonce_kd_loss",
    "kd_loss",
    "kdnet_loss",
    "kdnet_terms",
    "pairwise_sq_distances",
    "protokd_kd_loss",
    "prototype_loss",
    "prototype_maps",
    "regularization_weights",
    "regularized_kd_loss",
    "segmentation_loss",
]
