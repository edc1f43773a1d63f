"""pkd-lessons: privileged multimodal knowledge distillation for unimodal segmentation.

A small library behind a series of notebooks that teach Chen et al., "Learning With Privileged
Multimodal Knowledge for Unimodal Segmentation", IEEE TMI 41(3), 2022.

Modules (data flows one way):

* :mod:`pkd_lessons.phantoms` - BraTS-like brain and MyoPS-like cardiac phantoms, written as NIfTI
  in the real data sets' layouts.
* :mod:`pkd_lessons.data` - finds cases in BraTS, Medical Segmentation Decathlon and MyoPS folders,
  checks them, normalises intensities and yields 2D slices or 3D crops.
* :mod:`pkd_lessons.labels` - label conventions of every data set mapped to one set of regions.
"""

__version__ = "0.2.0"

from pkd_lessons.errors import DataError

__all__ = ["DataError", "__version__"]
