"""`DataConfig`, `TrainConfig` and `ExperimentConfig`: a run of
`aesthal.training.runner.train` (what `experiments/run.py` builds from its
flags)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from aesthal.config import migration
from aesthal.config.constants import (
    BUDGET_MODES,
    DEFAULT_LEARNING_RATE,
    GROUPS,
    LOSS_WEIGHTINGS,
    LR_SCHEDULES,
    SALIENCY_TARGETS,
    TASKS,
)
from aesthal.config.fields import setting
from aesthal.config.model import ModelConfig


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
        permute_saliency: shuffle saliency labels (maps and fixations) across
            the saliency-labelled training images (control; the reverse
            direction of the study: is it saliency's labels or its images?).
        label_seed: seed of the label budgets and permutation (kept apart from
            the training seed so that seeds vary training, not the labels,
            unless asked).
        batch_size: global batch size.
        cache: cache the resized training set in memory.
        saliency_target: the saliency training target: `"map"` (the data
            set's blurred fixation map, resized) or `"fixation_counts"` (each
            image's fixations counted per pixel at the model resolution,
            normalised, mirrored with flips): the KLD loss against it is the
            negative fixation log-likelihood plus a constant, DeepGaze II's
            loss. Validation and evaluation keep the maps.
        cache_features: train on features of the model's frozen trunk prefix
            (`ModelConfig.frozen_up_to`), computed once per training image and
            its horizontal flip (float16) instead of on images: an epoch then
            costs only the trainable part (`aesthal.data.prepare.
            cached_training_dataset`). The label budgets, flips and targets
            are as in the image stream; the flips are both kept, not drawn.
        feature_cache_dir: a folder for those features (one file per model
            prefix, prefix weights and data split, reused by later runs; a
            run also reads its taps from a cache of a deeper prefix there,
            e.g. block4 features from a `frozen_up_to="stage5"` run's; see
            `aesthal.training.feature_cache.load_or_compute_cached_features`); None
            keeps them in memory for this run only.
    """

    dataset: str = setting(
        "synthetic_scenes", help="TFDS name (with config), e.g. synthetic_scenes/tiny."
    )
    data_dir: str | None = setting(None, help="TFDS data directory.")
    manual_dir: str | None = setting(
        None, help="The data set's files, for osie/salicon/mit1003/cat2000/ava."
    )
    train_split: str = setting("train", help="Training split.")
    validation_split: str | None = setting(
        "validation", help="Validation split ('' for none)."
    )
    test_split: str = setting("test", help="Evaluation split.")
    tasks: tuple[str, ...] = setting(TASKS, help="Tasks trained.")
    saliency_labels: int | None = setting(
        None, help="Keep only N saliency-labelled training images."
    )
    aesthetics_labels: int | None = setting(
        None, help="Keep only N aesthetics-labelled training images."
    )
    budget_mode: str = setting(
        "independent",
        choices=BUDGET_MODES,
        help="How the two label budgets' images relate.",
    )
    permute_aesthetics: bool = setting(
        False, help="Shuffle aesthetics labels across images (control)."
    )
    permute_saliency: bool = setting(
        False, help="Shuffle saliency labels (maps, fixations) across images (control)."
    )
    label_seed: int = setting(0, help="Seed of label budgets.")
    batch_size: int = setting(16, help="Global batch size.")
    cache: bool = setting(True, help="Cache the resized training set in memory.")
    saliency_target: str = setting(
        "map",
        choices=SALIENCY_TARGETS,
        help="Saliency training target: the blurred map, or fixation counts (KLD "
        "to it = fixation log-likelihood).",
    )
    cache_features: bool = setting(
        False,
        help="Train on the frozen prefix's features, computed once per image and "
        "flip.",
    )
    feature_cache_dir: str | None = setting(
        None,
        help="Folder keeping those features across runs (a run of a shallower "
        "--frozen_up_to reads its taps from a deeper one's cache there).",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if self.saliency_target not in SALIENCY_TARGETS:
            raise ValueError(
                f"DataConfig.saliency_target={self.saliency_target!r}; expected "
                f"one of {SALIENCY_TARGETS}."
            )
        if self.feature_cache_dir is not None and not self.cache_features:
            raise ValueError(
                "DataConfig.feature_cache_dir is set but cache_features is False; "
                "set cache_features=True to use it."
            )
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
        if self.permute_saliency and "saliency" not in self.tasks:
            raise ValueError(
                "DataConfig.permute_saliency needs 'saliency' in tasks; add it "
                "(--tasks=saliency,...) or drop --permute_saliency."
            )

    def label_budget(self) -> dict[str, int]:
        """`{task: number of labelled training examples kept}` for budgeted tasks."""
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
        lr_schedule: "constant", "cosine" (decay to 0 over the whole budget)
            or "step" (multiply by `lr_step_factor` every `lr_step_epochs`
            epochs, as DeepGaze II and the Caffe/TF1 recipes do).
        lr_step_epochs, lr_step_factor: the "step" schedule's interval and
            factor.
        restore_best_epoch: end with the weights of the epoch of lowest
            validation loss (early stopping, as DeepGaze II does; kept on disk
            across resumes, `aesthal.training.best_epoch`); needs a
            validation split.
        loss_weighting: one of `LOSS_WEIGHTINGS` (each with its published
            defaults; see docs/balancing.md).
        loss_weights: fixed task weights (missing tasks: 1.0); only with
            "fixed".
        saliency_loss: `{"kld_weight", "cc_weight", "nss_weight"}`.
        seed: seed of initialisation, shuffling and flips.
        validation_steps: batches of validation per epoch (None = whole split).
        init_from: a `.keras` model whose trunk weights initialise this one
            (pre-training then fine-tuning).
        init_heads: with `init_from`, also start from its task heads (the
            saliency and aesthetics heads of the trained tasks; side heads
            are not copied), e.g. to fine-tune more of the trunk under a
            trained readout instead of a random one.
        tensorboard_images: fixed validation images whose maps are logged.
    """

    epochs: int = setting(5, help="Epochs.")
    steps_per_epoch: int = setting(100, help="Steps per epoch.")
    learning_rate: float = setting(
        DEFAULT_LEARNING_RATE, help="Base Adam learning rate."
    )
    group_learning_rates: Mapping[str, float] = setting(
        default_factory=dict,
        composite="group_learning_rates",
        help="Per-group learning rates (--lr_shared, --lr_saliency, --lr_aesthetics).",
    )
    lr_schedule: str = setting(
        "constant", choices=LR_SCHEDULES, help="Learning-rate schedule."
    )
    lr_step_epochs: int = setting(10, help="--lr_schedule=step: epochs between decays.")
    lr_step_factor: float = setting(
        0.3, help="--lr_schedule=step: factor of each decay."
    )
    restore_best_epoch: bool = setting(
        False, help="End with the weights of the epoch of lowest validation loss."
    )
    loss_weighting: str = setting(
        "fixed",
        choices=LOSS_WEIGHTINGS,
        help="Task balancing: loss-level fixed, uncertainty, dwa; gradient-level "
        "gradnorm, pcgrad, cagrad (docs/balancing.md).",
    )
    loss_weights: Mapping[str, float] = setting(
        default_factory=dict,
        composite="loss_weights",
        help="Fixed task weights (--saliency_weight, --aesthetics_weight).",
    )
    saliency_loss: Mapping[str, float] = setting(
        default_factory=dict,
        composite="saliency_loss",
        help="Terms of the saliency loss (--cc_weight, --nss_weight).",
    )
    seed: int = setting(0, help="Seed of initialisation, order and flips.")
    validation_steps: int | None = setting(
        None, help="Validation batches per epoch (default: all)."
    )
    init_from: str | None = setting(
        None, help="A .keras model whose trunk initialises this one."
    )
    init_heads: bool = setting(
        False, help="With --init_from, also start from its task heads."
    )
    tensorboard_images: int = setting(
        4, help="Validation images whose maps are logged to TensorBoard."
    )

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
        if self.lr_step_epochs < 1 or not 0 < self.lr_step_factor <= 1:
            raise ValueError(
                f"TrainConfig: lr_step_epochs={self.lr_step_epochs} must be >= 1 "
                f"and lr_step_factor={self.lr_step_factor} in (0, 1]."
            )
        unknown = set(self.loss_weights) - set(TASKS)
        if unknown:
            raise ValueError(
                f"TrainConfig.loss_weights: unknown tasks {sorted(unknown)}."
            )
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(
                f"TrainConfig.loss_weighting={self.loss_weighting!r}; expected one "
                f"of {LOSS_WEIGHTINGS}."
            )
        if self.loss_weighting != "fixed" and self.loss_weights:
            raise ValueError(
                f"TrainConfig: loss_weighting={self.loss_weighting!r} sets the task "
                f"weights itself; fixed loss_weights={self.loss_weights} "
                "contradict it."
            )

    def learning_rates(self) -> dict[str, float]:
        """`{group: learning rate}` for every group in `GROUPS`."""
        return {
            g: float(self.group_learning_rates.get(g, self.learning_rate))
            for g in GROUPS
        }


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole run: where it writes, the model, the data and the training."""

    output_dir: str = setting(
        help="Run directory: config, logs, checkpoints, model, metrics."
    )
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    def __post_init__(self) -> None:
        if self.data.cache_features and self.model.frozen_up_to is None:
            raise ValueError(
                "ExperimentConfig: data.cache_features needs model.frozen_up_to "
                "(the features of a trainable trunk change every step)."
            )
        if self.model.sharing == "soft" and "shared" in self.train.group_learning_rates:
            raise ValueError(
                "ExperimentConfig: train.group_learning_rates sets a 'shared' rate "
                "but model.sharing='soft' has no shared variables (each task's "
                "trunk trains at its task's rate); drop it (--lr_shared)."
            )

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as JSON-compatible types (what `config.json`
        holds), with `config_version`."""
        return {
            "config_version": migration.CONFIG_VERSION,
            "output_dir": self.output_dir,
            "model": self.model.to_dict(),
            "data": dataclasses.asdict(self.data) | {"tasks": list(self.data.tasks)},
            "train": dataclasses.asdict(self.train),
        }

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> ExperimentConfig:
        """Inverse of `to_dict`; reads a `config.json` of any earlier version
        (`aesthal.config.migration.migrate_experiment`)."""
        config = migration.migrate_experiment(config)
        return cls(
            output_dir=config["output_dir"],
            model=ModelConfig.from_dict(config["model"]),
            data=DataConfig(**config["data"]),
            train=TrainConfig(**config["train"]),
        )
