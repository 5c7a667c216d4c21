"""Evaluation of a model on a data set's split, and its Markdown report.

`evaluate` runs every metric at the original image resolution, with the
standard baselines, and writes `metrics.json` and `metrics.md`;
`format_results` is the Markdown of its result. The saliency section has two
labelled tables: one map for every metric, and the metric-specific maps of
`tables.METRIC_MAP_RULES`, blurred with the data set's own ground-truth
sigma (`ground_truth_sigma`).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from aesthal.config import DataConfig
from aesthal.data import pipeline, prepare
from aesthal.evaluation import tables
from aesthal.inference import Predictor
from aesthal.metrics import baselines as baseline_maps
from aesthal.models import AesthalModel

# Information gain compares densities (Kummerer et al. 2015): maps are divided
# by their sum, not min-max scaled as MIT's InfoGain.m does (which gives each
# map's lowest pixel probability 0, i.e. about -50 bits for a fixation there).
IG_NORMALIZATION = "sum"
# The centre-bias baseline mixes in 1% of the uniform density, so no pixel has
# probability 0 (pysaliency's centre-bias models do the same).
CENTRE_BIAS_UNIFORM_WEIGHT = 0.01


def _centre_bias(data: DataConfig) -> np.ndarray:
    """Centre bias fitted to the training split's fixations."""
    examples = pipeline.iterate_eval_examples(
        data.dataset, split=data.train_split, data_dir=data.data_dir
    )
    return baseline_maps.fit_centre_bias(
        ((ex.fixations, ex.image.shape[:2]) for ex in examples if len(ex.fixations)),
        uniform_weight=CENTRE_BIAS_UNIFORM_WEIGHT,
    )


def ground_truth_sigma(builder: Any) -> Callable[[tuple[int, int]], float] | None:
    """The builder's rule for the sigma (px) that blurred its `fixation_map`.

    Each builder states it as `fixation_map_sigma(image_shape)` (OSIE: 24 px
    at 800x600; synthetic_scenes: 3% of the width), or sets it to None where
    the published maps' blur is unknown (MIT1003, CAT2000, SALICON): the
    metric-specific maps of CC/KLD/SIM are then the density itself.
    """
    return getattr(builder, "fixation_map_sigma", None)


def predict_split(
    model: AesthalModel | Predictor | str | os.PathLike,
    data: DataConfig,
    split: str,
    batch_size: int = 8,
    max_images: int | None = None,
):
    """A model's predictions on every image of a split, at original resolution.

    Args:
        model: a model, a `Predictor`, or a path to a `.keras` file or a
            SavedModel folder.
        data: the data set (prepared here if it is not yet).
        split: the TFDS split.
        batch_size: images per prediction batch.
        max_images: only the first N images.

    Returns:
        `(builder, pairs)`: the prepared TFDS builder, and an iterator of
        `(example, prediction)` as `Predictor.predict_examples` yields them.

    Raises:
        ValueError: the data set has no such split.
    """
    predictor = model if isinstance(model, Predictor) else Predictor(model)
    builder = prepare.prepare_data(data)
    prepare.check_split(builder, split)
    examples = pipeline.iterate_eval_examples(
        data.dataset, split=split, data_dir=data.data_dir
    )
    pairs = predictor.predict_examples(
        examples, batch_size=batch_size, limit=max_images
    )
    return builder, pairs


def evaluate(
    model: AesthalModel | Predictor | str | os.PathLike,
    data: DataConfig,
    output_dir: str | os.PathLike,
    split: str | None = None,
    max_images: int | None = None,
    batch_size: int = 8,
    on_prediction: Callable[[Any, Mapping[str, Any]], None] | None = None,
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
        on_prediction: called with every `(example, prediction)` pair as it is
            predicted, so that other evaluations share this one prediction
            pass (e.g. `crop_report.CropScorer.add`); an error it raises ends
            the evaluation.

    Returns:
        `{"dataset", "split", "model": the model's path(s) (`Predictor.source`),
          "saliency": evaluate_saliency_maps(...), "aesthetics": ...}`.
    """
    split = split or data.test_split
    predictor = model if isinstance(model, Predictor) else Predictor(model)
    builder, pairs = predict_split(predictor, data, split, batch_size, max_images)
    records, maps, votes_true, votes_pred = [], [], [], []
    for example, prediction in pairs:
        if on_prediction is not None:
            on_prediction(example, prediction)
        # An untrained task has no prediction (Predictor leaves it out).
        if example.has_saliency and "saliency" in prediction:
            records.append(
                {
                    "fixations": example.fixations,
                    "fixation_map": example.fixation_map,
                    "true_density": example.true_density,
                }
            )
            maps.append(prediction["saliency"])
        if example.has_aesthetics and "aesthetics" in prediction:
            votes_true.append(example.aesthetics_votes)
            votes_pred.append(prediction["aesthetics"])
    results: dict[str, Any] = {
        "dataset": data.dataset,
        "split": split,
        "model": predictor.source,
    }
    if records:
        has_truth = all(r["true_density"] is not None for r in records)
        baselines = tables.standard_baselines(
            centre_bias=_centre_bias(data), with_true_density=has_truth
        )
        results["saliency"] = tables.evaluate_saliency_maps(
            maps,
            records,
            baselines=baselines,
            ig_normalization=IG_NORMALIZATION,
            ground_truth_sigma=ground_truth_sigma(builder),
        )
    if votes_true:
        results["aesthetics"] = tables.evaluate_aesthetics(
            np.stack(votes_true), np.stack(votes_pred)
        )
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(
        json.dumps(results, indent=2, sort_keys=True) + "\n"
    )
    (out / "metrics.md").write_text(format_results(results))
    return results


def format_results(results: Mapping[str, Any]) -> str:
    """The Markdown tables of `evaluate`'s result."""
    parts = [f"# {results['dataset']} [{results['split']}]\n"]
    if results.get("model"):
        parts.append(f"\nModel: `{results['model']}`\n")
    if "saliency" in results:
        sal = results["saliency"]
        parts.append(
            f"\n## Saliency ({sal['num_evaluated']} images; IG against "
            f"{sal['ig_baseline']})\n\n"
        )
        parts.append(
            "### One map for every metric\n\n"
            "Each row's map, as predicted, for every metric.\n\n"
        )
        parts.append(tables.format_markdown_table(sal))
        if "metric_specific" in sal:
            parts.append(_format_metric_specific(sal["metric_specific"]))
    if "aesthetics" in results:
        parts.append(
            f"\n## Aesthetics ({results['aesthetics']['num_images']} images)\n\n"
        )
        parts.append(tables.format_markdown_table(results["aesthetics"]))
    return "".join(parts)


def _format_metric_specific(specific: Mapping[str, Any]) -> str:
    """The metric-specific table, headed by the map each metric was given."""
    sigmas = specific.get("ground_truth_sigma_px")
    blur = (
        "sigma " + ", ".join(f"{s:g}" for s in sigmas) + " px"
        if sigmas
        else "unknown for this data set"
    )
    lines = [
        "\n### Metric-specific maps (Kümmerer, Wallis, Bethge 2018)\n\n",
        "Each row's map read as a density; each metric is given the map derived "
        f"from it that the metric rewards (ground-truth blur: {blur}):\n\n",
    ]
    lines += [f"- {metric}: {rule}\n" for metric, rule in specific["rules"].items()]
    lines.append("\n")
    lines.append(tables.format_markdown_table(specific))
    return "".join(lines)
