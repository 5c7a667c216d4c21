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
is written under each image. The PNG is composed with OpenCV (no matplotlib).
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
_HEADER = 24
_CAPTION = 18
_GAP = 4
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def _heat(density, np, cv2):
    """`[h, w]` non-negative map -> RGB uint8 JET, scaled to its maximum."""
    peak = float(density.max()) if density.size else 0.0
    grey = density / peak if peak > 0 else np.zeros_like(density)
    grey = np.round(np.clip(grey, 0, 1) * 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_JET)[..., ::-1]


def _cell(image, height, cv2):
    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def render_grid(rows, cell_height: int):
    """Composes the figure.

    Args:
        rows: a list of `(image uint8 [h, w, 3], truth [h, w] or None,
            prediction [h, w], caption str)`.
        cell_height: height of each cell in pixels.

    Returns:
        RGB uint8 `[H, W, 3]`.
    """
    import cv2
    import numpy as np

    from aesthal.predict import overlay

    rendered = []
    for image, truth, prediction, caption in rows:
        truth_cell = (
            _heat(truth, np, cv2)
            if truth is not None
            else np.full(image.shape, 64, np.uint8)
        )
        cells = [
            image,
            truth_cell,
            _heat(prediction, np, cv2),
            overlay(image, prediction)[..., ::-1],
        ]
        rendered.append(([_cell(c, cell_height, cv2) for c in cells], caption))
    widths = [max(cells[i].shape[1] for cells, _ in rendered) for i in range(4)]
    total_w = sum(widths) + _GAP * 5
    row_h = cell_height + _CAPTION + _GAP
    canvas = np.full(
        (_HEADER + row_h * len(rendered) + _GAP, total_w, 3), 255, np.uint8
    )
    x = _GAP
    for name, width in zip(COLUMNS, widths, strict=True):
        cv2.putText(canvas, name, (x, 17), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        x += width + _GAP
    for r, (cells, caption) in enumerate(rendered):
        y = _HEADER + r * row_h
        x = _GAP
        for cell, width in zip(cells, widths, strict=True):
            canvas[y : y + cell.shape[0], x : x + cell.shape[1]] = cell
            x += width + _GAP
        cv2.putText(
            canvas,
            caption,
            (_GAP, y + cell_height + 13),
            _FONT,
            0.4,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return canvas


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _MODEL.value or not _OUTPUT.value:
        raise app.UsageError("--model and --output are required.")
    if _NUM_EXAMPLES.value < 1 or _CELL_HEIGHT.value < 16:
        raise app.UsageError("--num_examples must be >= 1 and --cell_height >= 16.")
    if not os.path.exists(_MODEL.value):
        raise app.UsageError(f"--model={_MODEL.value}: no such file or folder.")
    import cv2
    import numpy as np

    import aesthal.datasets  # noqa: F401  (registers the builders)
    from aesthal import data as data_lib
    from aesthal.config import DataConfig
    from aesthal.data.prepare import prepare_data
    from aesthal.inference import Predictor

    prepare_data(DataConfig(dataset=_DATASET.value, data_dir=_DATA_DIR.value))
    examples = data_lib.iterate_eval_examples(
        _DATASET.value, split=_SPLIT.value, data_dir=_DATA_DIR.value
    )
    predictor = Predictor(_MODEL.value)
    scores = np.arange(1, 11)
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
    grid = render_grid(rows, _CELL_HEIGHT.value)
    output = pathlib.Path(_OUTPUT.value)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(output), grid[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"cannot write {output}")
    print(f"{output}: {len(rows)} examples, {grid.shape[1]}x{grid.shape[0]} px")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
