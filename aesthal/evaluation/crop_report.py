"""Saliency-aware crops of a model on a data set's split: `crops.json`, `crops.md`.

`evaluate` predicts each image's map at the image's size, takes the best
window of each aspect ratio on it (`aesthal.crop.best_crops`) and scores the
share of all observers' fixations inside it (`aesthal.crop.fixation_share`);
the same for the centre crop, and, where the data set records which observer
made each fixation (TFDS feature `fixations/observer`, e.g. `osie` >= 1.1.0),
the leave-one-observer-out human ceiling (`aesthal.crop.evaluate_human_ceiling`).
Each row is a mean over images with a 95% t-interval; the paired differences
(model - centre crop, human ceiling - model) get their own t-intervals over
the per-image differences.

    from aesthal.config import DataConfig
    from aesthal.evaluation import crop_report

    crop_report.evaluate(
        "runs/osie_vgg16_hed/model.keras",
        DataConfig(dataset="osie", manual_dir="../shared/data/osie"),
        "runs/osie_vgg16_hed",
        ratios=["1:1", "16:9", "9:16", "4:5"],
    )

or `python experiments/run.py --mode=evaluate --crops=1:1,16:9,9:16,4:5 ...`,
which scores the crops in `report.evaluate`'s prediction pass (`CropScorer`):
each image is predicted once for both.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import tensorflow_datasets as tfds

from aesthal import crop
from aesthal.config import DataConfig
from aesthal.data import prepare
from aesthal.evaluation import report
from aesthal.inference import Predictor
from aesthal.models import AesthalModel
from aesthal.stats import confidence_interval

OBSERVER_FEATURE: Final[str] = "fixations/observer"
MODEL_ROW: Final[str] = "model"
CENTRE_ROW: Final[str] = "centre crop"
CEILING_ROW: Final[str] = "human ceiling"


def observer_fixations(
    builder: tfds.core.DatasetBuilder, split: str
) -> dict[str, list[np.ndarray]] | None:
    """Each image's fixations per observer, from the `fixations/observer` feature.

    Args:
        builder: a prepared TFDS builder.
        split: a TFDS split expression, e.g. `"test"` or `"train[540:]"`.

    Returns:
        `{image/filename: [float32 [N_k, 2] (row, column) per observer k]}`,
        observers `0 .. max id` (an observer without fixations on an image
        gets `[0, 2]`), or None when the builder has no such feature.
    """
    features = builder.info.features
    if OBSERVER_FEATURE not in features.keys():
        return None
    skip = {
        name: tfds.decode.SkipDecoding()
        for name in ("image", "fixation_map")
        if name in features.keys()
    }
    dataset = builder.as_dataset(split=split, shuffle_files=False, decoders=skip)
    result: dict[str, list[np.ndarray]] = {}
    for example in dataset.as_numpy_iterator():
        points = np.asarray(example["fixations"], np.float32).reshape(-1, 2)
        ids = np.asarray(example[OBSERVER_FEATURE]).reshape(-1)
        count = int(ids.max()) + 1 if ids.size else 0
        result[example["image/filename"].decode()] = [
            points[ids == k] for k in range(count)
        ]
    return result


class CropScorer:
    """Scores crops one `(example, prediction)` pair at a time; `finish` reports.

    The accumulator behind `evaluate`, so that one prediction pass can feed
    both `aesthal.evaluation.report.evaluate` and the crops (pass `add` as its
    `on_prediction`). Per image it keeps only the model's crop scores, the
    file, the shape and the fixations, not the map. The scoring is
    `aesthal.crop.evaluate_crops` (best window on the map, share of the
    pooled fixations inside it), image by image.

        scorer = crop_report.CropScorer(["1:1", "16:9"])  # checks the ratios
        report.evaluate(predictor, data, out, on_prediction=scorer.add)
        results = scorer.finish(None, data, results["split"], out)

    Args:
        ratios: e.g. `["1:1", "16:9", "9:16", "4:5"]`, each width:height
            (repeats are dropped).
        scale: window scale in (0, 1].

    Raises:
        ValueError: a bad ratio or scale (the message names which).
    """

    def __init__(self, ratios: Sequence[str], scale: float = 1.0):
        if isinstance(ratios, str):
            raise ValueError(
                f"ratios {ratios!r}: expected a list of ratios, such as [{ratios!r}]"
            )
        self.ratios = list(dict.fromkeys(ratios))
        self.scale = scale
        for ratio in self.ratios:
            crop.window_size((1000, 1000), ratio, scale)  # checks ratio and scale
        self.files: list[str] = []
        self.points: list[np.ndarray] = []
        self.shapes: list[tuple[int, int]] = []
        self.scores: dict[str, list[float]] = {ratio: [] for ratio in self.ratios}
        self.skipped = 0
        # The first image predicted without a saliency map (an aesthetics-only
        # model); reported by `finish`, so a shared pass still ends its own work.
        self.without_saliency: str | None = None

    def add(self, example: Any, prediction: Mapping[str, Any]) -> None:
        """Scores one image's best crops; an image without fixations is counted.

        Args:
            example: a `pipeline.EvalExample` (`.filename`, `.image`,
                `.fixations` float `[N, 2]` (row, column), `.has_saliency`).
            prediction: the `Predictor`'s outputs for it, with `"saliency"`
                float `[H, W]` at the image's size.

        Raises:
            ValueError: a bad map (the message names the image's index among
                those scored). A prediction without a saliency map is kept
                for `finish` to report.
        """
        if not (example.has_saliency and len(example.fixations)):
            self.skipped += 1
            return
        if "saliency" not in prediction:
            self.without_saliency = self.without_saliency or example.filename
            return
        shares = crop.best_crop_shares(
            np.asarray(prediction["saliency"], np.float64),
            example.fixations,
            self.ratios,
            self.scale,
            index=len(self.files),
        )
        for ratio in self.ratios:
            self.scores[ratio].append(shares[ratio])
        self.files.append(example.filename)
        self.points.append(example.fixations)
        self.shapes.append(example.image.shape[:2])

    def finish(
        self,
        builder: tfds.core.DatasetBuilder | None,
        data: DataConfig,
        split: str,
        output_dir: str | os.PathLike,
        with_ceiling: bool = True,
    ) -> dict[str, Any]:
        """The centre-crop and human-ceiling rows, the differences; writes the files.

        Args:
            builder: the prepared TFDS builder of `data` (for the observer
                ids), or None to get it with `prepare.prepare_data(data)`.
            data: the data set the pairs came from.
            split: the TFDS split they came from.
            output_dir: where `crops.json` and `crops.md` go (created).
            with_ceiling: add the human-ceiling row where observer ids exist.

        Returns:
            As `evaluate`.

        Raises:
            ValueError: the model predicted no saliency map, or no image with
                fixations was added.
        """
        if self.without_saliency is not None:
            raise ValueError(
                f"{data.dataset} [{split}] {self.without_saliency}: the model "
                "predicts no saliency map, and crops are chosen on it (use a "
                "model trained with the saliency task, or leave out --crops)"
            )
        if not self.files:
            raise ValueError(
                f"{data.dataset} [{split}]: no image with fixation points; crops are "
                "scored by fixations (use a data set with fixations, e.g. osie)"
            )
        ratios, scale = self.ratios, self.scale
        rows = {
            MODEL_ROW: crop.summarise_scores(self.scores),
            CENTRE_ROW: crop.evaluate_centre_crops(
                self.shapes, self.points, ratios, scale
            ),
        }
        observers = None
        if with_ceiling:
            if builder is None:
                builder = prepare.prepare_data(data)
            observers = observer_fixations(builder, split)
        if observers is not None:
            rows[CEILING_ROW] = crop.evaluate_human_ceiling(
                [observers[name] for name in self.files], self.shapes, ratios, scale
            )
        differences = {
            f"{MODEL_ROW} - {CENTRE_ROW}": _paired(rows[MODEL_ROW], rows[CENTRE_ROW]),
        }
        if CEILING_ROW in rows:
            differences[f"{CEILING_ROW} - {MODEL_ROW}"] = _paired(
                rows[CEILING_ROW], rows[MODEL_ROW]
            )
        results = {
            "dataset": data.dataset,
            "split": split,
            "ratios": ratios,
            "scale": scale,
            "num_images": len(self.files),
            "skipped": self.skipped,
            "files": list(self.files),
            "rows": rows,
            "differences": differences,
        }
        out = pathlib.Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "crops.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / "crops.md").write_text(format_results(results))
        return results


def evaluate(
    model: AesthalModel | Predictor | str | os.PathLike,
    data: DataConfig,
    output_dir: str | os.PathLike,
    ratios: Sequence[str],
    split: str | None = None,
    scale: float = 1.0,
    max_images: int | None = None,
    batch_size: int = 8,
    with_ceiling: bool = True,
) -> dict[str, Any]:
    """Scores a model's best crops on a split against the centre crop and people.

    Writes `crops.json` (every row's mean, interval and per-image scores, the
    files in order) and `crops.md` (the table) to `output_dir`. Images without
    fixations are left out (and counted). To score crops in the same
    prediction pass as `report.evaluate`, use `CropScorer` (as
    `experiments/run.py --crops` does).

    Args:
        model: a model, a `Predictor`, or a `.keras` file / SavedModel folder.
        data: the data set (its `test_split` unless `split` is given); it must
            have fixation points.
        output_dir: where the results go (created).
        ratios: e.g. `["1:1", "16:9", "9:16", "4:5"]`, each width:height.
        split: TFDS split expression.
        scale: window scale in (0, 1] (1 = the largest window of each ratio).
        max_images: evaluate only the first N images.
        batch_size: images per prediction batch.
        with_ceiling: add the human-ceiling row where observer ids exist
            (about 15x the work of the other rows on OSIE).

    Returns:
        `{"dataset", "split", "ratios", "scale", "num_images", "skipped",
        "files", "rows": {row name: {ratio: {"mean", "ci_low", "ci_high", "n",
        "scores"}}}, "differences": {"model - centre crop", "human ceiling -
        model": {ratio: {"mean", "ci_low", "ci_high", "n"}}}}`, rows `model`,
        `centre crop` and, where observer ids exist, `human ceiling`.

    Raises:
        ValueError: a bad ratio or scale (before any prediction), or a split
            without a single image with fixations.
    """
    scorer = CropScorer(ratios, scale)  # checks ratios and scale first
    split = split or data.test_split
    builder, pairs = report.predict_split(model, data, split, batch_size, max_images)
    for example, prediction in pairs:
        scorer.add(example, prediction)
    return scorer.finish(builder, data, split, output_dir, with_ceiling)


def _paired(
    a: Mapping[str, Mapping[str, Any]], b: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per ratio, the t-interval of the per-image differences `a - b`."""
    return {
        ratio: confidence_interval(
            [x - y for x, y in zip(a[ratio]["scores"], b[ratio]["scores"], strict=True)]
        )
        for ratio in a
    }


def format_results(results: Mapping[str, Any]) -> str:
    """The Markdown of `evaluate`'s result: a heading, the table, the definitions."""
    scale = results["scale"]
    window = (
        "the largest window of each ratio"
        if scale == 1.0
        else f"windows at {scale} x the largest of each ratio"
    )
    lines = [
        f"# {results['dataset']} [{results['split']}]: saliency-aware crops\n",
        f"Share of all observers' fixations inside the crop ({window}), mean over "
        f"{results['num_images']} images [95% t-interval]"
        + (
            f"; {results['skipped']} image(s) without fixations left out"
            if results["skipped"]
            else ""
        )
        + ". model: the best window on the predicted map; centre crop: the "
        "window at the centre"
        + (
            "; human ceiling: the best window on the blurred fixations of all "
            "observers but one, scored on the one left out."
            if CEILING_ROW in results["rows"]
            else "."
        )
        + "\n",
        crop.format_markdown_table(results["rows"]),
    ]
    if results.get("differences"):
        lines += [
            "\nPaired differences over the same images [95% t-interval]:\n",
            crop.format_markdown_table(results["differences"]),
        ]
    return "\n".join(lines) + "\n"
