r"""Cheap checks of ensembles and map edits: each model's maps cached once,
then any mixture of them scored without predicting again.

    # Once per model: its maps on a split (with mirror images and scales as
    # aesthal.inference.Ensemble runs them), at the images' size.
    python experiments/map_checks.py --mode=cache --model=runs/ft_s0/model.keras \
        --dataset=osie --manual_dir=../shared/data/osie --split='train[540:]' \
        --mirror --scales=1,1.25,1.5 --output=maps/ft_s0.npz
    # Mixtures scored on the cached maps; each row against the first, paired
    # over the images. A row is 'label=a.npz+b.npz' (the equal-weight mixture,
    # as Ensemble averages) with an optional '^power' (the mixture raised to
    # that power and renormalised: a sharper or flatter map).
    python experiments/map_checks.py --mode=score --ratios=1:1,16:9,9:16,4:5 \
        --row="3 seeds=maps/ft_s0.npz+maps/ft_s1.npz+maps/ft_s2.npz" \
        --row="power 1.5=maps/ft_s0.npz+maps/ft_s1.npz+maps/ft_s2.npz^1.5"
    # With the split's centre crop and human ceiling (issue 14's rows, from
    # the data set's per-observer fixations) and each row's share of the gap:
    python experiments/map_checks.py --mode=score --baselines \
        --dataset=osie --manual_dir=../shared/data/osie --split='train[540:]' \
        --row="3 seeds=maps/ft_s0.npz+maps/ft_s1.npz+maps/ft_s2.npz"

Scores per row: the crops' share of fixations at each ratio
(`aesthal.crop.evaluate_crops`, as `run.py --crops` scores them), NSS (MIT
`NSS.m`, `aesthal.metrics.saliency.nss`) and the log-likelihood of the
fixations in bits per fixation against a uniform map (Kümmerer, Wallis,
Bethge 2015, "Information-theoretic model comparison unifies saliency
metrics", PNAS; `aesthal.metrics.saliency.information_gain` over the
uniform map, the map read as a density; each fixated pixel counted once, as
`nss` counts it). The
maps are those of one prediction (not metric-specific): compare rows with
each other, not with `metrics.md`. `--baselines` adds the centre crop
(`aesthal.crop.evaluate_centre_crops`) and the human ceiling
(`evaluate_human_ceiling`, leave one observer out) on the same images, and
each row's share of the gap between them, (row - centre) / (ceiling -
centre), as `crops.md` reports them.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
from absl import app, flags

_MODE = flags.DEFINE_enum("mode", None, ["cache", "score"], "What to do.")
_MODEL = flags.DEFINE_string("model", None, "cache: a .keras file or SavedModel.")
_DATASET = flags.DEFINE_string(
    "dataset", "osie", "cache, --baselines: the TFDS data set."
)
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "cache, --baselines: its manual_dir."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "cache, --baselines: its data_dir.")
_SPLIT = flags.DEFINE_string(
    "split", "test", "cache: the split to predict; --baselines: the cached one."
)
_MIRROR = flags.DEFINE_bool("mirror", False, "cache: also the mirror images.")
_SCALES = flags.DEFINE_string("scales", "1", "cache: input-size factors.")
_OUTPUT = flags.DEFINE_string("output", None, "cache: the .npz to write.")
_ROWS = flags.DEFINE_multi_string(
    "row", [], "score: 'label=a.npz+b.npz[^power]', the first the reference."
)
_RATIOS = flags.DEFINE_list("ratios", ["1:1", "16:9", "9:16", "4:5"], "Crops.")
_BASELINES = flags.DEFINE_bool(
    "baselines",
    False,
    "score: add the split's centre-crop and human-ceiling rows (the data set "
    "needs per-observer fixations) and each row's share of the gap.",
)


def cache_maps(model, data, split: str, output: pathlib.Path, mirror, scales) -> int:
    """Writes a model's maps of a split to `output`: `maps` float16 `[N, H, W]`
    (density times H*W, so that float16 keeps it), `points` float32
    `[sum n_i, 2]` (every image's fixations, in order), `counts` (each image's
    n_i) and `files`; no pickled objects. Every image must have the same size
    (OSIE's 800x600). Returns the number of images."""
    from aesthal.evaluation import report
    from aesthal.inference import Ensemble

    predictor = Ensemble([model], mirror=mirror, scales=scales)
    _, pairs = report.predict_split(predictor, data, split)
    maps, points, files = [], [], []
    for example, prediction in pairs:
        density = prediction["saliency"].astype(np.float64)
        if maps and density.shape != maps[0].shape:
            raise ValueError(
                f"{example.filename}: {density.shape[0]}x{density.shape[1]}, not "
                f"{maps[0].shape[0]}x{maps[0].shape[1]} as the first image: "
                "map_checks needs images of one size."
            )
        maps.append((density * density.size).astype(np.float16))
        points.append(np.asarray(example.fixations, np.float32))
        files.append(example.filename)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(output, maps=np.stack(maps), **_pack(points), files=np.array(files))
    return len(files)


def _pack(points: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Ragged fixation arrays as two plain arrays (`np.load` without pickle)."""
    return {
        "points": np.concatenate([p.reshape(-1, 2) for p in points]).astype(np.float32),
        "counts": np.array([len(p) for p in points], np.int64),
    }


def _unpack(stored) -> list[np.ndarray]:
    return np.split(stored["points"], np.cumsum(stored["counts"])[:-1])


def parse_row(row: str) -> tuple[str, list[str], float]:
    """`'label=a.npz+b.npz^1.5'` -> `(label, [paths], power)`."""
    label, sep, spec = row.partition("=")
    if not sep or not label or not spec:
        raise ValueError(f"--row {row!r}: give 'label=a.npz+b.npz[^power]'")
    spec, _, power = spec.partition("^")
    try:
        value = float(power) if power else 1.0
    except ValueError:
        raise ValueError(f"--row {row!r}: power {power!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"--row {row!r}: the power must be > 0")
    return label, spec.split("+"), value


def mixture(paths: list[str], power: float = 1.0):
    """The equal-weight mixture of cached maps (each map sums to 1), raised to
    `power` and renormalised: `(maps [N, H, W] float64, fixations, files)`."""
    total, fixations, files = None, None, None
    for path in paths:
        with np.load(path) as stored:
            maps = stored["maps"].astype(np.float64)
            maps /= maps.sum(axis=(1, 2), keepdims=True)
            if files is None:
                fixations, files = _unpack(stored), list(stored["files"])
            elif list(stored["files"]) != files:
                raise ValueError(f"{path}: other images than {paths[0]}")
        total = maps if total is None else total + maps
    total = (total / len(paths)) ** power
    return total / total.sum(axis=(1, 2), keepdims=True), fixations, files


def score(maps, fixations, ratios) -> dict[str, np.ndarray]:
    """Per-image scores: each ratio's crop share, `nss` and `ll` (bits: the
    information gain over the uniform map, `saliency.information_gain` with
    the map read as a density)."""
    from aesthal import crop
    from aesthal.metrics import saliency

    result = crop.evaluate_crops(maps, fixations, ratios)
    scores = {r: np.asarray(result[r]["scores"], np.float64) for r in ratios}
    nss, ll = [], []
    uniform = np.ones((1, 1))
    for density, points in zip(maps, fixations, strict=True):
        mask = saliency.fixation_points_to_map(points, density.shape)
        nss.append(saliency.nss(density, mask))
        ll.append(saliency.information_gain(density, mask, uniform, "sum"))
    scores["nss"], scores["ll"] = np.array(nss), np.array(ll)
    return scores


def observers_of(data, split: str, files: list[str]) -> list[list[np.ndarray]]:
    """Each cached image's fixations per observer, in the cache's order, from
    the data set's `fixations/observer` feature."""
    from aesthal.data import prepare
    from aesthal.evaluation import crop_report

    builder = prepare.prepare_data(data)
    prepare.check_split(builder, split)
    observers = crop_report.observer_fixations(builder, split)
    if observers is None:
        raise ValueError(
            f"{data.dataset} has no per-observer fixations "
            f"({crop_report.OBSERVER_FEATURE}): no human ceiling; drop --baselines."
        )
    missing = [name for name in files if name not in observers]
    if missing:
        raise ValueError(
            f"{len(missing)} cached image(s) not in {data.dataset} [{split}] "
            f"(first: {missing[0]}): give the --split the maps were cached on."
        )
    return [observers[name] for name in files]


def baseline_scores(observers, fixations, shape, ratios) -> dict[str, dict]:
    """`{"centre crop" | "human ceiling": {ratio: per-image scores}}` on
    images of one `shape`, scored as `crops.md` scores them."""
    from aesthal import crop

    shapes = [shape] * len(fixations)
    centre = crop.evaluate_centre_crops(shapes, fixations, ratios)
    ceiling = crop.evaluate_human_ceiling(observers, shapes, ratios)
    return {
        name: {r: np.asarray(result[r]["scores"], np.float64) for r in ratios}
        for name, result in (("centre crop", centre), ("human ceiling", ceiling))
    }


def score_rows(
    rows: list[str], ratios: list[str], data=None, split: str | None = None
) -> str:
    """The markdown table of `--mode=score`; with `data` (a `DataConfig`) and
    `split`, the centre-crop and human-ceiling rows and each row's share of
    the gap between them follow."""
    from aesthal.stats import confidence_interval

    names = list(ratios) + ["nss", "ll"]
    lines = [
        "| row | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    reference, means, baselines, first_files = None, [], None, None
    for row in rows:
        label, paths, power = parse_row(row)
        maps, fixations, files = mixture(paths, power)
        if first_files is None:
            first_files = files
        elif files != first_files:  # the differences pair image by image
            raise ValueError(
                f"--row {row!r}: its maps are of other images than the first "
                "row's; cache every model on the same split."
            )
        if data is not None and baselines is None:
            observers = observers_of(data, split, files)
            baselines = baseline_scores(observers, fixations, maps.shape[1:], ratios)
        scores = score(maps, fixations, ratios)
        means.append((label, {r: scores[r].mean() for r in ratios}))
        lines.append(
            f"| {label} | "
            + " | ".join(f"{scores[n].mean():.4f}" for n in names)
            + " |"
        )
        if reference is None:
            reference = scores
            continue
        cells = []
        for n in names:
            ci = confidence_interval(scores[n] - reference[n])
            interval = (
                "n/a (one image)"
                if ci["ci_low"] is None
                else f"{ci['ci_low']:+.4f}, {ci['ci_high']:+.4f}"
            )
            cells.append(f"{ci['mean']:+.4f} [{interval}]")
        lines.append(f"| Δ {label} − first | " + " | ".join(cells) + " |")
    if baselines is not None:
        lines += ["", "| row | " + " | ".join(ratios) + " |"]
        lines.append("| --- |" + " --- |" * len(ratios))
        centre = {r: baselines["centre crop"][r].mean() for r in ratios}
        ceiling = {r: baselines["human ceiling"][r].mean() for r in ratios}
        for name, values in (("centre crop", centre), ("human ceiling", ceiling)):
            cells = " | ".join(f"{values[r]:.4f}" for r in ratios)
            lines.append(f"| {name} | {cells} |")
        for label, values in means:
            cells = " | ".join(
                (
                    f"{(values[r] - centre[r]) / (ceiling[r] - centre[r]):.3f}"
                    if ceiling[r] != centre[r]
                    else "n/a (no gap)"
                )
                for r in ratios
            )
            lines.append(f"| {label}: share of the gap | {cells} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if _MODE.value == "cache":
        if not (_MODEL.value and _OUTPUT.value):
            raise app.UsageError("--mode=cache needs --model and --output.")
        from aesthal.config import DataConfig

        data = DataConfig(
            dataset=_DATASET.value,
            data_dir=_DATA_DIR.value,
            manual_dir=_MANUAL_DIR.value,
            tasks=("saliency",),
        )
        count = cache_maps(
            _MODEL.value,
            data,
            _SPLIT.value,
            pathlib.Path(_OUTPUT.value),
            _MIRROR.value,
            _SCALES.value,
        )
        print(f"{count} maps: {_OUTPUT.value}")
    elif _MODE.value == "score":
        if not _ROWS.value:
            raise app.UsageError("--mode=score needs at least one --row.")
        data = None
        if _BASELINES.value:
            from aesthal.config import DataConfig

            data = DataConfig(
                dataset=_DATASET.value,
                data_dir=_DATA_DIR.value,
                manual_dir=_MANUAL_DIR.value,
                tasks=("saliency",),
            )
        try:
            print(score_rows(_ROWS.value, _RATIOS.value, data, _SPLIT.value))
        except ValueError as error:
            raise app.UsageError(str(error)) from error
    else:
        raise app.UsageError("give --mode=cache or --mode=score.")
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
