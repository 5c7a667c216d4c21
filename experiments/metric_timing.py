"""Times every saliency metric on a 640x480 ground truth; prints a Markdown table.

    python experiments/metric_timing.py [--repeats=5] [--fixations=150] [--native]

The ground truth is 480x640 (OSIE's size) with `--fixations` random points
and their blurred map; the prediction is a smooth 240x320 map, so each time
includes upsampling it (the evaluation's case) unless `--native` is given.
Each cell is the median wall time of `--repeats` calls, in milliseconds.
"""

import platform
import statistics
import time

import numpy as np
from absl import app, flags

from aesthal import fixations as fixation_utils
from aesthal.metrics import saliency

_REPEATS = flags.DEFINE_integer("repeats", 5, "Calls per metric (the median is shown).")
_FIXATIONS = flags.DEFINE_integer("fixations", 150, "Random fixation points.")
_NATIVE = flags.DEFINE_bool(
    "native", False, "Predict at 480x640 (no upsampling in the timed call)."
)

SHAPE = (480, 640)


def _reference_auc_judd_loop(saliency_map: np.ndarray, fixations: np.ndarray) -> float:
    """MIT AUC_Judd.m's threshold loop as written (one map scan per fixation)."""
    values = saliency_map.ravel()
    values = (values - values.min()) / (values.max() - values.min())
    positive = values[fixations.ravel() > 0]
    thresholds = np.sort(positive)[::-1]
    n_fix, n_pix = positive.size, values.size
    tp, fp = np.zeros(n_fix + 2), np.zeros(n_fix + 2)
    tp[-1] = fp[-1] = 1.0
    for i in range(1, n_fix + 1):
        above = np.sum(values >= thresholds[i - 1])
        tp[i] = i / n_fix
        fp[i] = (above - i) / (n_pix - n_fix)
    return float(np.trapezoid(tp, fp))


def _inputs(num_fixations: int, native: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    points = rng.normal([240, 320], [90, 120], size=(num_fixations, 2))
    binary = fixation_utils.points_to_binary_map(points, SHAPE)
    fixation_map = fixation_utils.blur_fixation_map(binary, sigma=24.0)
    other = fixation_utils.points_to_binary_map(
        rng.normal([240, 320], [90, 120], size=(10 * num_fixations, 2)), SHAPE
    )
    pred_shape = SHAPE if native else (SHAPE[0] // 2, SHAPE[1] // 2)
    scale = pred_shape[0] / SHAPE[0]
    prediction = (
        fixation_utils.blur_fixation_map(
            fixation_utils.points_to_binary_map(
                points[: num_fixations // 2] * scale, pred_shape
            ),
            sigma=24.0 * scale,
        )
        + 1e-3
    )
    centre = np.ones((64, 64))
    return prediction, binary, fixation_map, other, centre


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if _REPEATS.value < 1 or _FIXATIONS.value < 2:
        raise app.UsageError("--repeats must be >= 1 and --fixations >= 2.")
    prediction, binary, fixation_map, other, centre = _inputs(
        _FIXATIONS.value, _NATIVE.value
    )
    full_prediction = saliency.resize_map(prediction, SHAPE)
    cases = {
        "auc_judd": lambda: saliency.auc_judd(prediction, binary),
        "auc_judd (MIT loop, 480x640 input)": lambda: _reference_auc_judd_loop(
            full_prediction, binary
        ),
        "auc_borji (100 splits)": lambda: saliency.auc_borji(prediction, binary),
        "auc_shuffled (100 splits)": lambda: saliency.auc_shuffled(
            prediction, binary, other
        ),
        "nss": lambda: saliency.nss(prediction, binary),
        "cc": lambda: saliency.cc(prediction, fixation_map),
        "kld": lambda: saliency.kld(prediction, fixation_map),
        "sim": lambda: saliency.sim(prediction, fixation_map),
        "information_gain": lambda: saliency.information_gain(
            prediction, binary, centre
        ),
    }
    print(
        f"prediction {prediction.shape[0]}x{prediction.shape[1]} -> ground truth "
        f"{SHAPE[0]}x{SHAPE[1]}, {int(binary.sum())} fixated pixels, "
        f"median of {_REPEATS.value}, {platform.processor() or platform.machine()}\n"
    )
    print("| metric | value | ms |\n| --- | --- | --- |")
    for name, call in cases.items():
        times = []
        for _ in range(_REPEATS.value):
            start = time.perf_counter()
            value = call()
            times.append(time.perf_counter() - start)
        print(f"| {name} | {value:.4f} | {1e3 * statistics.median(times):.1f} |")


if __name__ == "__main__":
    app.run(main)
