"""Keras callbacks for aesthal training runs, and the resume helper.

- `StopOnNonFinite`: ends `fit` at the first step whose update the train
  step's NaN/Inf guard refused, naming the step and the task.
- `SaliencyImageLogger`: TensorBoard panels image | ground truth | prediction
  for fixed validation examples, every epoch.
- `completed_epochs`: how many epochs a `keras.callbacks.BackupAndRestore`
  folder has backed up, read *before* `fit` so that the training stream can be
  positioned where the interrupted run stopped.
"""

from __future__ import annotations

import json
import math
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from aesthal.config import TASKS


class NonFiniteLossError(FloatingPointError):
    """A training step produced a NaN or Inf loss; the run stops at once."""


class StopOnNonFinite(keras.callbacks.Callback):
    """Ends `fit` with an error naming the step and task at the first NaN/Inf loss.

    The model's train step refuses to apply a non-finite update, so the
    weights in memory and every checkpoint written so far are the last good
    ones; raising here (rather than `stop_training`) keeps the epoch-end
    checkpoints from being written after the bad step.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        bad = [
            name
            for name in ("loss", *(f"{t}_loss" for t in TASKS))
            if name in logs and not math.isfinite(float(logs[name]))
        ]
        flagged = [t for t in TASKS if float(logs.get(f"{t}_nonfinite", 0.0)) > 0]
        if not bad and not flagged:
            return
        tasks = flagged or [n[: -len("_loss")] for n in bad if n != "loss"] or ["total"]
        step = int(self.model.group_optimizers["shared"].iterations.numpy())
        raise NonFiniteLossError(
            f"non-finite loss or gradient at epoch {self._epoch + 1}, batch "
            f"{batch + 1} (optimizer step {step + 1}) in task(s) {', '.join(tasks)}: "
            "the update was not applied; the last checkpoint is the last good state. "
            "Check the labels of this batch (NaN/Inf in a map or in the votes) or "
            "lower the learning rate."
        )


def _to_image(maps: np.ndarray) -> np.ndarray:
    """[N, H, W, 1] non-negative maps to [N, H, W, 1] in [0, 1] (per-image max)."""
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1, 1)
    return np.where(peak > 0, maps / np.maximum(peak, 1e-30), 0.0).astype(np.float32)


class SaliencyImageLogger(keras.callbacks.Callback):
    """Writes image | ground truth | prediction for fixed examples every epoch.

    Args:
        log_dir: TensorBoard folder of the image summaries.
        examples: an unbatched dataset of `(image, targets, sample_weights)` as
            `aesthal.data.make_dataset` yields them (before batching); read once.
    """

    def __init__(self, log_dir: str, examples: tf.data.Dataset):
        super().__init__()
        self.log_dir = log_dir
        images, truths = [], []
        for image, targets, _ in examples.as_numpy_iterator():
            images.append(image)
            truths.append(targets["saliency"])
        self._images = np.stack(images) if images else None
        self._truths = np.stack(truths) if truths else None
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self._images is None:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        prediction = self.model.predict_on_batch(self._images)["saliency"]
        with self._writer.as_default(step=epoch):
            tf.summary.image(
                "image", self._images / 255.0, max_outputs=len(self._images)
            )
            tf.summary.image(
                "saliency/ground_truth",
                _to_image(self._truths),
                max_outputs=len(self._images),
            )
            tf.summary.image(
                "saliency/prediction",
                _to_image(np.asarray(prediction)),
                max_outputs=len(self._images),
            )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


def completed_epochs(backup_dir: str | os.PathLike) -> int:
    """Epochs finished by the run whose `BackupAndRestore` state is in `backup_dir`.

    `keras.callbacks.BackupAndRestore` writes `latest.weights.h5` and then
    `training_metadata.json` (`{"epoch": finished epochs, ...}`) at the end of
    every epoch; with `double_checkpoint=True` it first copies both to `.bkp`.
    A kill while the weights are being written leaves an unreadable
    `latest.weights.h5`: like the callback's own `on_train_begin`, this
    function then restores the `.bkp` pair, so that the epoch returned here is
    the epoch of the weights the callback will load.

    Args:
        backup_dir: the callback's `backup_dir`.

    Returns:
        The number of finished epochs (0 when there is no backup).
    """
    import h5py

    weights = os.path.join(backup_dir, "latest.weights.h5")
    metadata = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(weights):
        return 0
    try:
        with h5py.File(weights, "r"):
            pass
    except OSError:
        if not os.path.exists(weights + ".bkp"):
            raise
        shutil.copy(weights + ".bkp", weights)
        if os.path.exists(metadata + ".bkp"):
            shutil.copy(metadata + ".bkp", metadata)
        elif os.path.exists(metadata):
            os.remove(metadata)
    if not os.path.exists(metadata):
        return 0
    with open(metadata) as handle:
        return int(json.load(handle)["epoch"])


class SkipBatchesOnTrainBegin(keras.callbacks.Callback):
    """Starts `fit`'s training stream `batches` batches in (for resuming).

    Use `callback.dataset` as `fit`'s data and pass the callback to `fit`.

    Why not plain `dataset.skip(batches)`: `aesthal.data.make_dataset` shuffles
    with `reshuffle_each_iteration=True`, whose seed generator is shared by
    every iterator of the dataset object, so the order an iterator sees
    depends on how many shuffle passes earlier iterators drew. `fit` first
    reads one batch for `AesthalModel.validate_data`; through a skip, that
    read would draw more passes in a resumed run than in the uninterrupted
    one. Here the skip count is a variable that is 0 while `fit` checks the
    first batch and becomes `batches` at `on_train_begin`, before `fit`
    creates its iterator, so a resumed run draws exactly the passes the
    uninterrupted run drew.

    Args:
        dataset: the training stream (repeated; batched).
        batches: batches to skip (`completed epochs * steps_per_epoch`).
    """

    def __init__(self, dataset: tf.data.Dataset, batches: int):
        super().__init__()
        self.batches = int(batches)
        self._skip = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.dataset = tf.data.Dataset.from_tensors(0).flat_map(
            lambda _: dataset.skip(self._skip)
        )

    def on_train_begin(self, logs=None):
        self._skip.assign(self.batches)
