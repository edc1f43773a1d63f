"""The settings of one training run, checked once, saved in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from pkd_lessons.data.layouts import BRAIN_MODALITIES, STUDENT_MODALITY
from pkd_lessons.methods.method import Method
from pkd_lessons.methods.registry import REGISTRY, STUDENT_METHODS, get_method

__all__ = [
    "AMP_CHOICES",
    "METHODS",
    "MODEL_KEYS",
    "PLACEMENTS",
    "PRESETS",
    "SPEED_KEYS",
    "STUDENT_METHODS",
    "TEST_FRACTION",
    "TrainConfig",
]

#: name -> one line on what it trains, from the methods' registry (:mod:`pkd_lessons.methods`).
METHODS: dict[str, str] = {name: m.summary for name, m in REGISTRY.items()}

# Settings that define the network: a checkpoint can only be resumed or loaded with the same ones.
MODEL_KEYS = ("method", "arch", "modalities", "modality", "num_classes", "spatial_dims", "widths", "dropout")
# Settings that change how fast a run computes, not what it computes: a run may resume with others.
SPEED_KEYS = ("placement", "channels_last", "compile")
#: Precision requests (:func:`~pkd_lessons.training.precision.choose_precision`).
AMP_CHOICES = ("auto", "off", "bf16", "fp16")
#: Where the training slices may live (:func:`~pkd_lessons.training.inputs.choose_placement`).
PLACEMENTS = ("auto", "device", "pinned")
#: Share of cases held out for testing when ``pkd-lessons train`` splits a folder itself: 20 %, as in
#: the BraTS 2018 split (200/28/57) of the re-implementation lesson 03 quotes.
TEST_FRACTION = 0.2
#: Named starting points for a run; any setting can still be given on top. ``faithful`` is the
#: reference code's own experiment: 3D networks with the paper's widths, no dropout (the reference's
#: model function defaults to 0.3, but its training script feeds 0.0), random 80^3 crops inside the
#: brain's bounding box, batch 4, SGD (momentum 0.9) at lr 1e-3 with the poly schedule over 200
#: epochs x 300 iterations, set once per epoch, weight decay 1e-5 on the kernels, the method's
#: temperature and loss weights (the paper's: 10 and 0.5 / 0.5), and no augmentation (the
#: reference code's input pipeline is the random crop alone).
#: Its inference is the sliding window over 80^3 windows with 50 % overlap
#: (:func:`~pkd_lessons.evaluation.prediction.predict_volume` with the run's crop).
PRESETS: dict[str, dict] = {
    "default": {},
    "faithful": {
        "spatial_dims": 3,
        "crop": (80, 80, 80),
        "batch_size": 4,
        "widths": (16, 32, 64, 128),
        "dropout": 0.0,
        "arch": "attention",
        "optimizer": "sgd",
        "lr": 1e-3,
        "steps": 60_000,
        "lr_step_every": 300,
        "weight_decay": 1e-5,
        "flip": False,
        "intensity": 0.0,
        "affine": 0.0,
    },
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on.

    Attributes:
        method: one of :data:`METHODS`.
        modalities: the data set's modalities, in the data's channel order.
        modality: the student's one modality (ignored for the teacher).
        num_classes: classes including background.
        spatial_dims: 2 (slices) or 3 (crops).
        widths: channels of the U-Net stages, finest first (four, 16/32/64/128, in the paper).
        dropout: dropout in the encoder, after each convolution of MONAI's residual blocks (see
            ``docs/fidelity.md``). The default, 0.3, is the rate the reference's model function
            defaults to (on the middle convolution of every stage); the reference's training script
            feeds 0.0, so the published networks train without dropout, as the ``faithful`` preset
            does.
        arch: the teacher's architecture: ``"attention"`` (the paper's) or ``"early"`` (channels
            stacked at the input). For a student, that of the teacher it learns from; None: the
            method's (``Method.teacher_arch``: early fusion for
            ProtoKD, the paper's network otherwise).
        steps: optimisation steps.
        batch_size: slices (2D) or crops (3D) per step.
        crop: 3D crop size.
        slice_crop: 2D only: train on random ``(h, w)`` windows of the slices (the 2D counterpart of the
            reference's random crops; cheaper steps), or None for whole slices. The projection head
            of the contrastive loss pools over half of it.
        optimizer: ``"adam"`` (converges in the few steps of the CPU lessons) or ``"sgd"``
            (momentum 0.9, the paper's).
        lr: initial learning rate, decayed as ``(1 - floor(step/k) * k / steps) ** 0.9`` with
            ``k = lr_step_every`` (the paper's poly schedule).
        lr_step_every: steps between learning-rate updates: the poly schedule is held constant
            within each block of this many steps. 1 (every step) by default; 300 in the reference
            code (one epoch) and in the ``faithful`` preset.
        weight_decay: L2 weight decay of the convolution and dense kernels, none on biases and norms
            (:func:`~pkd_lessons.training.optim.decay_groups`): 1e-5 in the paper, where it is
            ``1e-5 * ||W||^2 / 2``, which is SGD's ``weight_decay=1e-5``.
        temperature: distillation temperature; None: the method's (10, the paper's and ProtoKD's).
        pixel_weight: weight of the output term (kd, rkd, pkl, kdnet, protokd); None: the method's
            (0.5 in the paper, 10 in ProtoKD).
        image_weight: weight of the image-level term (ckd, pkl), of KD-Net's bottleneck term or of
            ProtoKD's prototype term; None: the method's (0.5 in the paper, 0.1 in ProtoKD).
        kd_t2: apply Hinton's ``T^2`` factor in plain KD.
        margin: margin of the contrastive loss.
        flip: random flips as augmentation.
        intensity: per-channel intensity scale ``1 ± intensity`` and shift ``± intensity`` (z-score
            units) as augmentation; 0 turns it off.
        affine: largest random rotation in degrees (with scaling ``1 ± affine/100``) as
            augmentation, 2D only; 0 turns it off.
        cache_teacher: compute the frozen teacher's outputs once for the training slices (2D).
        train_on: what the network learns from: ``"annotation"`` (the rater's label, as every
            method does) or ``"truth"`` (the clean truth, which only a phantom has: the positive
            control of the lessons, a run that must come out better).
        validate_every: score the validation cases (Dice per region, inside the brain) every this
            many steps and at the end, into the history (``val_step``, ``val_WT``, ...); 0: never.
        seed: seed of initialisation, batch order and augmentation.
        amp: ``"auto"`` (bf16 where supported, fp16 with a scaler on older GPUs, off on CPU),
            ``"off"``, ``"bf16"`` or ``"fp16"``.
        placement: where the training slices live: ``"auto"`` (on the GPU when they fit, else in
            pinned host memory), ``"device"`` or ``"pinned"`` (see :mod:`pkd_lessons.training.inputs`).
        channels_last: channels-last memory layout on CUDA (faster convolutions with tensor cores).
        compile: ``torch.compile`` the network: faster steps after a compilation of a minute or
            more, so worth it only for long runs.

    Examples:
        By default a run trains the unimodal T1ce student on the labels only (the baseline); a
        distilling method uses the paper's temperature 10 and weights 0.5 / 0.5:

        >>> cfg = TrainConfig()
        >>> cfg.method, cfg.input_modalities, cfg.needs_teacher
        ('baseline', ('t1ce',), False)
        >>> pkl = TrainConfig(method="pkl")
        >>> pkl.needs_teacher, pkl.temperature, pkl.pixel_weight, pkl.image_weight
        (True, 10.0, 0.5, 0.5)
        >>> TrainConfig(method="teacher").input_modalities
        ('flair', 't1', 't1ce', 't2')

        Settings are checked when the configuration is made, not steps into a run:

        >>> TrainConfig(method="pkl", modality="dwi")
        Traceback (most recent call last):
          ...
        ValueError: modality 'dwi' is not one of the data's modalities ('flair', 't1', 't1ce', 't2')

        What a checkpoint stores comes back unchanged:

        >>> TrainConfig.from_dict(pkl.to_dict()) == pkl
        True
    """

    method: str = "baseline"
    modalities: tuple[str, ...] = BRAIN_MODALITIES
    modality: str = STUDENT_MODALITY["brain"]
    num_classes: int = 4
    spatial_dims: int = 2
    widths: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.3
    arch: str | None = None
    steps: int = 200
    batch_size: int = 16
    crop: tuple[int, int, int] = (64, 64, 64)
    slice_crop: tuple[int, int] | None = None
    optimizer: str = "adam"
    lr: float = 2e-3
    lr_step_every: int = 1
    weight_decay: float = 1e-5
    temperature: float | None = None
    pixel_weight: float | None = None
    image_weight: float | None = None
    kd_t2: bool = True
    margin: float = 1.0
    flip: bool = True
    intensity: float = 0.0
    affine: float = 0.0
    cache_teacher: bool = True
    train_on: str = "annotation"
    validate_every: int = 0
    seed: int = 0
    amp: str = "auto"
    placement: str = "auto"
    channels_last: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "crop", tuple(int(c) for c in self.crop))
        if self.slice_crop is not None:
            object.__setattr__(self, "slice_crop", tuple(int(c) for c in self.slice_crop))
            if len(self.slice_crop) != 2 or min(self.slice_crop) < 1:
                raise ValueError(f"slice_crop must be two positive sizes (h, w) or None, got {self.slice_crop}")
        method = get_method(self.method)  # an unknown name: ValueError listing the known ones
        for name, value in method.defaults.items():  # None: the method's own default
            object.__setattr__(self, name, float(value if getattr(self, name) is None else getattr(self, name)))
        if self.arch is None:  # a teacher's own architecture; a student's: that of the teacher it learns from
            object.__setattr__(self, "arch", method.teacher_arch)
        if self.is_student and self.modality not in self.modalities:
            raise ValueError(f"modality {self.modality!r} is not one of the data's modalities {self.modalities}")
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if self.arch not in ("attention", "early"):
            raise ValueError(f"arch must be 'attention' or 'early', got {self.arch!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        for name in ("steps", "batch_size", "num_classes", "lr_step_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise ValueError(f"widths must list at least two positive channel counts, got {self.widths}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be auto, device or pinned, got {self.placement!r}")
        if not 0 <= self.intensity < 1:
            raise ValueError(f"intensity must be in [0, 1), got {self.intensity}")
        if not 0 <= self.affine <= 45:
            raise ValueError(f"affine must be in [0, 45] degrees, got {self.affine}")
        if self.affine and self.spatial_dims != 2:
            raise ValueError("the affine augmentation is implemented for 2D slices; set affine=0 in 3D")
        if self.slice_crop is not None and self.spatial_dims != 2:
            raise ValueError("slice_crop is for 2D slices; a 3D run uses crop")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.train_on not in ("annotation", "truth"):
            raise ValueError(f"train_on must be 'annotation' or 'truth', got {self.train_on!r}")
        if self.validate_every < 0:
            raise ValueError(f"validate_every must be 0 (never) or a positive step count, got {self.validate_every}")
        if not 0 < self.temperature < float("inf"):
            raise ValueError(f"temperature must be positive and finite, got {self.temperature}")

    @property
    def method_object(self) -> Method:
        """The run's :class:`~pkd_lessons.methods.method.Method` (what it needs, trains and minimises)."""
        return get_method(self.method)

    @property
    def is_student(self) -> bool:
        """True for every method but the teacher."""
        return self.method_object.student

    @property
    def needs_teacher(self) -> bool:
        """True for the distilled students."""
        return self.method_object.needs_teacher

    @property
    def input_modalities(self) -> tuple[str, ...]:
        """The modalities the network sees."""
        return (self.modality,) if self.is_student else self.modalities

    @classmethod
    def preset(cls, name: str, **settings) -> TrainConfig:
        """A configuration that starts from :data:`PRESETS` ``[name]``; ``settings`` replace its values.

        Args:
            name: ``"default"`` or ``"faithful"``.
            **settings: any field, e.g. ``method="pkl"``.

        Raises:
            ValueError: an unknown preset, or settings :class:`TrainConfig` refuses.

        Examples:
            >>> cfg = TrainConfig.preset("faithful", method="pkl")
            >>> cfg.spatial_dims, cfg.crop, cfg.batch_size, cfg.optimizer, cfg.lr, cfg.steps
            (3, (80, 80, 80), 4, 'sgd', 0.001, 60000)
            >>> cfg.dropout, cfg.lr_step_every  # the reference trains without dropout, lr set per epoch
            (0.0, 300)
            >>> TrainConfig.preset("faithful", steps=100).steps
            100
        """
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
        return cls(**{**PRESETS[name], **settings})

    def to_dict(self) -> dict:
        """Plain dict (JSON-friendly)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing ones take their defaults
        (a checkpoint written before a setting existed: ``lr_step_every`` is then 1, as it was)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}")
        return cls(**d)

    def model_signature(self) -> dict:
        """The settings that define the network's shape and role."""
        d = self.to_dict()
        sig = {k: d[k] for k in MODEL_KEYS}
        if not self.is_student:
            sig.pop("modality")
        else:
            sig.pop("arch")
        return sig
