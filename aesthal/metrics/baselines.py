"""Baseline saliency models: the centre bias, the uniform map, and the IG share.

The centre bias is the classic "average fixation density" baseline (Judd et
al. 2009; Kuemmerer et al., PNAS 2015): fixations of the training split, each
placed on a common grid in relative image coordinates, counted, blurred with a
Gaussian whose sigma is a fraction of the image size, and normalised to a
density. On the generated data set the true density is the ceiling, so a
model's share of the explainable information gain is
`(IG_model - IG_centre) / (IG_truth - IG_centre)`.
"""

from collections.abc import Iterable

import numpy as np

from aesthal import fixations as _fixations
from aesthal.metrics import saliency

DEFAULT_GRID_SHAPE: tuple[int, int] = (64, 64)
DEFAULT_SIGMA_FRACTION: float = 0.05


def fit_centre_bias(
    fixations_per_image: Iterable[tuple[np.ndarray, tuple[int, int]]],
    grid_shape: tuple[int, int] = DEFAULT_GRID_SHAPE,
    sigma_fraction: float = DEFAULT_SIGMA_FRACTION,
    uniform_weight: float = 0.0,
) -> np.ndarray:
    """Fits the centre-bias density to training fixations.

    Every point `(row, col)` of an image of shape `(H, W)` goes to grid cell
    `round((row + 0.5) / H * gh - 0.5)`, `round((col + 0.5) / W * gw - 0.5)`
    (pixel centres map to cell centres), and is counted (repeats count). The
    count grid is blurred by `aesthal.fixations.blur_fixation_map` with
    `sigma = sigma_fraction * max(grid_shape)` cells (zero padding, as MATLAB's
    `imfilter`) and divided by its sum. On a square grid the sigma is the same
    fraction of each image side. `uniform_weight` mixes in the uniform
    density, `(1 - w) * blurred + w / (gh * gw)`, so that no region gets
    probability ~0 (useful for `information_gain(..., normalization="sum")`;
    MIT's min-max normalisation removes any such floor again).

    Args:
        fixations_per_image: `(points, (height, width))` pairs; `points` float
            `[N, 2]` of 0-based `(row, col)` in that image's pixels.
        grid_shape: `(gh, gw)` of the fitted density.
        sigma_fraction: Gaussian sigma as a fraction of the image size, > 0.
        uniform_weight: weight of the uniform component, in [0, 1].

    Returns:
        float64 `[gh, gw]` density, non-negative, summing to 1.

    Raises:
        ValueError: no fixation at all, or bad arguments.
    """
    grid_h, grid_w = int(grid_shape[0]), int(grid_shape[1])
    if not 0.0 <= uniform_weight <= 1.0:
        raise ValueError(f"uniform_weight must be in [0, 1], got {uniform_weight}")
    if grid_h < 1 or grid_w < 1 or sigma_fraction <= 0:
        raise ValueError(
            f"need a positive grid and sigma_fraction, got {grid_shape}, "
            f"{sigma_fraction}"
        )
    counts = np.zeros((grid_h, grid_w), dtype=np.float64)
    for points, (height, width) in fixations_per_image:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        points = points[np.all(np.isfinite(points), axis=1)]
        rows = (points[:, 0] + 0.5) / float(height) * grid_h - 0.5
        cols = (points[:, 1] + 0.5) / float(width) * grid_w - 0.5
        rows = np.clip(np.floor(rows + 0.5), 0, grid_h - 1).astype(np.int64)
        cols = np.clip(np.floor(cols + 0.5), 0, grid_w - 1).astype(np.int64)
        np.add.at(counts, (rows, cols), 1.0)
    if not counts.any():
        raise ValueError("no fixations to fit the centre bias to")
    sigma = sigma_fraction * max(grid_h, grid_w)
    blurred = _fixations.blur_fixation_map(counts, sigma).astype(np.float64)
    if not blurred.any():  # a single point on a 1-cell grid: min-max gives 0
        blurred = counts
    density = blurred / blurred.sum()
    return (1.0 - uniform_weight) * density + uniform_weight / density.size


def resize_density(density: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resizes a density to `shape`: as the metrics resize predictions
    (`saliency.resize_map`: cubic up, area down), clipped at 0, renormalised
    to sum 1.

    Args:
        density: non-negative `[h, w]` map, not all zeros.
        shape: `(height, width)` of the output.

    Returns:
        float64 `[height, width]`, non-negative, summing to 1.
    """
    values = np.asarray(density, dtype=np.float64)
    if values.ndim != 2 or not np.all(np.isfinite(values)) or values.min() < 0:
        raise ValueError(
            f"density must be a finite non-negative [h, w] map, got shape "
            f"{values.shape}"
        )
    values = np.maximum(saliency.resize_map(values, shape), 0.0)
    total = values.sum()
    if total <= 0:
        raise ValueError("density is all zeros")
    return values / total


def uniform_density(shape: tuple[int, int]) -> np.ndarray:
    """The uniform density, float64 `[height, width]`, each pixel `1 / (H W)`."""
    height, width = int(shape[0]), int(shape[1])
    return np.full((height, width), 1.0 / (height * width), dtype=np.float64)


def explainable_information_gain_share(
    ig_model: float | np.ndarray,
    ig_centre: float | np.ndarray,
    ig_truth: float | np.ndarray,
) -> float | np.ndarray:
    """The share of explainable information gain a model captures.

    `(IG_model - IG_centre) / (IG_truth - IG_centre)`: 0 at the centre bias,
    1 at the true density (Kuemmerer et al., PNAS 2015). All three should be
    information gains (bits per fixation) over the same reference, averaged
    over the same images; `information_gain` over the centre bias gives
    `IG_centre = 0`.

    Args:
        ig_model: IG of the model.
        ig_centre: IG of the centre-bias baseline.
        ig_truth: IG of the true density (the ceiling).

    Returns:
        The share (a float, or an array for array inputs); can be < 0 or > 1.

    Raises:
        ValueError: an input is NaN or infinite, or the truth does not beat the
            centre bias (no explainable information, the share is undefined).
    """
    model, centre, truth = (
        np.asarray(v, dtype=np.float64) for v in (ig_model, ig_centre, ig_truth)
    )
    for name, value in (
        ("IG_model", model),
        ("IG_centre", centre),
        ("IG_truth", truth),
    ):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} is NaN or infinite: {value}")
    explainable = truth - centre
    if np.any(explainable <= 0):
        raise ValueError(
            "IG_truth must exceed IG_centre for the explainable share to be "
            f"defined, got IG_truth - IG_centre = {explainable}"
        )
    share = (model - centre) / explainable
    return float(share) if share.ndim == 0 else share
