"""Keras callbacks for aesthal training runs, and the resume helper.

(`aesthal.models.TrainingStatsLogger`, which records the learning rates, task
weights and NaN/Inf skips, lives beside the model whose statistics it reads.)

- `StopOnNonFinite`: ends `fit` at the first step whose update the train
  step's NaN/Inf guard refused, naming the step and the task.
- `SaliencyImageLogger`: TensorBoard panels image | ground truth | prediction
  for fixed validation examples, every epoch.
- `RunRecord`: `history.json` and `train_time.json`, written every epoch and
  kept whole across resumes.
- `WorkerBackupAndRestore`: `BackupAndRestore` that, on a multi-worker
  run's non-chief workers, writes to a folder of their own.
- `completed_epochs`: how many epochs a `keras.callbacks.BackupAndRestore`
  folder has backed up, read *before* `fit` so that the training stream can be
  positioned where the interrupted run stopped.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from aesthal.config import GROUPS, TASKS
from aesthal.predict import heat_map


class NonFiniteLossError(FloatingPointError):
    """A training step had a NaN or Inf loss or gradient; the run stops at once."""


class StopOnNonFinite(keras.callbacks.Callback):
    """Ends `fit` with an error naming the step and task at the first NaN/Inf.

    `AesthalModel.train_step` refuses to apply an update whose task losses or
    gradients are not all finite, and counts the refused steps of the epoch in
    the `{group}_nonfinite` training statistics (`model.training_stats()`;
    `"saliency"`, `"aesthetics"`: that task's loss or its head's gradients;
    `"shared"`: the trunk's gradients). This callback raises
    `NonFiniteLossError` at the first batch whose statistics show one (or whose
    logs show a non-finite loss), so the weights in memory are the last good
    ones and no epoch-end checkpoint (`BackupAndRestore`, `ModelCheckpoint`)
    is written after the bad step: the last checkpoint is the last good state,
    and rerunning the same command resumes from it.

    The step named is the global training step (1-based) of the refused
    update: the model's `step_counter` (training steps run, applied or
    refused; saved with the model, so it goes on counting in a resumed run).
    It does not depend on any optimizer's `iterations`, which stop when a
    group has no variables (a frozen trunk; soft sharing has no shared
    group). With `steps_per_execution > 1` the logs arrive once per
    execution, so the step and batch named are those of the execution's last
    step.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        stats = self.model.training_stats()
        counts = {g: float(stats[f"{g}_nonfinite"]) for g in GROUPS}
        bad_losses = [
            name
            for name in ("loss", *(f"{t}_loss" for t in TASKS))
            if name in logs and not math.isfinite(float(logs[name]))
        ]
        if not bad_losses and not any(c > 0 for c in counts.values()):
            return
        tasks = [t for t in TASKS if counts[t] > 0] or [
            n[: -len("_loss")] for n in bad_losses if n != "loss"
        ]
        if tasks:
            where = f"task(s) {', '.join(tasks)}"
        elif counts["shared"] > 0:
            where = "the shared trunk's gradients"
        else:
            where = "the total loss"
        step = int(self.model.step_counter.count.numpy())
        raise NonFiniteLossError(
            f"NaN or Inf loss or gradient at training step {step} (epoch "
            f"{self._epoch + 1}, batch {batch + 1}) in {where}: the update was not "
            "applied and training stopped; the last checkpoint is the last good "
            "state. Check this batch's labels and images (NaN/Inf in a map, the "
            "votes or the pixels) or lower the learning rate, then rerun the same "
            "command to resume."
        )


class SaliencyImageLogger(keras.callbacks.Callback):
    """Logs image | ground truth | prediction panels for fixed examples per epoch.

    Each example becomes one uint8 RGB image `[H, 3W, 3]`: the input image, the
    ground-truth density and the predicted density (both as JET heat maps,
    each scaled to its maximum), side by side, under the TensorBoard tag
    `TAG`, at step = epoch index (as the `TensorBoard` callback's scalars).

    Args:
        log_dir: TensorBoard folder of the image summaries.
        examples: an unbatched dataset of `(image, targets, sample_weights)` as
            `aesthal.data.make_dataset` yields them (before batching); read once.
    """

    TAG = "validation/image_truth_prediction"

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

    def panels(self) -> np.ndarray | None:
        """The current panels, uint8 `[N, H, 3W, 3]` (None without examples)."""
        if self._images is None:
            return None
        prediction = self.model(self._images, training=False)["saliency"]
        image = np.round(np.clip(self._images, 0, 255)).astype(np.uint8)
        return np.concatenate(
            [image, heat_map(self._truths), heat_map(np.asarray(prediction))], axis=2
        )

    def on_epoch_end(self, epoch, logs=None):
        panels = self.panels()
        if panels is None:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(step=epoch):
            tf.summary.image(self.TAG, panels, max_outputs=len(panels))
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


class WorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` with the chief logic of multi-worker runs.

    Keras 3's callback has none: under `MultiWorkerMirroredStrategy` every
    worker would write the same `backup_dir`. Here every worker restores from
    `backup_dir` (the chief's backup: a shared file system, or a copy), but
    writes its backups to `write_backup_dir`: the chief's is `backup_dir`,
    each other worker's a temporary folder of its own
    (`aesthal.training.distribute.write_dir`), as TF's multi-worker
    checkpointing guidance says (every worker saves, since saving can read
    variables through a collective; only the chief's copy is kept).

    Args:
        backup_dir: the backup read at the start of `fit`.
        write_backup_dir: where this worker writes (None: `backup_dir`).
        **kwargs: as `keras.callbacks.BackupAndRestore`.
    """

    def __init__(self, backup_dir, write_backup_dir=None, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.write_backup_dir = os.fspath(write_backup_dir or backup_dir)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.write_backup_dir != os.fspath(self.backup_dir):
            self.backup_dir = self.write_backup_dir
            self._weights_path = os.path.join(self.backup_dir, "latest.weights.h5")
            self._training_metadata_path = os.path.join(
                self.backup_dir, "training_metadata.json"
            )
            self._prev_weights_path = f"{self._weights_path}.bkp"
            self._prev_training_metadata_path = f"{self._training_metadata_path}.bkp"


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


class RunRecord(keras.callbacks.Callback):
    """Keeps `history.json` and `train_time.json` whole across resumes.

    Written at the end of every epoch (put it before `BackupAndRestore` in the
    callback list, so that an epoch is in the record before the backup says
    it is done). On a resume, the record of the epochs the backup holds is
    kept and the new epochs are appended; epochs recorded after the backup
    (a kill between the two writes) are dropped, as their training is redone.

    `history.json`: `{name: [value per epoch]}`, `fit`'s epoch logs (losses,
    metrics, `val_` ones) plus the training statistics of `stats`.
    `train_time.json`: `{"seconds": total, "epoch_seconds": [per epoch]}`
    (training plus validation, per epoch; summed over every part of the run)
    plus the `setup` the times were measured with (e.g. the strategy and its
    replica count), so that a time keeps what it is a time of.

    Args:
        output_dir: the run directory.
        resumed_epochs: epochs the backup holds (`completed_epochs`).
        stats: the run's `TrainingStatsLogger` (called before this one), or None.
        setup: JSON-serialisable facts written into `train_time.json`.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        resumed_epochs: int,
        stats=None,
        setup: dict | None = None,
    ):
        super().__init__()
        self.output_dir = os.fspath(output_dir)
        self.stats = stats
        self.setup = dict(setup or {})
        history = _read_json(os.path.join(self.output_dir, "history.json")) or {}
        times = _read_json(os.path.join(self.output_dir, "train_time.json")) or {}
        self.history = {k: list(v)[:resumed_epochs] for k, v in history.items()}
        self.epoch_seconds = list(times.get("epoch_seconds", []))[:resumed_epochs]
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        values = {k: float(v) for k, v in (logs or {}).items()}
        if self.stats is not None:
            values.update({k: v[-1] for k, v in self.stats.history.items() if v})
        for name, value in values.items():
            self.history.setdefault(name, []).append(value)
        if self._start is not None:
            self.epoch_seconds.append(time.perf_counter() - self._start)
        _write_json(os.path.join(self.output_dir, "history.json"), self.history)
        _write_json(
            os.path.join(self.output_dir, "train_time.json"),
            {
                **self.setup,
                "seconds": sum(self.epoch_seconds),
                "epoch_seconds": self.epoch_seconds,
            },
        )


def _read_json(path: str):
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def _write_json(path: str, value) -> None:
    """Writes sorted, indented JSON atomically (a kill leaves the old file)."""
    partial = path + ".partial"
    with open(partial, "w") as handle:
        handle.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)
