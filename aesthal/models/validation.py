"""Up-front checks of a batch `(images, targets, sample_weights)` (numpy level).

`validate_batch` is what `AesthalModel.fit` runs on the first batch before
training, and what a data pipeline can call on its own output; it raises a
`ValueError` naming the tensor and the problem. The same value checks run in the
training graph on every batch (`tf.debugging` asserts in
`AesthalModel.train_step`), so a bad later batch stops training with the same
kind of message instead of producing NaNs. These two are the only checks of a
batch: one at the edge (here), one in the graph.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from aesthal.config import NUM_SCORES, TASKS


def validate_batch(
    images,
    targets: Mapping | None,
    sample_weights: Mapping | None,
    input_size: tuple[int, int],
) -> None:
    """Checks one batch against the model's contract (see docs/design.md).

    Args:
        images: float `[B, H, W, 3]`, values in 0..255, `(H, W) == input_size`.
        targets: `{"saliency": [B, H, W, 1] >= 0, "aesthetics": [B, 10] >= 0}`,
            either key optional; or None (prediction only).
        sample_weights: `{task: [B]}` with values 0 or 1, or None.
        input_size: the model's `(height, width)`.

    Raises:
        ValueError: naming the tensor and what is wrong with it.
    """
    images = np.asarray(images)
    height, width = input_size
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must be RGB [B, {height}, {width}, 3]; got shape {images.shape}."
        )
    if tuple(images.shape[1:3]) != (height, width):
        raise ValueError(
            f"images are {images.shape[1]}x{images.shape[2]} but the model input is "
            f"{height}x{width}; resize them in the data pipeline."
        )
    if not np.issubdtype(images.dtype, np.number):
        raise ValueError(f"images must be numeric; got dtype {images.dtype}.")
    if images.size and not np.all(np.isfinite(images)):
        raise ValueError("images contain NaN or Inf.")
    if images.size and (images.min() < 0 or images.max() > 255):
        raise ValueError(
            f"images must have values in 0..255; got {images.min()}..{images.max()}."
        )
    if targets is None:
        return
    if not isinstance(targets, Mapping):
        raise ValueError(
            f"targets must be a dict with keys in {TASKS}; "
            f"got {type(targets).__name__}."
        )
    unknown = set(targets) - set(TASKS)
    if unknown:
        raise ValueError(
            f"targets has unknown tasks {sorted(unknown)}; expected {TASKS}."
        )
    sample_weights = dict(sample_weights or {})
    unknown = set(sample_weights) - set(TASKS)
    if unknown:
        raise ValueError(
            f"sample_weights has unknown tasks {sorted(unknown)}; expected {TASKS}."
        )
    batch = images.shape[0]
    expected_shapes = {
        "saliency": (batch, height, width, 1),
        "aesthetics": (batch, NUM_SCORES),
    }
    for task, target in targets.items():
        target = np.asarray(target, dtype=np.float64)
        if target.shape != expected_shapes[task]:
            raise ValueError(
                f"targets[{task!r}] has shape {target.shape}; expected "
                f"{expected_shapes[task]} (the model's output size)."
            )
        if not np.all(np.isfinite(target)):
            raise ValueError(f"targets[{task!r}] contains NaN or Inf.")
        if np.any(target < 0):
            raise ValueError(
                f"targets[{task!r}] has negative values (min {target.min()})."
            )
        mask = sample_weights.get(task)
        if mask is None:
            mask = np.ones(batch)
        else:
            mask = np.asarray(mask, dtype=np.float64)
            if mask.shape != (batch,):
                raise ValueError(
                    f"sample_weights[{task!r}] has shape {mask.shape}; "
                    f"expected ({batch},)."
                )
            if not np.all((mask == 0) | (mask == 1)):
                raise ValueError(
                    f"sample_weights[{task!r}] must be 0 or 1; got values "
                    f"{sorted(set(mask.tolist()))}."
                )
        sums = target.reshape(batch, -1).sum(axis=1)
        empty = np.flatnonzero((mask > 0) & (sums <= 0))
        if empty.size:
            raise ValueError(
                f"targets[{task!r}] is all zeros for labelled examples "
                f"{empty.tolist()} "
                f"(sample_weights[{task!r}] is 1 there)."
            )
