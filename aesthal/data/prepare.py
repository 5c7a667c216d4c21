"""Data preparation for a run: build a `DataConfig`'s TFDS data set, check its
splits, and make the training and validation streams."""

from __future__ import annotations

import os
import pathlib

import tensorflow as tf
import tensorflow_datasets as tfds

from aesthal.config import DataConfig
from aesthal.data import pipeline


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
    spec = pipeline.SourceSpec(
        data.dataset,
        split=data.train_split,
        data_dir=data.data_dir,
        tasks=data.tasks,
        label_budget=data.label_budget(),
        budget_mode=data.budget_mode,
        permute_labels=("aesthetics",) if data.permute_aesthetics else (),
        seed=data.label_seed,
    )
    return pipeline.make_dataset(
        spec,
        image_size=image_size,
        batch_size=data.batch_size,
        training=True,
        seed=seed,
        cache=data.cache,
    )


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
