r"""Saliency maps, overlays, crops and aesthetics scores for a folder of photos.

    aesthal predict --input=photos/ --output=predictions/
    aesthal predict --model=runs/quickstart/model.keras --input=photo.jpg \
        --output=out/ --crops=1:1,16:9

The flags and outputs of `python -m aesthal.predict` (`aesthal.predict`):
<name>_saliency.png (16-bit), <name>_overlay.jpg, <name>_crop_<a>x<b>.<ext>
(with --crops), predictions.csv, summary.json. Without `--model`, the model
shipped with aesthal (`aesthal.released`), named once on stderr. Exit status:
0 at least one image's outputs written; 1 image files found but none could be
read; 2 a usage or environment error in one line (a bad flag, no such
input, a model that cannot be loaded, an output that cannot be written).
"""

from __future__ import annotations

import sys
import types

from absl import flags

from aesthal import image_io
from aesthal.cli import common, config_flags

FLAGS = flags.FLAGS
_M = __name__
MODEL = config_flags.define_flag(
    "string",
    "model",
    None,
    ".keras file or SavedModel folder; several, comma-separated, average their "
    "maps (an ensemble, e.g. one recipe's seeds). Default: the shipped model.",
    _M,
)
MIRROR = config_flags.define_flag(
    "bool",
    "mirror",
    False,
    "Also average each model's map of the mirror image (slower, better).",
    _M,
)
SCALES = config_flags.define_flag(
    "string",
    "scales",
    "1",
    "Factors of each model's input size to also run it at, comma-separated, "
    "their maps averaged (e.g. 1,1.25,1.5; slower); other than 1 needs .keras "
    "files.",
    _M,
)
INPUT = config_flags.define_flag(
    "string", "input", None, "An image file or a folder (recursive).", _M
)
OUTPUT = config_flags.define_flag(
    "string", "output", None, "Output folder (created).", _M
)
BATCH_SIZE = config_flags.define_flag(
    "integer", "batch_size", 8, "Images per model call.", _M
)
NO_PROGRESS = config_flags.define_flag(
    "bool", "no_progress", False, "No progress bar.", _M
)
MAX_PIXELS = config_flags.define_flag(
    "integer",
    "max_pixels",
    image_io.DEFAULT_MAX_PIXELS,
    "Skip images of more pixels (height x width, read from the file's header "
    "before decoding); default 50 megapixels (about 2 GB of memory per image).",
    _M,
)
CROPS = config_flags.define_flag(
    "string",
    "crops",
    "",
    "Aspect ratios width:height, comma-separated (e.g. 1:1,16:9,9:16,4:5): write "
    "each image's saliency-aware crop at each ratio and its box in the CSV.",
    _M,
)


def shipped_predictor(mirror: bool, scales: tuple[float, ...]):
    """The shipped model's predictor (with `mirror` and `scales`), its name
    said once on stderr.

    Raises:
        aesthal.released.ReleaseError: no shipped model, or its file fails
            its check.
    """
    from aesthal import released
    from aesthal.inference import Ensemble

    predictor = released.predictor()
    print(
        f"using the shipped model {released.DEFAULT} (docs/model_card.md)",
        file=sys.stderr,
    )
    if mirror or scales != (1.0,):
        return Ensemble([predictor], mirror=mirror, scales=scales)
    return predictor


@common.guarded
def main(argv: list[str]) -> int:
    """`aesthal predict`: returns the exit status (see the module)."""
    from aesthal import crop, predict
    from aesthal.inference import parse_scales

    stray = common.stray_arguments(argv)
    if stray:
        raise common.UsageError(stray)
    for name, holder in (("input", INPUT), ("output", OUTPUT)):
        if not holder.value:
            raise common.UsageError(f"--{name} is required.")
    crops = [r.strip() for r in CROPS.value.split(",") if r.strip()]
    for ratio in crops:
        try:
            crop.parse_ratio(ratio)
        except ValueError as error:
            raise common.UsageError(f"--crops: {error}") from error
    for name, holder in (("batch_size", BATCH_SIZE), ("max_pixels", MAX_PIXELS)):
        if holder.value < 1:
            raise common.UsageError(f"--{name} must be >= 1, got {holder.value}")
    try:
        scales = parse_scales(SCALES.value)
    except ValueError as error:
        raise common.UsageError(f"--scales: {error}") from error
    model = None
    name = MODEL.value
    if not MODEL.value:
        from aesthal.released import ReleaseError

        try:
            model = shipped_predictor(MIRROR.value, scales)
        except ReleaseError as error:
            print(f"error: {common.one_line(error)}", file=sys.stderr)
            return common.USAGE
        name = f"the shipped model ({model.source})"
    args = types.SimpleNamespace(
        model=name,
        input=INPUT.value,
        output=OUTPUT.value,
        batch_size=BATCH_SIZE.value,
        no_progress=NO_PROGRESS.value,
        mirror=MIRROR.value,
        max_pixels=MAX_PIXELS.value,
    )
    return predict.run_prediction(args, crops, scales, model=model)
