"""Per-image evaluation: every metric, mean and 95% CI, baselines side by side.

The evaluate command is a thin wrapper: run the model over a split, collect
its saliency maps and the examples' labels, call `evaluate_saliency_maps` (and
`evaluate_aesthetics`), write the dict as `metrics.json` and
`format_markdown_table` as the table.

Maps are evaluated at the ground truth's original resolution, as the
benchmarks do: a prediction of any size is upsampled to the fixation map's
size inside each metric; the ground truth is never resized.

Two evaluations of one prediction. *One map*: the same map for every metric
(the benchmarks' habit). *Metric-specific maps* (Kuemmerer, Wallis, Bethge,
"Saliency Benchmarking Made Easy", ECCV 2018): the prediction is read as a
fixation density and each metric gets the map derived from it that the
metric rewards (`METRIC_MAP_RULES`): the density for the AUCs, NSS and IG,
the density blurred with the ground truth's own Gaussian for CC, KLD and SIM,
the log of the density over the shuffled prior for sAUC. Baselines get the same rules.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from aesthal.metrics import aesthetics, saliency
from aesthal.metrics import baselines as baseline_models
from aesthal.stats import confidence_interval

CENTRE_BIAS: Final[str] = "centre_bias"
UNIFORM: Final[str] = "uniform"
TRUE_DENSITY: Final[str] = "true_density"
DEFAULT_MODEL_NAME: Final[str] = "model"

# Metric name -> True when higher is better. Order of the table columns.
SALIENCY_METRICS: Final[dict[str, bool]] = {
    "auc_judd": True,
    "auc_borji": True,
    "auc_shuffled": True,
    "nss": True,
    "cc": True,
    "kld": False,
    "sim": True,
    "ig": True,
}
AESTHETICS_METRICS: Final[dict[str, bool]] = {
    "accuracy": True,
    "srcc": True,
    "plcc": True,
    "mean_score_mse": False,
    "emd_r1": False,
    "emd_r2": False,
}

MapSource = np.ndarray | Callable[[Mapping[str, Any]], np.ndarray]
SigmaRule = Callable[[tuple[int, int]], float]

# The maps of the metric-specific evaluation (Kuemmerer et al. 2018, Sec. 4
# and Table 2). For a density p:
# * AUC-Judd, AUC-Borji (negatives: all pixels) and NSS rank or standardise
#   the map at fixations; p itself is optimal (its expected NSS is highest
#   for the map proportional to p).
# * IG is the log-likelihood: p itself.
# * sAUC's negatives are other images' fixations, i.e. draws of the prior
#   (the centre bias): the likelihood ratio p / p_prior is optimal, and so is
#   its log, which MIT's binned sAUC needs (`saliency.log_prior_ratio`).
# * CC, KLD and SIM compare with a blurred empirical map, whose expectation
#   is p blurred with the same Gaussian: optimal for CC, and for KLD up to
#   its eps. For SIM the paper optimises the map numerically; the blurred
#   density is the closed-form stand-in used here.
DENSITY_RULE: Final[str] = "density"
BLURRED_RULE: Final[str] = "density blurred with the ground truth's Gaussian"
PRIOR_RATIO_RULE: Final[str] = "log(density / shuffled prior ({prior}))"
NO_BLUR_RULE: Final[str] = "density (the ground truth's blur is unknown)"
NO_PRIOR_RULE: Final[str] = "density (no shuffled prior given)"
ZERO_PRIOR_RULE: Final[str] = "density (the shuffled prior {prior} has zeros)"
METRIC_MAP_RULES: Final[dict[str, str]] = {
    "auc_judd": DENSITY_RULE,
    "auc_borji": DENSITY_RULE,
    "auc_shuffled": PRIOR_RATIO_RULE,
    "nss": DENSITY_RULE,
    "cc": BLURRED_RULE,
    "kld": BLURRED_RULE,
    "sim": BLURRED_RULE,
    "ig": DENSITY_RULE,
}
BLURRED_METRICS: Final[tuple[str, ...]] = tuple(
    m for m, rule in METRIC_MAP_RULES.items() if rule == BLURRED_RULE
)


def standard_baselines(
    centre_bias: np.ndarray | None = None, with_true_density: bool = False
) -> dict[str, MapSource]:
    """The baselines to pass to `evaluate_saliency_maps`.

    Args:
        centre_bias: a density from `baselines.fit_centre_bias` (any size,
            resized per image), or None to leave it out.
        with_true_density: add the examples' `true_density` (the ceiling on
            generated data).

    Returns:
        `{"uniform": ..., ["centre_bias": ...], ["true_density": ...]}`.
    """
    sources: dict[str, MapSource] = {UNIFORM: np.ones((1, 1))}
    if centre_bias is not None:
        sources[CENTRE_BIAS] = np.asarray(centre_bias, dtype=np.float64)
    if with_true_density:
        sources[TRUE_DENSITY] = lambda example: example[TRUE_DENSITY]
    return sources


def _squeeze_map(value: np.ndarray) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    return array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array


def _other_fixations(
    points: Sequence[np.ndarray],
    shapes: Sequence[tuple[int, int]],
    index: int,
    num_other: int,
    rng: np.random.Generator,
) -> np.ndarray | None:
    """Union of fixations of `num_other` other images, in image `index`'s pixels."""
    others = [j for j in range(len(points)) if j != index and len(points[j])]
    if not others:
        return None
    chosen = rng.choice(others, size=min(num_other, len(others)), replace=False)
    height, width = shapes[index]
    scaled = [
        (points[j] + 0.5) * np.array([height / shapes[j][0], width / shapes[j][1]])
        - 0.5
        for j in chosen
    ]
    other = saliency.fixation_points_to_map(np.concatenate(scaled), (height, width))
    return other if other.any() else None


def evaluate_saliency_maps(
    pred_maps: Sequence[np.ndarray],
    examples: Sequence[Mapping[str, Any]],
    baselines: Mapping[str, MapSource] | None = None,
    ig_baseline: str = CENTRE_BIAS,
    model_name: str = DEFAULT_MODEL_NAME,
    num_other_images: int = 10,
    seed: int = 0,
    ig_normalization: str = "min_max",
    ground_truth_sigma: SigmaRule | None = None,
    shuffled_prior: str | None = CENTRE_BIAS,
) -> dict[str, Any]:
    """Computes every saliency metric per image for a model and its baselines.

    Each row is scored twice: with its one map for every metric
    (`"metrics"`), and with the metric-specific maps of `METRIC_MAP_RULES`
    derived from the same map read as a density (`"metric_specific"`).

    Args:
        pred_maps: one non-negative prediction per example, `[h, w]` or
            `[h, w, 1]`, any size (upsampled to the ground truth's).
        examples: one mapping per image with `"fixations"` (float `[N, 2]`
            `(row, col)` points, 0-based) and `"fixation_map"` (`[H, W]` or
            `[H, W, 1]`, the continuous ground truth at original resolution);
            `"true_density"` `[H, W]` when a baseline reads it.
        baselines: name -> a map (any size, e.g. the centre bias) or a
            function of the example returning one. See `standard_baselines`.
        ig_baseline: the name of the baseline information gain is measured
            against; if it is not in `baselines` the uniform map is used
            and the result says so.
        model_name: the name of the model's row.
        num_other_images: how many other images' fixations are the negatives
            of the shuffled AUC (Borji uses 10).
        seed: seeds AUC jitter and sampling (the same draws for every model).
        ig_normalization: `"min_max"` (MIT `InfoGain.m`) or `"sum"` (maps
            taken as densities; see `saliency.information_gain`).
        ground_truth_sigma: `(H, W) -> sigma` in pixels of the Gaussian that
            blurred the examples' `fixation_map` (a builder's
            `fixation_map_sigma`); None when unknown: CC/KLD/SIM then keep
            the density itself and the rule says so.
        shuffled_prior: the baseline whose map is the prior sAUC's negatives
            are drawn from; when it is not in `baselines`, or is a map with
            zeros (a centre bias without `uniform_weight`), sAUC keeps the
            density itself and the rule says so.

    Returns:
        A JSON-serialisable dict:
        `{"num_images", "num_evaluated", "skipped": [{"index", "reason"}],
          "ig_baseline", "metrics": {model: {metric: confidence_interval}},
          "per_image": {model: {metric: [float or None]}},
          "explainable_information_gain_share": {model: float} (only with both
          `true_density` and the IG baseline present),
          "metric_specific": {"rules": {metric: the map it was given},
          "ground_truth_sigma_px": [distinct sigmas] or None,
          "metrics": ..., "per_image": ...} (the same layout, same images)}`.
        Images without fixations or with an all-zero map are skipped and
        listed; sAUC is None for an image when no other image has fixations.

    Raises:
        ValueError: the number of maps and examples differ, or a map is bad.
    """
    if len(pred_maps) != len(examples):
        raise ValueError(
            f"got {len(pred_maps)} predicted maps for {len(examples)} examples"
        )
    sources: dict[str, MapSource] = {model_name: None}  # filled per image below
    sources.update(baselines or {})
    ig_name = ig_baseline if ig_baseline in sources else UNIFORM
    ig_map_source = sources.get(ig_name, np.ones((1, 1)))

    points = [
        np.asarray(ex["fixations"], dtype=np.float64).reshape(-1, 2) for ex in examples
    ]
    truths = [_squeeze_map(ex["fixation_map"]) for ex in examples]
    shapes = [t.shape[:2] for t in truths]
    rng = np.random.default_rng(seed)

    prior_source = sources.get(shuffled_prior) if shuffled_prior else None
    rules = dict(METRIC_MAP_RULES)
    if prior_source is None:
        rules["auc_shuffled"] = NO_PRIOR_RULE
    elif not callable(prior_source) and not np.min(prior_source) > 0:
        # A centre bias fitted without a uniform floor: p / 0 is undefined.
        rules["auc_shuffled"] = ZERO_PRIOR_RULE.format(prior=shuffled_prior)
        prior_source = None
    else:
        rules["auc_shuffled"] = PRIOR_RATIO_RULE.format(prior=shuffled_prior)
    for metric in BLURRED_METRICS:
        rules[metric] = BLURRED_RULE if ground_truth_sigma else NO_BLUR_RULE
    sigmas = set()

    per_image = {name: {m: [] for m in SALIENCY_METRICS} for name in sources}
    per_image_specific = {name: {m: [] for m in SALIENCY_METRICS} for name in sources}
    skipped = []
    for index, example in enumerate(examples):
        binary = saliency.fixation_points_to_map(points[index], shapes[index])
        if not binary.any() or not truths[index].any():
            skipped.append(
                {"index": index, "reason": "no fixations or an all-zero fixation_map"}
            )
            continue
        other = _other_fixations(points, shapes, index, num_other_images, rng)
        ig_reference = _resolve(ig_map_source, example)
        image_seed = seed + index
        sigma = None
        if ground_truth_sigma is not None:
            sigma = float(ground_truth_sigma(shapes[index]))
            sigmas.add(round(sigma, 6))
        prior = None if prior_source is None else _resolve(prior_source, example)
        for name, source in sources.items():
            prediction = (
                pred_maps[index] if source is None else _resolve(source, example)
            )
            values = _image_metrics(
                prediction,
                binary,
                truths[index],
                other,
                ig_reference,
                image_seed,
                ig_normalization,
            )
            for metric, value in values.items():
                per_image[name][metric].append(value)
            specific = _specific_metrics(
                values,
                prediction,
                binary,
                truths[index],
                other,
                prior,
                sigma,
                image_seed,
            )
            for metric, value in specific.items():
                per_image_specific[name][metric].append(value)

    summary = _summarise(per_image)
    result: dict[str, Any] = {
        "num_images": len(examples),
        "num_evaluated": len(examples) - len(skipped),
        "skipped": skipped,
        "ig_baseline": ig_name,
        "ig_normalization": ig_normalization,
        "metrics": summary,
        "per_image": per_image,
    }
    if TRUE_DENSITY in summary and result["num_evaluated"]:
        ig_truth = summary[TRUE_DENSITY]["ig"]["mean"]
        ig_centre = summary[ig_name]["ig"]["mean"] if ig_name in summary else 0.0
        if ig_truth > ig_centre:
            result["explainable_information_gain_share"] = {
                name: baseline_models.explainable_information_gain_share(
                    metrics["ig"]["mean"], ig_centre, ig_truth
                )
                for name, metrics in summary.items()
            }
    result["metric_specific"] = {
        "rules": rules,
        "ground_truth_sigma_px": sorted(sigmas) if ground_truth_sigma else None,
        "metrics": _summarise(per_image_specific),
        "per_image": per_image_specific,
    }
    return result


def _summarise(per_image: Mapping[str, Mapping[str, list]]) -> dict:
    return {
        name: {
            metric: confidence_interval([v for v in values if v is not None])
            for metric, values in metrics.items()
        }
        for name, metrics in per_image.items()
    }


def _specific_metrics(
    one_map: Mapping[str, float | None],
    prediction: np.ndarray,
    binary: np.ndarray,
    truth: np.ndarray,
    other: np.ndarray | None,
    prior: np.ndarray | None,
    sigma: float | None,
    seed: int,
) -> dict[str, float | None]:
    """The metrics on the maps of `METRIC_MAP_RULES`; the density's own scores
    are reused where the rule is the density itself."""
    values = dict(one_map)
    if sigma is not None:
        blurred = saliency.blurred_density(prediction, truth.shape, sigma)
        values["cc"] = saliency.cc(blurred, truth)
        values["kld"] = saliency.kld(blurred, truth)
        values["sim"] = saliency.sim(blurred, truth)
    if prior is not None and other is not None:
        ratio = saliency.log_prior_ratio(prediction, prior)
        values["auc_shuffled"] = saliency.auc_shuffled(ratio, binary, other, seed=seed)
    return values


def _resolve(source: MapSource, example: Mapping[str, Any]) -> np.ndarray:
    return source(example) if callable(source) else source


def _image_metrics(
    prediction: np.ndarray,
    binary: np.ndarray,
    truth: np.ndarray,
    other: np.ndarray | None,
    ig_reference: np.ndarray,
    seed: int,
    ig_normalization: str,
) -> dict[str, float | None]:
    return {
        "auc_judd": saliency.auc_judd(prediction, binary, seed=seed),
        "auc_borji": saliency.auc_borji(prediction, binary, seed=seed),
        "auc_shuffled": (
            None
            if other is None
            else saliency.auc_shuffled(prediction, binary, other, seed=seed)
        ),
        "nss": saliency.nss(prediction, binary),
        "cc": saliency.cc(prediction, truth),
        "kld": saliency.kld(prediction, truth),
        "sim": saliency.sim(prediction, truth),
        "ig": saliency.information_gain(
            prediction, binary, ig_reference, normalization=ig_normalization
        ),
    }


def evaluate_aesthetics(
    y_true: np.ndarray, y_pred: np.ndarray, model_name: str = DEFAULT_MODEL_NAME
) -> dict[str, Any]:
    """Aesthetics metrics of one model: per-image ones with 95% CI, plus SRCC/PLCC.

    Args:
        y_true: `[N, 10]` vote counts or distributions over scores 1..10.
        y_pred: `[N, 10]` predicted distributions.
        model_name: the name of the model's row.

    Returns:
        `{"num_images", "metrics": {model_name: {metric: summary}}}`, where
        accuracy, mean-score MSE and EMD carry `confidence_interval` summaries
        over images and SRCC/PLCC are `{"mean": value, "n": N}` with no CI.
    """
    true_mean = aesthetics.mean_score(y_true)
    pred_mean = aesthetics.mean_score(y_pred)
    threshold = aesthetics.HIGH_QUALITY_THRESHOLD
    correct = ((true_mean >= threshold) == (pred_mean >= threshold)).astype(float)
    n = int(true_mean.size)
    metrics = {
        "accuracy": confidence_interval(correct),
        "srcc": _point(aesthetics.srcc(y_true, y_pred) if n > 1 else None, n),
        "plcc": _point(aesthetics.plcc(y_true, y_pred) if n > 1 else None, n),
        "mean_score_mse": confidence_interval((true_mean - pred_mean) ** 2),
        "emd_r1": confidence_interval(aesthetics.emd(y_true, y_pred, r=1)),
        "emd_r2": confidence_interval(aesthetics.emd(y_true, y_pred, r=2)),
    }
    return {"num_images": n, "metrics": {model_name: metrics}}


def _point(value: float | None, n: int) -> dict:
    return {"mean": value, "ci_low": None, "ci_high": None, "n": n}


def format_markdown_table(result: Mapping[str, Any], digits: int = 3) -> str:
    """Renders `result["metrics"]` as a Markdown table, models as rows.

    Cells read `mean ± half-width of the 95% CI` (or the mean alone, or `—`
    when there is no value); arrows in the header say which way is better. An
    `IG share` column is added when the result has one.

    Args:
        result: the output of `evaluate_saliency_maps` or `evaluate_aesthetics`.
        digits: decimals shown.

    Returns:
        The table, ending in a newline.
    """
    metrics = result["metrics"]
    names = list(next(iter(metrics.values())).keys())
    directions = {**SALIENCY_METRICS, **AESTHETICS_METRICS}
    header = ["model"] + [
        f"{m} {'↑' if directions.get(m, True) else '↓'}" for m in names
    ]
    shares = result.get("explainable_information_gain_share")
    if shares:
        header.append("IG share ↑")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for model, summaries in metrics.items():
        cells = [model] + [_cell(summaries[m], digits) for m in names]
        if shares:
            cells.append(f"{shares[model]:.{digits}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(summary: Mapping[str, Any], digits: int) -> str:
    if summary["mean"] is None:
        return "—"
    if summary["ci_low"] is None:
        return f"{summary['mean']:.{digits}f}"
    half = (summary["ci_high"] - summary["ci_low"]) / 2
    return f"{summary['mean']:.{digits}f} ± {half:.{digits}f}"
