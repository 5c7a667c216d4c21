"""Aesthetics metrics on 10-bin score distributions (AVA / NIMA conventions).

Inputs are `[N, 10]` arrays over the scores 1..10: vote counts or
distributions, normalised inside. The conventions follow NIMA (Talebi and
Milanfar, IEEE TIP 2018): the mean score is `sum_k k * p_k`; an image is
"high quality" when its mean score is >= 5 (AVA, Murray et al. CVPR 2012,
with delta = 0 on the test set); EMD is the r-norm of the CDF difference
averaged over the 10 bins.
"""

from typing import Final

import numpy as np
from scipy import stats

NUM_BINS: Final[int] = 10
SCORES: Final[np.ndarray] = np.arange(1, NUM_BINS + 1, dtype=np.float64)
HIGH_QUALITY_THRESHOLD: Final[float] = 5.0


def normalize_distribution(values: np.ndarray, name: str = "values") -> np.ndarray:
    """Turns vote counts (or a distribution) into rows that sum to 1.

    Args:
        values: non-negative `[N, 10]` (or `[10]`) votes or probabilities.
        name: what to call the array in errors.

    Returns:
        float64 `[N, 10]`, each row summing to 1.

    Raises:
        ValueError: wrong shape, negative or non-finite values, or a row with
            no votes.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != NUM_BINS or array.shape[0] == 0:
        raise ValueError(
            f"{name} must be [N, {NUM_BINS}] with N >= 1, got shape {np.shape(values)}"
        )
    if not np.all(np.isfinite(array)) or array.min() < 0:
        raise ValueError(f"{name} must be finite and non-negative")
    totals = array.sum(axis=1, keepdims=True)
    empty = np.flatnonzero(totals[:, 0] <= 0)
    if empty.size:
        raise ValueError(f"{name} rows {empty.tolist()[:10]} have no votes")
    return array / totals


def mean_score(values: np.ndarray) -> np.ndarray:
    """The mean score `sum_k k * p_k` of each row, in [1, 10], float64 `[N]`."""
    return normalize_distribution(values) @ SCORES


def binary_accuracy(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    threshold: float = HIGH_QUALITY_THRESHOLD,
) -> float:
    """Share of images put in the right class, mean score >= 5 vs < 5.

    Args:
        y_true: `[N, 10]` ground-truth votes or distribution.
        y_pred: `[N, 10]` predicted distribution.
        threshold: the class boundary on the mean score (AVA/NIMA: 5).

    Returns:
        Accuracy in [0, 1].
    """
    true_mean, pred_mean = _pair(y_true, y_pred, mean_score)
    return float(np.mean((true_mean >= threshold) == (pred_mean >= threshold)))


def srcc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Spearman's rank correlation of the mean scores, in [-1, 1]."""
    true_mean, pred_mean = _correlation_inputs(y_true, y_pred)
    return float(stats.spearmanr(true_mean, pred_mean).statistic)


def plcc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson's linear correlation of the mean scores, in [-1, 1]."""
    true_mean, pred_mean = _correlation_inputs(y_true, y_pred)
    return float(stats.pearsonr(true_mean, pred_mean).statistic)


def mean_score_mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean squared error of the mean scores (squared score units)."""
    true_mean, pred_mean = _pair(y_true, y_pred, mean_score)
    return float(np.mean((true_mean - pred_mean) ** 2))


def emd(y_true: np.ndarray, y_pred: np.ndarray, r: float = 2.0) -> np.ndarray:
    """Earth mover's distance per image, NIMA's definition.

    `EMD = (mean_k |CDF_true(k) - CDF_pred(k)|^r)^(1/r)` over the 10 bins,
    with the distance between adjacent scores taken as 1 and normalised by the
    number of bins, as in NIMA. `r=1` is the plain EMD over the bins divided
    by 10; NIMA trains and reports `r=2`.

    Args:
        y_true: `[N, 10]` ground-truth votes or distribution.
        y_pred: `[N, 10]` predicted distribution.
        r: the norm, >= 1.

    Returns:
        float64 `[N]`, each in [0, 1] (0 for equal distributions).
    """
    if r < 1:
        raise ValueError(f"r must be >= 1, got {r}")
    p_true, p_pred = _pair(y_true, y_pred, normalize_distribution)
    cdf_diff = np.abs(np.cumsum(p_true, axis=1) - np.cumsum(p_pred, axis=1))
    return np.mean(cdf_diff**r, axis=1) ** (1.0 / r)


def _pair(y_true, y_pred, transform):
    true_values = transform(y_true)
    pred_values = transform(y_pred)
    if true_values.shape != pred_values.shape:
        raise ValueError(
            f"y_true and y_pred differ in shape: {np.shape(y_true)} vs "
            f"{np.shape(y_pred)}"
        )
    return true_values, pred_values


def _correlation_inputs(y_true, y_pred):
    true_mean, pred_mean = _pair(y_true, y_pred, mean_score)
    if true_mean.size < 2:
        raise ValueError("a correlation needs at least 2 images")
    for values, name in ((true_mean, "y_true"), (pred_mean, "y_pred")):
        if np.ptp(values) == 0:
            raise ValueError(f"the mean scores of {name} are constant")
    return true_mean, pred_mean
