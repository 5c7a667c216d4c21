"""Evaluation on a split, its tables printed: shared by `aesthal train` and
`aesthal evaluate` (no flags here)."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from aesthal.config import DataConfig


def print_results(results, output_dir) -> None:
    """The metrics table, and where its JSON is."""
    from aesthal.evaluation import report

    print(report.format_results(results))
    print(f"Results: {pathlib.Path(output_dir) / 'metrics.json'}")


def evaluate(
    model,
    data: DataConfig,
    output_dir,
    crops: Sequence[str] = (),
    max_images: int | None = None,
    crop_ceiling: bool = True,
) -> None:
    """`aesthal.evaluation.report.evaluate`, its table printed; with `crops`,
    the crops (`aesthal.evaluation.crop_report.CropScorer`) scored in the same
    prediction pass (`crops.md`, `crops.json`).

    Args:
        model: an `AesthalModel` or an `aesthal.inference.Predictor`.
        data: the data set and its test split.
        output_dir: where `metrics.md` / `metrics.json` go.
        crops: aspect ratios `"w:h"`.
        max_images: evaluate only the first N test images.
        crop_ceiling: with `crops`, add the human ceiling where the data set
            has observer ids.
    """
    from aesthal.evaluation import crop_report, report

    # Before any prediction: the scorer checks the ratios.
    scorer = crop_report.CropScorer(list(crops)) if crops else None
    results = report.evaluate(
        model,
        data,
        output_dir,
        max_images=max_images,
        on_prediction=scorer.add if scorer is not None else None,
    )
    print_results(results, output_dir)
    if scorer is None:
        return
    scored = scorer.finish(
        None, data, results["split"], output_dir, with_ceiling=crop_ceiling
    )
    print(crop_report.format_results(scored))
    print(f"Crops: {pathlib.Path(output_dir) / 'crops.json'}")
