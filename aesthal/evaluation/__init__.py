"""Evaluation: a model's predictions scored against a data set, with baselines.

- `tables`: every metric per image, the mean and 95% CI, baselines side by
  side, the Markdown tables (numpy only: any maps, any examples).
- `report`: a model on a data set's split: `metrics.json`, `metrics.md`.
- `crop_report`: saliency-aware crops on a split: `crops.json`, `crops.md`.

The drivers sit above everything they drive (data, inference, crops); the
metrics themselves are `aesthal.metrics`, the intervals `aesthal.stats`.
"""

from aesthal.evaluation.tables import (
    evaluate_aesthetics,
    evaluate_saliency_maps,
    format_markdown_table,
    standard_baselines,
)

__all__ = [
    "evaluate_aesthetics",
    "evaluate_saliency_maps",
    "format_markdown_table",
    "standard_baselines",
]
