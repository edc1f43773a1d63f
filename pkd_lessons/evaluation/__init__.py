"""Evaluation: predict whole volumes, score them per case, and compare methods over seeds and cases.

* :mod:`~pkd_lessons.evaluation.prediction` - slice-by-slice or sliding-window prediction, then
  Dice and HD95 per region and case.
* :mod:`~pkd_lessons.evaluation.metrics` - overlap and distance of two segmentations, region by region.
* :mod:`~pkd_lessons.evaluation.segmentation_files` - segmentations written as the data set's own
  NIfTI files, and scored from them.
* :mod:`~pkd_lessons.evaluation.lesion_wise` - the BraTS 2023 lesion-wise Dice and HD95.
* :mod:`~pkd_lessons.evaluation.statistics` - paired differences, intervals for the crossed
  seeds x cases design, detectable differences, the seeds a comparison needs, and power.
* :mod:`~pkd_lessons.evaluation.coverage` - simulations with a known answer that check the
  intervals hold their level.
* :mod:`~pkd_lessons.evaluation.tables` - result tables over methods and seeds, with their spread.
"""

from pkd_lessons._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".prediction": "evaluate mean_dice predict_volume score_case validation_dice",
        ".segmentation_files": "predict_folder read_prediction score_folder",
        ".lesion_wise": "lesion_wise_scores lesion_wise_summary",
        ".metrics": "annotation_agreement pooled_hd95 region_dice",
        ".statistics": "compare crossed_interval detectable_difference detectable_difference_t mean_squares "
        "nested_bootstrap paired_differences paired_t_power seeds_needed verdict_lines comparison_table",
        ".coverage": "coverage coverage_table simulate",
        ".tables": "plot_summary save_results summarize summary_table",
    },
)
