"""Metrics: numpy references (saliency, aesthetics), streaming Keras metrics and
the baselines' maps. See docs/metrics.md.

Only metrics live here; scoring a model on a data set, with intervals and
tables, is `aesthal.evaluation`.
"""

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
    "emd",
    "explainable_information_gain_share",
    "fit_centre_bias",
    "fixation_points_to_map",
    "information_gain",
    "kld",
    "mean_score",
    "mean_score_mse",
    "normalize_distribution",
    "nss",
    "plcc",
    "sim",
    "srcc",
]
