"""Data preparation for a run: build a `DataConfig`'s TFDS data set, check its
splits, and make the training and validation streams.

(The training stream of cached trunk features, which needs a model, is
`aesthal.training.feature_cache`.)"""

from __future__ import annotations

import logging
import os
import pathlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from aesthal.config import DataConfig
from aesthal.data import pipeline

_LOG = logging.getLogger("aesthal")


class DataDirError(OSError):
    """The TFDS data directory cannot hold the data set (e.g. read-only)."""


def prepare_data(data: DataConfig) -> tfds.core.DatasetBuilder:
    """Builds the TFDS data set once (offline; reads `manual_dir` if needed).

    Raises:
        ValueError: the data set is not registered.
        DataDirError: the data set is not prepared in `data.data_dir` and
            cannot be written there (the message names the folder and the fix).
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
    if not builder.is_prepared():
        _check_writable(data, builder)
    builder.download_and_prepare(download_config=download_config)
    return builder


def _check_writable(data: DataConfig, builder: tfds.core.DatasetBuilder) -> None:
    """Raises `DataDirError` if the builder's data_dir cannot be written."""
    root = pathlib.Path(os.path.expanduser(data.data_dir or builder.data_dir))
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    reason = None
    if not existing.is_dir():
        reason = f"{existing} is not a folder"
    else:
        probe = existing / f".aesthal_write_test_{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            reason = error.strerror or str(error)
    if reason is not None:
        where = data.data_dir or f"TFDS's default data_dir ({root})"
        raise DataDirError(
            f"{data.dataset} is not prepared in {where}, and it cannot be written "
            f"there ({reason}). Give a writable --data_dir, or prepare the data "
            "set once in this folder with write access."
        )


def split_names(expression: str) -> set[str]:
    """The split names a TFDS split expression reads, e.g. 'train[:90%]+test'."""
    return {part.split("[")[0].strip() for part in expression.split("+")}


def check_split(builder: tfds.core.DatasetBuilder, expression: str) -> None:
    """Raises ValueError naming the data set's splits if `expression` reads others."""
    available = set(builder.info.splits.keys())
    missing = split_names(expression) - available
    if missing:
        raise ValueError(
            f"{builder.info.full_name}: split expression {expression!r} names "
            f"{sorted(missing)}, but the data set has {sorted(available)}"
        )


class BatchSizeError(ValueError):
    """The batch size is larger than a split it is drawn from."""


def split_size(builder: tfds.core.DatasetBuilder, expression: str) -> int:
    """The number of examples a TFDS split expression reads, from the data
    set's metadata (no pass over the data)."""
    return int(builder.info.splits[expression].num_examples)


def check_batch_size(builder: tfds.core.DatasetBuilder, data: DataConfig) -> None:
    """Refuses a `data.batch_size` larger than the training or validation split.

    The training stream repeats its split, so a larger batch would not fail
    but hold the same examples several times (and a huge one spends minutes
    before its first step); validation drops the last partial batch, so a
    larger batch leaves it no batch at all (an error after the first epoch).
    The training bound is the split's size, or the label budgets' sum when
    every trained task has one (at most that many examples keep a label);
    with cached features each example comes twice (it and its mirror).

    Raises:
        BatchSizeError: one line naming the split, its size and the fix.
    """
    batch = data.batch_size
    train = split_size(builder, data.train_split)
    budget = data.label_budget()
    bound, what = train, "examples"
    if data.tasks and all(task in budget for task in data.tasks):
        labelled = sum(budget[task] for task in data.tasks)
        if labelled < bound:
            bound, what = labelled, "labelled examples (the label budgets)"
    if data.cache_features:
        bound, what = 2 * bound, f"{what}, each with its mirror image"
    if batch > bound:
        raise BatchSizeError(
            f"batch_size {batch} is larger than the training split "
            f"{data.dataset} {data.train_split!r} ({bound} {what}): each batch "
            f"would repeat examples. Use --batch_size {bound} or less."
        )
    if data.validation_split is None:
        return
    validation = split_size(builder, data.validation_split)
    if batch > validation:
        raise BatchSizeError(
            f"batch_size {batch} is larger than the validation split "
            f"{data.dataset} {data.validation_split!r} ({validation} examples): "
            "validation keeps only full batches, so it would have none. Use "
            f"--batch_size {validation} or less, or --validation_split='' to "
            "train without validation."
        )


def training_dataset(
    data: DataConfig, image_size: tuple[int, int], seed: int
) -> tf.data.Dataset:
    """The repeated, shuffled training stream of `(images, targets, weights)`.

    Args:
        data: the data set, split, tasks and label budgets.
        image_size: `(H, W)` of the model input.
        seed: seed of the shuffle and flips.

    Returns:
        Batches as `aesthal.data.make_dataset` yields them (docs/design.md).
    """
    return pipeline.make_dataset(
        training_spec(data),
        image_size=image_size,
        batch_size=data.batch_size,
        training=True,
        seed=seed,
        cache=data.cache,
        saliency_target=data.saliency_target,
    )


def training_spec(data: DataConfig) -> pipeline.SourceSpec:
    """The training split with the config's tasks, budgets and label edits."""
    return pipeline.SourceSpec(
        data.dataset,
        split=data.train_split,
        data_dir=data.data_dir,
        tasks=data.tasks,
        label_budget=data.label_budget(),
        budget_mode=data.budget_mode,
        permute_labels=tuple(
            task
            for task, permute in (
                ("aesthetics", data.permute_aesthetics),
                ("saliency", data.permute_saliency),
            )
            if permute
        ),
        seed=data.label_seed,
    )


def training_fixations(data: DataConfig) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """The fixations of the training split's saliency-labelled examples.

    What the fixed centre prior is fitted on (`aesthal.models.priors.
    centre_bias_log_density`, called by the runner): each example's points
    in its own image's pixels, unflipped.

    Returns:
        `(points, (height, width))` pairs; `points` float32 `[N, 2]`,
        0-based `(row, col)`.

    Raises:
        ValueError: the training split has no fixations.
    """
    if data.saliency_labels is not None:
        raise ValueError(
            "a fixed centre prior is fitted on every training fixation, which a "
            f"saliency label budget (saliency_labels={data.saliency_labels}) "
            "would leak; use centre_prior='learned' or 'none' with a budget."
        )
    points = [
        (example.fixations, tuple(example.image.shape[:2]))
        for example in pipeline.iterate_eval_examples(training_spec(data))
        if example.has_saliency and len(example.fixations)
    ]
    if not points:
        raise ValueError(
            f"{data.dataset} {data.train_split}: no fixations to fit the centre "
            "prior on (centre_prior='fixed' needs a data set with fixations)."
        )
    return points


def validation_dataset(
    data: DataConfig, image_size: tuple[int, int]
) -> tf.data.Dataset | None:
    """One pass over the validation split (all labels kept), or None."""
    if data.validation_split is None:
        return None
    spec = pipeline.SourceSpec(
        data.dataset, split=data.validation_split, data_dir=data.data_dir
    )
    return pipeline.make_dataset(
        spec,
        image_size=image_size,
        batch_size=data.batch_size,
        training=False,
        drop_remainder=True,
        cache=data.cache,
    )
