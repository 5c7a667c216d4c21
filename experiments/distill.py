r"""Distils a teacher ensemble into one student that predicts in one pass.

Two steps, each resumable:

    # 1. The teacher's densities of augmented views of the training images,
    #    computed once (shards of --shard_size images; a rerun skips the
    #    shards already written).
    python experiments/distill.py --mode=teacher \
        --teacher=$(ls -d runs/osie_lite2_ft_s?/model.keras | paste -sd,) \
        --mirror --scales=1,1.25,1.5 --views_per_image=6 \
        --output_dir=runs/distill/teacher
    # 2. A student trained on those densities (KL) and the real fixations
    #    (log-likelihood) of the full views.
    python experiments/distill.py --mode=student --teacher_dir=runs/distill/teacher \
        --backbone=efficientnet_lite0 --input_height=288 --input_width=384 \
        --output_dir=runs/distill/lite0_288

Views. View 0 of every training image is the whole image; the others are
crops of random aspect ratio (width/height log-uniform in
[`_MIN_ASPECT`, `_MAX_ASPECT`]) and size (each side 55-100 % of the largest
crop of that aspect ratio that fits), at a random place, some of them
resampled to a lower resolution first (a smaller photo), and colour-jittered
(brightness, contrast, saturation, hue, grey). Every view is drawn from
`(--view_seed, image index, view index)` alone, so the teacher step and the
student step agree on them without storing pixels. The teacher sees each view
without its colour jitter (the student learns to ignore colour changes) and
its density is stored at `--map_height` x `--map_width` (the library stretches
every image to the model's input size, so one grid serves every aspect ratio).
Mirror images need no teacher pass: with `--mirror` the teacher averages each
view with its mirror image, so its density of the mirror image is the mirrored
density, exactly.

Student. The same readout as the teachers (DeepGaze II: 1x1 softplus
convolutions over two taps, the training fixations' fixed centre prior), on
an ImageNet trunk frozen up to `--frozen_up_to` (whose features of each view
and its mirror image are computed once), the rest fine-tuned with frozen batch
norms. Its loss is the KL divergence from the target density, where the
target of the whole image (view 0) is `(1 - w) * teacher + w * fixations`
(`w = --fixation_weight`; the fixation counts normalised to sum 1) and the
target of a crop is the teacher's density alone: KL to a mixture is the
mixture of the KL to the teacher and the negative log-likelihood of the
fixations, up to a constant. Validation: the fixations' log-likelihood on
`--validation_split`, every epoch (`val_saliency_loss`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import subprocess
import sys
import time

import cv2
import keras
import numpy as np
import tensorflow as tf
from absl import app, flags
from tqdm import tqdm

import aesthal
from aesthal.config import DataConfig, ModelConfig, TrainConfig
from aesthal.data import pipeline, prepare
from aesthal.data.preprocess import stretch_images
from aesthal.inference import load_model, make_predictor
from aesthal.models.priors import centre_bias_log_density
from aesthal.training.runner import make_trainer, write_json

_MODE = flags.DEFINE_enum("mode", None, ["teacher", "student"], "What to do.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write.")
_DATASET = flags.DEFINE_string("dataset", "osie", "The TFDS data set.")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", "../shared/data/osie", "Its manual_dir."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Its TFDS data_dir.")
_TRAIN_SPLIT = flags.DEFINE_string("train_split", "train[:540]", "Training split.")
_VIEW_SEED = flags.DEFINE_integer("view_seed", 0, "teacher: seed of the views.")
_VIEWS = flags.DEFINE_integer(
    "views_per_image", 6, "teacher: views per image (the first the whole image)."
)
_TEACHER = flags.DEFINE_list("teacher", [], "teacher: the teacher's model files.")
_MIRROR = flags.DEFINE_bool("mirror", True, "teacher: average in mirror images.")
_SCALES = flags.DEFINE_string("scales", "1,1.25,1.5", "teacher: input-size factors.")
_MAP_HEIGHT = flags.DEFINE_integer("map_height", 144, "teacher: stored map height.")
_MAP_WIDTH = flags.DEFINE_integer("map_width", 192, "teacher: stored map width.")
_SHARD_SIZE = flags.DEFINE_integer("shard_size", 20, "teacher: images per shard.")
_MAX_IMAGES = flags.DEFINE_integer(
    "max_images", None, "teacher: only the first N images (a quick try)."
)
_REVERSE = flags.DEFINE_bool(
    "reverse_shards", False, "teacher: the last shard first (a second process)."
)
_TEACHER_DIR = flags.DEFINE_string("teacher_dir", None, "student: the teacher step.")
_BACKBONE = flags.DEFINE_string("backbone", "efficientnet_lite0", "student: trunk.")
_INPUT_HEIGHT = flags.DEFINE_integer("input_height", 288, "student: input height.")
_INPUT_WIDTH = flags.DEFINE_integer("input_width", 384, "student: input width.")
_FROZEN_UP_TO = flags.DEFINE_string(
    "frozen_up_to", "stage3", "student: the trunk is frozen up to this tap."
)
_READOUT_TAPS = flags.DEFINE_list(
    "readout_taps", ["stage4", "stage5"], "student: the readout's taps."
)
_PRIOR_GRID = flags.DEFINE_list("prior_grid", ["24", "32"], "student: prior grid.")
_BACKBONE_WEIGHTS = flags.DEFINE_string(
    "backbone_weights", "imagenet", "student: the trunk's initial weights."
)
_INIT_FROM = flags.DEFINE_string(
    "init_from", None, "student: start from this .keras model's weights (same network)."
)
_FIXATION_WEIGHT = flags.DEFINE_float(
    "fixation_weight", 0.5, "student: weight of the fixations in view 0's target."
)
_EPOCHS = flags.DEFINE_integer("epochs", 6, "student: epochs.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "student: batch size.")
_LR_SHARED = flags.DEFINE_float("lr_shared", 3e-4, "student: trunk learning rate.")
_LR_SALIENCY = flags.DEFINE_float(
    "lr_saliency", 1e-3, "student: readout learning rate."
)
_SEED = flags.DEFINE_integer("seed", 0, "student: initialisation and order.")
_VALIDATION_SPLIT = flags.DEFINE_string(
    "validation_split", "train[540:]", "student: validation split."
)
_MAX_VIEWS = flags.DEFINE_integer(
    "max_views", None, "student: only the first N views of each image."
)

# Crop aspect ratios (width / height) drawn log-uniformly in this range:
# 1:2 portrait to 2:1 panorama, around OSIE's 4:3.
_MIN_ASPECT, _MAX_ASPECT = 0.5, 2.0
# Each side of a crop: this fraction of the largest crop of its aspect ratio.
_MIN_SIDE, _MAX_SIDE = 0.55, 1.0
# Probability of a crop view being resampled to a lower resolution first, and
# the range of that resolution's factor.
_P_LOW_RES, _LOW_RES = 0.3, (0.3, 0.8)
# Colour jitter of a crop view (probability, then each parameter's range).
_P_JITTER = 0.8
_BRIGHTNESS = 0.1  # +- of 0..1
_CONTRAST = (0.75, 1.25)
_SATURATION = (0.7, 1.3)
_HUE = 0.03  # +- of a turn
_P_GREY = 0.1


@dataclasses.dataclass(frozen=True)
class View:
    """One augmented view of a training image.

    Attributes:
        top, left, height, width: the crop, in the image's pixels.
        resolution: factor of a downsampling before anything else (1 = none).
        brightness, contrast, saturation, hue: colour jitter (`tf.image`'s
            adjust_* arguments); 0, 1, 1, 0 = none.
        grey: converted to grey (after the jitter).
    """

    top: int
    left: int
    height: int
    width: int
    resolution: float = 1.0
    brightness: float = 0.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0
    grey: bool = False


def draw_views(
    image_shape: tuple[int, int], index: int, count: int, seed: int
) -> list[View]:
    """The `count` views of training image number `index` (view 0: the whole
    image, unchanged), drawn from `(seed, index)` alone."""
    height, width = int(image_shape[0]), int(image_shape[1])
    views = [View(0, 0, height, width)]
    rng = np.random.default_rng([seed, index])
    for _ in range(count - 1):
        aspect = float(np.exp(rng.uniform(np.log(_MIN_ASPECT), np.log(_MAX_ASPECT))))
        # The largest crop of that aspect ratio inside the image.
        if aspect >= width / height:
            full_w, full_h = width, width / aspect
        else:
            full_w, full_h = height * aspect, height
        side = rng.uniform(_MIN_SIDE, _MAX_SIDE)
        crop_h = max(8, min(height, int(round(full_h * side))))
        crop_w = max(8, min(width, int(round(full_w * side))))
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        resolution = (
            float(rng.uniform(*_LOW_RES)) if rng.uniform() < _P_LOW_RES else 1.0
        )
        jitter = {}
        if rng.uniform() < _P_JITTER:
            jitter = {
                "brightness": float(rng.uniform(-_BRIGHTNESS, _BRIGHTNESS)),
                "contrast": float(rng.uniform(*_CONTRAST)),
                "saturation": float(rng.uniform(*_SATURATION)),
                "hue": float(rng.uniform(-_HUE, _HUE)),
                "grey": bool(rng.uniform() < _P_GREY),
            }
        views.append(View(top, left, crop_h, crop_w, resolution, **jitter))
    return views


def view_pixels(image: np.ndarray, view: View) -> np.ndarray:
    """The view's crop, resampled (uint8 `[h, w, 3]`), before colour jitter:
    what the teacher sees."""
    crop = image[view.top : view.top + view.height, view.left : view.left + view.width]
    if view.resolution < 1.0:
        small = (
            max(8, int(round(view.width * view.resolution))),
            max(8, int(round(view.height * view.resolution))),
        )
        crop = cv2.resize(crop, small, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)


def jitter_images(images, views: list[View]):
    """Applies each view's colour jitter to float32 `[B, H, W, 3]` in 0..255."""
    out = []
    for image, view in zip(tf.unstack(images), views, strict=True):
        x = image / 255.0
        if view.brightness:
            x = tf.image.adjust_brightness(x, view.brightness)
        if view.contrast != 1.0:
            x = tf.image.adjust_contrast(x, view.contrast)
        if view.saturation != 1.0:
            x = tf.image.adjust_saturation(x, view.saturation)
        if view.hue:
            x = tf.image.adjust_hue(x, view.hue)
        if view.grey:
            x = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x))
        out.append(tf.clip_by_value(x, 0.0, 1.0) * 255.0)
    return tf.stack(out)


def to_grid(density: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A density resampled to `shape` (area interpolation), summing to 1."""
    grid = cv2.resize(
        density.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA
    )
    grid = np.maximum(grid, 0.0)
    return grid / grid.sum()


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _data_config():
    return DataConfig(
        dataset=_DATASET.value,
        data_dir=_DATA_DIR.value,
        manual_dir=_MANUAL_DIR.value,
        train_split=_TRAIN_SPLIT.value,
        validation_split=_VALIDATION_SPLIT.value,
        tasks=("saliency",),
    )


def _examples(data, split: str):
    builder = prepare.prepare_data(data)
    prepare.check_split(builder, split)
    return pipeline.iterate_eval_examples(
        data.dataset, split=split, data_dir=data.data_dir
    )


def teacher_settings() -> dict:
    """What the teacher step's output depends on (checked on resume)."""
    return {
        "dataset": _DATASET.value,
        "train_split": _TRAIN_SPLIT.value,
        "teacher": list(_TEACHER.value),
        "mirror": _MIRROR.value,
        "scales": _SCALES.value,
        "views_per_image": _VIEWS.value,
        "view_seed": _VIEW_SEED.value,
        "map_size": [_MAP_HEIGHT.value, _MAP_WIDTH.value],
        "shard_size": _SHARD_SIZE.value,
    }


def run_teacher(out: pathlib.Path) -> None:
    """Writes `settings.json` and `shard_NNNN.npz` files: `maps` float16
    `[n, H, W]` (each density times H*W), `image_index`, `view_index`."""
    if not _TEACHER.value:
        raise app.UsageError("--mode=teacher needs --teacher=a.keras,b.keras,...")
    settings = teacher_settings()
    out.mkdir(parents=True, exist_ok=True)
    settings_file = out / "settings.json"
    if settings_file.exists():
        before = json.loads(settings_file.read_text())
        before = {k: v for k, v in before.items() if k in settings}
        if before != settings:
            raise app.UsageError(
                f"{out} holds a teacher step with other settings ({before}); "
                "pass another --output_dir or delete that folder."
            )
    else:
        settings_file.write_text(
            json.dumps({**settings, "commit": _git_commit()}, indent=2) + "\n"
        )
    predictor = make_predictor(
        ",".join(_TEACHER.value), mirror=_MIRROR.value, scales=_SCALES.value
    )
    examples = _examples(_data_config(), _TRAIN_SPLIT.value)
    shard_size = _SHARD_SIZE.value
    grid = (_MAP_HEIGHT.value, _MAP_WIDTH.value)
    batch: list = []
    progress = tqdm(desc="teacher views", unit="view", dynamic_ncols=True)

    def flush(shard: int) -> None:
        path = out / f"shard_{shard:04d}.npz"
        if path.exists():
            batch.clear()
            return
        pairs = []
        for index, example in batch:
            views = draw_views(
                example.image.shape[:2], index, _VIEWS.value, _VIEW_SEED.value
            )
            pairs += [
                ((index, v), view_pixels(example.image, view))
                for v, view in enumerate(views)
            ]
        maps, image_index, view_index = [], [], []
        for (index, v), prediction in predictor.predict_pairs(pairs, batch_size=8):
            maps.append(to_grid(prediction["saliency"], grid) * (grid[0] * grid[1]))
            image_index.append(index)
            view_index.append(v)
            progress.update(1)
        partial = out / f"shard_{shard:04d}.partial.npz"
        np.savez(
            partial,
            maps=np.stack(maps).astype(np.float16),
            image_index=np.array(image_index, np.int32),
            view_index=np.array(view_index, np.int32),
        )
        partial.replace(path)
        batch.clear()

    numbered = enumerate(examples)
    if _MAX_IMAGES.value is not None:
        numbered = ((i, ex) for i, ex in numbered if i < _MAX_IMAGES.value)
    if _REVERSE.value:
        # The last shard first: a second process beside a forward one (they
        # meet in the middle; a shard the other wrote meanwhile is skipped).
        shards: dict[int, list] = {}
        for index, example in numbered:
            shards.setdefault(index // shard_size, []).append((index, example))
        for shard in sorted(shards, reverse=True):
            if not (out / f"shard_{shard:04d}.npz").exists():
                batch.extend(shards[shard])
                flush(shard)
        numbered = iter(())
    for index, example in numbered:
        if (out / f"shard_{index // shard_size:04d}.npz").exists():
            progress.update(_VIEWS.value)
            continue
        batch.append((index, example))
        if len(batch) == shard_size:
            flush(index // shard_size)
    if batch:
        flush(batch[-1][0] // shard_size)
    progress.close()
    print(f"teacher maps: {out}")


def load_teacher(teacher_dir: pathlib.Path):
    """`(settings, maps [n, H, W] float16, image_index, view_index)`."""
    settings = json.loads((teacher_dir / "settings.json").read_text())
    shards = sorted(teacher_dir.glob("shard_[0-9][0-9][0-9][0-9].npz"))
    if not shards:
        raise app.UsageError(f"{teacher_dir}: no teacher shards; run --mode=teacher")
    maps, images, views = [], [], []
    for path in shards:
        with np.load(path) as stored:
            maps.append(stored["maps"])
            images.append(stored["image_index"])
            views.append(stored["view_index"])
    return settings, np.concatenate(maps), np.concatenate(images), np.concatenate(views)


def fixation_counts(points: np.ndarray, source: tuple[int, int], size) -> np.ndarray:
    """Fixations (0-based `(row, col)` in `source` pixels) counted at their
    nearest pixel of a `size` map (as `aesthal.data.pipeline.
    fixation_count_target` counts them), divided by their number."""
    height, width = size
    scale = np.array([height / source[0], width / source[1]], np.float64)
    moved = (np.asarray(points, np.float64) + 0.5) * scale - 0.5
    rows = np.clip(np.round(moved[:, 0]).astype(int), 0, height - 1)
    cols = np.clip(np.round(moved[:, 1]).astype(int), 0, width - 1)
    counts = np.zeros((height, width), np.float32)
    np.add.at(counts, (rows, cols), 1.0)
    return counts / max(counts.sum(), 1.0)


def student_target(
    teacher: np.ndarray,
    counts: np.ndarray | None,
    weight: float,
    mirrored: bool,
    size: tuple[int, int],
) -> np.ndarray:
    """One training example's target density at the student's input size.

    Args:
        teacher: the teacher's map of the view, any positive scale, `[h, w]`.
        counts: the fixation counts of a whole-image view at `size`, summing
            to 1, or None (a crop: the teacher alone).
        weight: the fixations' share of the target, in [0, 1].
        mirrored: the example is the mirror image of the view.
        size: `(H, W)`.

    Returns:
        float32 `[H, W]`, summing to 1: `(1 - weight) * teacher + weight *
        counts` (the teacher resized bilinearly and renormalised), mirrored
        left-right when `mirrored`.
    """
    resized = cv2.resize(
        np.asarray(teacher, np.float32),
        (size[1], size[0]),
        interpolation=cv2.INTER_LINEAR,
    )
    resized = np.maximum(resized, 0.0)
    resized /= resized.sum()
    if counts is not None and weight > 0:
        resized = (1.0 - weight) * resized + weight * counts
    return np.ascontiguousarray(resized[:, ::-1] if mirrored else resized)


def view_features(prefix, examples, image_index, view_index, settings, size, chunk):
    """The frozen prefix's float16 features of every view and its mirror image
    (interleaved: view 0, its mirror, view 1, ...), `{tap: [2n, h, w, c]}`."""
    features: dict[str, list[np.ndarray]] = {}
    for start in tqdm(
        range(0, len(image_index), chunk), desc="student features", dynamic_ncols=True
    ):
        stop = min(start + chunk, len(image_index))
        views, pixels = [], []
        for i in range(start, stop):
            example = examples[image_index[i]]
            view = draw_views(
                example.image.shape[:2],
                int(image_index[i]),
                settings["views_per_image"],
                settings["view_seed"],
            )[view_index[i]]
            views.append(view)
            pixels.append(stretch_images(view_pixels(example.image, view), size))
        images = jitter_images(tf.stack(pixels), views)
        both = tf.concat([images, images[:, :, ::-1]], 0)
        for tap, value in prefix(both).items():
            value = value.numpy().astype(np.float16)
            n = stop - start
            pairs = np.stack([value[:n], value[n:]], 1)  # view, mirror: interleaved
            features.setdefault(tap, []).append(pairs.reshape(-1, *value.shape[1:]))
    return {tap: np.concatenate(parts) for tap, parts in features.items()}


def run_student(out: pathlib.Path) -> None:
    if not _TEACHER_DIR.value:
        raise app.UsageError("--mode=student needs --teacher_dir.")
    teacher_dir = pathlib.Path(_TEACHER_DIR.value)
    settings, maps, image_index, view_index = load_teacher(teacher_dir)
    if _MAX_VIEWS.value is not None:
        keep = view_index < _MAX_VIEWS.value
        maps, image_index, view_index = maps[keep], image_index[keep], view_index[keep]
    size = (_INPUT_HEIGHT.value, _INPUT_WIDTH.value)
    data = dataclasses.replace(_data_config(), train_split=settings["train_split"])
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "distill_flags.json",
        {
            name: flags.FLAGS[name].value
            for name in (
                "teacher_dir backbone input_height input_width frozen_up_to "
                "readout_taps prior_grid backbone_weights init_from fixation_weight "
                "epochs batch_size lr_shared lr_saliency seed validation_split "
                "max_views"
            ).split()
        }
        | {"commit": _git_commit(), "teacher": settings},
    )

    keras.utils.set_random_seed(_SEED.value)
    config = ModelConfig(
        backbone=_BACKBONE.value,
        input_size=size,
        backbone_weights=_BACKBONE_WEIGHTS.value or None,
        tasks=("saliency",),
        saliency_head="readout",
        readout_taps=tuple(_READOUT_TAPS.value),
        readout_channels=(16, 32, 2),
        centre_prior="fixed",
        prior_grid=tuple(int(v) for v in _PRIOR_GRID.value),
        frozen_up_to=_FROZEN_UP_TO.value,
        frozen_batch_norm=True,
    )
    model = aesthal.build_model(config)
    model.set_centre_prior(
        centre_bias_log_density(
            prepare.training_fixations(data), grid_shape=config.prior_grid
        )
    )
    if _INIT_FROM.value:
        # Every weight (trunk, readout, prior) from a model of this very
        # architecture, e.g. one of the teachers.
        source = load_model(_INIT_FROM.value)
        if source.config.backbone != config.backbone or [
            w.shape for w in source.weights
        ] != [w.shape for w in model.weights]:
            raise app.UsageError(
                f"--init_from={_INIT_FROM.value}: its network "
                f"({source.config.backbone}) is not this student's "
                f"({config.backbone}, {size}); give a model of the same trunk "
                "and readout."
            )
        model.set_weights(source.get_weights())

    # Each view and its mirror image through the frozen prefix, once.
    examples = list(_examples(data, settings["train_split"]))
    order = np.lexsort((view_index, image_index))
    maps, image_index, view_index = maps[order], image_index[order], view_index[order]
    prefix = tf.function(model.prefix_features)
    chunk = 16
    key = {
        "backbone": config.backbone,
        "backbone_weights": config.backbone_weights,
        "input_size": list(size),
        "frozen_up_to": config.frozen_up_to,
        "teacher": {
            k: settings[k] for k in ("train_split", "views_per_image", "view_seed")
        },
        "views": hashlib.sha256(
            np.stack([image_index, view_index]).astype(np.int32).tobytes()
        ).hexdigest(),
    }
    cache = teacher_dir / (
        "features_"
        + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        + ".npz"
    )
    if cache.exists():
        with np.load(cache) as stored:
            features = {tap: stored[tap] for tap in stored.files}
        print(f"student features: {cache}")
    else:
        features = view_features(
            prefix, examples, image_index, view_index, settings, size, chunk
        )
        partial = cache.with_suffix(".partial.npz")
        np.savez(partial, **features)
        partial.replace(cache)
        cache.with_suffix(".json").write_text(json.dumps(key, indent=2) + "\n")
    count = len(maps) * 2
    full = np.repeat(view_index == 0, 2)
    mirrored = np.tile([False, True], len(maps))
    source_index = np.repeat(np.arange(len(maps)), 2)
    counts_of = {}
    for i in np.unique(image_index):
        example = examples[i]
        counts_of[int(i)] = fixation_counts(
            example.fixations, example.image.shape[:2], size
        )
    weight = float(_FIXATION_WEIGHT.value)

    def target(k: int) -> np.ndarray:
        src = source_index[k]
        counts = counts_of[int(image_index[src])] if full[k] else None
        return student_target(maps[src], counts, weight, mirrored[k], size)

    batch_size = _BATCH_SIZE.value
    steps_per_epoch = count // batch_size

    def batches():
        rng = np.random.default_rng(_SEED.value)
        while True:
            perm = rng.permutation(count)
            for s in range(steps_per_epoch):
                idx = np.sort(perm[s * batch_size : (s + 1) * batch_size])
                yield (
                    {
                        tap: value[idx].astype(np.float32)
                        for tap, value in features.items()
                    },
                    {"saliency": np.stack([target(k) for k in idx])[..., None]},
                    {"saliency": np.ones(len(idx), np.float32)},
                )

    signature = (
        {
            tap: tf.TensorSpec((None, *value.shape[1:]), tf.float32)
            for tap, value in features.items()
        },
        {"saliency": tf.TensorSpec((None, *size, 1), tf.float32)},
        {"saliency": tf.TensorSpec((None,), tf.float32)},
    )
    train_ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    train_ds = train_ds.prefetch(2)

    # Validation: the fixations' log-likelihood of the whole images.
    val = list(_examples(data, _VALIDATION_SPLIT.value))
    val_images = tf.stack([stretch_images(ex.image, size) for ex in val])
    val_features = {
        tap: np.concatenate(
            [
                v.numpy()
                for v in [
                    prefix(val_images[i : i + chunk])[tap]
                    for i in range(0, len(val), chunk)
                ]
            ]
        )
        for tap in features
    }
    val_targets = np.stack(
        [fixation_counts(ex.fixations, ex.image.shape[:2], size) for ex in val]
    )[..., None]
    val_ds = tf.data.Dataset.from_tensor_slices(
        (
            val_features,
            {"saliency": val_targets},
            {"saliency": np.ones(len(val), np.float32)},
        )
    ).batch(batch_size)

    train = TrainConfig(
        epochs=_EPOCHS.value,
        steps_per_epoch=steps_per_epoch,
        group_learning_rates={
            "shared": _LR_SHARED.value,
            "saliency": _LR_SALIENCY.value,
        },
        lr_schedule="cosine",
        seed=_SEED.value,
    )
    trainer = make_trainer(model, train, tasks=("saliency",))
    start = time.time()
    history = trainer.fit(
        train_ds,
        epochs=train.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_ds,
        verbose=2,
    )
    seconds = time.time() - start
    model.save(out / "model.keras")
    write_json(out / "train_time.json", {"seconds": seconds, "examples": count})
    write_json(
        out / "history.json",
        {k: [float(v) for v in values] for k, values in history.history.items()},
    )
    print(f"student: {out / 'model.keras'} ({seconds:.0f} s)")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _OUTPUT_DIR.value:
        raise app.UsageError("give --output_dir.")
    out = pathlib.Path(_OUTPUT_DIR.value)
    if _MODE.value == "teacher":
        run_teacher(out)
    elif _MODE.value == "student":
        run_student(out)
    else:
        raise app.UsageError("give --mode=teacher or --mode=student.")
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
