r"""Photos per second, end to end: a folder of photos decoded, mapped, cropped
and written, for several models in one run, as ratios to the first.

    M=$(ls -d runs/osie_lite2_ft_s?/model.keras | paste -sd,)
    python experiments/predict_bench.py --model="shipped=" \
        --model="one Lite2 seed=runs/osie_lite2_ft_s0/model.keras" \
        --model="ensemble=$M|mirror|1,1.25,1.5"

Each `--model` is `label=spec`: an empty spec is the shipped model
(`aesthal.released`); otherwise comma-separated model files, optionally
followed by `|mirror` and `|<scales>` (as `python -m aesthal.predict --mirror
--scales=...` runs them). What is timed is `aesthal.predict.predict_folder`
on a folder of `--photos` JPEGs (the OSIE test photos, 800x600, when
`--photo_dir` holds them; otherwise generated 800x600 JPEGs), with the crops
of `--crops` chosen and every output written (maps, overlays, crop files, the
CSV): the work of `python -m aesthal.predict --crops=...`. Loading the model
and one warm-up photo are not timed. The models run in interleaved rounds
(A B C A B C ...), because a shared machine's speed drifts; each model's rate
is its photos over its summed time, and the ratios are to the first model.
A slow model (`|mirror` or several files) runs on `--slow_photos` photos per
round.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np
from absl import app, flags

from aesthal import released
from aesthal.inference import make_predictor
from aesthal.predict import predict_folder

_MODELS = flags.DEFINE_multi_string("model", [], "label=spec (see the docstring).")
_PHOTO_DIR = flags.DEFINE_string(
    "photo_dir", "../shared/data/osie/data/stimuli", "Where photos are taken from."
)
_PHOTOS = flags.DEFINE_integer("photos", 40, "Photos per round (fast models).")
_SLOW_PHOTOS = flags.DEFINE_integer(
    "slow_photos", 4, "Photos per round for ensembles and mirror images."
)
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Interleaved rounds.")
_CROPS = flags.DEFINE_list("crops", ["1:1", "16:9", "9:16", "4:5"], "Crops chosen.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Images per model call.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the numbers as JSON here.")


def photos(folder: pathlib.Path, count: int) -> list[pathlib.Path]:
    """`count` JPEGs in `folder`: OSIE's test photos (1601.jpg ...) from
    `--photo_dir` when present, else generated 800x600 photos."""
    source = pathlib.Path(_PHOTO_DIR.value)
    names = [source / f"{1601 + i}.jpg" for i in range(count)]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        target = folder / f"{i:04d}.jpg"
        if name.exists():
            shutil.copyfile(name, target)
        else:
            smooth = cv2.resize(
                rng.uniform(0, 255, (6, 8, 3)).astype(np.float32), (800, 600)
            )
            noise = rng.normal(0, 20, (600, 800, 3))
            cv2.imwrite(str(target), np.clip(smooth + noise, 0, 255).astype(np.uint8))
        out.append(target)
    return out


def predictor_of(spec: str):
    """`(predictor, slow)` for a `--model` spec."""
    if not spec:
        return released.predictor(), False
    paths, *options = spec.split("|")
    mirror = "mirror" in options
    scales = next((o for o in options if o != "mirror"), "1")
    predictor = make_predictor(paths, mirror=mirror, scales=scales)
    return predictor, mirror or "," in paths or scales != "1"


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _MODELS.value:
        raise app.UsageError("give at least one --model=label=spec")
    models = []
    for item in _MODELS.value:
        label, sep, spec = item.partition("=")
        if not sep or not label:
            raise app.UsageError(f"--model {item!r}: give label=spec")
        predictor, slow = predictor_of(spec)
        models.append((label, predictor, slow))
    root = pathlib.Path(tempfile.mkdtemp(prefix="predict_bench"))
    photos(root / "fast", _PHOTOS.value)
    photos(root / "slow", _SLOW_PHOTOS.value)
    photos(root / "warm", 1)
    seconds = {label: 0.0 for label, _, _ in models}
    counted = {label: 0 for label, _, _ in models}
    for _label, predictor, _ in models:  # traces, thread pools: not timed
        predict_folder(
            predictor, root / "warm", root / "out", progress=False, crops=_CROPS.value
        )
    for _ in range(_ROUNDS.value):
        for label, predictor, is_slow in models:
            folder = root / ("slow" if is_slow else "fast")
            shutil.rmtree(root / "out", ignore_errors=True)
            start = time.perf_counter()
            summary = predict_folder(
                predictor,
                folder,
                root / "out",
                batch_size=_BATCH_SIZE.value,
                progress=False,
                crops=_CROPS.value,
            )
            seconds[label] += time.perf_counter() - start
            counted[label] += summary.written
    shutil.rmtree(root, ignore_errors=True)
    first = models[0][0]
    base = counted[first] / seconds[first]
    results = {}
    print(f"| model | photos/s | ratio to {first} | photos timed |")
    print("| --- | --- | --- | --- |")
    for label, _, _ in models:
        rate = counted[label] / seconds[label]
        results[label] = {"photos_per_s": rate, "ratio": rate / base}
        print(f"| {label} | {rate:.2f} | {rate / base:.3f} | {counted[label]} |")
    if _OUTPUT.value:
        pathlib.Path(_OUTPUT.value).write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
