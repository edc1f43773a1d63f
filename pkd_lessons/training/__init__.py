"""Training: the run's settings, the trainer, its input path, and the machinery around them.

* :mod:`~pkd_lessons.training.config` - :class:`TrainConfig`, the settings of one run;
  :mod:`~pkd_lessons.training.options` - its fields as the ``train`` command's options.
* :mod:`~pkd_lessons.training.trainer` - :func:`train` and :class:`Trainer`: one loop for the
  teacher, the baseline and every distilled student.
* :mod:`~pkd_lessons.training.inputs` - training slices stacked once, placed on the device, drawn
  by index; the teacher's cached outputs beside them.
* :mod:`~pkd_lessons.training.augment` - flips, affine and crops of a whole batch on its device.
* :mod:`~pkd_lessons.training.device`, :mod:`~pkd_lessons.training.precision` - where and in
  which precision a run computes.
* :mod:`~pkd_lessons.training.loss_log` - the loss terms per step, read back from the device in one transfer.
* :mod:`~pkd_lessons.training.teacher_store` - the teacher's outputs kept between runs.
* :mod:`~pkd_lessons.training.checkpoint` - checkpoints written atomically, checked on load, rescued
  to the temporary folder when they cannot be written.
* :mod:`~pkd_lessons.training.benchmark` - how fast the trainer runs and what the input path costs.
* :mod:`~pkd_lessons.training.distributed` - one run over several processes (torchrun, DDP).
"""

from pkd_lessons._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".config": "METHODS PRESETS STUDENT_METHODS TrainConfig",
        ".trainer": "Trainer build_model freeze load_model seed_everything train",
        ".inputs": "BatchFeed CropFeed SliceBank TeacherOutputs teacher_cache",
        ".augment": "BatchAugment",
        ".device": "describe_device pick_device",
        ".precision": "Precision choose_precision",
        ".checkpoint": "load_checkpoint save_checkpoint",
        ".distributed": "Ranks init_ranks",
    },
)
