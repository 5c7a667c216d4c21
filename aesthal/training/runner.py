"""The training runner: a `ExperimentConfig` in, a trained run directory out.

    config = aesthal.config.ExperimentConfig(
        output_dir="runs/demo",
        model=aesthal.ModelConfig(backbone="tiny", input_size=(96, 128)),
        data=aesthal.config.DataConfig(dataset="synthetic_scenes"),
        train=aesthal.config.TrainConfig(epochs=2, steps_per_epoch=50),
    )
    network = aesthal.training.runner.train(config)
    results = aesthal.evaluation.report.evaluate(
        network, config.data, config.output_dir
    )

A run directory holds:

    run.lock             locked (flock) while a run trains here: a second run
                         on the folder is refused (`output_lock`)
    config.json          the ExperimentConfig the run used
    flags.txt            the flags (experiments/run.py only)
    tensorboard/         per-task losses, task weights, learning rates, maps
    backup/              the training state after each epoch, written
                         atomically (latest and previous; resume after a
                         kill or Ctrl-C: `callbacks.WorkerBackupAndRestore`)
    checkpoints/last.keras   the network after the last finished epoch
    history.json, train_time.json   per-epoch logs of `fit` (with the
                         training statistics) and seconds with the strategy and
                         replica count they were measured on, written every
                         epoch and whole across resumes (`callbacks.RunRecord`)
    model.keras          the final network (`aesthal.inference.load_model`);
                         the optimizers' state is in backup/
    saved_model/         the SavedModel export (`aesthal.export.export_run`)
    metrics.json, metrics.md   test-split metrics with baselines
                         (`aesthal.evaluation.report.evaluate`)

The learning rates go from `TrainConfig` to the optimizers in one place,
`build_optimizers`; `make_trainer` compiles a `Trainer`, which holds them as
`shared_optimizer`, `aesthetics_optimizer` and `saliency_optimizer`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import pathlib
import shutil
from typing import Any

import keras
import tensorflow as tf

from aesthal import metrics as metrics_lib
from aesthal.config import DataConfig, ExperimentConfig, TrainConfig
from aesthal.data import prepare
from aesthal.models import AesthalModel, build_model, load_model
from aesthal.models.priors import centre_bias_log_density
from aesthal.training import callbacks as callbacks_lib
from aesthal.training import distribute, feature_cache, output_lock, progress
from aesthal.training.best_epoch import RestoreBestEpoch
from aesthal.training.trainer import Trainer

_LOG = logging.getLogger("aesthal")

# Printed once before the first epoch (`progress.ProgressLine`).
_PROGRESS_LEGEND = (
    "Shown: the loss, each task's loss and first metric, as training/validation; "
    "every value is in history.json and TensorBoard."
)


def build_optimizers(train: TrainConfig) -> dict[str, keras.optimizers.Optimizer]:
    """One Adam per variable group, at the group's learning rate and schedule.

    Args:
        train: `learning_rates()` gives each group's rate; `lr_schedule`
            "cosine" decays it to 0 over `epochs * steps_per_epoch` steps,
            "step" multiplies it by `lr_step_factor` every `lr_step_epochs`
            epochs.

    Returns:
        `{"shared" | "aesthetics" | "saliency": keras.optimizers.Adam}`, for
        `Trainer.compile(optimizers=...)`.
    """
    total_steps = train.epochs * train.steps_per_epoch
    optimizers = {}
    for group, rate in train.learning_rates().items():
        if train.lr_schedule == "cosine":
            rate = keras.optimizers.schedules.CosineDecay(rate, total_steps)
        elif train.lr_schedule == "step":
            every = train.lr_step_epochs * train.steps_per_epoch
            # PiecewiseConstantDecay keeps values[k] while step <= boundary[k];
            # the optimizer asks for step `iterations` (0-based), so the
            # first step of epoch `lr_step_epochs` is iteration `every`.
            boundaries = [b - 1 for b in range(every, total_steps, every)]
            if boundaries:
                rate = keras.optimizers.schedules.PiecewiseConstantDecay(
                    boundaries,
                    [
                        rate * train.lr_step_factor**k
                        for k in range(len(boundaries) + 1)
                    ],
                )
        optimizers[group] = keras.optimizers.Adam(learning_rate=rate)
    return optimizers


def make_trainer(
    network: AesthalModel, train: TrainConfig, tasks: tuple[str, ...] | None = None
) -> Trainer:
    """A `Trainer` of `network`, compiled for `train`, with the streaming
    per-task metrics.

    Args:
        network: the network to train.
        train: optimizers, loss weighting and saliency loss.
        tasks: the tasks trained (logged); None = all.

    Returns:
        The compiled trainer (`trainer.network` is `network`).
    """
    trainer = Trainer(network)
    trainer.compile(
        optimizers=build_optimizers(train),
        loss_weighting=train.loss_weighting,
        loss_weights=train.loss_weights or None,
        saliency_loss=train.saliency_loss or None,
        metrics={
            "saliency": [metrics_lib.SaliencyCC(), metrics_lib.SaliencyNSS()],
            "aesthetics": [metrics_lib.AestheticsEMD()],
        },
        **({} if tasks is None else {"tasks": tasks}),
    )
    return trainer


def _initialise_trunk(model: AesthalModel, path: str, heads: bool = False) -> None:
    """Copies the trunk of the `.keras` model at `path` into `model`; with
    `heads`, also the heads of `model`'s trained tasks, which must have the
    same shapes in both (same head type, taps and widths). Everything is
    checked before anything is copied: on an error `model` is unchanged."""
    source = load_model(path)
    if source.config.trunk.name != model.config.trunk.name:
        raise ValueError(
            f"init_from={path}: its trunk is {source.config.trunk.name!r}, this "
            f"model's is {model.config.trunk.name!r}."
        )
    tasks = model.config.tasks if heads else ()
    for task in tasks:
        mine, theirs = getattr(model, f"{task}_head"), getattr(source, f"{task}_head")
        if task not in source.config.tasks or [w.shape for w in mine.weights] != [
            w.shape for w in theirs.weights
        ]:
            raise ValueError(
                f"init_from={path} with init_heads: its {task} head does not "
                f"match this model's (trained tasks {source.config.tasks}; "
                "the head type, taps and widths must be the same); drop "
                "--init_heads to copy the trunk only."
            )
    model.backbone.set_weights(source.backbone.get_weights())
    if model.aesthetics_backbone is not None:  # soft / cross-stitch sharing
        model.aesthetics_backbone.set_weights(source.backbone.get_weights())
    for task in tasks:
        getattr(model, f"{task}_head").set_weights(
            getattr(source, f"{task}_head").get_weights()
        )


def write_json(path: pathlib.Path, value: Any) -> None:
    """Writes `value` as sorted, indented JSON, atomically: a reader (another
    worker's `check_resumable` while the chief rewrites `config.json`) or a
    kill never sees a half-written file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    partial.replace(path)


class ConfigConflictError(ValueError):
    """An output directory holds a run made with another configuration."""


def check_resumable(out: pathlib.Path, config: ExperimentConfig) -> None:
    """Refuses to resume a backup that another configuration wrote.

    The run's `config.json` is read as today's config
    (`ExperimentConfig.from_dict`, which migrates one of an earlier version:
    `aesthal.config.migration`; a field it lacks is at its default) and
    compared with `config`, all but `output_dir`.

    Raises:
        ConfigConflictError: `out` holds a training backup whose `config.json`
            differs from `config` (naming the fields), or cannot be read as a
            config.
    """
    previous_path = out / "config.json"
    if not (out / "backup").exists() or not previous_path.exists():
        return
    try:
        previous = ExperimentConfig.from_dict(json.loads(previous_path.read_text()))
    except (ValueError, TypeError, KeyError) as error:
        raise ConfigConflictError(
            f"{out} holds a training run whose config.json cannot be read as a "
            f"configuration ({error}); use a new output directory, or delete this "
            "one to start over."
        ) from error
    before = _dotted(previous.to_dict())
    now = _dotted(config.to_dict())
    changed = sorted(
        key
        for key in set(before) | set(now)
        if key != "output_dir" and before.get(key) != now.get(key)
    )
    if changed:
        raise ConfigConflictError(
            f"{out} holds a training run with another configuration (differs in "
            f"{', '.join(changed)}); resuming it would mix the two. Use a new "
            "output directory, or delete this one to start over."
        )


def _dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (dicts only; lists stay values)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def is_finished(config: ExperimentConfig) -> bool:
    """Whether `config.output_dir` holds this run with its training finished.

    True when the backup has all `config.train.epochs` epochs and
    `model.keras` and `history.json` were written (the configuration is
    checked by `train`).
    """
    out = pathlib.Path(config.output_dir)
    return (
        (out / "model.keras").is_file()
        and (out / "history.json").is_file()
        and callbacks_lib.completed_epochs(out / "backup") >= config.train.epochs
    )


def train(
    config: ExperimentConfig,
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
    start_over: bool = False,
) -> AesthalModel:
    """Trains a model as `config` says; resumes if the run directory has a backup.

    A backup is only resumed under the configuration that wrote it. A run
    whose training already finished (`is_finished`) is not trained again: its
    `model.keras` is loaded and returned, and its record (`history.json`,
    `train_time.json`) is kept as it is. The model's `ModelConfig.tasks` is
    set to the tasks trained (`DataConfig.tasks`).

    Writes `config.json`, TensorBoard logs, `backup/`, `checkpoints/last.keras`
    and `model.keras` under `config.output_dir`, holding the folder's lock
    (`output_lock.locked`) meanwhile: a second run on the same folder is
    refused. Before training, the batch size is checked against the training
    and validation splits (`prepare.check_batch_size`).

    Under a `tf.distribute` `strategy` (`aesthal.training.distribute`), the
    network and its trainer are built in its scope and `fit` splits every global
    batch of `DataConfig.batch_size` between the replicas (by data). Under
    `MultiWorkerMirroredStrategy` every worker runs this same function; the
    chief locks and writes the run directory, the other workers write into
    temporary folders of their own (deleted at the end) and every worker
    resumes from the run directory's `backup/`.

    Args:
        config: the run.
        verbose: `fit`'s verbosity.
        strategy: None (the current strategy: one device) or a
            `tf.distribute.Strategy` (`distribute.make_strategy`).
        start_over: discard the run directory's training state (`backup/`,
            e.g. one that cannot be read, and `checkpoints/`) and train from
            epoch 1, under the same configuration; the record is rewritten
            from epoch 1.

    Returns:
        The trained network (`AesthalModel`; its trainer is not kept).

    Raises:
        output_lock.OutputDirInUseError: another process trains in the folder.
        ConfigConflictError: the folder holds a run of another configuration.
        callbacks.BackupUnreadableError: the backup cannot be read (without
            `start_over`).
        prepare.BatchSizeError: the batch is larger than a split.
    """
    strategy = strategy or tf.distribute.get_strategy()
    out = pathlib.Path(config.output_dir)
    # Only the chief locks and writes the run directory.
    chief = distribute.is_chief(strategy)
    with output_lock.locked(out) if chief else contextlib.nullcontext():
        check_resumable(out, config)
        if not start_over and is_finished(config):
            _LOG.warning(
                "%s: training finished earlier (%d epochs); nothing to train, its "
                "model.keras, history.json and train_time.json are kept.",
                out,
                config.train.epochs,
            )
            return load_model(out / "model.keras")
        data = _checked_data(config)  # before anything is written
        if chief:
            if start_over:  # the state of the epochs to be redone
                for name in ("backup", "checkpoints"):
                    shutil.rmtree(out / name, ignore_errors=True)
            write_json(out / "config.json", config.to_dict())
        # Where this process writes: the run directory on the chief, a
        # temporary folder on the other workers of a multi-worker run.
        own = distribute.write_dir(out, strategy)
        try:
            return _train(config, data, verbose, strategy, out, own, start_over)
        finally:
            distribute.cleanup_write_dir(own, strategy)


def _checked_data(config: ExperimentConfig) -> DataConfig:
    """Prepares the data set and checks the splits and the batch size against
    it; returns `config.data`, without validation where the data set has no
    default "validation" split."""
    builder = prepare.prepare_data(config.data)
    data = config.data
    prepare.check_split(builder, data.train_split)
    if data.validation_split is not None:
        if data.validation_split == type(data).validation_split and not (
            prepare.split_names(data.validation_split)
            <= set(builder.info.splits.keys())
        ):
            # The default "validation" on a data set without one (osie, mit1003).
            _LOG.warning(
                "%s has no 'validation' split; training without validation "
                "(set validation_split, e.g. 'train[90%%:]', to hold some out).",
                data.dataset,
            )
            data = dataclasses.replace(data, validation_split=None)
        else:
            prepare.check_split(builder, data.validation_split)
    prepare.check_batch_size(builder, data)
    return data


def _train(
    config,
    data: DataConfig,
    verbose,
    strategy,
    out: pathlib.Path,
    own: pathlib.Path,
    start_over: bool,
):
    """`train` once the run directory is set: `out` is read, `own` written
    (`start_over`: nothing is restored from `out`); `data` is checked."""
    keras.utils.set_random_seed(config.train.seed)
    with strategy.scope():
        model = build_model(dataclasses.replace(config.model, tasks=data.tasks))
        if config.train.init_from:
            _initialise_trunk(
                model, config.train.init_from, heads=config.train.init_heads
            )
        if model.config.saliency.centre_prior == "fixed":
            # A weight of the model: saved in model.keras and the SavedModel.
            model.set_centre_prior(
                centre_bias_log_density(
                    prepare.training_fixations(data),
                    grid_shape=model.config.saliency.prior_grid,
                )
            )
        trainer = make_trainer(model, config.train, tasks=data.tasks)

    image_size = config.model.input_size
    # Resume: BackupAndRestore reloads the weights and all three optimizers'
    # state and restarts at the next epoch, but the (seeded, deterministic)
    # training stream restarts from its start: skip the batches consumed.
    resumed_epochs = 0 if start_over else callbacks_lib.completed_epochs(out / "backup")
    if data.cache_features:
        # The frozen prefix's features, once per image and mirror image: an
        # epoch costs only the trainable part.
        stream = feature_cache.cached_training_dataset(data, model, config.train.seed)
    else:
        stream = prepare.training_dataset(data, image_size, config.train.seed)
    skip = callbacks_lib.SkipBatchesOnTrainBegin(
        stream,
        resumed_epochs * config.train.steps_per_epoch,
    )
    train_ds = skip.dataset
    val_ds = prepare.validation_dataset(data, image_size)
    if distribute.is_multi_worker(strategy):
        # Each worker takes its share of every global batch (not of the files).
        train_ds = distribute.shard_by_data(train_ds)
        val_ds = None if val_ds is None else distribute.shard_by_data(val_ds)
    # Learning rates, task weights, NaN/Inf skips: beside TensorBoard's own
    # train/ scalars, and (through RunRecord) in history.json.
    stats = callbacks_lib.TrainingStatsLogger(str(own / "tensorboard" / "train"))
    best_epoch = []
    if config.train.restore_best_epoch:
        if val_ds is None:
            raise ValueError(
                "TrainConfig.restore_best_epoch needs a validation split "
                "(DataConfig.validation_split / --validation_split)."
            )
        best_epoch = [RestoreBestEpoch(own / "checkpoints")]
    callbacks = [
        # Before the backup: an epoch is recorded before it counts as done.
        stats,
        callbacks_lib.RunRecord(
            own,
            resumed_epochs,
            stats,
            setup={
                "strategy": type(strategy).__name__.lstrip("_"),
                "replicas": int(strategy.num_replicas_in_sync),
            },
        ),
        *best_epoch,
        callbacks_lib.WorkerBackupAndRestore(
            str(out / "backup"),
            write_backup_dir=str(own / "backup"),
            restore=not start_over,
            delete_checkpoint=False,
        ),
        callbacks_lib.NetworkCheckpoint(own / "checkpoints" / "last.keras"),
        keras.callbacks.TensorBoard(str(own / "tensorboard"), update_freq="epoch"),
        callbacks_lib.StopOnNonFinite(),
        skip,
        progress.ProgressLine(legend=_PROGRESS_LEGEND),
    ]
    if val_ds is not None and config.train.tensorboard_images > 0:
        callbacks.append(
            callbacks_lib.SaliencyImageLogger(
                str(own / "tensorboard" / "images"),
                val_ds.unbatch().take(config.train.tensorboard_images),
            )
        )
    (own / "checkpoints").mkdir(parents=True, exist_ok=True)
    trainer.fit(
        train_ds,
        epochs=config.train.epochs,
        steps_per_epoch=config.train.steps_per_epoch,
        validation_data=val_ds,
        validation_steps=config.train.validation_steps,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles, by seed
    )
    model.save(own / "model.keras")
    return model
