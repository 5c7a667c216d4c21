r"""Renders a grid image | ground truth | prediction | overlay, or one photo's crops.

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

With `--crops`, the figure is one photo's saliency-aware crops instead
(`render_crops`): the photo with the crop boxes drawn on it, its predicted map
(overlay), then the crop at each ratio (`aesthal.crop.best_crops` on the
map), all at one pixel scale, each titled with the share of the observers'
fixations it keeps:

    python experiments/figures.py --model=runs/osie_vgg16_hed/saved_model \
        --dataset=osie --manual_dir=../shared/data/osie --split=test \
        --example=1601.jpg --crops=1:1,16:9,9:16,4:5 \
        --output=docs/figures/osie_crops.png
"""

from __future__ import annotations

import os
import pathlib

from absl import app, flags

_MODEL = flags.DEFINE_string(
    "model",
    None,
    ".keras file or SavedModel folder; several, comma-separated, average their "
    "maps (aesthal.inference.Ensemble).",
)
_MIRROR = flags.DEFINE_bool(
    "mirror", False, "Also average each model's map of the mirror image."
)
_SCALES = flags.DEFINE_string(
    "scales",
    "1",
    "Factors of each model's input size to run it at, comma-separated, their "
    "maps averaged (e.g. 1,1.25,1.5; needs .keras models).",
)
_DATASET = flags.DEFINE_string(
    "dataset", "synthetic_scenes", "TFDS name (with config), e.g. osie."
)
_SPLIT = flags.DEFINE_string("split", "test", "TFDS split.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "The data set's files, for osie/salicon/mit1003/cat2000/ava."
)
_CROPS = flags.DEFINE_list(
    "crops", [], "Aspect ratios width:height: draw one photo's crops at each instead."
)
_EXAMPLE = flags.DEFINE_string(
    "example", None, "--crops: the example's file name (default: the split's first)."
)
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 6, "Rows of the grid.")
_CELL_HEIGHT = flags.DEFINE_integer("cell_height", 128, "Height of each cell, px.")
_OUTPUT = flags.DEFINE_string("output", None, "PNG file to write.")

COLUMNS = ("image", "ground truth", "prediction", "overlay")
# Box colours of the crops figure (matplotlib's tab10, in ratio order).
CROP_COLOURS = ("tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


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

    from aesthal.drawing import heat_map, overlay

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


def render_crops(
    image,
    saliency,
    boxes,
    path: pathlib.Path,
    shares=None,
    height: int = 160,
) -> tuple[int, int]:
    """Draws one photo, its map and its crops with matplotlib; writes `path` (PNG).

    Top row: the photo with every box outlined, and the map blended on it.
    Bottom row: each crop, all at the photo's pixel scale (a crop as tall as
    the photo is drawn `height` pixels high).

    Args:
        image: uint8 RGB `[h, w, 3]`.
        saliency: `[h, w]` predicted map.
        boxes: `{ratio: (top, left, height, width)}` (`aesthal.crop.best_crops`).
        path: the PNG to write.
        shares: optional `{ratio: share of fixations in the crop}` for the titles.
        height: the photo's height in the figure, pixels (at 100 dpi).

    Returns:
        The figure's `(width, height)` in pixels.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import numpy as np
    from matplotlib import patches
    from matplotlib import pyplot as plt

    from aesthal import crop
    from aesthal.drawing import overlay

    dpi = 100
    image_h, image_w = image.shape[:2]
    scale = height / image_h  # figure pixels per image pixel
    gap, title, title2 = 12, 22, 34  # px: between panels, 1- and 2-line titles
    top_w = 2 * image_w * scale + gap
    bottom_w = sum(b[3] for b in boxes.values()) * scale + gap * (len(boxes) - 1)
    width = max(top_w, bottom_w) + 2 * gap
    total_h = title + height + title2 + height + gap
    figure = plt.figure(figsize=(width / dpi, total_h / dpi), dpi=dpi)

    def panel(x: float, y: float, w: float, h: float):
        """An axis at pixel position (x from the left, y from the top)."""
        axis = figure.add_axes(
            (x / width, 1.0 - (y + h) / total_h, w / width, h / total_h)
        )
        axis.set_axis_off()
        return axis

    offset = (width - top_w) / 2
    photo = panel(offset, title, image_w * scale, height)
    photo.imshow(image)
    photo.set_title("photo and crops", fontsize="small")
    map_axis = panel(offset + image_w * scale + gap, title, image_w * scale, height)
    map_axis.imshow(overlay(image, np.asarray(saliency, np.float32))[..., ::-1])
    map_axis.set_title("predicted saliency", fontsize="small")
    x = (width - bottom_w) / 2
    for i, (ratio, box) in enumerate(boxes.items()):
        top, left, box_h, box_w = box
        colour = CROP_COLOURS[i % len(CROP_COLOURS)]
        photo.add_patch(
            patches.Rectangle(
                (left - 0.5, top - 0.5),
                box_w,
                box_h,
                fill=False,
                edgecolor=colour,
                linewidth=1.5,
            )
        )
        axis = panel(x, title + height + title2, box_w * scale, box_h * scale)
        axis.imshow(crop.crop_image(image, box))
        label = (
            ratio if shares is None else f"{ratio}\n{shares[ratio]:.0%} of fixations"
        )
        axis.set_title(label, fontsize="small", color=colour)
        x += box_w * scale + gap
    figure.savefig(path, dpi=dpi)
    size = tuple(round(v) for v in figure.get_size_inches() * dpi)
    plt.close(figure)
    return size


def _crops_figure(examples, predictor, output: pathlib.Path) -> None:
    """`--crops`: one example's crops figure (`render_crops`)."""
    from aesthal import crop

    wanted = _EXAMPLE.value
    example = next((ex for ex in examples if wanted in (None, ex.filename)), None)
    if example is None:
        raise app.UsageError(
            f"--example={wanted}: no such file in {_DATASET.value}[{_SPLIT.value}]"
        )
    saliency = predictor.predict(example.image)["saliency"]
    boxes = crop.best_crops(saliency, _CROPS.value)
    shares = None
    if len(example.fixations):
        shares = {
            r: crop.fixation_share(b, example.fixations) for r, b in boxes.items()
        }
    width, height = render_crops(
        example.image, saliency, boxes, output, shares, _CELL_HEIGHT.value
    )
    print(f"{output}: {example.filename}, boxes {boxes}, {width}x{height} px")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _MODEL.value or not _OUTPUT.value:
        raise app.UsageError("--model and --output are required.")
    if _NUM_EXAMPLES.value < 1 or _CELL_HEIGHT.value < 16:
        raise app.UsageError("--num_examples must be >= 1 and --cell_height >= 16.")
    for path in _MODEL.value.split(","):
        if not os.path.exists(path.strip()):
            raise app.UsageError(f"--model: {path.strip()}: no such file or folder.")
    from aesthal.inference import parse_scales

    try:
        parse_scales(_SCALES.value)
    except ValueError as error:
        raise app.UsageError(f"--scales: {error}") from error
    if _EXAMPLE.value and not _CROPS.value:
        raise app.UsageError("--example is for --crops.")
    for ratio in _CROPS.value:
        from aesthal.crop import parse_ratio

        try:
            parse_ratio(ratio)
        except ValueError as error:
            raise app.UsageError(f"--crops: {error}") from error
    import numpy as np

    import aesthal.datasets  # noqa: F401  (registers the builders)
    from aesthal import data as data_lib
    from aesthal.config import SCORES, DataConfig
    from aesthal.data.prepare import prepare_data
    from aesthal.inference import make_predictor

    prepare_data(
        DataConfig(
            dataset=_DATASET.value,
            data_dir=_DATA_DIR.value,
            manual_dir=_MANUAL_DIR.value,
        )
    )
    examples = data_lib.iterate_eval_examples(
        _DATASET.value, split=_SPLIT.value, data_dir=_DATA_DIR.value
    )
    predictor = make_predictor(_MODEL.value, mirror=_MIRROR.value, scales=_SCALES.value)
    output = pathlib.Path(_OUTPUT.value)
    output.parent.mkdir(parents=True, exist_ok=True)
    if _CROPS.value:
        _crops_figure(examples, predictor, output)
        return
    scores = np.asarray(SCORES)
    rows = []
    for example, outputs in predictor.predict_examples(
        examples, limit=_NUM_EXAMPLES.value
    ):
        truth = example.true_density
        if truth is None and example.has_saliency:
            truth = example.fixation_map
        caption = example.filename
        if "aesthetics_mean" in outputs:  # absent for a saliency-only model
            caption += f"  score {float(outputs['aesthetics_mean']):.2f}"
        if (
            "aesthetics_mean" in outputs
            and example.has_aesthetics
            and example.aesthetics_votes is not None
        ):
            votes = example.aesthetics_votes
            caption += f" (true {float(votes @ scores / votes.sum()):.2f})"
        rows.append((example.image, truth, outputs["saliency"], caption))
    if not rows:
        raise app.UsageError(f"{_DATASET.value}[{_SPLIT.value}] has no examples.")
    width, height = render_grid(rows, _CELL_HEIGHT.value, output)
    print(f"{output}: {len(rows)} examples, {width}x{height} px")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
