r"""Does a model (and its built-in centre prior) hold on photos of other aspect
ratios and framings than its training data's?

    python experiments/aspect_check.py --model=shipped \
        --model=one_seed=runs/osie_lite2_ft_s0/model.keras \
        --dataset=osie --manual_dir=../shared/data/osie --split='train[540:]'

OSIE's photos are all 800x600 (4:3) and framed by one photographer. For every
image of `--split` and every aspect ratio of `--aspects` (width / height),
this takes the largest window of that ratio that fits, at a random place
(seeded by `--seed`, the same for every model), as a new photo: its
fixations are those that fall inside. Each model predicts the window as a
photo (stretched to its input size, the map stretched back), and the table
gives NSS (`aesthal.metrics.saliency.nss`) on the window's fixations for
each model and for the centre-bias baseline fitted to the training split's
fixations (`aesthal.evaluation.report`'s, stretched to the window), with the
paired difference model − centre bias and its 95 % interval over windows.
An off-centre window moves the observers' fixations away from its centre, so
a model that leans on its centre prior loses more there than one that reads
the picture. `--model=shipped` is the shipped model (`aesthal.released`);
`label=path` any `.keras` file.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from aesthal import released, stats
from aesthal.config import DataConfig
from aesthal.data import pipeline, prepare
from aesthal.evaluation.report import _centre_bias
from aesthal.export import to_image_size
from aesthal.fixations import points_to_binary_map
from aesthal.inference import Predictor
from aesthal.metrics.saliency import nss

_MODELS = flags.DEFINE_multi_string("model", ["shipped"], "shipped or label=path.")
_DATASET = flags.DEFINE_string("dataset", "osie", "TFDS data set.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", "../shared/data/osie", "manual_dir.")
_SPLIT = flags.DEFINE_string("split", "train[540:]", "Images the windows come from.")
_ASPECTS = flags.DEFINE_list(
    "aspects", ["0.5", "0.5625", "0.8", "1", "1.3333", "1.7778", "2"], "w / h."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the windows' places.")
_MIN_FIXATIONS = flags.DEFINE_integer("min_fixations", 5, "Fewer: window skipped.")


def window(shape, aspect: float, rng) -> tuple[int, int, int, int]:
    """The largest `aspect` (w/h) window inside `shape`, at a random place."""
    height, width = shape
    win_h = min(height, int(round(width / aspect)))
    win_w = min(width, int(round(win_h * aspect)))
    top = int(rng.integers(0, height - win_h + 1))
    left = int(rng.integers(0, width - win_w + 1))
    return top, left, win_h, win_w


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    predictors = {}
    for spec in _MODELS.value:
        if spec == "shipped":
            predictors[f"shipped ({released.DEFAULT})"] = released.predictor()
        else:
            label, _, path = spec.partition("=")
            predictors[label] = Predictor(path)
    data = DataConfig(dataset=_DATASET.value, manual_dir=_MANUAL_DIR.value)
    prepare.prepare_data(data)
    centre = _centre_bias(data).astype(np.float32)
    examples = list(pipeline.iterate_eval_examples(data.dataset, split=_SPLIT.value))
    aspects = [float(a) for a in _ASPECTS.value]
    rows = []
    for aspect in aspects:
        rng = np.random.default_rng(_SEED.value)
        scores = {name: [] for name in [*predictors, "centre bias"]}
        for example in examples:
            top, left, win_h, win_w = window(example.image.shape[:2], aspect, rng)
            points = example.fixations - np.array([top, left], np.float32)
            inside = (
                (points[:, 0] >= 0)
                & (points[:, 0] < win_h)
                & (points[:, 1] >= 0)
                & (points[:, 1] < win_w)
            )
            if inside.sum() < _MIN_FIXATIONS.value:
                continue
            fixated = points_to_binary_map(points[inside], (win_h, win_w))
            image = np.ascontiguousarray(
                example.image[top : top + win_h, left : left + win_w]
            )
            for name, predictor in predictors.items():
                scores[name].append(nss(predictor.predict(image)["saliency"], fixated))
            prior = to_image_size(centre[None, ..., None], (win_h, win_w))
            scores["centre bias"].append(nss(prior.numpy()[0, ..., 0], fixated))
        base = np.asarray(scores["centre bias"])
        cells = [f"{aspect:.3g}", str(len(base)), f"{base.mean():.3f}"]
        for name in predictors:
            values = np.asarray(scores[name])
            gap = stats.confidence_interval(values - base)
            cells += [
                f"{values.mean():.3f}",
                f"{gap['mean']:+.3f} [{gap['ci_low']:+.3f}, {gap['ci_high']:+.3f}]",
            ]
        rows.append(cells)
    header = ["aspect (w/h)", "windows", "centre bias NSS"]
    for name in predictors:
        header += [f"{name} NSS", f"{name} − centre bias"]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    app.run(main)
