"""Fixation points to maps: the one conversion every dataset and metric shares.

Convention (see docs/design.md): fixation points are `(row, column)` in 0-based
pixel coordinates of the image they belong to, as float32 `[N, 2]`. MATLAB
data (1-based, `x` = column, `y` = row) is converted once, in its builder, with
`from_matlab_xy`.
"""

from collections.abc import Sequence
from typing import Final

import cv2
import numpy as np

# The ground-truth blur of OSIE's `computeFixationMaps.m` (Xu et al. 2014):
# sigma 24 px at 800x600, about one degree of visual angle. The OSIE builder
# blurs its maps with it and `aesthal.crop`'s human ceiling crops on it.
OSIE_SIGMA_AT_800X600: Final[float] = 24.0


def from_matlab_xy(fix_x: np.ndarray, fix_y: np.ndarray) -> np.ndarray:
    """Converts MATLAB-style 1-based `(x, y)` fixations to 0-based `(row, col)`.

    Args:
        fix_x: 1-based column coordinates, any shape that flattens to `[N]`.
        fix_y: 1-based row coordinates, same length as `fix_x`.

    Returns:
        float32 `[N, 2]` array of `(row, column)`, 0-based.
    """
    fix_x = np.asarray(fix_x, dtype=np.float64).reshape(-1)
    fix_y = np.asarray(fix_y, dtype=np.float64).reshape(-1)
    if fix_x.shape != fix_y.shape:
        raise ValueError(
            f"fix_x and fix_y differ in length: {fix_x.shape[0]} vs {fix_y.shape[0]}"
        )
    return np.stack([fix_y - 1.0, fix_x - 1.0], axis=-1).astype(np.float32)


def osie_sigma(image_shape: Sequence[int]) -> float:
    """OSIE's ground-truth blur for an image: 24 px at 800x600, scaled with its size.

    Scaled by `sqrt(H * W / (800 * 600))`, so that the blur covers the same
    share of the image at any resolution.

    Args:
        image_shape: `(height, width, ...)`, both >= 1.

    Returns:
        Sigma in pixels (24.0 at 600x800, 12.0 at 300x400).

    Raises:
        ValueError: fewer than two dimensions, or a side < 1.
    """
    if len(image_shape) < 2 or int(image_shape[0]) < 1 or int(image_shape[1]) < 1:
        raise ValueError(
            f"image shape {tuple(image_shape)}: expected (height, width, ...) "
            "with both sides >= 1"
        )
    height, width = int(image_shape[0]), int(image_shape[1])
    return OSIE_SIGMA_AT_800X600 * float(np.sqrt(height * width / (800.0 * 600.0)))


def points_to_binary_map(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Marks fixated pixels: rounds each point to the nearest pixel, clips to the image.

    Rounding is half away from zero, as MATLAB's `round` in the MIT/OSIE code.
    Points that are NaN are dropped. Repeated fixations on one pixel mark it once
    (the MIT benchmark's binary fixation map).

    Args:
        points: float `[N, 2]` of `(row, column)`, 0-based.
        shape: `(height, width)` of the map.

    Returns:
        float32 `[height, width]` map of 0s and 1s.
    """
    height, width = int(shape[0]), int(shape[1])
    out = np.zeros((height, width), dtype=np.float32)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    points = points[np.all(np.isfinite(points), axis=1)]
    if points.size == 0:
        return out
    rows = np.clip(np.floor(points[:, 0] + 0.5), 0, height - 1).astype(np.int64)
    cols = np.clip(np.floor(points[:, 1] + 0.5), 0, width - 1).astype(np.int64)
    out[rows, cols] = 1.0
    return out


def gaussian_blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """The ground-truth Gaussian blur, unnormalised: zero padding, +-4 sigma kernel.

    The blur `blur_fixation_map` applies before its min-max step (MATLAB
    `imfilter`'s zero padding, as in OSIE's `computeFixationMaps.m`); the
    metrics blur a predicted density with it to build the map CC, KLD and SIM
    reward (see `aesthal.metrics.saliency.blurred_density`).

    Args:
        values: `[height, width]` map, float32 or float64 (kept).
        sigma: Gaussian standard deviation in pixels, > 0.

    Returns:
        `[height, width]`, same dtype as `values`.

    Raises:
        ValueError: `sigma <= 0`.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    ksize = 2 * int(np.ceil(4 * sigma)) + 1
    return cv2.GaussianBlur(
        values,
        (ksize, ksize),
        sigmaX=sigma,
        sigmaY=sigma,
        borderType=cv2.BORDER_CONSTANT,
    )


def blur_fixation_map(binary_map: np.ndarray, sigma: float) -> np.ndarray:
    """Blurs a fixation map with a Gaussian and min-max normalises it to [0, 1].

    Zero padding at the borders, as MATLAB's `imfilter` default in the
    upstream `computeFixationMaps.m`; the kernel spans +-4 sigma. An all-zero
    input gives an all-zero output (no division by zero).

    Args:
        binary_map: `[height, width]` non-negative map (counts or 0/1).
        sigma: Gaussian standard deviation in pixels, > 0.

    Returns:
        float32 `[height, width]` with values in [0, 1].
    """
    blurred = gaussian_blur(np.asarray(binary_map, dtype=np.float32), sigma)
    lo, hi = float(blurred.min()), float(blurred.max())
    if hi - lo <= 0:
        return np.zeros_like(blurred)
    return (blurred - lo) / (hi - lo)
