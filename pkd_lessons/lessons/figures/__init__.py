"""Static figures of the lessons; every function returns a matplotlib figure.

* :mod:`~pkd_lessons.lessons.figures.data` - the data: modalities with outlines, annotation noise,
  intensities by class, predictions beside the truth.
* :mod:`~pkd_lessons.lessons.figures.training` - training: curves, the regularization weight map,
  embeddings, attention, benchmark throughput.

The interactive viewer is :mod:`pkd_lessons.lessons.viewer`.
"""

from pkd_lessons._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".data": "REGION_COLOURS best_slice class_intensities plot_class_histograms separability show_annotation_noise "
        "show_modalities show_predictions compare_students",
        ".training": "attention_figure benchmark_figure embedding_figure pair_distances pca_2d plateau_reading "
        "plot_curves plot_training retrieval weight_map_figure forest_plot",
    },
)
