"""Saliency metrics: numpy reference implementations of the MIT Saliency Benchmark.

Each function follows one file of the MIT benchmark's MATLAB code
(`cvzoya/saliency`, `code_forMetrics/`; Bylinskii, Judd, Oliva, Torralba,
Durand, "What do different evaluation metrics tell us about saliency models?",
TPAMI 2019) and says where it departs from it. docs/metrics.md lists where the
MIT code and the Tuebingen benchmark (pysaliency) disagree.

Common conventions:

* `saliency_map`: the prediction, `[h, w]` or `[h, w, 1]`, finite and
  non-negative, any scale. It is resized to the ground truth's size, as the
  reference does with `imresize(..., size(fixationMap))`. MATLAB's `imresize`
  is bicubic with `a = -0.5` and an antialiasing kernel when shrinking; here
  `cv2.INTER_CUBIC` (`a = -0.75`) upsamples and `cv2.INTER_AREA` (a box
  average, the antialiased choice) downsamples, in float64. Upsampled values
  can differ from MATLAB's by a few percent of the local contrast at edges; on
  maps that already have the ground truth's size the results are the same.
* `fixations`: a binary map of fixated pixels, `[H, W]` (any value > 0 counts
  as fixated). `fixation_points_to_map` builds it from `(row, col)` points.
  Repeated fixations on one pixel count once (the MIT convention).
* `fixation_map`: the continuous ground-truth map (blurred fixations or a true
  density), `[H, W]`, non-negative, any scale.
* A constant prediction (e.g. the uniform baseline) is scored as the uniform
  density wherever MIT's code would divide 0 by 0 and return NaN; this is
  pysaliency's answer. Ground truth without fixations, or an all-zero
  ground-truth map, raises `ValueError`: no function returns a silent NaN.
"""

from typing import Final

import cv2
import numpy as np

from aesthal import fixations as _fixations

# MATLAB's `eps` (2^-52), the regulariser of KLdiv.m and InfoGain.m. The
# Tuebingen benchmark (pysaliency `MIT_KLDiv`) writes it rounded, 2.2204e-16.
EPS: Final[float] = float(np.finfo(np.float64).eps)
# AUC_Judd.m: `saliencyMap + rand(size(saliencyMap))/10000000`.
JITTER_SCALE: Final[float] = 1e-7


def fixation_points_to_map(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Builds the binary fixation map the metrics take from fixation points.

    A thin wrapper of `aesthal.fixations.points_to_binary_map` (see its
    rounding rule): points are `(row, col)`, 0-based; repeats mark once.

    Args:
        points: float `[N, 2]` of `(row, column)` in pixels of `shape`.
        shape: `(height, width)` of the map.

    Returns:
        float32 `[height, width]` of 0s and 1s.
    """
    return _fixations.points_to_binary_map(points, shape)


# ---------------------------------------------------------------------------
# Input handling shared by every metric.


def _as_map(value: np.ndarray, name: str) -> np.ndarray:
    """Validates a 2-D non-negative finite map and returns it as float64."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(
            f"{name} must be a non-empty [H, W] or [H, W, 1] map, got shape "
            f"{np.shape(value)}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if array.min() < 0:
        raise ValueError(
            f"{name} must be non-negative, its minimum is {array.min():.6g}"
        )
    return array


def _as_fixations(value: np.ndarray, name: str = "fixations") -> np.ndarray:
    """Validates a fixation map and returns its boolean mask of fixated pixels."""
    mask = _as_map(value, name) > 0
    if not mask.any():
        raise ValueError(f"{name} has no fixated pixel; the metric is undefined")
    return mask


def resize_map(saliency_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resizes a float64 map to `shape` (cubic up, area down), like `imresize`."""
    height, width = int(shape[0]), int(shape[1])
    if saliency_map.shape == (height, width):
        return saliency_map
    shrinking = height * width < saliency_map.size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(saliency_map, (width, height), interpolation=interpolation)


def _resized_map(saliency_map: np.ndarray, shape: tuple[int, int], name: str):
    return resize_map(_as_map(saliency_map, name), shape)


def _min_max(values: np.ndarray) -> np.ndarray | None:
    """`(x - min) / (max - min)`, or None for a constant map (MATLAB's 0/0)."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 0:
        return None
    return (values - lo) / (hi - lo)


def _to_density(values: np.ndarray) -> np.ndarray:
    """Sum-normalises a non-negative map; an all-zero map stays all zeros."""
    total = float(values.sum())
    return values / total if total > 0 else values


def _ground_truth_map(fixation_map: np.ndarray) -> np.ndarray:
    truth = _as_map(fixation_map, "fixation_map")
    if not truth.any():
        raise ValueError("fixation_map is all zeros; the metric is undefined")
    return truth


# ---------------------------------------------------------------------------
# Maps derived from a predicted density for one metric (Kuemmerer, Wallis,
# Bethge, "Saliency Benchmarking Made Easy", ECCV 2018). The rule of each
# metric is `aesthal.evaluation.tables.METRIC_MAP_RULES`.


def blurred_density(
    density: np.ndarray, shape: tuple[int, int], sigma: float
) -> np.ndarray:
    """The density as the ground truth's blur sees it: the map CC/KLD/SIM reward.

    A blurred empirical fixation map is, in expectation, the fixation density
    blurred with the same Gaussian, so that is the prediction that maximises
    the expected CC (and, up to the metrics' regularisers, minimises KLD;
    Kuemmerer et al. 2018, Sec. 4). The density is resized to the ground
    truth's size as every metric resizes it (`resize_map`), clipped at 0,
    blurred with `aesthal.fixations.gaussian_blur` (zero padding, as the
    builders blur their maps) and divided by its sum.

    Args:
        density: `[h, w]` or `[h, w, 1]` non-negative prediction, any scale.
        shape: `(H, W)` of the ground truth.
        sigma: the ground truth's Gaussian sigma in pixels at `(H, W)`, > 0.

    Returns:
        float64 `[H, W]` summing to 1 (all zeros for an all-zero density).

    Raises:
        ValueError: a bad map (negative, non-finite, wrong rank) or `sigma <= 0`.
    """
    resized = np.maximum(_resized_map(density, shape, "density"), 0.0)
    return _to_density(_fixations.gaussian_blur(resized, sigma))


def log_prior_ratio(density: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """`log(p(x) / p_prior(x))`, shifted to start at 0: the map sAUC rewards.

    sAUC separates this image's fixations from other images' fixations, which
    are samples of the data set's prior (the centre bias). By Neyman-Pearson
    the best separating score is the likelihood ratio `p / p_prior`, or any
    increasing function of it (Kuemmerer et al. 2018, Sec. 4, with the exact,
    rank-based AUC). MIT's `AUC_shuffled.m` is not rank-based: it min-max
    scales the map and thresholds it at steps of 0.1, so the heavy upper tail
    of the ratio squeezes most pixels into the lowest bin. The log keeps the
    ranking and spaces the thresholds as likelihood-ratio levels (on 200
    synthetic_scenes test images, the true density's binned sAUC is 0.719 on
    `p`, 0.710 on `p / p_prior`, 0.764 on this map; the exact AUC of the
    ratio is 0.770).

    The ratio is taken at the larger of the two maps' sizes (each resized
    with `resize_map`, then sum-normalised); the metric resizes the result
    to the ground truth like any prediction. Pixels where `p` is 0 (after
    clipping a resize's undershoot) take half the smallest positive value of
    `p`, which keeps them last in the ranking.

    Args:
        density: `[h, w]` or `[h, w, 1]` non-negative prediction, any scale.
        prior: `[h', w']` or `[h', w', 1]` density of the other images'
            fixations (e.g. `fit_centre_bias(..., uniform_weight=0.01)`),
            positive everywhere.

    Returns:
        float64 `[max(h, h'), max(w, w')]`, minimum 0 (all zeros when `p`
        is all zeros or proportional to the prior).

    Raises:
        ValueError: a bad map, or a prior with a pixel <= 0 after resizing
            (the ratio is undefined there; mix in a uniform floor).
    """
    p = _as_map(density, "density")
    q = _as_map(prior, "prior")
    shape = (max(p.shape[0], q.shape[0]), max(p.shape[1], q.shape[1]))
    p = np.maximum(resize_map(p, shape), 0.0)
    q = resize_map(q, shape)
    if q.min() <= 0:
        raise ValueError(
            f"prior has pixels <= 0 at {shape} (minimum {q.min():.3g}): the "
            "ratio is undefined there; fit it with a uniform floor, e.g. "
            "fit_centre_bias(..., uniform_weight=0.01)"
        )
    if not p.any():
        return np.zeros(shape)
    p = np.where(p > 0, p, 0.5 * p[p > 0].min())
    log_ratio = np.log(_to_density(p)) - np.log(_to_density(q))
    return log_ratio - log_ratio.min()


# ---------------------------------------------------------------------------
# Location-based metrics: the ground truth is a set of fixated pixels.


def auc_judd(
    saliency_map: np.ndarray,
    fixations: np.ndarray,
    jitter: bool = True,
    seed: int | None = 0,
) -> float:
    """AUC-Judd, following MIT `AUC_Judd.m`.

    Thresholds sweep the saliency values at the fixated pixels (in descending
    order); the true-positive rate at the i-th threshold is `i / Nfix`, the
    false-positive rate counts the other pixels at or above it,
    `(#{S >= t_i} - i) / (Npix - Nfix)`; (0, 0) and (1, 1) close the curve and
    the area is the trapezoid rule. The reference loops over thresholds and
    rescans the map each time; here the map is sorted once and
    `np.searchsorted` counts `#{S >= t_i}` for every threshold at once, which
    gives the same curve (tested against a transcription of the loop).

    Subtleties kept from the reference: the negatives are the non-fixated
    pixels only; with `jitter`, uniform noise in `[0, 1e-7)` is added to every
    pixel before the min-max normalisation, to break ties. Departure: the
    reference adds the noise to the raw map, so its effect depends on the
    map's scale (it would reorder a density whose pixels are ~1e-6); here the
    map is first min-max scaled to [0, 1], which is what the reference sees
    for its 0..1 maps, so scaling a map never changes the score. A constant
    map without jitter scores 0.5 (MATLAB: NaN from 0/0).

    Args:
        saliency_map: `[h, w]` (or `[h, w, 1]`) non-negative prediction.
        fixations: `[H, W]` binary fixation map; the prediction is resized to it.
        jitter: whether to add the tie-breaking noise (the reference default).
        seed: seed of the noise, for reproducible scores.

    Returns:
        The area under the ROC curve, in [0, 1]; 0.5 is chance.

    Raises:
        ValueError: no fixated pixel, every pixel fixated, or a bad map.
    """
    mask = _as_fixations(fixations)
    values = _resized_map(saliency_map, mask.shape, "saliency_map")
    if jitter:
        scaled = _min_max(values)
        values = np.zeros_like(values) if scaled is None else scaled
        values = values + np.random.default_rng(seed).random(values.shape) * (
            JITTER_SCALE
        )
    normalised = _min_max(values)
    if normalised is None:
        return 0.5
    return _auc_judd_curve_area(normalised.ravel(), mask.ravel())


def _auc_judd_curve_area(scores: np.ndarray, positive: np.ndarray) -> float:
    """The vectorised body of `AUC_Judd.m`'s threshold loop."""
    num_pixels = scores.size
    thresholds = np.sort(scores[positive])[::-1]
    num_fixations = thresholds.size
    if num_fixations == num_pixels:
        raise ValueError("every pixel is fixated: AUC-Judd has no negatives")
    sorted_scores = np.sort(scores)
    above = num_pixels - np.searchsorted(sorted_scores, thresholds, side="left")
    rank = np.arange(1, num_fixations + 1)
    tp = np.concatenate([[0.0], rank / num_fixations, [1.0]])
    fp = np.concatenate([[0.0], (above - rank) / (num_pixels - num_fixations), [1.0]])
    return float(np.trapezoid(tp, fp))


def _auc_against_samples(
    positives: np.ndarray,
    negatives: np.ndarray,
    num_negatives: int,
    step: float,
) -> float:
    """Mean AUC over splits, as in the loops of `AUC_Borji.m`/`AUC_shuffled.m`.

    Args:
        positives: `[Nfix]` normalised saliency at the fixations.
        negatives: `[Nneg, n_splits]` normalised saliency at sampled locations.
        num_negatives: the false-positive denominator of the reference.
        step: the threshold step.
    """
    areas = []
    for split in range(negatives.shape[1]):
        current = negatives[:, split]
        top = max(float(positives.max()), float(current.max()))
        # MATLAB `fliplr(0:stepSize:top)`; the tolerance keeps `top` when it is
        # a multiple of the step up to rounding, as MATLAB's colon does.
        count = int(np.floor(top / step + 1e-10)) + 1
        thresholds = (np.arange(count) * step)[::-1]
        tp = (positives[:, None] >= thresholds).sum(axis=0) / positives.size
        fp = (current[:, None] >= thresholds).sum(axis=0) / num_negatives
        tp = np.concatenate([[0.0], tp, [1.0]])
        fp = np.concatenate([[0.0], fp, [1.0]])
        areas.append(np.trapezoid(tp, fp))
    return float(np.mean(areas))


def auc_borji(
    saliency_map: np.ndarray,
    fixations: np.ndarray,
    n_splits: int = 100,
    step: float = 0.1,
    seed: int | None = 0,
) -> float:
    """AUC-Borji, following MIT `AUC_Borji.m`.

    The map is min-max normalised; for each of `n_splits` splits as many
    negatives as fixations are drawn uniformly, with replacement, from all
    pixels (fixated ones included); thresholds run from the largest multiple
    of `step` below the split's maximum down to 0; the score is the mean
    trapezoid area over splits. A constant map scores 0.5 (MATLAB's NaN map
    happens to give the same).

    Args:
        saliency_map: `[h, w]` (or `[h, w, 1]`) non-negative prediction.
        fixations: `[H, W]` binary fixation map.
        n_splits: number of random negative sets.
        step: threshold step on the [0, 1] normalised map.
        seed: seed of the negative sampling.

    Returns:
        Mean AUC in [0, 1]; 0.5 is chance.
    """
    mask = _as_fixations(fixations)
    values = _min_max(_resized_map(saliency_map, mask.shape, "saliency_map"))
    if values is None:
        return 0.5
    flat = values.ravel()
    positives = flat[mask.ravel()]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, flat.size, size=(positives.size, n_splits))
    return _auc_against_samples(positives, flat[picks], positives.size, step)


def auc_shuffled(
    saliency_map: np.ndarray,
    fixations: np.ndarray,
    other_fixations: np.ndarray,
    n_splits: int = 100,
    step: float = 0.1,
    seed: int | None = 0,
) -> float:
    """Shuffled AUC (sAUC), following MIT `AUC_shuffled.m`.

    Like `auc_borji`, but the negatives of each split are a random subset
    (without replacement) of `min(Nfix, Nother)` pixels fixated on *other*
    images (`other_fixations`, the union of the fixation maps of e.g. 10 other
    images, at this image's size), so a centre bias earns nothing.

    Args:
        saliency_map: `[h, w]` (or `[h, w, 1]`) non-negative prediction.
        fixations: `[H, W]` binary fixation map of this image.
        other_fixations: `[H, W]` binary map of fixations on other images.
        n_splits: number of random negative sets.
        step: threshold step on the [0, 1] normalised map.
        seed: seed of the negative sampling.

    Returns:
        Mean AUC in [0, 1]; 0.5 is chance (and what a centre bias scores).

    Raises:
        ValueError: no fixations on this or the other images, or shapes differ.
    """
    mask = _as_fixations(fixations)
    other = _as_fixations(other_fixations, "other_fixations")
    if other.shape != mask.shape:
        raise ValueError(
            f"other_fixations has shape {other.shape}, fixations {mask.shape}"
        )
    values = _min_max(_resized_map(saliency_map, mask.shape, "saliency_map"))
    if values is None:
        return 0.5
    flat = values.ravel()
    positives = flat[mask.ravel()]
    candidates = np.flatnonzero(other.ravel())
    num_negatives = min(positives.size, candidates.size)
    rng = np.random.default_rng(seed)
    negatives = np.stack(
        [flat[rng.permutation(candidates)[:num_negatives]] for _ in range(n_splits)],
        axis=1,
    )
    return _auc_against_samples(positives, negatives, num_negatives, step)


def nss(saliency_map: np.ndarray, fixations: np.ndarray) -> float:
    """Normalized Scanpath Saliency, following MIT `NSS.m`.

    The map is standardised, `(S - mean(S)) / std(S)` with MATLAB's `std`,
    which divides by `N - 1` (pysaliency uses `N`, so its NSS is larger by
    `sqrt(N / (N - 1))`, 1.000002 on a 640x480 map), and averaged over the
    fixated pixels (each counted once). A constant map scores 0 (pysaliency;
    MATLAB gives NaN from 0/0), also one constant only up to rounding (a
    standard deviation at most 1e-10 of its largest value).

    Args:
        saliency_map: `[h, w]` (or `[h, w, 1]`) non-negative prediction.
        fixations: `[H, W]` binary fixation map.

    Returns:
        Mean standardised saliency at fixations; 0 is chance, unbounded.
    """
    mask = _as_fixations(fixations)
    values = _resized_map(saliency_map, mask.shape, "saliency_map")
    if values.size < 2:
        raise ValueError("NSS needs a map of at least 2 pixels")
    std = float(values.std(ddof=1))
    # Constant up to rounding: a uniform density of 800x600 pixels has a std
    # of ~4e-22 from its rounded mean, which would score about -1, not 0.
    if std <= 1e-10 * float(np.abs(values).max()):
        return 0.0
    return float(((values[mask] - values.mean()) / std).mean())


def information_gain(
    saliency_map: np.ndarray,
    fixations: np.ndarray,
    baseline_map: np.ndarray,
    normalization: str = "min_max",
) -> float:
    """Information gain over a baseline in bits per fixation, after `InfoGain.m`.

    `mean over fixated pixels of log2(eps + P(x)) - log2(eps + B(x))`, where
    `P` and `B` are the prediction and the baseline (both resized to the
    fixation map) turned into densities. `normalization="min_max"` does what
    MIT `InfoGain.m` does: min-max to [0, 1], then divide by the sum, so the
    map's minimum pixel gets probability 0 (a fixation there costs about 52
    bits). `normalization="sum"` only divides by the sum: the map is taken as
    the model's density, as in pysaliency / Kuemmerer et al. (PNAS 2015),
    which counts repeated fixations too (here they count once). A constant
    map is the uniform density under either.

    Args:
        saliency_map: `[h, w]` (or `[h, w, 1]`) non-negative prediction.
        fixations: `[H, W]` binary fixation map.
        baseline_map: `[h', w']` non-negative baseline (e.g. the centre bias).
        normalization: `"min_max"` (MIT) or `"sum"` (probabilistic).

    Returns:
        Bits per fixation; 0 means no better than the baseline.

    Raises:
        ValueError: no fixations, a bad map, an all-zero map under `"sum"`, or
            an unknown `normalization`.
    """
    if normalization not in ("min_max", "sum"):
        raise ValueError(
            f"normalization must be 'min_max' or 'sum', got {normalization!r}"
        )
    mask = _as_fixations(fixations)
    densities = []
    for value, name in ((saliency_map, "saliency_map"), (baseline_map, "baseline_map")):
        resized = np.maximum(_resized_map(value, mask.shape, name), 0.0)
        if normalization == "min_max":
            scaled = _min_max(resized)
            resized = np.ones_like(resized) if scaled is None else scaled
        elif not resized.any():
            raise ValueError(f"{name} is all zeros: it is not a density")
        densities.append(resized / resized.sum())
    prediction, baseline = densities
    return float(
        np.mean(np.log2(EPS + prediction[mask]) - np.log2(EPS + baseline[mask]))
    )


# ---------------------------------------------------------------------------
# Distribution-based metrics: the ground truth is a continuous map.


def cc(saliency_map: np.ndarray, fixation_map: np.ndarray) -> float:
    """Pearson's linear correlation coefficient, following MIT `CC.m`.

    Both maps are standardised and `corr2` taken, i.e. the Pearson correlation
    of the pixel values. A constant prediction scores 0 (pysaliency; MATLAB
    gives NaN).

    Args:
        saliency_map: `[h, w]` (or `[h, w, 1]`) non-negative prediction.
        fixation_map: `[H, W]` continuous ground truth, not constant.

    Returns:
        Correlation in [-1, 1].

    Raises:
        ValueError: the ground truth is constant (the correlation is undefined).
    """
    truth = _ground_truth_map(fixation_map)
    prediction = _resized_map(saliency_map, truth.shape, "saliency_map")
    truth = truth - truth.mean()
    prediction = prediction - prediction.mean()
    truth_norm = float(np.sqrt((truth**2).sum()))
    prediction_norm = float(np.sqrt((prediction**2).sum()))
    if truth_norm == 0:
        raise ValueError("fixation_map is constant; CC is undefined")
    if prediction_norm == 0:
        return 0.0
    return float((truth * prediction).sum() / (truth_norm * prediction_norm))


def kld(saliency_map: np.ndarray, fixation_map: np.ndarray) -> float:
    """Kullback-Leibler divergence KL(truth || prediction), following MIT `KLdiv.m`.

    Both maps are divided by their sums, then
    `sum(Q * log(eps + Q / (P + eps)))` with `Q` the ground truth, `P` the
    prediction and `eps` = MATLAB's `eps` = 2.2204e-16, in nats. This is also
    pysaliency's `MIT_KLDiv`. An all-zero prediction stays zero (as in the
    reference) and scores about `36 + log(Q)` per unit of mass: large but
    finite. Negative overshoot of the cubic resize is clipped to 0.

    Args:
        saliency_map: `[h, w]` (or `[h, w, 1]`) non-negative prediction.
        fixation_map: `[H, W]` continuous ground truth, not all zeros.

    Returns:
        Divergence in nats, >= 0 up to `eps` terms; 0 for a perfect prediction.
    """
    truth = _to_density(_ground_truth_map(fixation_map))
    prediction = _to_density(
        np.maximum(_resized_map(saliency_map, truth.shape, "saliency_map"), 0.0)
    )
    return float((truth * np.log(EPS + truth / (prediction + EPS))).sum())


def sim(saliency_map: np.ndarray, fixation_map: np.ndarray) -> float:
    """Similarity (histogram intersection), following MIT `similarity.m`.

    Each map is min-max normalised to [0, 1] and then divided by its sum;
    the score is `sum(min(P, Q))`. Pysaliency's `SIM` skips the min-max step
    (it only sum-normalises), which scores maps with a floor higher. A
    constant non-zero map (MATLAB: NaN) is taken as uniform, an all-zero
    prediction scores 0 (as in the reference).

    Args:
        saliency_map: `[h, w]` (or `[h, w, 1]`) non-negative prediction.
        fixation_map: `[H, W]` continuous ground truth, not all zeros.

    Returns:
        Similarity in [0, 1]; 1 for identical distributions.
    """
    truth = _ground_truth_map(fixation_map)
    prediction = np.maximum(
        _resized_map(saliency_map, truth.shape, "saliency_map"), 0.0
    )
    densities = []
    for values in (prediction, truth):
        if values.any():
            scaled = _min_max(values)
            values = np.ones_like(values) if scaled is None else scaled
            values = values / values.sum()
        densities.append(values)
    return float(np.minimum(*densities).sum())
