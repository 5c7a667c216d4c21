"""Pictures of saliency maps: 16-bit PNG values, JET heat maps, overlays.

Used by `python -m aesthal.predict` (its `_saliency.png` and `_overlay.jpg`),
the web page (`aesthal.serve`), the TensorBoard panels of training
(`aesthal.training.callbacks.SaliencyImageLogger`) and the figures
(`experiments/figures.py`).
"""

from __future__ import annotations

import cv2
import numpy as np

#: The heat map's weight in `overlay` (the image's is 1 - OVERLAY_ALPHA).
OVERLAY_ALPHA = 0.5


def saliency_png(saliency: np.ndarray) -> np.ndarray:
    """A density `[h, w]` as uint16, scaled so that its maximum is 65535."""
    peak = float(saliency.max())
    if not peak > 0:
        return np.zeros(saliency.shape, np.uint16)
    return np.round(saliency / peak * 65535.0).astype(np.uint16)


def heat_map(maps: np.ndarray) -> np.ndarray:
    """Non-negative maps `[N, H, W, 1]` to JET colours, uint8 RGB `[N, H, W, 3]`.

    Each map is scaled to its own maximum (all-zero maps stay at the cold end).
    """
    maps = np.asarray(maps, np.float32)[..., 0]
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    scaled = np.where(peak > 0, maps / np.maximum(peak, 1e-30), 0.0)
    grey = np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)
    return np.stack([cv2.applyColorMap(g, cv2.COLORMAP_JET)[..., ::-1] for g in grey])


def overlay(image: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    """RGB uint8 `[h, w, 3]` blended with a JET heat map of `saliency` `[h, w]`.

    Returns:
        BGR uint8 `[h, w, 3]` (for `cv2.imwrite`).
    """
    heat = heat_map(saliency[None, ..., None])[0, ..., ::-1]
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.addWeighted(bgr, 1.0 - OVERLAY_ALPHA, heat, OVERLAY_ALPHA, 0.0)
