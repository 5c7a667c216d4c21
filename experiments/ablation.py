r"""An ablation table from evaluated runs: each row against the row before it.

Reads the `metrics.json` that `experiments/run.py` writes (train mode, or
`--mode=evaluate`) for each row, all evaluated on the same split, and writes a
markdown table: every row's metric means, then the paired difference of each
row minus the previous one with its 95 % t-interval over the *same images*
(`aesthal.stats.confidence_interval` of the per-image differences). Images
a run skipped (no fixations, an all-zero map) are left out of the pairs that
involve them; each Δ row prints the smallest pair count over its metrics.

Usage (the issue-11 ladder on OSIE validation):

    python experiments/ablation.py \
        --row="decoder (stage4+5)=runs/abl_decoder" \
        --row="multi-depth readout=runs/abl_readout" \
        --row="+ centre prior=runs/osie_vgg16_imagenet" \
        --row="+ learned blur=runs/abl_blur" \
        --maps=metric_specific --output=runs/ablation.md

`--maps=one_map` uses the single map for every metric instead of the
metric-specific maps (Kümmerer, Wallis, Bethge 2018; docs/metrics.md).
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Sequence

from absl import app, flags

_ROWS = flags.DEFINE_multi_string(
    "row", [], "'label=run folder' (its metrics.json), in ladder order."
)
_MAPS = flags.DEFINE_enum(
    "maps", "metric_specific", ["metric_specific", "one_map"], "Which maps."
)
_METRICS = flags.DEFINE_list(
    "metrics", ["auc_judd", "nss", "cc", "kld", "sim", "ig"], "Metrics shown."
)
_OUTPUT = flags.DEFINE_string("output", None, "Markdown file (default: stdout).")

LOWER_IS_BETTER = {"kld"}


def load_per_image(run: str | pathlib.Path, maps: str) -> tuple[str, dict]:
    """`(split, {metric: [per-image value or None]})` of a run's model."""
    path = pathlib.Path(run) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no metrics.json; evaluate the run first "
            "(python experiments/run.py --mode=evaluate --model=... "
            "--output_dir=...)."
        )
    results = json.loads(path.read_text())
    saliency = results.get("saliency")
    if saliency is None:
        raise ValueError(f"{path}: no saliency results in it.")
    source = saliency["metric_specific"] if maps == "metric_specific" else saliency
    return results.get("split", "?"), source["per_image"]["model"]


def paired(a: Sequence[float | None], b: Sequence[float | None]) -> dict:
    """Mean and 95 % t-interval of `b - a` over the images both scored."""
    from aesthal.stats import confidence_interval

    if len(a) != len(b):
        raise ValueError(
            f"the runs scored different image lists ({len(a)} vs {len(b)}); "
            "evaluate them on the same split."
        )
    diffs = [
        y - x
        for x, y in zip(a, b, strict=True)
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
    ]
    return confidence_interval(diffs, level=0.95)


def table(rows: Sequence[tuple[str, str]], maps: str, metrics: Sequence[str]) -> str:
    """The markdown ablation table of `rows` = `[(label, run folder)]`."""
    loaded = []
    splits = set()
    for label, run in rows:
        split, values = load_per_image(run, maps)
        missing = [m for m in metrics if m not in values]
        if missing:
            raise ValueError(f"{run}: metrics {missing} were not evaluated.")
        splits.add(split)
        loaded.append((label, values))
    if len(splits) > 1:
        raise ValueError(f"rows were evaluated on different splits: {sorted(splits)}")
    arrows = {m: "↓" if m in LOWER_IS_BETTER else "↑" for m in metrics}
    head = "| row | " + " | ".join(f"{m} {arrows[m]}" for m in metrics) + " |"
    lines = [
        f"Split `{splits.pop()}`, {maps.replace('_', '-')} maps; "
        "Δ = this row − the row above, mean [95 % t-interval] over images.",
        "",
        head,
        "|" + " --- |" * (len(metrics) + 1),
    ]
    for i, (label, values) in enumerate(loaded):
        cells = []
        for m in metrics:
            scored = [v for v in values[m] if v is not None]
            cells.append(f"{sum(scored) / len(scored):.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if i:
            cells, pairs = [], []
            for m in metrics:
                d = paired(loaded[i - 1][1][m], values[m])
                pairs.append(d["n"])
                low, high = d["ci_low"], d["ci_high"]
                interval = "" if low is None else f" [{low:+.3f}, {high:+.3f}]"
                cells.append(f"{d['mean']:+.3f}{interval}")
            lines.append(f"| Δ (n={min(pairs)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _parse_rows(specs: Sequence[str]) -> list[tuple[str, str]]:
    rows = []
    for spec in specs:
        label, sep, run = spec.rpartition("=")
        if not sep or not label or not run:
            raise app.UsageError(f"--row={spec!r}: expected 'label=run folder'.")
        rows.append((label, run))
    if len(rows) < 2:
        raise app.UsageError("give at least two --row flags.")
    return rows


def main(argv: list[str]) -> None:
    del argv
    text = table(_parse_rows(_ROWS.value), _MAPS.value, _METRICS.value)
    if _OUTPUT.value:
        pathlib.Path(_OUTPUT.value).write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    app.run(main)
