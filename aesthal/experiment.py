"""Experiments as library calls: train, evaluate and export a run directory.

`experiments/run.py` turns its flags into the dataclasses below and calls
`train`, `evaluate` or `export`; Python users can call them directly:

    config = aesthal.experiment.ExperimentConfig(
        output_dir="runs/demo",
        model=aesthal.ModelConfig(backbone="tiny", input_size=(96, 128)),
        data=aesthal.experiment.DataConfig(dataset="synthetic_scenes"),
        train=aesthal.experiment.TrainConfig(epochs=2, steps_per_epoch=50),
    )
    model = aesthal.experiment.train(config)
    results = aesthal.experiment.evaluate(model, config.data, config.output_dir)

A run directory holds:

    config.json          the ExperimentConfig the run used
    tensorboard/         per-task losses, task weights, learning rates, maps
    backup/              BackupAndRestore state (resume after a kill)
    checkpoints/last.keras   the model after the last finished epoch
    history.json, train_time.json   per-epoch logs of `fit`, training seconds
    model.keras          the final model (weights + three optimizers' state)
    saved_model/         the SavedModel export (serving_default)
    metrics.json, metrics.md   test-split metrics with baselines
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pathlib
import time
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from aesthal import callbacks as callbacks_lib
from aesthal import data as data_lib
from aesthal import metrics as metrics_lib
from aesthal.config import TASKS, ModelConfig
from aesthal.export import export_saved_model
from aesthal.inference import Predictor, load_model
from aesthal.models import AesthalModel, build_model
from aesthal.training import GROUPS

_LOG = logging.getLogger("aesthal")
BUDGET_MODES = ("independent", "disjoint", "nested")
# Information gain compares densities (Kummerer et al. 2015): maps are divided
# by their sum, not min-max scaled as MIT's InfoGain.m does (which gives each
# map's lowest pixel probability 0, i.e. about -50 bits for a fixation there).
IG_NORMALIZATION = "sum"
# The centre-bias baseline mixes in 1% of the uniform density, so no pixel has
# probability 0 (pysaliency's centre-bias models do the same).
CENTRE_BIAS_UNIFORM_WEIGHT = 0.01
LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the training and evaluation examples come from.

    Attributes:
        dataset: a TFDS name registered by `aesthal.datasets`, with its config
            (e.g. "synthetic_scenes", "synthetic_scenes/tiny", "osie").
        data_dir: TFDS data directory (None = TFDS's default).
        manual_dir: folder with the data set's files, for builders that need
            them (osie, salicon, mit1003, cat2000, ava).
        train_split, validation_split, test_split: TFDS split expressions;
            `validation_split=None` trains without validation.
        tasks: tasks whose labels are used for training.
        saliency_labels, aesthetics_labels: keep only this many labelled
            training examples of the task (None = all).
        budget_mode: how the two budgets' examples relate: "independent"
            draws; "disjoint" (aesthetics on *other* images); "nested" (the
            smaller set inside the larger: e.g. saliency on 200 images and
            aesthetics on those 200 plus 2,000 more).
        permute_aesthetics: shuffle aesthetics labels across images (control).
        label_seed: seed of the label budgets and permutation (kept apart from
            the training seed so that seeds vary training, not the labels,
            unless asked).
        batch_size: global batch size.
        cache: cache the resized training set in memory.
    """

    dataset: str = "synthetic_scenes"
    data_dir: str | None = None
    manual_dir: str | None = None
    train_split: str = "train"
    validation_split: str | None = "validation"
    test_split: str = "test"
    tasks: tuple[str, ...] = TASKS
    saliency_labels: int | None = None
    aesthetics_labels: int | None = None
    budget_mode: str = "independent"
    permute_aesthetics: bool = False
    label_seed: int = 0
    batch_size: int = 16
    cache: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if not self.tasks or any(t not in TASKS for t in self.tasks):
            raise ValueError(
                f"DataConfig.tasks={self.tasks} must be a subset of {TASKS}."
            )
        if self.budget_mode not in BUDGET_MODES:
            raise ValueError(
                f"DataConfig.budget_mode={self.budget_mode!r}; expected one of "
                f"{BUDGET_MODES}."
            )
        for name in ("saliency_labels", "aesthetics_labels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"DataConfig.{name}={value} must be >= 1 or None.")
        if self.batch_size < 1:
            raise ValueError(f"DataConfig.batch_size={self.batch_size} must be >= 1.")
        if self.permute_aesthetics and "aesthetics" not in self.tasks:
            raise ValueError(
                "DataConfig.permute_aesthetics needs 'aesthetics' in tasks."
            )

    def label_budget(self) -> dict[str, int]:
        budget = {}
        if self.saliency_labels is not None:
            budget["saliency"] = self.saliency_labels
        if self.aesthetics_labels is not None:
            budget["aesthetics"] = self.aesthetics_labels
        return budget


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        epochs, steps_per_epoch: the step budget (`fit` epochs of fixed length).
        learning_rate: base learning rate of every group.
        group_learning_rates: per-group overrides, e.g. `{"shared": 1e-4}`.
        lr_schedule: "constant" or "cosine" (decay to 0 over the whole budget).
        loss_weighting: "fixed" or "uncertainty".
        loss_weights: fixed task weights (missing tasks: 1.0).
        saliency_loss: `{"kld_weight", "cc_weight", "nss_weight"}`.
        seed: seed of initialisation, shuffling and flips.
        validation_steps: batches of validation per epoch (None = whole split).
        init_from: a `.keras` model whose trunk weights initialise this one
            (pre-training then fine-tuning).
        tensorboard_images: fixed validation images whose maps are logged.
    """

    epochs: int = 5
    steps_per_epoch: int = 100
    learning_rate: float = 1e-3
    group_learning_rates: Mapping[str, float] = dataclasses.field(default_factory=dict)
    lr_schedule: str = "constant"
    loss_weighting: str = "fixed"
    loss_weights: Mapping[str, float] = dataclasses.field(default_factory=dict)
    saliency_loss: Mapping[str, float] = dataclasses.field(default_factory=dict)
    seed: int = 0
    validation_steps: int | None = None
    init_from: str | None = None
    tensorboard_images: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "group_learning_rates", dict(self.group_learning_rates)
        )
        object.__setattr__(self, "loss_weights", dict(self.loss_weights))
        object.__setattr__(self, "saliency_loss", dict(self.saliency_loss))
        if self.epochs < 1 or self.steps_per_epoch < 1:
            raise ValueError("TrainConfig.epochs and steps_per_epoch must be >= 1.")
        unknown = set(self.group_learning_rates) - set(GROUPS)
        if unknown:
            raise ValueError(
                f"TrainConfig.group_learning_rates: unknown groups {sorted(unknown)}; "
                f"expected {GROUPS}."
            )
        rates = [self.learning_rate, *self.group_learning_rates.values()]
        if any(not (r >= 0 and math.isfinite(r)) for r in rates):
            raise ValueError(f"TrainConfig: learning rates must be >= 0, got {rates}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"TrainConfig.lr_schedule={self.lr_schedule!r}; expected one of "
                f"{LR_SCHEDULES}."
            )
        unknown = set(self.loss_weights) - set(TASKS)
        if unknown:
            raise ValueError(
                f"TrainConfig.loss_weights: unknown tasks {sorted(unknown)}."
            )
        if self.loss_weighting == "uncertainty" and self.loss_weights:
            raise ValueError(
                "TrainConfig: loss_weighting='uncertainty' learns the task weights; "
                f"fixed loss_weights={self.loss_weights} contradict it."
            )

    def learning_rates(self) -> dict[str, float]:
        return {
            g: float(self.group_learning_rates.get(g, self.learning_rate))
            for g in GROUPS
        }


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole run: where it writes, the model, the data and the training."""

    output_dir: str
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": self.output_dir,
            "model": self.model.to_dict(),
            "data": dataclasses.asdict(self.data) | {"tasks": list(self.data.tasks)},
            "train": dataclasses.asdict(self.train),
        }

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> ExperimentConfig:
        return cls(
            output_dir=config["output_dir"],
            model=ModelConfig.from_dict(config["model"]),
            data=DataConfig(**config["data"]),
            train=TrainConfig(**config["train"]),
        )


# ---------------------------------------------------------------------- data
def prepare_data(data: DataConfig) -> tfds.core.DatasetBuilder:
    """Builds the TFDS data set once (offline; reads `manual_dir` if needed).

    Raises:
        ValueError: the data set is not registered.
    """
    import aesthal.datasets  # noqa: F401  (registers the builders)

    try:
        builder = tfds.builder(data.dataset, data_dir=data.data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ValueError(
            f"unknown data set {data.dataset!r}; aesthal registers "
            "synthetic_scenes, osie, salicon, mit1003, cat2000 and ava."
        ) from error
    download_config = tfds.download.DownloadConfig(
        manual_dir=data.manual_dir and os.path.expanduser(data.manual_dir)
    )
    builder.download_and_prepare(download_config=download_config)
    return builder


def _split_names(expression: str) -> set[str]:
    """The split names a TFDS split expression reads, e.g. 'train[:90%]+test'."""
    return {part.split("[")[0].strip() for part in expression.split("+")}


def check_split(builder: tfds.core.DatasetBuilder, expression: str) -> None:
    """Raises ValueError naming the data set's splits if `expression` reads others."""
    available = set(builder.info.splits.keys())
    missing = _split_names(expression) - available
    if missing:
        raise ValueError(
            f"{builder.info.full_name}: split expression {expression!r} names "
            f"{sorted(missing)}, but the data set has {sorted(available)}"
        )


def training_dataset(data: DataConfig, image_size, seed: int) -> tf.data.Dataset:
    """The repeated, shuffled training stream of `(images, targets, weights)`."""
    spec = data_lib.SourceSpec(
        data.dataset,
        split=data.train_split,
        data_dir=data.data_dir,
        tasks=data.tasks,
        label_budget=data.label_budget(),
        budget_mode=data.budget_mode,
        permute_labels=("aesthetics",) if data.permute_aesthetics else (),
        seed=data.label_seed,
    )
    return data_lib.make_dataset(
        spec,
        image_size=image_size,
        batch_size=data.batch_size,
        training=True,
        seed=seed,
        cache=data.cache,
    )


def validation_dataset(data: DataConfig, image_size) -> tf.data.Dataset | None:
    """One pass over the validation split (all labels kept), or None."""
    if data.validation_split is None:
        return None
    spec = data_lib.SourceSpec(
        data.dataset, split=data.validation_split, data_dir=data.data_dir
    )
    return data_lib.make_dataset(
        spec,
        image_size=image_size,
        batch_size=data.batch_size,
        training=False,
        drop_remainder=True,
        cache=data.cache,
    )


# --------------------------------------------------------------------- model
def _optimizers(train: TrainConfig) -> dict[str, keras.optimizers.Optimizer]:
    total_steps = train.epochs * train.steps_per_epoch
    optimizers = {}
    for group, rate in train.learning_rates().items():
        if train.lr_schedule == "cosine":
            rate = keras.optimizers.schedules.CosineDecay(rate, total_steps)
        optimizers[group] = keras.optimizers.Adam(learning_rate=rate)
    return optimizers


def compile_model(model: AesthalModel, train: TrainConfig) -> AesthalModel:
    """Compiles `model` for `train`, with the streaming per-task metrics."""
    model.compile(
        optimizers=_optimizers(train),
        loss_weighting=train.loss_weighting,
        loss_weights=train.loss_weights or None,
        saliency_loss=train.saliency_loss or None,
        metrics={
            "saliency": [metrics_lib.SaliencyCC(), metrics_lib.SaliencyNSS()],
            "aesthetics": [metrics_lib.AestheticsEMD()],
        },
    )
    return model


def _initialise_trunk(model: AesthalModel, path: str) -> None:
    source = load_model(path)
    if source.config.backbone != model.config.backbone:
        raise ValueError(
            f"init_from={path}: its trunk is {source.config.backbone!r}, this "
            f"model's is {model.config.backbone!r}."
        )
    model.backbone.set_weights(source.backbone.get_weights())


# --------------------------------------------------------------------- train
def _write_json(path: pathlib.Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _check_resumable(out: pathlib.Path, config: ExperimentConfig) -> None:
    """Refuses to resume a backup that another configuration wrote.

    Raises:
        ValueError: `out` holds a training backup whose `config.json` differs
            from `config` (other than in `output_dir`).
    """
    previous_path = out / "config.json"
    if not (out / "backup").exists() or not previous_path.exists():
        return
    previous = json.loads(previous_path.read_text())
    current = json.loads(json.dumps(config.to_dict()))  # tuples -> lists
    previous.pop("output_dir", None)
    current.pop("output_dir", None)
    if previous != current:
        changed = sorted(
            f"{section}.{key}"
            for section in current
            for key in set(current[section]) | set(previous.get(section, {}))
            if current[section].get(key) != previous.get(section, {}).get(key)
        )
        raise ValueError(
            f"{out} holds a training run with another configuration (differs in "
            f"{', '.join(changed)}); resuming it would mix the two. Use a new "
            "output directory, or delete this one to start over."
        )


def train(config: ExperimentConfig, verbose: int | str = "auto") -> AesthalModel:
    """Trains a model as `config` says; resumes if the run directory has a backup.

    A backup is only resumed under the configuration that wrote it; a run that
    already finished resumes at its last epoch, so training is skipped and the
    model is saved again.

    Writes `config.json`, TensorBoard logs, `backup/`, `checkpoints/last.keras`
    and `model.keras` under `config.output_dir`.

    Returns:
        The trained model.
    """
    out = pathlib.Path(config.output_dir)
    _check_resumable(out, config)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", config.to_dict())
    builder = prepare_data(config.data)
    data = config.data
    check_split(builder, data.train_split)
    if data.validation_split is not None:
        if data.validation_split == DataConfig.validation_split and not (
            _split_names(data.validation_split) <= set(builder.info.splits.keys())
        ):
            # The default "validation" on a data set without one (osie, mit1003).
            _LOG.warning(
                "%s has no 'validation' split; training without validation "
                "(set validation_split, e.g. 'train[90%%:]', to hold some out).",
                data.dataset,
            )
            data = dataclasses.replace(data, validation_split=None)
        else:
            check_split(builder, data.validation_split)

    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config.model)
    if config.train.init_from:
        _initialise_trunk(model, config.train.init_from)
    compile_model(model, config.train)

    image_size = config.model.input_size
    # Resume: BackupAndRestore reloads the weights and all three optimizers'
    # state and restarts at the next epoch, but the (seeded, deterministic)
    # training stream restarts from its start: skip the batches consumed.
    resumed_epochs = callbacks_lib.completed_epochs(out / "backup")
    skip = callbacks_lib.SkipBatchesOnTrainBegin(
        training_dataset(data, image_size, config.train.seed),
        resumed_epochs * config.train.steps_per_epoch,
    )
    train_ds = skip.dataset
    val_ds = validation_dataset(data, image_size)
    callbacks = [
        keras.callbacks.BackupAndRestore(
            str(out / "backup"), delete_checkpoint=False, double_checkpoint=True
        ),
        keras.callbacks.ModelCheckpoint(str(out / "checkpoints" / "last.keras")),
        keras.callbacks.TensorBoard(str(out / "tensorboard"), update_freq="epoch"),
        callbacks_lib.StopOnNonFinite(),
        skip,
    ]
    if val_ds is not None and config.train.tensorboard_images > 0:
        callbacks.append(
            callbacks_lib.SaliencyImageLogger(
                str(out / "tensorboard" / "images"),
                val_ds.unbatch().take(config.train.tensorboard_images),
            )
        )
    (out / "checkpoints").mkdir(exist_ok=True)
    start = time.perf_counter()
    history = model.fit(
        train_ds,
        epochs=config.train.epochs,
        steps_per_epoch=config.train.steps_per_epoch,
        validation_data=val_ds,
        validation_steps=config.train.validation_steps,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles, by seed
    )
    seconds = time.perf_counter() - start
    model.save(out / "model.keras")
    _write_json(out / "train_time.json", {"seconds": seconds})
    _write_json(
        out / "history.json",
        {k: [float(v) for v in vs] for k, vs in history.history.items()},
    )
    return model


# ------------------------------------------------------------------ evaluate
def _centre_bias(data: DataConfig) -> np.ndarray:
    """Centre bias fitted to the training split's fixations."""
    examples = data_lib.iterate_eval_examples(
        data.dataset, split=data.train_split, data_dir=data.data_dir
    )
    return metrics_lib.fit_centre_bias(
        ((ex.fixations, ex.image.shape[:2]) for ex in examples if len(ex.fixations)),
        uniform_weight=CENTRE_BIAS_UNIFORM_WEIGHT,
    )


def evaluate(
    model: AesthalModel | Predictor | str | os.PathLike,
    data: DataConfig,
    output_dir: str | os.PathLike,
    split: str | None = None,
    max_images: int | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Every metric on a split at original resolution, with baselines.

    Writes `metrics.json` and `metrics.md` to `output_dir`.

    Args:
        model: a model, a `Predictor`, or a path to a `.keras` file or a
            SavedModel folder.
        data: the data set (its `test_split` unless `split` is given).
        output_dir: where the results go.
        split: TFDS split to evaluate.
        max_images: evaluate only the first N images.
        batch_size: images per prediction batch.

    Returns:
        `{"saliency": evaluate_saliency_maps(...), "aesthetics": ...}`.
    """
    predictor = model if isinstance(model, Predictor) else Predictor(model)
    builder = prepare_data(data)
    split = split or data.test_split
    check_split(builder, split)
    examples = data_lib.iterate_eval_examples(
        data.dataset, split=split, data_dir=data.data_dir
    )
    records, maps, votes_true, votes_pred = [], [], [], []
    for example, prediction in predictor.predict_examples(
        examples, batch_size=batch_size, limit=max_images
    ):
        if example.has_saliency:
            records.append(
                {
                    "fixations": example.fixations,
                    "fixation_map": example.fixation_map,
                    "true_density": example.true_density,
                }
            )
            maps.append(prediction["saliency"])
        if example.has_aesthetics:
            votes_true.append(example.aesthetics_votes)
            votes_pred.append(prediction["aesthetics"])
    results: dict[str, Any] = {"dataset": data.dataset, "split": split}
    if records:
        has_truth = all(r["true_density"] is not None for r in records)
        baselines = metrics_lib.standard_baselines(
            centre_bias=_centre_bias(data), with_true_density=has_truth
        )
        results["saliency"] = metrics_lib.evaluate_saliency_maps(
            maps, records, baselines=baselines, ig_normalization=IG_NORMALIZATION
        )
    if votes_true:
        results["aesthetics"] = metrics_lib.evaluate_aesthetics(
            np.stack(votes_true), np.stack(votes_pred)
        )
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "metrics.json", results)
    (out / "metrics.md").write_text(format_results(results))
    return results


def format_results(results: Mapping[str, Any]) -> str:
    """The Markdown tables of `evaluate`'s result."""
    parts = [f"# {results['dataset']} [{results['split']}]\n"]
    if "saliency" in results:
        sal = results["saliency"]
        parts.append(
            f"\n## Saliency ({sal['num_evaluated']} images; IG against "
            f"{sal['ig_baseline']})\n\n"
        )
        parts.append(metrics_lib.format_markdown_table(sal))
    if "aesthetics" in results:
        parts.append(
            f"\n## Aesthetics ({results['aesthetics']['num_images']} images)\n\n"
        )
        parts.append(metrics_lib.format_markdown_table(results["aesthetics"]))
    return "".join(parts)


# -------------------------------------------------------------------- export
def export(
    model: AesthalModel | str | os.PathLike, output_dir: str | os.PathLike
) -> str:
    """Writes `saved_model/` (and `model.keras` if missing) under `output_dir`."""
    if not isinstance(model, AesthalModel):
        model = load_model(model)
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "model.keras").exists():
        model.save(out / "model.keras")
    return export_saved_model(model, out / "saved_model")
