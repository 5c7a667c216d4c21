"""Metrics: numpy references (saliency, aesthetics), streaming Keras metrics,
baselines and the per-image evaluation core. See docs/metrics.md."""

from aesthal.metrics.aesthetics import (
    binary_accuracy,
    emd,
    mean_score,
    mean_score_mse,
    normalize_distribution,
    plcc,
    srcc,
)
from aesthal.metrics.baselines import (
    explainable_information_gain_share,
    fit_centre_bias,
)
from aesthal.metrics.evaluation import (
    confidence_interval,
    evaluate_aesthetics,
    evaluate_saliency_maps,
    format_markdown_table,
    standard_baselines,
)
from aesthal.metrics.saliency import (
    auc_borji,
    auc_judd,
    auc_shuffled,
    cc,
    fixation_points_to_map,
    information_gain,
    kld,
    nss,
    sim,
)
from aesthal.metrics.streaming import (
    AestheticsEMD,
    SaliencyCC,
    SaliencyKLD,
    SaliencyNSS,
)

__all__ = [
    "AestheticsEMD",
    "SaliencyCC",
    "SaliencyKLD",
    "SaliencyNSS",
    "auc_borji",
    "auc_judd",
    "auc_shuffled",
    "binary_accuracy",
    "cc",
    "confidence_interval",
    "emd",
    "evaluate_aesthetics",
    "evaluate_saliency_maps",
    "explainable_information_gain_share",
    "fit_centre_bias",
    "fixation_points_to_map",
    "format_markdown_table",
    "information_gain",
    "kld",
    "mean_score",
    "mean_score_mse",
    "normalize_distribution",
    "nss",
    "plcc",
    "sim",
    "srcc",
    "standard_baselines",
]
