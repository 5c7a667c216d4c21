r"""Renders a grid image | ground truth | prediction | overlay for a data set split.

    python experiments/figures.py --model=runs/quickstart/model.keras \
        --dataset=synthetic_scenes --split=test --num_examples=6 \
        --output=docs/figures/quickstart_test.png

One row per example (the split's first `--num_examples`, in order), each cell
scaled to `--cell_height` pixels high (aspect ratio kept):

    image         the RGB image at its stored resolution
    ground truth  the true fixation density (generated data) or the stored
                  fixation map, as a JET heat map scaled to its maximum
    prediction    the predicted density at the image's size, the same way
    overlay       the prediction blended on the image (as `aesthal.predict`)

The aesthetics mean score (predicted, and true when the example has votes)
is written under each image. The figure is drawn with matplotlib (restyle it
in `render_grid`).
"""

from __future__ import annotations

import os
import pathlib

from absl import app, flags

_MODEL = flags.DEFINE_string("model", None, ".keras file or SavedModel folder.")
_DATASET = flags.DEFINE_string(
    "dataset", "synthetic_scenes", "TFDS name (with config), e.g. osie."
)
_SPLIT = flags.DEFINE_string("split", "test", "TFDS split.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 6, "Rows of the grid.")
_CELL_HEIGHT = flags.DEFINE_integer("cell_height", 128, "Height of each cell, px.")
_OUTPUT = flags.DEFINE_string("output", None, "PNG file to write.")

COLUMNS = ("image", "ground truth", "prediction", "overlay")


def render_grid(rows, cell_height: int, path: pathlib.Path) -> tuple[int, int]:
    """Draws the figure with matplotlib and writes it to `path` (PNG).

    Args:
        rows: a list of `(image uint8 [h, w, 3], truth [h, w] or None,
            prediction [h, w], caption str)`.
        cell_height: height of each cell in pixels (at 100 dpi).
        path: the PNG to write.

    Returns:
        The figure's `(width, height)` in pixels.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import numpy as np
    from matplotlib import pyplot as plt

    from aesthal.predict import heat_map, overlay

    dpi = 100
    aspect = max(image.shape[1] / image.shape[0] for image, _, _, _ in rows)
    cell_w, cell_h = cell_height * aspect / dpi, cell_height / dpi
    figure, axes = plt.subplots(
        len(rows),
        len(COLUMNS),
        figsize=(cell_w * len(COLUMNS), (cell_h + 0.3) * len(rows) + 0.3),
        squeeze=False,
        dpi=dpi,
    )
    for r, (image, truth, prediction, caption) in enumerate(rows):
        cells = [
            image,
            None if truth is None else heat_map(truth[None, ..., None])[0],
            heat_map(prediction[None, ..., None])[0],
            overlay(image, prediction)[..., ::-1],
        ]
        for c, cell in enumerate(cells):
            axis = axes[r, c]
            axis.set_axis_off()
            if r == 0:
                axis.set_title(COLUMNS[c], fontsize="small")
            if cell is not None:
                axis.imshow(np.asarray(cell))
        axes[r, 0].text(
            0.0,
            -0.06,
            caption,
            transform=axes[r, 0].transAxes,
            fontsize="x-small",
            va="top",
        )
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    size = tuple(round(v) for v in figure.get_size_inches() * dpi)
    plt.close(figure)
    return size


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _MODEL.value or not _OUTPUT.value:
        raise app.UsageError("--model and --output are required.")
    if _NUM_EXAMPLES.value < 1 or _CELL_HEIGHT.value < 16:
        raise app.UsageError("--num_examples must be >= 1 and --cell_height >= 16.")
    if not os.path.exists(_MODEL.value):
        raise app.UsageError(f"--model={_MODEL.value}: no such file or folder.")
    import numpy as np

    import aesthal.datasets  # noqa: F401  (registers the builders)
    from aesthal import data as data_lib
    from aesthal.config import SCORES, DataConfig
    from aesthal.data.prepare import prepare_data
    from aesthal.inference import Predictor

    prepare_data(DataConfig(dataset=_DATASET.value, data_dir=_DATA_DIR.value))
    examples = data_lib.iterate_eval_examples(
        _DATASET.value, split=_SPLIT.value, data_dir=_DATA_DIR.value
    )
    predictor = Predictor(_MODEL.value)
    scores = np.asarray(SCORES)
    rows = []
    for example, outputs in predictor.predict_examples(
        examples, limit=_NUM_EXAMPLES.value
    ):
        truth = example.true_density
        if truth is None and example.has_saliency:
            truth = example.fixation_map
        caption = f"{example.filename}  score {float(outputs['aesthetics_mean']):.2f}"
        if example.has_aesthetics and example.aesthetics_votes is not None:
            votes = example.aesthetics_votes
            caption += f" (true {float(votes @ scores / votes.sum()):.2f})"
        rows.append((example.image, truth, outputs["saliency"], caption))
    if not rows:
        raise app.UsageError(f"{_DATASET.value}[{_SPLIT.value}] has no examples.")
    output = pathlib.Path(_OUTPUT.value)
    output.parent.mkdir(parents=True, exist_ok=True)
    width, height = render_grid(rows, _CELL_HEIGHT.value, output)
    print(f"{output}: {len(rows)} examples, {width}x{height} px")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
