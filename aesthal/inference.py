"""Predictions at each image's own size, from a model, a `.keras` file or a SavedModel.

`Predictor` gives the same answer whichever form the model is in. Per image it
computes what the exported `serving_default` computes (see `aesthal.export`):
stretch the image to the model's input size (bilinear, antialiased), predict,
stretch the density back to the image's size, clip at 0, renormalise to sum 1.

    predictor = Predictor("runs/quickstart/model.keras")
    outputs = predictor.predict(image)   # uint8 [h, w, 3] (or gray, RGBA, 16-bit)
    outputs["saliency"]                  # float32 [h, w], sums to 1
    outputs["aesthetics"]                # float32 [10], sums to 1
    outputs["aesthetics_mean"]           # float32 scalar, in 1..10

Only the trained tasks' outputs are returned (`Predictor.tasks`: the model's
`ModelConfig.tasks`, or the outputs a SavedModel's signatures return): a
saliency-only model gives no "aesthetics"/"aesthetics_mean", an
aesthetics-only model no "saliency"; `Predictor` warns once that it leaves
them out. Models saved before `ModelConfig.tasks` existed count as trained on
both tasks.

Batching. Images of *any* mix of sizes share a batch: each is resized to the
model size first (`aesthal.export.to_model_input`, per image), the batch runs
at the model size, and each map is resized back (`aesthal.export.to_image_size`),
so a folder of mixed sizes runs in full batches. This holds for a model, a
`.keras` file, and a SavedModel that has the `predict_at_model_size` and
`input_size` signatures (all that `aesthal.export_saved_model` writes now). An
older SavedModel offers only `serving_default`, which takes one size per batch:
there, consecutive images of the same size share a batch (a folder of mixed
sizes then runs one image at a time; re-export it for throughput).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from aesthal import export
from aesthal.config import (
    MAX_SCALE,
    MIN_SCALE,
    SCORES,
    TASKS,
    check_input_size,
    input_size_problem,
)
from aesthal.image_io import as_rgb_uint8
from aesthal.models import AesthalModel
from aesthal.models.loading import ModelLoadError, load_model, one_line

_SCORES = np.asarray(SCORES, dtype=np.float32)


class Predictor:
    """Runs a saliency + aesthetics model on images of any size.

    Args:
        model: an `AesthalModel`, a path to a `.keras` file (loaded in safe
            mode), or a SavedModel folder written by `aesthal.export_saved_model`.
        input_size: `(height, width)` to run the model at (see
            `aesthal.config.check_input_size`: each side 32..4096 px, at most
            2048x2048 px in all); None = the model's own `config.input_size`.
            At another size a model or `.keras` file is rebuilt at that size
            with the same weights (`at_input_size`; the given model is not
            changed); a SavedModel runs only at the size it was exported at.

    Raises:
        FileNotFoundError: the path does not exist.
        ModelLoadError: (a `ValueError`) the path is not a `.keras` file or a
            SavedModel with a `serving_default` signature, or does not load.
        ValueError: a malformed `input_size`; a SavedModel asked to run at
            another size than its own.
    """

    def __init__(
        self,
        model: AesthalModel | str | os.PathLike,
        input_size: Sequence[int] | None = None,
    ):
        if input_size is not None:
            input_size = check_input_size(input_size)
        self.source = (
            model.name if isinstance(model, AesthalModel) else os.fspath(model)
        )
        self.model: AesthalModel | None = None
        # The model's (H, W), or None for a SavedModel with only serving_default.
        self.input_size: tuple[int, int] | None = None
        self._serve = None  # serving_default of such a SavedModel
        if not isinstance(model, AesthalModel) and os.path.isdir(model):
            self._load_saved_model(os.fspath(model))
            if input_size is not None and input_size != self.input_size:
                raise ValueError(_saved_model_size_error(self.source, input_size))
        else:
            model = model if isinstance(model, AesthalModel) else load_model(model)
            if input_size is not None and input_size != model.config.input_size:
                model = at_input_size(model, input_size)
                self.source += f" at {input_size[0]}x{input_size[1]}"
            self.model = model
            height, width = self.model.config.input_size
            self.input_size = (height, width)
            # A partial has no __code__: tf.function then counts this
            # predictor's traces on their own, not with those of every other
            # predictor (one trace each, but an ensemble of 9 would otherwise
            # warn of "excessive retracing").
            self._forward = tf.function(
                functools.partial(export.model_size_function(self.model)),
                input_signature=[tf.TensorSpec([None, height, width, 3])],
            )
        if self.input_size is not None:
            self._build_resizes(self.input_size)
        # The trained tasks; the outputs of the others are left out.
        self.tasks: tuple[str, ...] = (
            self.model.config.tasks if self.model is not None else self._saved_tasks
        )
        self.omitted_tasks = tuple(t for t in TASKS if t not in self.tasks)
        if self.omitted_tasks:
            warnings.warn(
                f"{self.source}: the model was trained on "
                f"{' and '.join(self.tasks)} only; its "
                f"{' and '.join(self.omitted_tasks)} outputs are left out (an "
                "untrained head's output is not a prediction).",
                stacklevel=2,
            )

    def _build_resizes(self, input_size: tuple[int, int]) -> None:
        """Per-image versions of the export's first and last steps."""
        height, width = input_size

        def to_model_input(image):
            return export.to_model_input(image[None], (height, width))[0]

        def to_image_size(density, size):
            return export.to_image_size(density[None], size)[0, ..., 0]

        # As `_forward`: partials, so that each predictor's traces are counted
        # on their own (an ensemble's members would otherwise warn together).
        to_model_input = tf.function(
            functools.partial(to_model_input),
            input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)],
            reduce_retracing=True,
        )
        to_image_size = tf.function(
            functools.partial(to_image_size),
            input_signature=[
                tf.TensorSpec([height, width, 1], tf.float32),
                tf.TensorSpec([2], tf.int32),
            ],
        )
        self._to_model_input = to_model_input
        self._to_image_size = to_image_size

    def _load_saved_model(self, path: str) -> None:
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise ModelLoadError(
                f"{path} is a folder without saved_model.pb: expected a SavedModel "
                "written by aesthal.export_saved_model (or pass a .keras file)"
            )
        try:
            loaded = tf.saved_model.load(path)
            signatures = loaded.signatures
        except Exception as error:  # noqa: BLE001 - any failure is the folder's
            raise ModelLoadError(
                f"{path}: cannot load the SavedModel ({one_line(error)}); it is "
                "truncated, corrupt or not a SavedModel: export it again."
            ) from error
        if "serving_default" not in signatures:
            raise ModelLoadError(f"{path}: the SavedModel has no serving_default")
        self._loaded = loaded  # keeps the variables alive
        self._saved_tasks = export.trained_tasks(
            signatures["serving_default"].structured_outputs
        )
        if (
            export.MODEL_SIZE_SIGNATURE not in signatures
            or export.INPUT_SIZE_SIGNATURE not in signatures
        ):
            serve = signatures["serving_default"]
            self._serve = lambda images: serve(images=images)
            return
        size = signatures[export.INPUT_SIZE_SIGNATURE]()["input_size"].numpy()
        self.input_size = (int(size[0]), int(size[1]))
        forward = signatures[export.MODEL_SIZE_SIGNATURE]
        expected = forward.structured_input_signature[1]["images"].shape
        if tuple(expected[1:3]) != self.input_size:
            raise ModelLoadError(
                f"{path}: {export.MODEL_SIZE_SIGNATURE} takes images of shape "
                f"{expected}, but {export.INPUT_SIZE_SIGNATURE} says "
                f"{self.input_size}"
            )
        self._forward = lambda images: forward(images=images)

    # ---------------------------------------------------------------- batches
    def predict_batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Predicts a batch of same-size images.

        Args:
            images: uint8 `[B, h, w, 3]`.

        Returns:
            `{"saliency": float32 [B, h, w] (each sums to 1),
              "aesthetics": float32 [B, 10], "aesthetics_mean": float32 [B]}`.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"predict_batch expects uint8 [B, h, w, 3]; got {images.dtype} "
                f"{images.shape}"
            )
        if self._serve is not None:
            outputs = self._serve(tf.convert_to_tensor(images))
            result = {}
            if "saliency" in self.tasks:
                result["saliency"] = outputs["saliency"].numpy()[..., 0]
            if "aesthetics" in self.tasks:
                result["aesthetics"] = outputs["aesthetics"].numpy()
                result["aesthetics_mean"] = outputs["aesthetics_mean"].numpy()
            return result
        results = [out for _, out in self.predict_pairs(enumerate(images), len(images))]
        return {key: np.stack([r[key] for r in results]) for key in results[0]}

    def predict(self, image: np.ndarray) -> dict[str, Any]:
        """Predicts one image (uint8/uint16/float 0..255; gray, RGB or RGBA).

        Returns:
            `{"saliency": float32 [h, w], "aesthetics": float32 [10],
              "aesthetics_mean": float32 scalar}`.
        """
        batch = self.predict_batch(as_rgb_uint8(image)[None])
        return {key: value[0] for key, value in batch.items()}

    def predict_many(
        self, images: Iterable[np.ndarray], batch_size: int = 8
    ) -> Iterator[dict[str, Any]]:
        """Predicts a stream of images lazily, in order (see `predict`)."""
        pairs = ((None, image) for image in images)
        for _, outputs in self.predict_pairs(pairs, batch_size):
            yield outputs

    def predict_examples(
        self, examples: Iterable[Any], batch_size: int = 8, limit: int | None = None
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Predicts objects with an `.image` attribute; yields `(example, outputs)`."""
        pairs = ((ex, ex.image) for ex in examples)
        if limit is not None:
            pairs = (pair for _, pair in zip(range(limit), pairs, strict=False))
        yield from self.predict_pairs(pairs, batch_size)

    def predict_pairs(
        self, pairs: Iterable[tuple[Any, np.ndarray]], batch_size: int
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Predicts `(key, image)` pairs lazily; yields `(key, outputs)` in order.

        At most `batch_size` images are held at a time. Images of any sizes
        share a batch, except with an old SavedModel that has only
        `serving_default`: that batches only consecutive images of the same
        size (see the module docstring).

        Raises:
            ValueError: `batch_size < 1`, or an image `as_rgb_uint8` rejects.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self._serve is not None:
            yield from self._saved_model_pairs(pairs, batch_size)
            return
        keys: list[Any] = []
        sizes: list[tuple[int, int]] = []
        inputs: list[tf.Tensor] = []

        def flush() -> Iterator[tuple[Any, dict[str, Any]]]:
            outputs = self._forward(tf.stack(inputs))
            saliency = outputs.get("saliency")
            aesthetics = outputs.get("aesthetics")
            aesthetics = None if aesthetics is None else aesthetics.numpy()
            maps = None if saliency is None else saliency.numpy()
            for i, key in enumerate(keys):
                result = {}
                if saliency is not None and "saliency" in self.tasks:
                    if all(
                        a >= b for a, b in zip(sizes[i], maps.shape[1:3], strict=True)
                    ):
                        result["saliency"] = export.upsample_density(
                            maps[i, ..., 0], sizes[i]
                        )
                    else:
                        result["saliency"] = self._to_image_size(
                            saliency[i], tf.constant(sizes[i], tf.int32)
                        ).numpy()
                if aesthetics is not None and "aesthetics" in self.tasks:
                    result["aesthetics"] = aesthetics[i]
                    result["aesthetics_mean"] = np.float32(aesthetics[i] @ _SCORES)
                yield key, result
            keys.clear()
            sizes.clear()
            inputs.clear()

        for index, (key, image) in enumerate(pairs):
            image = as_rgb_uint8(image, name=_name(key, index))
            keys.append(key)
            sizes.append(image.shape[:2])
            inputs.append(self._to_model_input(image))
            if len(keys) == batch_size:
                yield from flush()
        if keys:
            yield from flush()

    def _saved_model_pairs(self, pairs, batch_size):
        keys: list[Any] = []
        images: list[np.ndarray] = []

        def flush():
            outputs = self.predict_batch(np.stack(images))
            for i, key in enumerate(keys):
                yield key, {name: value[i] for name, value in outputs.items()}
            keys.clear()
            images.clear()

        for index, (key, image) in enumerate(pairs):
            image = as_rgb_uint8(image, name=_name(key, index))
            if images and image.shape != images[0].shape:
                yield from flush()
            keys.append(key)
            images.append(image)
            if len(images) == batch_size:
                yield from flush()
        if images:
            yield from flush()


class Ensemble(Predictor):
    """Averages the densities of several models, of mirror images and of scales.

    The ensemble's saliency map is the mean of its members' densities at the
    image's size (a mixture with equal weights, so it sums to 1), as DeepGaze
    IIE combines its members (Linardos et al. 2021, "DeepGaze IIE: Calibrated
    prediction in and out-of-domain for state-of-the-art saliency modeling",
    ICCV). With `mirror=True` each member also predicts the left-right mirror
    image, whose map is mirrored back and averaged in (test-time
    augmentation; the aesthetics distribution is averaged the same way).

    With `scales` each member also runs at other input sizes: at scale `s` a
    member of input size `(h, w)` runs at `(round(h * s), round(w * s))`, the
    same weights rebuilt at that size (`at_input_size`), and its density,
    resized back to the image's size, is one more component of the mixture:
    multi-scale test-time augmentation, the averaging of predictions over
    rescaled inputs used in semantic segmentation (e.g. Chen et al. 2018,
    "DeepLab", TPAMI: multi-scale inputs at test time) and saliency
    prediction. It suits the fully convolutional readout, whose centre prior
    is a fixed grid resized to the output. On OSIE validation, scales 1, 1.25
    and 1.5 of the three `osie_vgg16_imagenet.flags` seeds with mirror images
    raised NSS by 0.12 over scale 1 alone (docs/experiments.md).

    A typical ensemble is one recipe trained with several seeds:

        ensemble = Ensemble(["runs/s0/saved_model", "runs/s1/saved_model",
                             "runs/s2/saved_model"], mirror=True)
        ensemble.predict(image)["saliency"]   # float32 [h, w], sums to 1

        # The same seeds at 1x, 1.25x and 1.5x their input size: a scale
        # other than 1 needs the .keras file (a SavedModel has one size).
        Ensemble(["runs/s0/model.keras", "runs/s1/model.keras",
                  "runs/s2/model.keras"], mirror=True, scales=(1, 1.25, 1.5))

    `Ensemble` is a `Predictor`: everything that takes one (`aesthal.predict`,
    `aesthal.evaluation.report.evaluate`, `aesthal.evaluation.crop_report.evaluate`)
    takes an ensemble. It costs one forward pass per member, scale and
    mirror.

    Args:
        models: models, `.keras` paths, SavedModel folders or `Predictor`s;
            their input sizes may differ, their trained tasks may not.
        mirror: also average each member's prediction of the mirror image.
        scales: factors of each member's input size to run it at (see
            `parse_scales`); 1 runs the member as it is.

    Raises:
        ValueError: no models, members trained on different tasks, a bad
            scale (see `parse_scales`, or giving a size that
            `aesthal.config.check_input_size` refuses), or a scale other
            than 1 for a SavedModel.
    """

    def __init__(
        self,
        models: Sequence[AesthalModel | str | os.PathLike | Predictor],
        mirror: bool = False,
        scales: Sequence[float] | str = (1.0,),
    ):
        if isinstance(models, str | os.PathLike | AesthalModel | Predictor):
            models = [models]
        models = list(models)
        if not models:
            raise ValueError("Ensemble needs at least one model")
        self.scales = parse_scales(scales)
        self.members = [m if isinstance(m, Predictor) else Predictor(m) for m in models]
        tasks = {member.tasks for member in self.members}
        if len(tasks) > 1:
            listing = "; ".join(
                f"{m.source}: {' and '.join(m.tasks)}" for m in self.members
            )
            raise ValueError(
                f"the ensemble's models were trained on different tasks ({listing}): "
                "ensemble models of the same tasks"
            )
        self.mirror = bool(mirror)
        # What runs: each member at each scale (the member itself at scale 1).
        self.components = [
            _at_scale(member, scale) for member in self.members for scale in self.scales
        ]
        notes = []
        if self.mirror:
            notes.append("with mirror images")
        if self.scales != (1.0,):
            notes.append("scales " + ", ".join(f"{s:g}" for s in self.scales))
        self.source = " + ".join(m.source for m in self.members) + (
            f" ({'; '.join(notes)})" if notes else ""
        )
        self.model = None
        self._serve = None
        sizes = {c.input_size for c in self.components}
        self.input_size = sizes.pop() if len(sizes) == 1 else None
        self.tasks = self.members[0].tasks
        self.omitted_tasks = self.members[0].omitted_tasks

    def predict_pairs(
        self, pairs: Iterable[tuple[Any, np.ndarray]], batch_size: int
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """As `Predictor.predict_pairs`, each output the mean over the
        members, scales and views (the image, and its mirror image)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        chunk: list[tuple[Any, np.ndarray]] = []

        def flush() -> Iterator[tuple[Any, dict[str, Any]]]:
            images = [image for _, image in chunk]
            views = [(images, False)]
            if self.mirror:
                views.append(
                    ([np.ascontiguousarray(im[:, ::-1]) for im in images], True)
                )
            totals: list[dict[str, np.ndarray]] | None = None
            count = 0
            for component in self.components:
                for view, mirrored in views:
                    outs = [
                        o
                        for _, o in component.predict_pairs(enumerate(view), batch_size)
                    ]
                    if mirrored:
                        for out in outs:
                            if "saliency" in out:
                                out["saliency"] = out["saliency"][:, ::-1]
                    if totals is None:
                        totals = [
                            {k: np.asarray(v, np.float64) for k, v in o.items()}
                            for o in outs
                        ]
                    else:
                        for total, out in zip(totals, outs, strict=True):
                            for key in total:
                                total[key] += out[key]
                    count += 1
            for (key, _), total in zip(chunk, totals, strict=True):
                result = {}
                if "saliency" in total:
                    result["saliency"] = (total["saliency"] / count).astype(np.float32)
                if "aesthetics" in total:
                    aesthetics = (total["aesthetics"] / count).astype(np.float32)
                    result["aesthetics"] = aesthetics
                    result["aesthetics_mean"] = np.float32(aesthetics @ _SCORES)
                yield key, result
            chunk.clear()

        for index, (key, image) in enumerate(pairs):
            chunk.append((key, as_rgb_uint8(image, name=_name(key, index))))
            if len(chunk) == batch_size:
                yield from flush()
        if chunk:
            yield from flush()


def make_predictor(
    models: str | os.PathLike | Sequence[str | os.PathLike],
    mirror: bool = False,
    scales: Sequence[float] | str = (1.0,),
) -> Predictor:
    """A `Predictor` for one model, an `Ensemble` for several (or with
    `mirror` or other `scales`).

    Args:
        models: a path, paths, or one string of comma-separated paths (as the
            command lines' `--model=a,b,c` gives it).
        mirror: average in each model's prediction of the mirror image.
        scales: factors of each model's input size to run it at, averaged
            (`Ensemble`): numbers, or a string of comma-separated numbers as
            the command lines' `--scales=1,1.25,1.5` gives it.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: no path, one that is not a model (see `Predictor`), or bad
            `scales` (see `parse_scales`; a scale other than 1 needs `.keras`
            files).
    """
    scales = parse_scales(scales)
    if isinstance(models, str):
        paths = [p.strip() for p in models.split(",") if p.strip()]
    elif isinstance(models, os.PathLike):
        paths = [os.fspath(models)]
    else:
        paths = [os.fspath(p) for p in models]
    if not paths:
        raise ValueError("no model given: pass a .keras file or SavedModel folder")
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"no model file or folder at {path}")
    if len(paths) == 1 and not mirror and scales == (1.0,):
        return Predictor(paths[0])
    return Ensemble(paths, mirror=mirror, scales=scales)


def parse_scales(scales: Sequence[float] | str) -> tuple[float, ...]:
    """Checks test-time scales: `"1,1.25,1.5"` or `(1, 1.25, 1.5)` -> floats.

    The one parser of scales: `python -m aesthal.predict --scales`,
    `experiments/run.py --scales`, `Ensemble(scales=...)`, `make_predictor`
    and the experiment scripts all use it. Each scale must lie in
    `aesthal.config.MIN_SCALE..MAX_SCALE` (0.25..4); the size it gives a
    model is checked by `aesthal.config.check_input_size` when the model is
    known (`Ensemble`).

    Raises:
        ValueError: no scale, one that is not a number, outside 0.25..4, or
            given twice; the message says what to pass instead.
    """
    fix = (
        f"give factors of the model's input size in {MIN_SCALE:g}..{MAX_SCALE:g}, "
        "comma-separated, e.g. 1,1.25,1.5"
    )
    if isinstance(scales, str):
        items = [p.strip() for p in scales.split(",")]
        if items == [""]:
            items = []
        parsed = []
        for item in items:
            try:
                parsed.append(float(item))
            except ValueError:
                raise ValueError(
                    f"scale {item[:40]!r} is not a number: {fix}"
                ) from None
    else:
        if isinstance(scales, int | float | np.number):
            scales = (scales,)
        parsed = []
        for item in scales:
            if isinstance(item, bool) or not isinstance(item, int | float | np.number):
                raise ValueError(f"scale {item!r} is not a number: {fix}")
            parsed.append(float(item))
    if not parsed:
        raise ValueError(f"no scale given: {fix}")
    for scale in parsed:
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale {scale:g} is not a finite number > 0: {fix}")
        if not MIN_SCALE <= scale <= MAX_SCALE:
            raise ValueError(
                f"scale {scale:g} is outside {MIN_SCALE:g}..{MAX_SCALE:g}: {fix}"
            )
    repeated = sorted({f"{s:g}" for s in parsed if parsed.count(s) > 1})
    if repeated:
        raise ValueError(
            f"scale {', '.join(repeated)} is given twice: give each scale once "
            "(a repeated scale would only weigh more)"
        )
    return tuple(parsed)


def _saved_model_size_error(path: str, input_size: tuple[int, int]) -> str:
    return (
        f"{path}: cannot run at {input_size[0]}x{input_size[1]}: a SavedModel runs "
        "at the size it was exported at; pass the run's model.keras to predict "
        "at other sizes"
    )


def at_input_size(model: AesthalModel, input_size: Sequence[int]) -> AesthalModel:
    """The same model rebuilt at another input size, with the same weights.

    Every layer's weights are independent of the input size (the trunks and
    heads are convolutional, the centre prior a fixed grid resized to the
    output), so a model trained at one size runs at another. The trunk's
    weight file is not read again: `set_weights` copies all weights.

    Args:
        model: a built `AesthalModel`; not changed.
        input_size: `(height, width)`, as `aesthal.config.check_input_size`
            allows.

    Returns:
        `model` itself at its own size, else a new `AesthalModel`.

    Raises:
        ValueError: a malformed `input_size`, or weights that do not fit the
            model rebuilt at that size.
    """
    input_size = check_input_size(input_size)
    if input_size == tuple(model.config.input_size):
        return model
    config = dataclasses.replace(model.config, input_size=input_size)
    resized = AesthalModel(config, load_backbone_weights=False, name=model.name)
    resized(np.zeros((1, *input_size, 3), np.float32))
    try:
        resized.set_weights(model.get_weights())
    except ValueError as error:
        raise ValueError(
            f"{model.name}: its weights do not fit the model rebuilt at "
            f"{input_size[0]}x{input_size[1]} ({error}); predict at its own size "
            f"{model.config.input_size}"
        ) from error
    return resized


def _at_scale(member: Predictor, scale: float) -> Predictor:
    """`member` run at `scale` times its input size (itself at scale 1)."""
    if scale == 1.0:
        return member
    if member.model is None or member.input_size is None:
        height, width = member.input_size or (0, 0)
        size = (round(height * scale), round(width * scale))
        if isinstance(member, Ensemble):
            raise ValueError(
                f"{member.source}: an Ensemble cannot be a member of a multi-scale "
                "ensemble; pass its models instead"
            )
        raise ValueError(
            f"scale {scale:g}: " + _saved_model_size_error(member.source, size)
        )
    height, width = member.input_size
    size = (round(height * scale), round(width * scale))
    problem = input_size_problem(size)
    if problem is not None:
        raise ValueError(
            f"scale {scale:g}: {member.source} would run at {size[0]}x{size[1]}, "
            f"but {problem}; use another scale"
        )
    with warnings.catch_warnings():
        # The member has warned about its untrained outputs already.
        warnings.filterwarnings("ignore", message=".*outputs are left out")
        return Predictor(member.model, input_size=size)


def _name(key: Any, index: int) -> str:
    """How error messages name an image: its path, or its position."""
    if isinstance(key, str | os.PathLike):
        return os.fspath(key)
    if isinstance(key, tuple) and key and isinstance(key[0], str | os.PathLike):
        return os.fspath(key[0])
    return f"image #{index}"


def predict_images(
    model: AesthalModel | str | os.PathLike | Predictor,
    images: Sequence[np.ndarray],
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Predicts a list of arrays of any sizes; see `Predictor.predict`.

    Args:
        model: a model, a `.keras` path, a SavedModel folder or a `Predictor`.
        images: arrays `[h, w]`, `[h, w, 1|3|4]` (uint8, uint16 or 0..255).
        batch_size: images per model call.

    Returns:
        One dict per image, in order: `{"saliency": float32 [h, w] summing to
        1, "aesthetics": float32 [10], "aesthetics_mean": float32}`.
    """
    predictor = model if isinstance(model, Predictor) else Predictor(model)
    return list(predictor.predict_many(images, batch_size=batch_size))
