"""pkd-lessons: privileged multimodal knowledge distillation for unimodal segmentation.

A small library behind a series of notebooks that teach Chen et al., "Learning With Privileged
Multimodal Knowledge for Unimodal Segmentation", IEEE TMI 41(3), 2022.

Subpackages, in the order data flows:

* :mod:`pkd_lessons.phantoms` - BraTS-like brain and MyoPS-like cardiac phantoms, written as NIfTI
  in the real data sets' layouts.
* :mod:`pkd_lessons.data` - finds cases in BraTS, Medical Segmentation Decathlon and MyoPS folders,
  reads and checks them (:mod:`~pkd_lessons.data.labels`: every label convention mapped onto one
  set of regions), normalises intensities and serves 2D slices or 3D crops.
* :mod:`pkd_lessons.models` - the multimodal teacher, the unimodal student, the projection head.
* :mod:`pkd_lessons.losses` - ``L_seg``, the pixel-level and image-level distillation losses, KD-Net.
* :mod:`pkd_lessons.training` - the run's settings, the trainer and its input path.
* :mod:`pkd_lessons.evaluation` - prediction, Dice and HD95 per case, paired statistics and tables.
* :mod:`pkd_lessons.lessons` - what the notebooks stand on: the lesson helper, profiles, the
  runner, figures, the viewer, published and reference numbers, exercises.
* :mod:`pkd_lessons.realdata` - downloads and checks of the real data sets.
* :mod:`pkd_lessons.cli` - the ``pkd-lessons`` command.

The names a notebook needs most are exported here and imported on first use (``import
pkd_lessons`` itself loads neither torch nor MONAI)::

    from pkd_lessons import Lesson, TrainConfig, train, evaluate, segmentation_loss
"""

__version__ = "0.4.0"

from pkd_lessons._exports import lazy_exports
from pkd_lessons.errors import DataError, TrainingError

__getattr__, __dir__, _lazy = lazy_exports(
    __name__,
    {
        ".data": "find_cases load_case load_cases split_cases CaseVolume SliceDataset CropDataset",
        ".data.labels": "BRATS BRATS2023 MSD MYOPS LabelConvention",
        ".phantoms": "ensure_phantoms make_phantoms",
        ".models": "MultimodalTeacher ProjectionHead SegmentationNet student",
        ".losses": "contrastive_kd_loss kd_loss regularized_kd_loss segmentation_loss",
        ".training": "TrainConfig Trainer load_model pick_device train",
        ".evaluation": "compare evaluate predict_volume region_dice summarize",
        ".lessons": "Lesson SliceViewer get_profile run_lessons show",
    },
)
__all__ = ["DataError", "TrainingError", "__version__", *_lazy]
