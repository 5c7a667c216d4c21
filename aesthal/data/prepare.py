"""Data preparation for a run: build a `DataConfig`'s TFDS data set, check its
splits, and make the training and validation streams."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import time
from typing import Any

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
        _training_spec(data),
        image_size=image_size,
        batch_size=data.batch_size,
        training=True,
        seed=seed,
        cache=data.cache,
        saliency_target=data.saliency_target,
    )


def _training_spec(data: DataConfig) -> pipeline.SourceSpec:
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


# Fields of a feature cache's key that say which features it holds; every
# other field (the data, trunk, weights file and input size) must match for a
# cache to serve another model (`_covers`).
_TAP_FIELDS = ("frozen_up_to", "taps", "weights")


def _tap_fingerprints(model: Any) -> dict[str, str]:
    """`{tap: hash}` of the weights each cached tap's features depend on.

    The hash covers the trunk's weights from the input up to the tap (the
    prefix `split_backbone` cuts there), so a trunk whose early layers were
    trained (e.g. copied by `TrainConfig.init_from`) never reads features
    computed with other weights, and the features of a tap computed by a
    longer prefix (a cache made with a deeper `frozen_up_to`) are recognised
    as the same.
    """
    from aesthal.trunks import split_backbone

    fingerprints = {}
    for tap in model.cached_taps:
        prefix, _ = split_backbone(model.backbone, tap)
        digest = hashlib.sha256()
        for weight in prefix.weights:
            value = np.ascontiguousarray(weight.numpy())
            # Shapes and values, not names: a layer's name depends on what
            # else the process has built.
            digest.update(f"{value.dtype}:{value.shape};".encode())
            digest.update(value.tobytes())
        fingerprints[tap] = digest.hexdigest()[:16]
    return fingerprints


def feature_cache_fields(data: DataConfig, model: Any) -> dict[str, Any]:
    """What a feature cache depends on (`feature_cache_key` hashes it): the
    model's frozen prefix (trunk, weights file, input size, tap, cached taps
    and a hash of the prefix's weights per tap) and the training examples
    (data set, split, tasks, label budgets and edits, saliency target)."""
    config = model.config
    fields = {
        "version": 2,  # 2: the prefix's weights (1 keyed the weights file only)
        "backbone": config.backbone,
        "backbone_weights": config.backbone_weights,
        "input_size": list(config.input_size),
        "frozen_up_to": config.frozen_up_to,
        "taps": list(model.cached_taps),
        "weights": _tap_fingerprints(model),
        "dataset": data.dataset,
        "data_dir": data.data_dir,
        "train_split": data.train_split,
        "tasks": list(data.tasks),
        "budget": data.label_budget(),
        "budget_mode": data.budget_mode,
        "permute_aesthetics": data.permute_aesthetics,
        "label_seed": data.label_seed,
        "saliency_target": data.saliency_target,
    }
    if data.permute_saliency:
        fields["permute_saliency"] = True
    return fields


def feature_cache_key(data: DataConfig, model: Any) -> str:
    """The hash of `feature_cache_fields`: a cache file's name is
    `features_<key>.npz`."""
    return _key(feature_cache_fields(data, model))


def _key(fields: dict[str, Any]) -> str:
    text = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _covers(theirs: dict[str, Any], mine: dict[str, Any]) -> bool:
    """Whether a cache with fields `theirs` holds every feature `mine` needs:
    the same examples, trunk and input, and each of my taps computed with the
    same weights (it may hold more taps, e.g. made with a deeper
    `frozen_up_to`)."""
    rest = {k: v for k, v in mine.items() if k not in _TAP_FIELDS}
    if rest != {k: v for k, v in theirs.items() if k not in _TAP_FIELDS}:
        return False
    held = theirs.get("weights") or {}
    return all(held.get(tap) == digest for tap, digest in mine["weights"].items())


def compute_cached_features(
    data: DataConfig, model: Any, batch_size: int = 16
) -> dict[str, np.ndarray]:
    """The frozen prefix's features of every training example and its mirror.

    Each batch of images is checked as `fit` checks its first batch
    (`model.validate_data`) before its features are kept.

    Args:
        data: the training split, tasks, label budgets and saliency target.
        model: an `AesthalModel` with `config.frozen_up_to`.
        batch_size: images per forward pass.

    Returns:
        `{"features/<tap>": float16 [N, h, w, c] for each cached tap,
        "targets/saliency": float32 [N, H, W, 1], "targets/aesthetics":
        float32 [N, 10], "weights/<task>": float32 [N]}`; N = twice the
        examples (each followed by its mirror image).
    """
    stream = pipeline.flipped_pairs(
        _training_spec(data),
        image_size=model.config.input_size,
        saliency_target=data.saliency_target,
    ).batch(batch_size)
    parts: dict[str, list[np.ndarray]] = {}
    for images, targets, weights in stream:
        model.validate_data(images, targets, weights)
        features = model.prefix_features(images)
        arrays = {
            f"features/{t}": v.numpy().astype(np.float16) for t, v in features.items()
        }
        arrays |= {f"targets/{t}": v.numpy() for t, v in targets.items()}
        arrays |= {f"weights/{t}": v.numpy() for t, v in weights.items()}
        for name, value in arrays.items():
            parts.setdefault(name, []).append(value)
    if not parts:
        raise ValueError(
            f"{data.dataset} {data.train_split}: no training examples to cache "
            "(check the split and the label budgets)."
        )
    return {name: np.concatenate(values) for name, values in parts.items()}


def load_or_compute_cached_features(
    data: DataConfig, model: Any
) -> dict[str, np.ndarray]:
    """`compute_cached_features`, read from / written to a folder.

    With `data.feature_cache_dir` set, the features are read from
    `features_<key>.npz` there (`feature_cache_key`) or, when that file is
    missing, from another cache of the folder that holds them all (the same
    examples and trunk, each needed tap computed with the same weights: e.g.
    the cache of a run with a deeper `frozen_up_to`, which holds the taps of
    a shallower one); only when none does are they computed and written.

    Raises:
        ValueError: the cache file of this key cannot be read (the message
            names it and says to delete it).
    """
    if data.feature_cache_dir is None:
        return compute_cached_features(data, model)
    folder = pathlib.Path(os.path.expanduser(data.feature_cache_dir))
    fields = feature_cache_fields(data, model)  # hashes the weights once
    path = folder / f"features_{_key(fields)}.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                return {name: stored[name] for name in stored.files if name != "key"}
        except (OSError, ValueError) as error:
            raise ValueError(
                f"feature cache {path} cannot be read ({error}); delete it to "
                "compute the features again."
            ) from error
    reused = _read_covering_cache(folder, fields)
    if reused is not None:
        return reused
    start = time.perf_counter()
    arrays = compute_cached_features(data, model)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".partial{os.getpid()}.npz")
    # The fields themselves too, for `_read_covering_cache` of later runs.
    np.savez(partial, key=np.array(json.dumps(fields, sort_keys=True)), **arrays)
    os.replace(partial, path)
    _LOG.info(
        "feature cache: %d examples in %.0f s, written to %s",
        len(arrays["weights/saliency"]),
        time.perf_counter() - start,
        path,
    )
    return arrays


def _read_covering_cache(
    folder: pathlib.Path, fields: dict[str, Any]
) -> dict[str, np.ndarray] | None:
    """The arrays `fields` needs, from a cache of `folder` that `_covers` it
    (its other taps left out), or None. Caches without a readable key
    (written before version 2, or damaged) are passed over."""
    for other in sorted(folder.glob("features_*.npz")):
        try:
            with np.load(other) as stored:
                if "key" not in stored.files:
                    continue
                if not _covers(json.loads(str(stored["key"])), fields):
                    continue
                arrays = {
                    name: stored[name]
                    for name in stored.files
                    if name != "key"
                    and (
                        not name.startswith("features/")
                        or name.split("/", 1)[1] in fields["taps"]
                    )
                }
        except (OSError, ValueError) as error:
            _LOG.warning("feature cache %s passed over: %s", other, error)
            continue
        _LOG.info(
            "feature cache: taps %s read from %s (a cache that holds them)",
            ", ".join(fields["taps"]),
            other,
        )
        return arrays
    return None


def cached_training_dataset(data: DataConfig, model: Any, seed: int) -> tf.data.Dataset:
    """The training stream on the frozen prefix's cached features.

    The features of every training example and of its mirror image
    (`load_or_compute_cached_features`: computed once, float16), shuffled
    by `seed` each pass, repeated, in batches of `data.batch_size`.

    Args:
        data: as for `training_dataset`, with `cache_features`.
        model: an `AesthalModel` with `config.frozen_up_to`.
        seed: seed of the shuffle.

    Returns:
        Batches `(features, targets, weights)`: `features` `{tap: float16
        [B, h, w, c]}` for `model.cached_taps` (what `AesthalModel.call`
        accepts instead of images); targets and weights as docs/design.md.
    """
    arrays = load_or_compute_cached_features(data, model)

    def group(prefix):
        return {
            name.split("/", 1)[1]: value
            for name, value in arrays.items()
            if name.startswith(prefix + "/")
        }

    elements = (group("features"), group("targets"), group("weights"))
    size = len(arrays["weights/saliency"])
    if size < data.batch_size:
        raise ValueError(
            f"{data.dataset} {data.train_split}: {size} cached examples are fewer "
            f"than one batch ({data.batch_size})."
        )
    ds = tf.data.Dataset.from_tensor_slices(elements)
    ds = ds.shuffle(size, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(data.batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


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
        for example in pipeline.iterate_eval_examples(_training_spec(data))
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
