"""Training on cached trunk features: the frozen prefix runs once per image.

With `ModelConfig.frozen_up_to` and `DataConfig.cache_features`, the frozen
prefix of the trunk (`AesthalModel.prefix_features`) is computed once for
every training image and its mirror image (float16), kept in memory or in
`DataConfig.feature_cache_dir`, and an epoch costs only the trainable part
(`cached_training_dataset`). A cache file is keyed by everything its features
depend on (`feature_cache_fields`): the examples, the trunk, its input size
and a hash of the prefix's weights per tap.
"""

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

from aesthal.config import DataConfig
from aesthal.data import pipeline, prepare
from aesthal.training.batch_checks import validate_data
from aesthal.trunks import split_backbone

_LOG = logging.getLogger("aesthal")


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
        "backbone": config.trunk.name,
        "backbone_weights": config.trunk.weights,
        "input_size": list(config.input_size),
        "frozen_up_to": config.trunk.frozen_up_to,
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
    (`batch_checks.validate_data`) before its features are kept.

    Args:
        data: the training split, tasks, label budgets and saliency target.
        model: an `AesthalModel` with `config.trunk.frozen_up_to`.
        batch_size: images per forward pass.

    Returns:
        `{"features/<tap>": float16 [N, h, w, c] for each cached tap,
        "targets/saliency": float32 [N, H, W, 1], "targets/aesthetics":
        float32 [N, 10], "weights/<task>": float32 [N]}`; N = twice the
        examples (each followed by its mirror image).
    """
    stream = pipeline.flipped_pairs(
        prepare.training_spec(data),
        image_size=model.config.input_size,
        saliency_target=data.saliency_target,
    ).batch(batch_size)
    parts: dict[str, list[np.ndarray]] = {}
    for images, targets, weights in stream:
        validate_data(images, targets, weights, model.config.input_size)
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
        model: an `AesthalModel` with `config.trunk.frozen_up_to`.
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
