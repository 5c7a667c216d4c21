"""`make_dataset`: sources (TFDS names or datasets) to batched training tensors.

Order of operations, per source:

1. load (TFDS name with `shuffle_files=False`, so the example order, and hence
   every index-based choice below, is fixed) and `enumerate()`;
2. label edits, in this order: drop tasks not in `SourceSpec.tasks`; keep only
   `label_budget[task]` labelled examples of a task (chosen by seed; exact);
   permute a task's labels across its labelled examples (by seed); then, if
   `drop_unlabelled`, drop examples left with no label;
3. `standardize_example` (fills missing features with zeros and a False
   flag, validates the targets) and `resize_example` (stretch to the model
   size); permuted saliency labels are moved here, at the model size (each
   example's own map and fixations resized with its own image, then handed
   to another example);
4. optional `cache`, then (when `training`) `shuffle` and `repeat`.

Then the sources are mixed with `tf.data.Dataset.sample_from_datasets`
(weights = `SourceSpec.weight`, normalised), each element is flipped
left-right with probability 1/2 (when `training`) by a stateless draw seeded
with `(seed, position in the stream)`, and the stream is batched and
prefetched. Given `seed`, the output is deterministic (parallel maps keep
their order).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from aesthal.config import BUDGET_MODES, TASKS
from aesthal.data import preprocess

_TASK_FLAG = {"saliency": "has_saliency", "aesthetics": "has_aesthetics"}
_TASK_CODE = {"saliency": 1, "aesthetics": 2}


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """One data source and the label edits to apply to it.

    Attributes:
        dataset: a registered TFDS name (e.g. "synthetic_scenes/tiny", "osie"),
            or a `tf.data.Dataset` of TFDS-style example dicts (see
            `aesthal.data.standardize_example`) in a fixed order.
        split: TFDS split, when `dataset` is a name.
        data_dir: TFDS data directory, when `dataset` is a name.
        weight: relative sampling weight in a mixture (> 0).
        tasks: tasks whose labels are kept; the others are masked out.
        label_budget: task -> N: keep exactly N labelled examples of that task
            (chosen uniformly by `seed`); the others lose that task's label.
        budget_mode: how the budgets' examples relate (when both tasks have
            one): "independent" draws; "disjoint" (tasks in the order
            "saliency", "aesthetics"), e.g. saliency on 200 images and
            aesthetics on 2000 *other* images; "nested": the smaller budget's
            examples lie inside the larger's, e.g. saliency on 200 images and
            aesthetics on those 200 plus 2000 others. Budgets are drawn from
            the source's labels before `tasks` masks any task, so the same
            seed gives the same labelled sets whatever `tasks` is.
        permute_labels: tasks whose labels are permuted across the examples
            labelled for that task (a control: labels no longer match images;
            the label statistics are unchanged). "aesthetics" moves the vote
            histograms; "saliency" moves every saliency target field, the
            fixation map and the fixations (hence also the `fixation_counts`
            target built from them), after resizing to the model size. The
            saliency permutation holds the labelled examples' resized maps in
            memory (4 x H x W bytes each).
        drop_unlabelled: drop examples with no label left after the edits.
        seed: seed of the budget choice and the permutation.
        name: used in error messages; defaults to the TFDS name.
    """

    dataset: str | tf.data.Dataset
    split: str = "train"
    data_dir: str | None = None
    weight: float = 1.0
    tasks: tuple[str, ...] = TASKS
    label_budget: Mapping[str, int] = dataclasses.field(default_factory=dict)
    budget_mode: str = "independent"
    permute_labels: tuple[str, ...] = ()
    drop_unlabelled: bool = True
    seed: int = 0
    name: str | None = None

    def __post_init__(self):
        if self.budget_mode not in BUDGET_MODES:
            raise ValueError(
                f"budget_mode={self.budget_mode!r}; expected one of {BUDGET_MODES}"
            )
        for task in (*self.tasks, *self.label_budget, *self.permute_labels):
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        for task, n in self.label_budget.items():
            if n < 0:
                raise ValueError(f"label_budget[{task!r}] must be >= 0, got {n}")
        if not self.weight > 0:
            raise ValueError(f"weight must be > 0, got {self.weight}")

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if isinstance(self.dataset, str):
            return f"{self.dataset}[{self.split}]"
        return "dataset"


# Features the training stream never reads; they stay encoded there.
_EVAL_ONLY_FEATURES = ("true_density",)


def load_source(
    spec: SourceSpec, skip_decoding: bool = False, training: bool = False
) -> tf.data.Dataset:
    """The raw example dicts of a source, in a fixed order.

    Args:
        spec: the source.
        skip_decoding: leave image features encoded (for label-only passes).
        training: drop the features only evaluation reads (`true_density`)
            without decoding them.

    Returns:
        A `tf.data.Dataset` of example dicts.
    """
    if not isinstance(spec.dataset, str):
        return spec.dataset
    # Registers aesthal's builders with TFDS (imported here, not at module
    # level, so `aesthal.data` stays usable on plain tf.data sources cheaply).
    import aesthal.datasets  # noqa: F401

    decoders = None
    if skip_decoding or training:
        features = tfds.builder(spec.dataset, data_dir=spec.data_dir).info.features
        decoders = {
            key: tfds.decode.SkipDecoding()
            for key, feature in features.items()
            if (skip_decoding and isinstance(feature, tfds.features.Image))
            or (training and key in _EVAL_ONLY_FEATURES)
        }
    ds = tfds.load(
        spec.dataset,
        split=spec.split,
        data_dir=spec.data_dir,
        shuffle_files=False,
        decoders=decoders or None,
    )
    if training and any(key in ds.element_spec for key in _EVAL_ONLY_FEATURES):
        ds = ds.map(
            lambda ex: {k: v for k, v in ex.items() if k not in _EVAL_ONLY_FEATURES}
        )
    return ds


def _label_table(spec: SourceSpec) -> dict[str, np.ndarray]:
    """One pass over a source's flags (and votes): numpy arrays indexed by example."""

    def flags(ex):
        has_map = "fixation_map" in ex
        has_votes = "aesthetics_votes" in ex
        votes = (
            tf.reshape(tf.cast(ex["aesthetics_votes"], tf.float32), [10])
            if has_votes
            else tf.zeros([10], tf.float32)
        )
        return {
            "has_saliency": tf.cast(ex.get("has_saliency", has_map), tf.bool),
            "has_aesthetics": tf.cast(ex.get("has_aesthetics", has_votes), tf.bool),
            "votes": votes,
        }

    ds = load_source(spec, skip_decoding=True).map(flags)
    rows = list(ds.batch(4096).as_numpy_iterator())
    if not rows:
        raise ValueError(f"{spec.display_name}: source is empty")
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def _check_budget(spec, task, budget, available, qualifier) -> None:
    if budget > available:
        where = {
            "disjoint": " outside the other task's budget",
            "nested": " beyond the other task's budget",
        }.get(spec.budget_mode, "")
        raise ValueError(
            f"{spec.display_name}: label_budget[{task!r}] = "
            f"{spec.label_budget[task]} but only {available} "
            f"{qualifier}examples are labelled for {task}{where}"
        )


def _label_edits(spec: SourceSpec):
    """Per-index keep masks, permuted votes and the saliency permutation.

    Returns None (no edit) or `(keep, perm_votes, saliency_from)`: `keep`
    task -> bool mask; `perm_votes` the votes table after the aesthetics
    permutation (or None); `saliency_from` int64 per index, the index whose
    saliency labels the example receives (-1: its own; or None).
    """
    if not spec.label_budget and not spec.permute_labels:
        return None
    table = _label_table(spec)
    n = len(table["votes"])
    keep = {}
    taken = np.zeros(n, bool)
    budgets = spec.label_budget
    order = list(TASKS)
    if spec.budget_mode == "nested":
        order.sort(key=lambda t: budgets.get(t, n + 1))  # smallest budget first
    for task in order:
        if task not in budgets:
            continue
        budget = budgets[task]
        labelled = table[_TASK_FLAG[task]]
        rng = np.random.default_rng([spec.seed, _TASK_CODE[task], 0])
        if spec.budget_mode == "nested":
            inner = np.flatnonzero(labelled & taken)
            outer = np.flatnonzero(labelled & ~taken)
            if budget < len(inner):
                chosen = rng.choice(inner, size=budget, replace=False)
            else:
                _check_budget(spec, task, budget - len(inner), len(outer), "more ")
                extra = rng.choice(outer, size=budget - len(inner), replace=False)
                chosen = np.concatenate([inner, extra])
        else:
            disjoint = spec.budget_mode == "disjoint"
            candidates = np.flatnonzero(labelled & ~taken if disjoint else labelled)
            _check_budget(spec, task, budget, len(candidates), "")
            chosen = rng.choice(candidates, size=budget, replace=False)
        mask = np.zeros(n, bool)
        mask[chosen] = True
        taken |= mask
        keep[task] = mask
    perm_votes = None
    if "aesthetics" in spec.permute_labels:
        labelled = table["has_aesthetics"] & keep.get("aesthetics", np.ones(n, bool))
        idx = np.flatnonzero(labelled)
        rng = np.random.default_rng([spec.seed, _TASK_CODE["aesthetics"], 1])
        perm_votes = table["votes"].copy()
        perm_votes[idx] = table["votes"][idx[rng.permutation(len(idx))]]
    saliency_from = None
    if "saliency" in spec.permute_labels:
        labelled = table["has_saliency"] & keep.get("saliency", np.ones(n, bool))
        idx = np.flatnonzero(labelled)
        rng = np.random.default_rng([spec.seed, _TASK_CODE["saliency"], 1])
        saliency_from = np.full(n, -1, np.int64)
        saliency_from[idx] = idx[rng.permutation(len(idx))]
    return keep, perm_votes, saliency_from


def _saliency_table(
    spec: SourceSpec,
    rows: np.ndarray,
    image_size: tuple[int, int],
    num_parallel_calls: int,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The resized saliency targets of the examples `rows` (sorted indices).

    Returns:
        `maps` float32 `[len(rows), H, W, 1]`, `fixations` float32 `[M, 2]`
        (all rows' points, concatenated) and `splits` int64 `[len(rows) + 1]`
        (row k's points are `fixations[splits[k]:splits[k + 1]]`).
    """
    wanted = np.zeros(int(rows.max()) + 1 if len(rows) else 0, bool)
    wanted[rows] = True
    wanted = tf.constant(wanted)
    name = spec.display_name

    def targets(index, example):
        features = preprocess.resize_example(
            preprocess.standardize_example(example, name), image_size
        )
        return {k: features[k] for k in ("saliency", "fixations")}

    ds = (
        load_source(spec, training=True)
        .enumerate()
        .take(int(wanted.shape[0]))
        .filter(lambda index, example: tf.gather(wanted, index))
        .map(targets, num_parallel_calls=num_parallel_calls)
    )
    maps, points = [], []
    for features in ds.as_numpy_iterator():
        maps.append(features["saliency"])
        points.append(features["fixations"])
    if len(maps) != len(rows):
        raise ValueError(
            f"{name}: read {len(maps)} saliency labels for the permutation, "
            f"expected {len(rows)}; the source's order must be fixed."
        )
    height, width = int(image_size[0]), int(image_size[1])
    splits = np.concatenate([[0], np.cumsum([len(p) for p in points])])
    return (
        tf.constant(
            np.stack(maps) if maps else np.zeros([0, height, width, 1], np.float32)
        ),
        tf.constant(
            np.concatenate(points).astype(np.float32)
            if points
            else np.zeros([0, 2], np.float32)
        ),
        tf.constant(splits.astype(np.int64)),
    )


def _prepared_source(
    spec: SourceSpec,
    image_size: tuple[int, int],
    num_parallel_calls: int,
) -> tf.data.Dataset:
    """Steps 1-3 of the module docstring for one source: resized, unbatched."""
    edits = _label_edits(spec)
    keep_tables = {}
    perm_votes = None
    saliency_row = None
    if edits is not None:
        keep, perm, saliency_from = edits
        keep_tables = {t: tf.constant(m) for t, m in keep.items()}
        perm_votes = None if perm is None else tf.constant(perm)
        if saliency_from is not None:
            rows = np.flatnonzero(saliency_from >= 0)
            maps, points, splits = _saliency_table(
                spec, rows, image_size, num_parallel_calls
            )
            # Index -> row of the table holding the labels it receives.
            row_of = np.full(len(saliency_from), -1, np.int64)
            row_of[rows] = np.searchsorted(rows, saliency_from[rows])
            saliency_row = tf.constant(row_of)
    name = spec.display_name
    tasks = spec.tasks

    def edit(index, example):
        example = dict(example)
        if perm_votes is not None:
            example["aesthetics_votes"] = tf.gather(perm_votes, index)
        features = preprocess.standardize_example(example, name)
        for task, flag in _TASK_FLAG.items():
            has = features[flag]
            if task not in tasks:
                has = tf.constant(False)
            if task in keep_tables:
                has = tf.logical_and(has, tf.gather(keep_tables[task], index))
            features[flag] = has
        return index, features

    def finish(index, features):
        out = preprocess.resize_example(features, image_size)
        if saliency_row is None:
            return out
        row = tf.gather(saliency_row, index)
        moved = tf.logical_and(row >= 0, out["saliency_mask"] > 0)
        safe = tf.maximum(row, 0)
        own_points = out["fixations"]
        out["saliency"] = tf.where(moved, tf.gather(maps, safe), out["saliency"])
        out["fixations"] = tf.cond(
            moved,
            lambda: points[splits[safe] : splits[safe + 1]],
            lambda: own_points,
        )
        return out

    ds = (
        load_source(spec, training=True)
        .enumerate()
        .map(edit, num_parallel_calls=num_parallel_calls)
    )
    if spec.drop_unlabelled:
        ds = ds.filter(
            lambda index, f: tf.logical_or(f["has_saliency"], f["has_aesthetics"])
        )
    return ds.map(finish, num_parallel_calls=num_parallel_calls)


def make_dataset(
    sources: SourceSpec | str | Sequence[SourceSpec],
    *,
    image_size: tuple[int, int],
    batch_size: int,
    training: bool = True,
    seed: int = 0,
    shuffle_buffer: int = 1024,
    drop_remainder: bool | None = None,
    cache: bool | str = False,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    prefetch: bool = True,
    saliency_target: str = "map",
) -> tf.data.Dataset:
    """Batched `(images, targets, sample_weights)` from one source or a mixture.

    Args:
        sources: a `SourceSpec`, a TFDS name (split "train"), or several specs,
            mixed by their `weight`s.
        image_size: `(H, W)` of the model input; images and maps are stretched.
        batch_size: examples per batch.
        training: shuffle, repeat forever and flip at random; when False the
            stream is one pass in source order (mixtures interleave by weight)
            without flips.
        seed: seed of shuffling, mixing and flips.
        shuffle_buffer: shuffle buffer size per source.
        drop_remainder: drop the last partial batch so that every batch has a
            static batch size; defaults to `training`.
        cache: cache each resized source in memory (True) or in files with
            this path prefix (str; one suffix per source).
        num_parallel_calls: parallelism of the maps.
        prefetch: prefetch batches (AUTOTUNE).
        saliency_target: `"map"` (the resized fixation map) or
            `"fixation_counts"` (`fixation_count_target`, after the flips).

    Returns:
        A `tf.data.Dataset` of `(images, targets, sample_weights)`:
        images float32 `[B, H, W, 3]` in 0..255; targets
        `{"saliency": float32 [B, H, W, 1], "aesthetics": float32 [B, 10]}`;
        sample_weights `{"saliency": float32 [B], "aesthetics": float32 [B]}`
        (1 = labelled, 0 = not; unlabelled targets are zeros).
    """
    if isinstance(sources, str | SourceSpec):
        sources = [sources]
    specs = [SourceSpec(s) if isinstance(s, str) else s for s in sources]
    if not specs:
        raise ValueError("make_dataset needs at least one source")
    if drop_remainder is None:
        drop_remainder = training
    datasets = []
    for i, spec in enumerate(specs):
        ds = _prepared_source(spec, image_size, num_parallel_calls)
        if cache:
            ds = ds.cache(f"{cache}_{i}" if isinstance(cache, str) else "")
        if training:
            ds = ds.shuffle(
                shuffle_buffer, seed=seed * 1000 + i, reshuffle_each_iteration=True
            )
            ds = ds.repeat()
        datasets.append(ds)
    if len(datasets) == 1:
        ds = datasets[0]
    else:
        weights = np.array([s.weight for s in specs], np.float64)
        ds = tf.data.Dataset.sample_from_datasets(
            datasets, weights=list(weights / weights.sum()), seed=seed
        )
    if training:

        def random_flip(position, features):
            draw = tf.random.stateless_uniform(
                [], seed=tf.stack([tf.cast(seed, tf.int64), position])
            )
            return preprocess.flip_example(features, draw < 0.5)

        ds = ds.enumerate().map(random_flip, num_parallel_calls=num_parallel_calls)
    if saliency_target == "fixation_counts":
        ds = ds.map(fixation_count_target, num_parallel_calls=num_parallel_calls)
    elif saliency_target != "map":
        raise ValueError(
            f"saliency_target={saliency_target!r}; expected 'map' or "
            "'fixation_counts'."
        )
    ds = ds.map(lambda f: {k: v for k, v in f.items() if k != "fixations"})
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(preprocess.to_model_inputs)
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options)


def fixation_count_target(features: dict) -> dict:
    """Replaces the saliency target by the example's fixation counts per pixel.

    Each fixation (resized, and mirrored with its image, by `resize_example`
    and `flip_example`) counts at its nearest pixel `(round(row),
    round(col))`, clipped into the map; the counts are divided by their sum.
    The KLD between this target and a model density is the negative mean
    log-likelihood of the fixations minus the target's (constant) entropy:
    DeepGaze II's training loss (Kümmerer et al. 2017). An example without
    fixations, or unlabelled, keeps its map.

    Args:
        features: `resize_example` output (one example): `saliency` float32
            `[H, W, 1]`, `fixations` float32 `[N, 2]`, `saliency_mask`.

    Returns:
        The same dict with `saliency` the normalised counts, float32
        `[H, W, 1]`, summing to 1 (times `saliency_mask`).
    """
    out = dict(features)
    saliency = features["saliency"]
    height, width = saliency.shape[0], saliency.shape[1]
    points = tf.round(features["fixations"])
    rows = tf.clip_by_value(tf.cast(points[:, 0], tf.int32), 0, height - 1)
    cols = tf.clip_by_value(tf.cast(points[:, 1], tf.int32), 0, width - 1)
    counts = tf.scatter_nd(
        tf.stack([rows, cols], axis=-1),
        tf.ones_like(points[:, 0]),
        [height, width],
    )
    counts = counts[..., None] / tf.maximum(tf.reduce_sum(counts), 1.0)
    has_points = tf.shape(points)[0] > 0
    out["saliency"] = tf.where(has_points, counts * features["saliency_mask"], saliency)
    return out


def flipped_pairs(
    spec: SourceSpec,
    *,
    image_size: tuple[int, int],
    saliency_target: str = "map",
    num_parallel_calls: int = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Every example of a source, then its mirror image, in source order.

    The training examples a feature cache holds (`aesthal.data.prepare.
    cached_training_dataset`): the same label edits, resizing and targets as
    `make_dataset`'s training stream, with both flips instead of a random one.

    Returns:
        Unbatched `(image, targets, sample_weights)` as `to_model_inputs`
        gives them: example 0, example 0 mirrored, example 1, ...
    """
    ds = _prepared_source(spec, image_size, num_parallel_calls)

    def both(features):
        return tf.data.Dataset.from_tensors(features).concatenate(
            tf.data.Dataset.from_tensors(preprocess.flip_example(features, True))
        )

    ds = ds.flat_map(both)
    if saliency_target == "fixation_counts":
        ds = ds.map(fixation_count_target, num_parallel_calls=num_parallel_calls)
    ds = ds.map(lambda f: {k: v for k, v in f.items() if k != "fixations"})
    return ds.map(preprocess.to_model_inputs)


@dataclasses.dataclass(frozen=True)
class EvalExample:
    """One evaluation example at its original resolution.

    Attributes:
        filename: the example's file name (or generated id).
        image: uint8 `[h, w, 3]`.
        fixations: float32 `[N, 2]`, `(row, column)`, 0-based (empty if none).
        fixation_map: float32 `[h, w]` as stored (any non-negative scale), or
            None when the source has no map.
        true_density: float32 `[h, w]` summing to 1 (generated data), or None.
        aesthetics_votes: float32 `[10]`, or None when the source has no votes.
        has_saliency: labelled for saliency.
        has_aesthetics: labelled for aesthetics.
    """

    filename: str
    image: np.ndarray
    fixations: np.ndarray
    fixation_map: np.ndarray | None
    true_density: np.ndarray | None
    aesthetics_votes: np.ndarray | None
    has_saliency: bool
    has_aesthetics: bool


def iterate_eval_examples(
    source: SourceSpec | str, split: str = "test", data_dir: str | None = None
) -> Iterator[EvalExample]:
    """Yields a source's examples at original resolution, for the metrics.

    No resizing, flipping or label edits: metrics are computed against the
    stored fixations and maps; predictions are resized back to `image`'s size.

    Args:
        source: a TFDS name (with `split`, `data_dir`) or a `SourceSpec` (its
            own split and data_dir are used).
        split: TFDS split, when `source` is a name.
        data_dir: TFDS data directory, when `source` is a name.

    Yields:
        `EvalExample`s in the source's fixed order.
    """
    spec = (
        source
        if isinstance(source, SourceSpec)
        else SourceSpec(source, split=split, data_dir=data_dir)
    )
    name = spec.display_name

    def standardize(ex):
        out = preprocess.standardize_example(ex, name)
        if "true_density" in ex:
            out["true_density"] = tf.cast(ex["true_density"], tf.float32)
        return out

    raw = load_source(spec)
    has_map = "fixation_map" in raw.element_spec
    has_votes = "aesthetics_votes" in raw.element_spec
    for ex in raw.map(standardize).as_numpy_iterator():
        yield EvalExample(
            filename=ex["filename"].decode(),
            image=ex["image"],
            fixations=ex["fixations"],
            fixation_map=ex["fixation_map"][..., 0] if has_map else None,
            true_density=ex.get("true_density"),
            aesthetics_votes=ex["aesthetics_votes"] if has_votes else None,
            has_saliency=bool(ex["has_saliency"]),
            has_aesthetics=bool(ex["has_aesthetics"]),
        )
