r"""Writes a trained network as a shipped model of `aesthal.released`.

    python experiments/release_model.py \
        --model=runs/students/lite2_384_s4_init/model.keras \
        --name=aesthal-osie-lite2 --check_dir=../shared/data/osie/data/stimuli

writes `aesthal/released/<name>.npz` (float16 weights) and `<name>.json` (its
config), prints the sha256 to record in `aesthal.released.RELEASES`, and, with
`--check_dir`, how far the float16 network's maps of a few photos there are
from the float32 network's (max absolute difference relative to each map's
maximum, and the correlation). With `--keras_copy` it also saves the float16
network as a `.keras` file, which is what `experiments/run.py --mode=evaluate`
measures for the model card (the numbers of exactly the shipped weights).
"""

from __future__ import annotations

import hashlib
import pathlib
import sys

import keras
import numpy as np
from absl import app, flags

from aesthal import released
from aesthal.inference import Predictor
from aesthal.predict import list_images, read_image

_MODEL = flags.DEFINE_string("model", None, "The trained .keras file.", required=True)
_NAME = flags.DEFINE_string("name", None, "The release's name.", required=True)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    str(pathlib.Path(released.__file__).parent),
    "Where to write (default: the package's own folder).",
)
_CHECK_DIR = flags.DEFINE_string(
    "check_dir", None, "A folder of photos to compare float16 and float32 maps on."
)
_CHECK_COUNT = flags.DEFINE_integer("check_count", 8, "Photos to compare.")
_KERAS_COPY = flags.DEFINE_string(
    "keras_copy", None, "Also save the float16 network as this .keras file."
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    model = keras.saving.load_model(_MODEL.value, safe_mode=True)
    digest = released.save_release(model, _OUTPUT_DIR.value, _NAME.value)
    weights = pathlib.Path(_OUTPUT_DIR.value) / f"{_NAME.value}.npz"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == digest
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB)")
    print(f'sha256: "{digest}"')
    released.RELEASES[_NAME.value] = released.Release(_NAME.value, digest, "")
    shipped = released.load_model(_NAME.value, _OUTPUT_DIR.value)
    if _KERAS_COPY.value:
        shipped.save(_KERAS_COPY.value)
        print(f"wrote {_KERAS_COPY.value}")
    if _CHECK_DIR.value:
        full, half = Predictor(model), Predictor(shipped)
        worst, lowest = 0.0, 1.0
        for path in list_images(pathlib.Path(_CHECK_DIR.value))[: _CHECK_COUNT.value]:
            image = read_image(path)
            a = full.predict(image)["saliency"]
            b = half.predict(image)["saliency"]
            worst = max(worst, float(np.abs(a - b).max() / a.max()))
            lowest = min(lowest, float(np.corrcoef(a.ravel(), b.ravel())[0, 1]))
        print(
            f"float16 vs float32 maps of {_CHECK_COUNT.value} photos: max |diff| "
            f"{100 * worst:.3f} % of the map's maximum, lowest correlation {lowest:.6f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
