r"""The shipped model as TensorFlow Lite: its maps beside the Keras model's, and
its speed beside the Keras model's, one photo at a time.

    python experiments/tflite_bench.py --photos=20 --rounds=3

exports `aesthal.released.load_model()` with `aesthal.tflite.export_tflite`,
predicts `--photos` photos (OSIE test photos 1601... from `--photo_dir` when
present, otherwise generated 800x600 pictures) with both
(`aesthal.inference.Predictor` and `aesthal.tflite.TFLitePredictor`: the
same resize steps around each), prints the largest difference between their
maps relative to the map's maximum, and times both in interleaved rounds
(photos per second at batch 1, and the ratio TFLite / Keras).
"""

from __future__ import annotations

import pathlib
import tempfile
import time

import cv2
import numpy as np
from absl import app, flags

from aesthal import released, tflite

_PHOTO_DIR = flags.DEFINE_string(
    "photo_dir", "../shared/data/osie/data/stimuli", "Where photos are taken from."
)
_PHOTOS = flags.DEFINE_integer("photos", 20, "Photos per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds.")
_THREADS = flags.DEFINE_integer("threads", None, "TFLite interpreter threads.")
_OUTPUT = flags.DEFINE_string("output", None, "Also keep the .tflite file here.")


def photos(count: int) -> list[np.ndarray]:
    source = pathlib.Path(_PHOTO_DIR.value)
    images = []
    rng = np.random.default_rng(0)
    for i in range(count):
        path = source / f"{1601 + i}.jpg"
        if path.exists():
            images.append(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
        else:
            image = cv2.GaussianBlur(
                rng.integers(0, 256, (600, 800, 3), np.uint8), (0, 0), 8
            )
            images.append(image)
    return images


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    model = released.load_model()
    path = _OUTPUT.value or str(pathlib.Path(tempfile.mkdtemp()) / "model.tflite")
    tflite.export_tflite(model, path)
    print(f"wrote {path} ({pathlib.Path(path).stat().st_size / 1e6:.1f} MB)")
    keras_predictor = released.predictor()
    lite = tflite.TFLitePredictor(path, num_threads=_THREADS.value)
    images = photos(_PHOTOS.value)
    worst = 0.0
    for image in images:
        a = keras_predictor.predict(image)["saliency"]
        b = lite.predict(image)["saliency"]
        worst = max(worst, float(np.abs(a - b).max() / a.max()))
    print(
        f"TFLite vs Keras maps of {len(images)} photos: max |diff| = "
        f"{worst:.2e} of the map's maximum"
    )
    seconds = {"keras": 0.0, "tflite": 0.0}
    for _ in range(_ROUNDS.value):
        for name, predictor in (("keras", keras_predictor), ("tflite", lite)):
            start = time.perf_counter()
            for image in images:
                predictor.predict(image)
            seconds[name] += time.perf_counter() - start
    count = len(images) * _ROUNDS.value
    rates = {name: count / value for name, value in seconds.items()}
    ratio = rates["tflite"] / rates["keras"]
    print(
        f"photos/s at batch 1: Keras {rates['keras']:.2f}, TFLite "
        f"{rates['tflite']:.2f} (TFLite / Keras = {ratio:.2f})"
    )


if __name__ == "__main__":
    app.run(main)
