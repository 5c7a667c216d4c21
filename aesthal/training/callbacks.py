"""Keras callbacks for aesthal training runs, and the resume helper.

Each reads or writes an `aesthal.training.Trainer` (`self.model`):

- `TrainingStatsLogger`: the learning rates, task weights and NaN/Inf skips
  of every epoch, into `History` and TensorBoard (`Trainer.fit` adds one);
- `EpochLossesToWeighting`: each epoch's task losses to a loss weighting
  that needs them (DWA; `Trainer.fit` adds it);
- `StopOnNonFinite`: ends `fit` at the first step whose update the train
  step's NaN/Inf guard refused, naming the step and the task.
- `NetworkCheckpoint`: the network alone, as a `.keras` file, every epoch.
- `SaliencyImageLogger`: TensorBoard panels image | ground truth | prediction
  for fixed validation examples, every epoch.
- `RunRecord`: `history.json` and `train_time.json`, written every epoch and
  kept whole across resumes.
- `WorkerBackupAndRestore`: `BackupAndRestore` whose backups are atomic (a
  kill or Ctrl-C while one is written leaves the one before it, restored on
  the rerun) and that, on a multi-worker run's non-chief workers, writes to
  a folder of their own.
- `find_backup` / `completed_epochs`: which backup a rerun restores and how
  many epochs it holds, read *before* `fit` so that the training stream can
  be positioned where the interrupted run stopped; a folder whose backups
  are all unreadable is a one-line `BackupUnreadableError`. A backup written
  before issue 25 (when the network was its own trainer) is restored through
  `convert_pre_trainer_backup`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pathlib
import shutil
import tempfile
import time

import h5py
import keras
import numpy as np
import tensorflow as tf

from aesthal.config import GROUPS, TASKS
from aesthal.drawing import heat_map

_LOG = logging.getLogger("aesthal")


class NonFiniteLossError(FloatingPointError):
    """A training step had a NaN or Inf loss or gradient; the run stops at once."""


class StopOnNonFinite(keras.callbacks.Callback):
    """Ends `fit` with an error naming the step and task at the first NaN/Inf.

    `Trainer.train_step` refuses to apply an update whose task losses or
    gradients are not all finite, and counts the refused steps of the epoch in
    the `{group}_nonfinite` training statistics (`trainer.training_stats()`;
    `"saliency"`, `"aesthetics"`: that task's loss or its head's gradients;
    `"shared"`: the trunk's gradients). This callback raises
    `NonFiniteLossError` at the first batch whose statistics show one (or whose
    logs show a non-finite loss), so the weights in memory are the last good
    ones and no epoch-end checkpoint (`BackupAndRestore`, `NetworkCheckpoint`)
    is written after the bad step: the last checkpoint is the last good state,
    and rerunning the same command resumes from it.

    The step named is the global training step (1-based) of the refused
    update: the trainer's `step_counter` (training steps run, applied or
    refused; saved with its state, so it goes on counting in a resumed run).
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


class TrainingStatsLogger(keras.callbacks.Callback):
    """Records `Trainer.training_stats()` per epoch; optionally to TensorBoard.

    The statistics are read after every training batch (so each epoch's value
    is the one at the end of its training, before validation resets the
    trackers) and appended per epoch to `history` (`{name: [value, ...]}`),
    which `Trainer.fit` merges into its `History`. With `log_dir`, each is
    also written as the scalar `epoch_{name}` at step = epoch, as the
    `keras.callbacks.TensorBoard` callback names its own (use its `train/`
    folder).

    Args:
        log_dir: TensorBoard folder, or None.
    """

    def __init__(self, log_dir: str | None = None):
        super().__init__()
        self.log_dir = log_dir
        self.history: dict[str, list[float]] = {}
        self._last: dict[str, tf.Tensor] = {}
        self._writer = None

    def on_train_batch_end(self, batch, logs=None):
        self._last = self.model.training_stats()

    def on_epoch_end(self, epoch, logs=None):
        values = {name: float(value) for name, value in self._last.items()}
        for name, value in values.items():
            self.history.setdefault(name, []).append(value)
        if self.log_dir is None or not values:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(step=epoch):
            for name, value in values.items():
                tf.summary.scalar(f"epoch_{name}", value)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class EpochLossesToWeighting(keras.callbacks.Callback):
    """Passes each epoch's mean training task losses to `loss_weighting.end_epoch`.

    `Trainer.fit` adds it when the strategy `uses_epoch_losses` (DWA).
    A task's epoch loss is what `combine` receives, at the global scale: its
    logged loss plus `loss_weight * loss` of each of its side heads (the
    epoch means `fit` logs before validation); a task that is not trained
    (not in the logs) gets 0.
    """

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        model = self.model
        losses = {t: float(logs.get(f"{t}_loss", 0.0)) for t in TASKS}
        for i, (task, _, weight) in enumerate(model.config.side_heads):
            losses[task] += weight * float(logs.get(f"side{i}_{task}_loss", 0.0))
        model.loss_weighting.end_epoch(losses)


class NetworkCheckpoint(keras.callbacks.Callback):
    """Saves the trainer's network alone to a `.keras` file after every epoch.

    What `keras.callbacks.ModelCheckpoint` does for a model that is its own
    network; a trainer's checkpoint is its network (`Trainer.network.save`),
    loadable by `aesthal.inference.load_model`. The file is written under
    another name and renamed, so a kill while saving keeps the last one whole.
    The training state (optimizers, step counter) is the backup's
    (`WorkerBackupAndRestore`).

    Args:
        path: the `.keras` file.
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = pathlib.Path(path)

    def on_epoch_end(self, epoch, logs=None):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writing = self.path.with_name("writing-" + self.path.name)
        self.model.network.save(writing)
        os.replace(writing, self.path)


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


# The files of a run's `backup/` folder (`WorkerBackupAndRestore`).
BACKUP_WEIGHTS = "latest.weights.h5"
PREVIOUS_WEIGHTS = "previous.weights.h5"
BACKUP_METADATA = "training_metadata.json"
# Where the next backup is written; renamed to BACKUP_WEIGHTS once complete.
_WRITING_WEIGHTS = "writing.weights.h5"
# A latest backup that could not be read, set aside by the restore.
_UNREADABLE_SUFFIX = ".unreadable"
# Keras' own double checkpoint (`double_checkpoint=True`), in folders written
# before the backups were atomic: still read, never written.
_KERAS_PREVIOUS_WEIGHTS = BACKUP_WEIGHTS + ".bkp"
# The HDF5 attribute that stamps a complete backup with its epoch.
_STAMP = "aesthal_training_metadata"
# What reading a damaged HDF5 or JSON file can raise.
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError)


class BackupUnreadableError(ValueError):
    """No training backup in a run's `backup/` folder can be read."""


@dataclasses.dataclass(frozen=True)
class Backup:
    """One readable backup of a run's training state.

    Attributes:
        path: its weights file (the model's and the optimizers' variables).
        epoch: the epochs finished when it was written.
    """

    path: pathlib.Path
    epoch: int


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]


def _read_backup(weights: pathlib.Path, metadata: pathlib.Path):
    """Reads every array of one backup file: `(epoch, array names, stamped)`.

    A file written by `WorkerBackupAndRestore` carries its epoch in the
    `_STAMP` attribute, set before the file gets its name, so a stamped file
    is complete. An unstamped one (written in place by Keras' callback) takes
    its epoch from the metadata file beside it.

    Raises:
        OSError, ValueError, KeyError, TypeError, RuntimeError: unreadable.
    """
    names = set()

    def read(name, item):
        if isinstance(item, h5py.Dataset):
            item[()]  # a cut-off file fails here, if not at the opening
            names.add(name)

    with h5py.File(weights, "r") as handle:
        handle.visititems(read)
        stamp = handle.attrs.get(_STAMP)
    if stamp is not None:
        return int(json.loads(stamp)["epoch"]), names, True
    with open(metadata) as file:
        return int(json.load(file)["epoch"]), names, False


def find_backup(backup_dir: str | os.PathLike) -> Backup | None:
    """The backup a resumed run starts from: the latest one that can be read.

    The candidates, newest first: `latest.weights.h5`, `previous.weights.h5`
    (the backup before it, kept until the latest was complete) and Keras'
    `latest.weights.h5.bkp` of folders written before the backups were
    atomic. Each is read in full; an unstamped file (Keras' in-place writes)
    that lacks arrays an older candidate has was cut short and is passed over.

    Args:
        backup_dir: a run's `backup/` folder.

    Returns:
        The first readable candidate, or None when the folder holds no backup.

    Raises:
        BackupUnreadableError: there are backup files but none can be read;
            one line naming them and how to start over (`start_over`).
    """
    folder = pathlib.Path(backup_dir)
    candidates = [
        (folder / BACKUP_WEIGHTS, folder / BACKUP_METADATA),
        (folder / PREVIOUS_WEIGHTS, None),
        (folder / _KERAS_PREVIOUS_WEIGHTS, folder / (BACKUP_METADATA + ".bkp")),
    ]
    present = [c for c in candidates if c[0].exists()]
    if not present:
        return None
    read, problems = [], []
    for weights, metadata in present:
        try:
            read.append((weights, *_read_backup(weights, metadata)))
        except _READ_ERRORS as error:
            problems.append(f"{weights}: {_one_line(error)}")
    for index, (weights, epoch, names, stamped) in enumerate(read):
        older = set().union(*(other[2] for other in read[index + 1 :]))
        if not stamped and not older <= names:
            problems.append(
                f"{weights}: {len(older - names)} arrays missing (cut short "
                "while being written)"
            )
            continue
        if problems:
            _LOG.warning(
                "%s; resuming from %s (epoch %d).", "; ".join(problems), weights, epoch
            )
        return Backup(weights, epoch)
    raise BackupUnreadableError(
        f"no training backup in {folder} can be read ({'; '.join(problems)}). "
        "To train this run again from epoch 1, rerun with --start_over "
        "(runner.train(..., start_over=True)), which deletes that folder; or "
        "use another --output_dir."
    )


def completed_epochs(backup_dir: str | os.PathLike) -> int:
    """Epochs finished by the run whose backup is in `backup_dir`.

    Read *before* `fit`, so that the training stream can be positioned where
    the interrupted run stopped: the epoch of the backup that
    `WorkerBackupAndRestore` will restore (`find_backup`).

    Args:
        backup_dir: the callback's `backup_dir`.

    Returns:
        The number of finished epochs (0 when there is no backup).

    Raises:
        BackupUnreadableError: see `find_backup`.
    """
    backup = find_backup(backup_dir)
    return 0 if backup is None else backup.epoch


# The training state a backup written before issue 25 held beside the network
# (`AesthalModel` was its own trainer then): kept where the `Trainer` keeps it.
_TRAINER_STATE = frozenset(
    {
        "shared_optimizer",
        "aesthetics_optimizer",
        "saliency_optimizer",
        "group_optimizers",
        "loss_weighting",
        "step_counter",
    }
)
# Where a trainer's weights file holds its network.
_NETWORK_GROUP = "layers/aesthal_model"


def is_pre_trainer_backup(path: str | os.PathLike) -> bool:
    """Whether a backup was written before issue 25, when the network was its
    own trainer: its weights file holds the network's layers at the top
    (a `backbone` group), where a `Trainer`'s holds them under
    `layers/aesthal_model`."""
    with h5py.File(path, "r") as handle:
        return "backbone" in handle


def convert_pre_trainer_backup(
    source: str | os.PathLike, target: str | os.PathLike
) -> None:
    """Writes a pre-issue-25 backup in a `Trainer`'s layout, for resuming it.

    The network's groups move under `layers/aesthal_model`; the training state
    (the optimizers, the loss weighting, the step counter) stays at the top,
    where the trainer keeps it under the same names. The attributes (the
    backup's epoch stamp) are copied.
    """
    with h5py.File(source, "r") as old, h5py.File(target, "w") as new:
        for key, value in old.attrs.items():
            new.attrs[key] = value
        network = new.require_group(_NETWORK_GROUP)
        for key in old:
            old.copy(old[key], new if key in _TRAINER_STATE else network, name=key)


def _fsync(path: pathlib.Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())


class WorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore`, atomic, with multi-worker writing.

    Atomic: each epoch's backup is written to `writing.weights.h5`, stamped
    with its epoch (an HDF5 attribute) and only then renamed to
    `latest.weights.h5`, after the backup before it was renamed to
    `previous.weights.h5`. A kill or Ctrl-C at any moment leaves at least one
    complete backup; `find_backup` restores the latest readable one (and the
    runner positions the training stream at its epoch with
    `completed_epochs`). A latest backup that cannot be read is set aside as
    `latest.weights.h5.unreadable`. `training_metadata.json` is still
    written after each backup, as Keras writes it, for readers of its layout.

    Multi-worker: Keras 3's callback has no chief logic, so under
    `MultiWorkerMirroredStrategy` every worker would write the same
    `backup_dir`. Here every worker restores from `backup_dir` (the chief's
    backup: a shared file system, or a copy), but writes its backups to
    `write_backup_dir`: the chief's is `backup_dir`, each other worker's a
    temporary folder of its own (`aesthal.training.distribute.write_dir`),
    as TF's multi-worker checkpointing guidance says (every worker saves,
    since saving can read variables through a collective; only the chief's
    copy is kept).

    Args:
        backup_dir: the backup read at the start of `fit`.
        write_backup_dir: where this worker writes (None: `backup_dir`).
        restore: False to start from the model as it is (`start_over`),
            whatever `backup_dir` holds.
        **kwargs: as `keras.callbacks.BackupAndRestore` (`double_checkpoint`
            is ignored: the previous backup is always kept).
    """

    def __init__(self, backup_dir, write_backup_dir=None, restore=True, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.write_backup_dir = os.fspath(write_backup_dir or backup_dir)
        self.restore = restore

    def on_train_begin(self, logs=None):
        read_dir = pathlib.Path(self.backup_dir)
        backup = find_backup(read_dir) if self.restore else None
        if backup is not None:
            self._restore(backup)
            latest = read_dir / BACKUP_WEIGHTS
            if backup.path != latest and latest.exists() and self._writes(read_dir):
                # Not rotated into previous.weights.h5 by the next backup.
                os.replace(latest, latest.with_name(latest.name + _UNREADABLE_SUFFIX))
        self.backup_dir = self.write_backup_dir

    def _writes(self, folder: pathlib.Path) -> bool:
        return os.path.realpath(folder) == os.path.realpath(self.write_backup_dir)

    def _restore(self, backup: Backup) -> None:
        """Loads the weights and optimizer state of `backup`; sets the epoch."""
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        path = backup.path
        try:
            if path.name.endswith(".weights.h5") and not is_pre_trainer_backup(path):
                model.load_weights(path)
            else:  # Keras' .bkp (load_weights wants the .weights.h5 ending), or
                # a backup of the network that was its own trainer: a copy
                with tempfile.TemporaryDirectory() as folder:
                    copy = pathlib.Path(folder) / "restore.weights.h5"
                    if is_pre_trainer_backup(path):
                        convert_pre_trainer_backup(path, copy)
                    else:
                        shutil.copyfile(path, copy)
                    model.load_weights(copy)
        except _READ_ERRORS as error:
            raise BackupUnreadableError(
                f"the training backup {path} cannot be loaded into this model "
                f"({_one_line(error)}). To train this run again from epoch 1, "
                "rerun with --start_over (runner.train(..., start_over=True)), "
                f"which deletes {path.parent}; or use another --output_dir."
            ) from error
        model._initial_epoch = backup.epoch

    def _save_model(self):
        folder = pathlib.Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        writing = folder / _WRITING_WEIGHTS
        self.model.save_weights(writing, overwrite=True)
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        with h5py.File(writing, "r+") as handle:
            handle.attrs[_STAMP] = json.dumps(metadata)
        _fsync(writing)
        latest = folder / BACKUP_WEIGHTS
        if latest.exists():
            os.replace(latest, folder / PREVIOUS_WEIGHTS)
        os.replace(writing, latest)
        _write_json(str(folder / BACKUP_METADATA), metadata)


class SkipBatchesOnTrainBegin(keras.callbacks.Callback):
    """Starts `fit`'s training stream `batches` batches in (for resuming).

    Use `callback.dataset` as `fit`'s data and pass the callback to `fit`.

    Why not plain `dataset.skip(batches)`: `aesthal.data.make_dataset` shuffles
    with `reshuffle_each_iteration=True`, whose seed generator is shared by
    every iterator of the dataset object, so the order an iterator sees
    depends on how many shuffle passes earlier iterators drew. `fit` first
    reads one batch for `Trainer.validate_data`; through a skip, that
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
