"""Checks of a batch `(images, targets, sample_weights)`: the first at the edge,
every later one in the step.

`validate_batch` is what `Trainer.fit`/`evaluate` run on the first batch
before any step (numpy: `validate_data`), and what a data pipeline can call
on its own output; it raises a `ValueError` naming the tensor and the
problem. `unpack_batch` is the step's trace-time check (structure and shapes).

Every batch after it is checked inside the train/test step by
`batch_report` (a few reductions, recorded in a small variable; no
`tf.debugging` assert, so it works the same under XLA, where asserts are
compiled out), and `BatchChecker`, a callback that `Trainer.fit` and
`evaluate` add themselves, reads the record after each batch and raises
`InvalidBatchError` (a `ValueError`) with the *same* message as
`validate_batch`, plus the batch, the epoch, the training step and the
positions in the batch. A bad batch's update is not applied (the step refuses
it, as the NaN/Inf guard refuses one).

What both check: pixels (finite ones) in 0..255; targets finite and
non-negative; sample weights 0 or 1; no all-zero target where the weight is 1.
NaN/Inf *pixels* in later batches are left to the train step's NaN/Inf guard
(`aesthal.training.callbacks.StopOnNonFinite` names the step and the task).
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from aesthal.config import NUM_SCORES, TASKS

#: The per-example checks of `batch_report`, in the report's order.
CHECKS = ("images_range",) + tuple(
    f"{task}_{kind}"
    for task in TASKS
    for kind in ("nonfinite", "negative", "mask", "empty")
)
#: Positions in the batch listed per failed check.
MAX_LISTED = 8
_NUM_VALUES = 2 + len(TASKS)  # images min, max; each task's target min
#: Length of the float32 report vector (see `batch_report`).
REPORT_SIZE = (
    len(CHECKS) + len(CHECKS) * MAX_LISTED + _NUM_VALUES + len(TASKS) * MAX_LISTED
)


class InvalidBatchError(ValueError):
    """A batch after the first broke the data contract; `fit`/`evaluate` stop."""


def problem_message(check: str, indices=(), *, low=None, high=None, values=()) -> str:
    """The message of one failed check, shared by the first-batch check and the
    per-batch one.

    Args:
        check: one of `CHECKS`.
        indices: positions in the batch that failed it.
        low, high: `images_range`: the pixel range; `*_negative`: `low` is the
            target's minimum.
        values: `*_mask`: the offending sample weights.
    """
    if check == "images_range":
        return f"images must have values in 0..255; got {low:g}..{high:g}."
    task, kind = check.rsplit("_", 1)
    if kind == "nonfinite":
        return f"targets[{task!r}] contains NaN or Inf."
    if kind == "negative":
        return f"targets[{task!r}] has negative values (min {low:g})."
    if kind == "mask":
        shown = sorted({float(v) for v in values})
        return f"sample_weights[{task!r}] must be 0 or 1; got values {shown}."
    return (
        f"targets[{task!r}] is all zeros for labelled examples {list(indices)} "
        f"(sample_weights[{task!r}] is 1 there)."
    )


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
            problem_message(
                "images_range", low=float(images.min()), high=float(images.max())
            )
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
            raise ValueError(problem_message(f"{task}_nonfinite"))
        if np.any(target < 0):
            raise ValueError(
                problem_message(f"{task}_negative", low=float(target.min()))
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
            bad = ~((mask == 0) | (mask == 1))
            if np.any(bad):
                raise ValueError(problem_message(f"{task}_mask", values=mask[bad]))
        sums = target.reshape(batch, -1).sum(axis=1)
        empty = np.flatnonzero((mask > 0) & (sums <= 0))
        if empty.size:
            raise ValueError(problem_message(f"{task}_empty", empty.tolist()))


def unpack_batch(data, input_size: tuple[int, int]):
    """`(images, targets, masks)` of a step, with every task present.

    The trace-time check of a batch (structure and shapes); the values are
    checked by `batch_report`. A task without targets gets zeros and mask 0.

    Args:
        data: `(images, targets[, sample_weights])` as `fit` passes it; images
            float `[B, H, W, 3]` (checked by the network when it runs), or a
            dict of the frozen prefix's cached features.
        input_size: the network's `(H, W)`.

    Returns:
        `(images, targets, masks)`: `targets` `{task: float32}` at the
        network's output shapes, `masks` `{task: float32 [B]}`.

    Raises:
        ValueError: no targets, or targets / sample weights that are not
            dicts of known tasks, or a target of the wrong shape.
    """
    images, targets, sample_weights = keras.utils.unpack_x_y_sample_weight(data)
    if isinstance(images, Mapping):
        images = dict(images)  # cached prefix features: checked by the network
    if targets is None:
        raise ValueError(
            "train/test data must yield (images, targets[, sample_weights])."
        )
    if not isinstance(targets, Mapping):
        raise ValueError(
            f"targets must be a dict with keys in {TASKS}; "
            f"got {type(targets).__name__}."
        )
    sample_weights = {} if sample_weights is None else sample_weights
    if not isinstance(sample_weights, Mapping):
        raise ValueError(
            f"sample_weights must be a dict {{task: [B]}}; got "
            f"{type(sample_weights).__name__}."
        )
    for name, mapping in (("targets", targets), ("sample_weights", sample_weights)):
        unknown = set(mapping) - set(TASKS)
        if unknown:
            raise ValueError(
                f"{name} has unknown tasks {sorted(unknown)}; expected {TASKS}."
            )
    height, width = input_size
    first = next(iter(images.values())) if isinstance(images, dict) else images
    batch = tf.shape(first)[0]
    shapes = {"saliency": (height, width, 1), "aesthetics": (NUM_SCORES,)}
    full_targets, masks = {}, {}
    for task in TASKS:
        if task in targets:
            target = tf.cast(targets[task], tf.float32)
            if tuple(target.shape[1:]) != shapes[task]:
                raise ValueError(
                    f"targets[{task!r}] has shape {tuple(target.shape)}; the model "
                    f"outputs [B, {', '.join(map(str, shapes[task]))}]."
                )
            mask = sample_weights.get(task)
            mask = (
                tf.ones([batch])
                if mask is None
                else tf.reshape(tf.cast(mask, tf.float32), [-1])
            )
        else:
            target = tf.zeros(tf.concat([[batch], shapes[task]], 0))
            mask = tf.zeros([batch])
        full_targets[task], masks[task] = target, mask
    return images, full_targets, masks


def validate_data(x, y, sample_weight, input_size: tuple[int, int]) -> None:
    """Runs `validate_batch` on the first batch of `fit`/`evaluate` data.

    Handles `tf.data.Dataset`s (reads one batch) and in-memory arrays (checks
    the first 64 examples); other inputs (generators, distributed datasets)
    are left to the in-step checks. Cached prefix features (a dict instead
    of images) were computed from checked images: only their labels are
    checked, against a neutral image.

    Raises:
        ValueError: see `validate_batch`; or the data is empty (a dataset that
            yields no batch, or no examples).
    """
    if isinstance(x, tf.data.Dataset):
        first = list(x.take(1))  # one read: see SkipBatchesOnTrainBegin
        if not first:
            raise ValueError(
                "the data is empty: the dataset yields no batch, so there is "
                "nothing to train or evaluate on. Check the split, the label "
                "budgets and the filters of the pipeline (with "
                "drop_remainder=True, a split smaller than one batch is empty)."
            )
        for batch in first:
            images, targets, weights = keras.utils.unpack_x_y_sample_weight(batch)
            if isinstance(images, Mapping):
                size = len(next(iter(images.values())))
                images = np.zeros((size, *input_size, 3), np.float32)
            validate_batch(_numpy(images), _numpy(targets), _numpy(weights), input_size)
        return
    if isinstance(x, (np.ndarray, tf.Tensor)):
        if len(x) == 0:
            raise ValueError(
                "the data is empty: images has 0 examples, so there is nothing "
                "to train or evaluate on."
            )
        head = lambda v: None if v is None else _numpy(v)[:64]  # noqa: E731
        targets = None if y is None else {k: head(v) for k, v in dict(y).items()}
        weights = (
            None
            if sample_weight is None
            else {k: head(v) for k, v in dict(sample_weight).items()}
        )
        validate_batch(head(x), targets, weights, input_size)


def _numpy(value):
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: _numpy(v) for k, v in value.items()}
    return np.asarray(value)


def batch_report(images, targets, masks) -> tf.Tensor:
    """The in-step check of one batch, as a float32 vector `[REPORT_SIZE]`.

    Only reductions and static shapes (no assert, no `tf.where` with one
    argument), so it runs the same eagerly, in a `tf.function` and under XLA.
    Under `tf.distribute` each replica's per-example results are gathered, so
    every replica returns the report of the global batch.

    Args:
        images: `[B, H, W, 3]`, any real dtype.
        targets: `{task: float32 [B, ...]}` for every task in `TASKS`.
        masks: `{task: float32 [B]}` for every task in `TASKS`.

    Returns:
        float32 `[REPORT_SIZE]`: per check (`CHECKS`) the number of failing
        examples; per check the first `MAX_LISTED` failing positions (-1
        padded); the finite pixels' min and max; each task's finite target
        minimum; each task's first `MAX_LISTED` non-0/1 sample weights.
        `describe_report` turns it into a message.
    """
    # Two reductions per tensor and example (a few percent of a step; see
    # the module docstring). A NaN pixel may or may not show in the min/max:
    # NaN/Inf pixels are the NaN/Inf guard's. A target's sum is NaN/Inf when
    # one of its values is (or when it overflows float32, beyond 3e38).
    images = tf.cast(images, tf.float32)
    batch = tf.shape(images)[0]
    pixel_min = tf.reduce_min(images, axis=[1, 2, 3])
    pixel_max = tf.reduce_max(images, axis=[1, 2, 3])
    bad = [(pixel_min < 0.0) | (pixel_max > 255.0)]
    values = [pixel_min, pixel_max]
    for task in TASKS:
        target = tf.reshape(tf.cast(targets[task], tf.float32), [batch, -1])
        mask = tf.reshape(tf.cast(masks[task], tf.float32), [batch])
        sums = tf.reduce_sum(target, axis=1)
        nonfinite = tf.logical_not(tf.math.is_finite(sums))
        target_min = tf.reduce_min(target, axis=1)
        bad += [
            nonfinite,
            target_min < 0.0,
            tf.logical_not((mask == 0.0) | (mask == 1.0)),
            (mask > 0.0) & (sums <= 0.0) & tf.logical_not(nonfinite),
        ]
        values += [target_min, mask]
    bad = tf.cast(tf.stack(bad, axis=1), tf.float32)  # [B, len(CHECKS)]
    values = tf.stack(values, axis=1)  # [B, 2 + 2 * len(TASKS)]
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        bad = context.all_gather(bad, axis=0)
        values = context.all_gather(values, axis=0)
    counts = tf.reduce_sum(bad, axis=0)
    rank = tf.cumsum(bad, axis=0) - 1.0  # [N, K]
    positions = tf.cast(tf.range(tf.shape(bad)[0]), tf.float32)[:, None, None]
    hit = (bad[:, :, None] > 0.0) & (
        rank[:, :, None] == tf.range(MAX_LISTED, dtype=tf.float32)[None, None, :]
    )
    listed = tf.maximum(tf.reduce_max(tf.where(hit, positions, -1.0), axis=0), -1.0)
    summary = [
        tf.reduce_min(values[:, 0])[None],
        tf.reduce_max(values[:, 1])[None],
    ]
    summary += [tf.reduce_min(values[:, 2 + 2 * i])[None] for i in range(len(TASKS))]
    mask_values = []
    for i, task in enumerate(TASKS):
        where = tf.cast(listed[CHECKS.index(f"{task}_mask")], tf.int32)
        picked = tf.gather(values[:, 3 + 2 * i], tf.maximum(where, 0))
        mask_values.append(tf.where(where >= 0, picked, 0.0))
    return tf.concat([counts, tf.reshape(listed, [-1]), *summary, *mask_values], axis=0)


def describe_report(report) -> tuple[str, list[int]] | None:
    """The first failed check of a `batch_report`: `(message, positions)`.

    Returns:
        None when every check passed; otherwise the `problem_message` of the
        first failed check in `CHECKS` order and its positions in the batch
        (at most `MAX_LISTED`).
    """
    report = np.asarray(report, np.float64)
    k = len(CHECKS)
    counts = report[:k]
    failed = np.flatnonzero(counts > 0)
    if not failed.size:
        return None
    check = int(failed[0])
    listed = report[k : k + k * MAX_LISTED].reshape(k, MAX_LISTED)
    indices = [int(i) for i in listed[check] if i >= 0]
    more = int(counts[check]) - len(indices)
    summary = report[k + k * MAX_LISTED :]
    name = CHECKS[check]
    kwargs = {}
    if name == "images_range":
        kwargs = {"low": summary[0], "high": summary[1]}
    elif name.endswith("_negative"):
        kwargs = {"low": summary[2 + TASKS.index(name.rsplit("_", 1)[0])]}
    elif name.endswith("_mask"):
        task = TASKS.index(name.rsplit("_", 1)[0])
        start = _NUM_VALUES + task * MAX_LISTED
        kwargs = {"values": summary[start : start + len(indices)]}
    message = problem_message(name, indices, **kwargs)
    if more > 0:
        message = message.rstrip(".") + f" (and {more} more)."
    return message, indices


class BatchChecker(keras.callbacks.Callback):
    """Raises `InvalidBatchError` after a batch whose in-step check failed.

    `Trainer.fit` and `evaluate` add one themselves. It reads the trainer's
    record of `batch_report` (`Trainer.batch_check`, which keeps the first
    failure) after every training and test batch.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def _reset(self) -> None:
        record = getattr(self.model, "batch_check", None)
        if record is not None:
            record.assign(tf.zeros_like(record))

    def on_train_begin(self, logs=None):
        self._reset()

    def on_test_begin(self, logs=None):
        self._reset()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(batch, training=True)

    def on_test_batch_end(self, batch, logs=None):
        self._check(batch, training=False)

    def _check(self, batch: int, training: bool) -> None:
        record = getattr(self.model, "batch_check", None)
        if record is None:
            return
        found = describe_report(record.numpy())
        if found is None:
            return
        message, indices = found
        if training:
            counter = getattr(self.model, "step_counter", None)
            step = (
                int(counter.count.numpy())  # training steps run, this one included
                if counter is not None
                else int(self.model.shared_optimizer.iterations.numpy()) + 1
            )
            where = (
                f"training batch {batch + 1} of epoch {self._epoch + 1} (training "
                f"step {step}), position(s) {indices} in the batch (0-based); the "
                "update was not applied"
            )
        else:
            where = f"evaluation batch {batch + 1}, position(s) {indices} in the batch"
        raise InvalidBatchError(
            f"{message} In {where}. Every batch is checked as the first one is; "
            "fix the data (see docs/design.md, 'What a dataset yields to fit')."
        )
