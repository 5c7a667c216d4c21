r"""Runs the "extra data or multi-task?" study and rebuilds its tables and plots.

    python experiments/study.py --output_dir=runs/study              # everything
    python experiments/study.py --output_dir=runs/study --conditions=1,3 --seeds=0
    python experiments/study.py --output_dir=runs/study28 \
        --conditions=1,3,5,7,1n,7n --seeds=0-9                      # issue 28
    python experiments/study.py --output_dir=runs/study --table_only --docs=docs

Each condition is one flagfile in experiments/configs/study/; each (condition,
seed) run is `experiments/run.py` in a subprocess, writing to
`<output_dir>/<condition>/seed<k>/`. A run whose `metrics.json` exists is not
run again, so the script resumes after an interruption (and run.py itself
resumes a half-finished run from its backup). The seed sets both the training
seed and the label seed: conditions share their labelled images seed by seed,
so differences against condition 1 are paired. `--seeds` takes a list and/or
ranges (`0-9`, `0,1,5-7`). Runs go seed-major: every chosen condition of the
first seed, then of the next, so that a run stopped early leaves complete
pairs (conditions 6a-6c last: they need 2 and 3 at every seed).

The tables (`study.md`), a JSON summary and a plot (`study.png`) go to
`--output_dir`. `study.md` opens with issue 28's pre-registered comparisons
(`PREREGISTERED`: paired over seeds, 95% t-interval, the verdict by the rule
stated in docs/experiments.md before the runs). `--docs=docs` writes the table
as `docs/study_table.md` and the plot as `docs/study.png`, and replaces the
block of `docs/experiments.md` between `<!-- begin study_table.md ... -->` and
`<!-- end study_table.md -->` with the same text (likewise `scarcity_table.md`
and `reverse_table.md`), so the docs' tables are this script's output.

Conditions 1n and 7n (issue 28's batch-norm test) are 1 and 7 with the tiny
trunk's batch norm replaced by group norm (`--backbone=tiny_gn`).

The scarcity sweep (issue 13) runs conditions 1, 3, 5 and 7 at several saliency
label counts N, with the aesthetics labels nested around them (the same N images
plus `--extra_aesthetics` others), each N in `<output_dir>/n<N>/`:

    python experiments/study.py --output_dir=runs/scarcity \
        --saliency_labels=50,100,200,400 --conditions=1,3,5,7

and writes `scarcity.md`, `scarcity.json` and `scarcity.png` (the paired ΔCC
against condition 1 at each N, with 95% t-intervals over seeds). The study's
own N (200, with 2,000 extra aesthetics images) is not a folder `n200/`: at
that N the sweep reads and runs the study's runs in `<output_dir>/` itself,
with the study's flagfiles unchanged, so the sweep's N = 200 and the study
are the same runs and cannot disagree (point `--output_dir` at the study's).

Sharing and balancing (issue 13, "the study, extended", part 1): conditions
9a-9f are condition 3 plus one change (soft sharing, cross-stitch, DWA,
GradNorm, PCGrad, CAGrad). They are in the main table, paired against
condition 1 like the others, and `study.md` gains a section pairing them
against condition 3 (same seed, same labelled images):

    python experiments/study.py --output_dir=runs/study --conditions=3,9a,9b,9c,9d,9e,9f

The reverse direction (part 3; ABSNet's claim that saliency helps
aesthetics): conditions R1, R3, R5 and R7 mirror 1, 3, 5 and 7 with the tasks
swapped: aesthetics is scarce (200 labels) and saliency labels lie on those
200 plus 2,000 saliency-only images (nested). R1 aesthetics only; R3
multi-task; R5 as R3 with the saliency labels permuted (`--permute_saliency`);
R7 as R3 with saliency loss weight 0. They are selected like any condition,

    python experiments/study.py --output_dir=runs/study --conditions=R1,R3,R5,R7

and live beside the others in `<output_dir>/R*/seed<k>/`, but stay out of the
main (saliency) table: whenever runs of them exist, any invocation (also
`--table_only`) writes `reverse.md`, `reverse.json` and `reverse.png`
(aesthetics SRCC, PLCC, accuracy and EMD with paired-by-seed Δ against R1);
`--docs` copies the table and plot as `reverse_table.md` and `reverse.png`.
`reverse.md` opens with its pre-registered comparisons (`REVERSE_PREREGISTERED`,
secondary). Without `--conditions`, every condition, 9a-9f, 1n/7n and R*
included, is run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

from absl import app, flags, logging

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/study", "Where the runs go.")
_CONDITIONS = flags.DEFINE_list(
    "conditions", None, "Condition prefixes to run (default: all), e.g. 1,3,6a."
)
_SEEDS = flags.DEFINE_list(
    "seeds", ["0", "1", "2"], "Seeds: a list and/or ranges, e.g. 0,1,2 or 0-9."
)
_TABLE_ONLY = flags.DEFINE_bool("table_only", False, "Only rebuild the table.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_EXTRA_FLAGS = flags.DEFINE_list(
    "extra_flags", [], "Flags added to every run (e.g. --epochs=1 for a smoke run)."
)
_DOCS = flags.DEFINE_string(
    "docs", None, "Also write the table and plot into this folder (e.g. docs/)."
)
_SALIENCY_LABELS = flags.DEFINE_list(
    "saliency_labels",
    None,
    "Scarcity sweep: saliency label counts, e.g. 50,100,200,400 (each in "
    "<output_dir>/n<N>/; default: the study's own 200, in <output_dir>).",
)
_EXTRA_AESTHETICS = flags.DEFINE_integer(
    "extra_aesthetics",
    2000,
    "Scarcity sweep: aesthetics-only images added to the N saliency images.",
)

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "experiments" / "configs" / "study"
# Condition id -> (flagfile stem, label in tables).
CONDITIONS = {
    "1": ("1_saliency_only", "1 saliency only (200 images)"),
    "2": ("2_multitask_same_images", "2 multi-task, same 200 images"),
    "3": ("3_multitask_extra_images", "3 multi-task + 2,000 aesthetics-only images"),
    "4a": ("4a_aesthetics_pretraining", "4a aesthetics pre-training (stage 1)"),
    "4b": ("4b_saliency_finetuning", "4 pre-train on aesthetics, fine-tune saliency"),
    "5": ("5_multitask_permuted_aesthetics", "5 as 3, aesthetics labels permuted"),
    "6a": ("6a_uncertainty_weighting", "6a best of 2/3 + uncertainty weighting"),
    "6b": ("6b_per_group_learning_rates", "6b best of 2/3 + per-group learning rates"),
    "6c": ("6c_side_heads", "6c best of 2/3 + side heads"),
    "7": ("7_extra_images_no_aesthetics_loss", "7 as 3, aesthetics loss weight 0"),
    "8": ("8_saliency_only_small_batches", "8 as 1, batches of 2"),
    "1n": ("1n_saliency_only_group_norm", "1n as 1, group norm in the trunk"),
    "7n": (
        "7n_extra_images_no_aesthetics_loss_group_norm",
        "7n as 7, group norm in the trunk",
    ),
    "9a": ("9a_soft_sharing", "9a as 3, soft sharing"),
    "9b": ("9b_cross_stitch", "9b as 3, cross-stitch"),
    "9c": ("9c_dwa", "9c as 3, DWA"),
    "9d": ("9d_gradnorm", "9d as 3, GradNorm"),
    "9e": ("9e_pcgrad", "9e as 3, PCGrad"),
    "9f": ("9f_cagrad", "9f as 3, CAGrad"),
    "R1": ("R1_aesthetics_only_scarce", "R1 aesthetics only (200 images)"),
    "R3": (
        "R3_multitask_extra_saliency_images",
        "R3 multi-task + 2,000 saliency-only images",
    ),
    "R5": ("R5_multitask_permuted_saliency", "R5 as R3, saliency labels permuted"),
    "R7": ("R7_extra_images_no_saliency_loss", "R7 as R3, saliency loss weight 0"),
}
# Condition 3 plus one change: paired against 3 in their own section.
SHARING_CONDITIONS = ("9a", "9b", "9c", "9d", "9e", "9f")
# The reverse direction: their own table, paired against R1.
REVERSE_CONDITIONS = ("R1", "R3", "R5", "R7")
EVALUATED = [c for c in CONDITIONS if c != "4a" and c not in REVERSE_CONDITIONS]
SALIENCY_METRICS = (
    "auc_judd",
    "auc_borji",
    "auc_shuffled",
    "nss",
    "cc",
    "kld",
    "sim",
    "ig",
)
AESTHETICS_METRICS = ("accuracy", "srcc", "plcc", "emd_r2")
LOWER_IS_BETTER = {"kld", "emd_r2", "mean_score_mse", "emd_r1"}
# The study's own label budgets (common.flags, the flagfiles of 1/3/5/7): the
# scarcity sweep's runs at this N are the study's runs.
STUDY_SALIENCY_LABELS = 200
STUDY_EXTRA_AESTHETICS = 2000


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A pre-registered paired comparison: a signed sum of conditions per seed.

    Attributes:
        name: its name in docs/experiments.md (`"C1"`).
        label: the formula as written there (`"3 − 1"`).
        terms: `(sign, condition)` pairs; seed s's value is
            `sum(sign * metric(condition, s))` over the terms, for the seeds
            where every term's run exists.
        question: what it asks, as stated before the runs.
    """

    name: str
    label: str
    terms: tuple[tuple[int, str], ...]
    question: str


# Issue 28, stated in docs/experiments.md before the runs ("Issue 28: the
# comparisons, stated before the runs"): five comparisons on test CC (NSS and
# IG secondary), each verdict by `verdict` with X = PREREGISTERED_MARGIN.
# "C5 part" (7n − 1n) is reported as a component of C5, not a sixth comparison.
PREREGISTERED = (
    Comparison(
        "C1",
        "3 − 1",
        ((1, "3"), (-1, "1")),
        "does the multi-task setting with the 2,000 extra images help?",
    ),
    Comparison(
        "C2",
        "7 − 1",
        ((1, "7"), (-1, "1")),
        "do the extra images help without the aesthetics loss?",
    ),
    Comparison(
        "C3",
        "3 − 5",
        ((1, "3"), (-1, "5")),
        "do the true aesthetics labels matter, against permuted ones?",
    ),
    Comparison(
        "C4",
        "3 − 7",
        ((1, "3"), (-1, "7")),
        "does the aesthetics loss add to the extra images?",
    ),
    Comparison(
        "C5",
        "(7 − 1) − (7n − 1n)",
        ((1, "7"), (-1, "1"), (-1, "7n"), (1, "1n")),
        "batch-norm test: do the extra images help through batch statistics?",
    ),
    Comparison(
        "C5 part",
        "7n − 1n",
        ((1, "7n"), (-1, "1n")),
        "do the extra images help with group norm (no batch statistics)?",
    ),
)
PREREGISTERED_METRICS = ("saliency", "cc", ("nss", "ig"))  # task, primary, others
PREREGISTERED_MARGIN = 0.02  # X, the smallest effect of interest in CC
# The reverse direction (secondary): the mirror comparisons on test SRCC.
REVERSE_PREREGISTERED = (
    Comparison(
        "R-C1",
        "R3 − R1",
        ((1, "R3"), (-1, "R1")),
        "does multi-task with 2,000 extra saliency images help aesthetics?",
    ),
    Comparison(
        "R-C2",
        "R7 − R1",
        ((1, "R7"), (-1, "R1")),
        "do the extra images help without the saliency loss?",
    ),
    Comparison(
        "R-C3",
        "R3 − R5",
        ((1, "R3"), (-1, "R5")),
        "do the true saliency labels matter, against permuted ones?",
    ),
    Comparison(
        "R-C4",
        "R3 − R7",
        ((1, "R3"), (-1, "R7")),
        "does the saliency loss add to the extra images?",
    ),
)
REVERSE_METRICS = ("aesthetics", "srcc", ("plcc", "emd_r2"))
REVERSE_MARGIN = 0.05  # X in SRCC


def parse_seeds(items: list[str]) -> list[str]:
    """`["0-2", "5"]` -> `["0", "1", "2", "5"]`: seeds and inclusive ranges.

    Raises:
        app.UsageError: an item is neither a seed (an int >= 0) nor a range
            `a-b` with a <= b, or a seed appears twice.
    """
    seeds = []
    for item in items:
        first, _, last = item.strip().partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise app.UsageError(
                f"--seeds: {item!r} is neither a seed nor a range like 0-9."
            ) from None
        if low < 0 or high < low:
            raise app.UsageError(
                f"--seeds: {item!r} must be a seed >= 0 or a range a-b with a <= b."
            )
        seeds += [str(s) for s in range(low, high + 1)]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1}, key=int)
    if repeated:
        raise app.UsageError(f"--seeds: seeds {repeated} are given twice.")
    return seeds


def _root() -> pathlib.Path:
    return pathlib.Path(_OUTPUT_DIR.value)


def _run_dir(
    condition: str, seed: str, root: pathlib.Path | None = None
) -> pathlib.Path:
    return (root or _root()) / CONDITIONS[condition][0] / f"seed{seed}"


def _done(condition: str, seed: str, root: pathlib.Path | None = None) -> bool:
    marker = "model.keras" if condition == "4a" else "metrics.json"
    return (_run_dir(condition, seed, root) / marker).exists()


def _final_val_saliency_loss(condition: str, seeds: list[str]) -> float | None:
    values = []
    for seed in seeds:
        path = _run_dir(condition, seed) / "history.json"
        if not path.exists():
            return None
        values.append(json.loads(path.read_text())["val_saliency_loss"][-1])
    return sum(values) / len(values)


def _best_of_2_and_3(seeds: list[str]) -> str:
    """'2' or '3': the lower mean final validation saliency loss (not test)."""
    two, three = (_final_val_saliency_loss(c, seeds) for c in ("2", "3"))
    if two is None or three is None:
        raise app.UsageError("conditions 6a-6c need conditions 2 and 3 first.")
    best = "2" if two < three else "3"
    logging.info(
        "best of 2/3 on validation: %s (val saliency loss %.4f vs %.4f)",
        best,
        two,
        three,
    )
    return best


def _run(
    condition: str,
    seed: str,
    seeds: list[str],
    root: pathlib.Path | None = None,
    label_flags: tuple[str, ...] = (),
) -> None:
    out = _run_dir(condition, seed, root)
    command = [
        sys.executable,
        str(REPO / "experiments" / "run.py"),
        f"--flagfile={CONFIGS / (CONDITIONS[condition][0] + '.flags')}",
        f"--output_dir={out}",
        f"--seed={seed}",
        f"--label_seed={seed}",
    ]
    if _DATA_DIR.value:
        command.append(f"--data_dir={_DATA_DIR.value}")
    if condition == "4b":
        command.append(f"--init_from={_run_dir('4a', seed) / 'model.keras'}")
    if condition.startswith("6") and _best_of_2_and_3(seeds) == "2":
        command.append("--aesthetics_labels=200")
    command += [*label_flags, *_EXTRA_FLAGS.value]
    logging.warning("running %s seed %s -> %s", condition, seed, out)
    start = time.perf_counter()
    log = out.parent / f"seed{seed}.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        result = subprocess.run(
            command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        raise RuntimeError(f"{condition} seed {seed} failed; see {log}")
    logging.warning(
        "%s seed %s took %.0f s", condition, seed, time.perf_counter() - start
    )


# ----------------------------------------------------------------- the table
def _t_interval(values: list[float]) -> tuple[float, float | None]:
    """Mean and half-width of the 95% t-interval (None for fewer than 2).

    `aesthal.stats.confidence_interval`, as a half-width.
    """
    from aesthal.stats import confidence_interval

    interval = confidence_interval(values, level=0.95)
    if interval["ci_high"] is None:
        return interval["mean"], None
    return interval["mean"], interval["ci_high"] - interval["mean"]


def _fmt(mean: float, half: float | None, digits: int = 3) -> str:
    return (
        f"{mean:.{digits}f}"
        if half is None
        else f"{mean:.{digits}f} ± {half:.{digits}f}"
    )


def _load(
    condition: str, seeds: list[str], root: pathlib.Path | None = None
) -> dict[str, dict] | None:
    runs = {}
    for seed in seeds:
        path = _run_dir(condition, seed, root) / "metrics.json"
        if path.exists():
            runs[seed] = json.loads(path.read_text())
    return runs or None


def _paired(
    values: dict[str, float], base: dict[str, dict] | None, task: str, name: str
) -> dict | None:
    """Mean ± 95% half-width of `values[seed] - base's value` over shared seeds."""
    if not base:
        return None
    paired = []
    for seed, value in values.items():
        metric = base.get(seed, {}).get(task, {}).get("metrics", {}).get("model", {})
        if metric.get(name, {}).get("mean") is not None:
            paired.append(value - metric[name]["mean"])
    if not paired:
        return None
    mean, half = _t_interval(paired)
    return {"mean": mean, "ci_half": half, "n": len(paired)}


def _summarise_condition(
    condition: str,
    runs: dict[str, dict],
    root: pathlib.Path | None,
    comparisons: dict[str, tuple[dict | None, tuple[str, ...]]],
) -> dict:
    """One condition's entry; `comparisons`: key -> (base runs, tasks paired)."""
    entry: dict = {"label": CONDITIONS[condition][1], "seeds": sorted(runs)}
    config = _run_dir(condition, sorted(runs)[0], root) / "config.json"
    config = json.loads(config.read_text())
    trained = [
        task
        for task in config["data"]["tasks"]
        if config["train"]["loss_weights"].get(task, 1.0) > 0
    ]
    for task, names in (
        ("saliency", SALIENCY_METRICS),
        ("aesthetics", AESTHETICS_METRICS),
    ):
        if task not in trained:
            continue
        for name in names:
            values = {
                s: r[task]["metrics"]["model"][name]["mean"]
                for s, r in runs.items()
                if task in r and r[task]["metrics"]["model"][name]["mean"] is not None
            }
            if not values:
                continue
            mean, half = _t_interval(list(values.values()))
            item = {"per_seed": values, "mean": mean, "ci_half": half}
            for key, (base, tasks) in comparisons.items():
                diff = _paired(values, base, task, name) if task in tasks else None
                if diff is not None:
                    item[key] = diff
            entry[f"{task}/{name}"] = item
    any_run = next(iter(runs.values()))
    entry["baselines"] = {
        name: {m: v["mean"] for m, v in metrics.items()}
        for name, metrics in any_run.get("saliency", {}).get("metrics", {}).items()
        if name != "model"
    }
    times = [
        json.loads((_run_dir(condition, s, root) / "train_time.json").read_text())[
            "seconds"
        ]
        for s in runs
        if (_run_dir(condition, s, root) / "train_time.json").exists()
    ]
    entry["train_seconds_mean"] = sum(times) / len(times) if times else None
    return entry


# ------------------------------------------- the pre-registered comparisons
def _model_metric(run: dict | None, task: str, name: str) -> float | None:
    """A run's test value of `task/name` (mean over the images), or None."""
    value = (run or {}).get(task, {}).get("metrics", {}).get("model", {})
    return value.get(name, {}).get("mean")


def verdict(low: float | None, high: float | None, margin: float, n: int) -> str:
    """The pre-registered reading of a 95% interval `[low, high]`.

    The rule stated in docs/experiments.md before issue 28's runs, with `margin`
    the smallest effect of interest X: "> 0" if low > 0 ("> 0, below X" when
    also high < X); "< 0" if high < 0 ("< 0, above −X" when also low > −X);
    "no effect beyond ±X" if −X < low and high < X; otherwise "not resolved".

    Args:
        low, high: the interval's bounds (None for fewer than 2 seeds).
        margin: X, > 0.
        n: the seeds behind the interval.
    """
    if n == 0:
        return "no runs"
    if low is None or high is None:
        return "n < 2: no interval"
    x = f"{margin:g}"
    if low > 0:
        return f"> 0, below {x}" if high < margin else "> 0"
    if high < 0:
        return f"< 0, above −{x}" if low > -margin else "< 0"
    if -margin < low and high < margin:
        return f"no effect beyond ±{x}"
    return "not resolved"


def compare(
    comparisons: tuple[Comparison, ...],
    seeds: list[str],
    root: pathlib.Path | None,
    metrics: tuple[str, str, tuple[str, ...]],
    margin: float,
) -> list[dict]:
    """Each comparison's per-seed values, mean, 95% t-interval and verdict.

    Args:
        comparisons: e.g. `PREREGISTERED`.
        seeds: the seeds to read.
        root: the folder holding `<condition>/seed<k>/`; None = `--output_dir`.
        metrics: `(task, primary, secondary)` metric names.
        margin: X of `verdict`, in the primary metric's units.

    Returns:
        One dict per comparison (JSON types): `name`, `label`, `question`,
        `metric`, `margin`, `seeds` (those with every term's run), `per_seed`,
        `n`, `mean`, `ci_low`, `ci_high` (None below 2 seeds), `verdict`, and
        `secondary`: `{metric: {"mean", "ci_half", "n"}}`.
    """
    from aesthal.stats import confidence_interval

    task, primary, secondary = metrics
    loaded = {}
    for comparison in comparisons:
        for _, condition in comparison.terms:
            if condition not in loaded:
                loaded[condition] = _load(condition, seeds, root) or {}

    def per_seed(comparison, name):
        values = {}
        for seed in seeds:
            parts = [
                _model_metric(loaded[c].get(seed), task, name)
                for _, c in comparison.terms
            ]
            if all(part is not None for part in parts):
                values[seed] = sum(
                    sign * part
                    for (sign, _), part in zip(comparison.terms, parts, strict=True)
                )
        return values

    results = []
    for comparison in comparisons:
        values = per_seed(comparison, primary)
        interval = confidence_interval(list(values.values()))
        others = {}
        for name in secondary:
            other = per_seed(comparison, name)
            if other:
                mean, half = _t_interval(list(other.values()))
                others[name] = {"mean": mean, "ci_half": half, "n": len(other)}
        results.append(
            {
                "name": comparison.name,
                "label": comparison.label,
                "question": comparison.question,
                "metric": f"{task}/{primary}",
                "margin": margin,
                "seeds": list(values),
                "per_seed": values,
                "n": len(values),
                "mean": interval["mean"],
                "ci_low": interval["ci_low"],
                "ci_high": interval["ci_high"],
                "verdict": verdict(
                    interval["ci_low"], interval["ci_high"], margin, len(values)
                ),
                "secondary": others,
            }
        )
    return results


def comparisons_markdown(results: list[dict], secondary: tuple[str, ...]) -> str:
    """The comparisons table: one row per comparison, in the stated order."""
    if not results:
        return ""
    metric = results[0]["metric"].split("/")[1]
    x = f"{results[0]['margin']:g}"
    arrow = lambda m: "↓" if m in LOWER_IS_BETTER else "↑"  # noqa: E731
    lines = [
        'Pre-registered comparisons (docs/experiments.md, "Issue 28: the '
        "comparisons, stated before the runs\"): per seed, the comparison's "
        f"test {metric.upper()} (each seed's value the mean over the 500 test "
        "images); mean over the n seeds that have every run it needs, 95% "
        f"t-interval, and the verdict by the stated rule with X = {x}. "
        + ", ".join(m.upper() for m in secondary)
        + ": secondary, mean ± 95% half-width, no verdict.",
        "",
        f"| # | comparison | question | n | Δ{metric} {arrow(metric)} "
        f"| 95% interval | verdict (X = {x}) | "
        + " | ".join(f"Δ{m} {arrow(m)}" for m in secondary)
        + " |",
        "|---" * (7 + len(secondary)) + "|",
    ]
    for result in results:
        if result["mean"] is None:
            estimate = interval = "—"
        else:
            estimate = f"{result['mean']:+.3f}"
            interval = (
                "—"
                if result["ci_low"] is None
                else f"[{result['ci_low']:+.3f}, {result['ci_high']:+.3f}]"
            )
        others = []
        for name in secondary:
            other = result["secondary"].get(name)
            others.append(
                "—"
                if other is None
                else (
                    f"{other['mean']:+.3f}"
                    if other["ci_half"] is None
                    else f"{other['mean']:+.3f} ± {other['ci_half']:.3f}"
                )
            )
        lines.append(
            f"| {result['name']} | {result['label']} | {result['question']} | "
            f"{result['n']} | {estimate} | {interval} | {result['verdict']} | "
            + " | ".join(others)
            + " |"
        )
    return "\n".join(lines) + "\n"


def summarise(seeds: list[str], root: pathlib.Path | None = None) -> dict:
    """Per condition: per-seed means, mean ± CI over seeds, paired diffs vs 1.

    Saliency metrics are paired against condition 1 (`diff_vs_1`); conditions
    9a-9f are also paired against condition 3 on both tasks (`diff_vs_3`).
    `comparisons` holds issue 28's pre-registered comparisons (`compare`).
    The reverse direction's conditions are left to `reverse_summary`.

    Args:
        seeds: the seeds to read.
        root: the folder holding `<condition>/seed<k>/`; default `--output_dir`.
    """
    summary: dict = {
        "seeds": seeds,
        "comparisons": compare(
            PREREGISTERED, seeds, root, PREREGISTERED_METRICS, PREREGISTERED_MARGIN
        ),
        "conditions": {},
    }
    base = _load("1", seeds, root)
    three = _load("3", seeds, root)
    for condition in EVALUATED:
        runs = _load(condition, seeds, root)
        if runs is None:
            continue
        comparisons = {}
        if condition != "1":
            comparisons["diff_vs_1"] = (base, ("saliency",))
        if condition in SHARING_CONDITIONS:
            comparisons["diff_vs_3"] = (three, ("saliency", "aesthetics"))
        summary["conditions"][condition] = _summarise_condition(
            condition, runs, root, comparisons
        )
    return summary


def _means_rows(
    conditions: dict, task: str, metrics: tuple[str, ...], seconds: bool = False
) -> list[str]:
    """A table of `task`'s means ± intervals (header, one row per condition),
    with the mean training seconds per run when `seconds`."""
    arrow = lambda m: "↓" if m in LOWER_IS_BETTER else "↑"  # noqa: E731
    extra = " training s/run |" if seconds else ""
    lines = [
        "| condition | "
        + " | ".join(f"{m} {arrow(m)}" for m in metrics)
        + " |"
        + extra,
        "|---" * (len(metrics) + 1 + int(seconds)) + "|",
    ]
    for entry in conditions.values():
        cells = [
            (
                _fmt(entry[f"{task}/{m}"]["mean"], entry[f"{task}/{m}"]["ci_half"])
                if f"{task}/{m}" in entry
                else "—"
            )
            for m in metrics
        ]
        if seconds:
            value = entry.get("train_seconds_mean")
            cells.append("—" if value is None else f"{value:.0f}")
        lines.append(f"| {entry['label']} | " + " | ".join(cells) + " |")
    return lines


def _comparisons_lines(summary: dict, secondary: tuple[str, ...]) -> list[str]:
    """The comparisons table and a blank line, if any comparison has a run."""
    results = summary.get("comparisons", [])
    if not any(result["n"] for result in results):
        return []
    return [comparisons_markdown(results, secondary).rstrip("\n"), ""]


def markdown(summary: dict) -> str:
    """The study's tables: the pre-registered comparisons (when their runs
    exist), metrics per condition, then differences vs condition 1."""
    conditions = summary["conditions"]
    lines = [
        *_comparisons_lines(summary, PREREGISTERED_METRICS[2]),
        f"Mean ± 95% t-interval over seeds {', '.join(summary['seeds'])} "
        "(each seed's value is the mean over the 500 test images).",
        "",
        *_means_rows(conditions, "saliency", SALIENCY_METRICS),
    ]
    if conditions:
        baselines = next(iter(conditions.values()))["baselines"]
        for name, values in baselines.items():
            cells = [
                f"{values[m]:.3f}" if values.get(m) is not None else "—"
                for m in SALIENCY_METRICS
            ]
            lines.append(f"| *{name} (baseline)* | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paired difference against condition 1 (same seed, same labelled images), "
        "mean ± 95% t-interval over seeds; positive = better except for KLD:",
        "",
        "| condition | " + " | ".join(f"Δ{m}" for m in SALIENCY_METRICS) + " |",
        "|---" * (len(SALIENCY_METRICS) + 1) + "|",
    ]
    for condition, entry in conditions.items():
        if condition == "1":
            continue
        cells = []
        for m in SALIENCY_METRICS:
            diff = entry.get(f"saliency/{m}", {}).get("diff_vs_1")
            cells.append("—" if diff is None else _fmt(diff["mean"], diff["ci_half"]))
        lines.append(f"| {entry['label']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Aesthetics (conditions that train it):",
        "",
        *_means_rows(conditions, "aesthetics", AESTHETICS_METRICS, seconds=True),
    ]
    sharing = [c for c in SHARING_CONDITIONS if c in conditions]
    if sharing:
        lines += ["", *_sharing_markdown(conditions, sharing)]
    return "\n".join(lines) + "\n"


def _diff_table(
    entries: list[dict], task: str, metrics: tuple[str, ...], key: str
) -> list[str]:
    """Rows `| label | n | Δm ... |` of the paired differences `key`."""
    lines = [
        "| condition | n | " + " | ".join(f"Δ{m}" for m in metrics) + " |",
        "|---" * (len(metrics) + 2) + "|",
    ]
    for entry in entries:
        diffs = [entry.get(f"{task}/{m}", {}).get(key) for m in metrics]
        count = max((d["n"] for d in diffs if d), default=0)
        cells = ["—" if d is None else _fmt(d["mean"], d["ci_half"]) for d in diffs]
        lines.append(f"| {entry['label']} | {count} | " + " | ".join(cells) + " |")
    return lines


def _sharing_markdown(conditions: dict, sharing: list[str]) -> list[str]:
    """The section pairing conditions 9a-9f against condition 3."""
    entries = [conditions[c] for c in sharing]
    return [
        "### Sharing and balancing, on condition 3's setting",
        "",
        "Paired difference against condition 3 (same seed, same labelled "
        "images, same data and steps; one change each), mean ± 95% t-interval "
        "over seeds (n = seeds with both runs); positive = better except for "
        "KLD and EMD. Saliency:",
        "",
        *_diff_table(entries, "saliency", SALIENCY_METRICS, "diff_vs_3"),
        "",
        "Aesthetics:",
        "",
        *_diff_table(entries, "aesthetics", AESTHETICS_METRICS, "diff_vs_3"),
    ]


def _bar_panels(summary, path, task, metrics, order, titles, reference) -> None:
    """Bar chart (PNG, matplotlib): one panel per `task/metric`, bars ± 95%
    CI, coloured by the condition's place in `order`; `reference(metric, key)`
    gives `(value, label)` of a dashed line, or None."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    from matplotlib import pyplot as plt

    entries = list(summary["conditions"].items())
    if not entries:
        return
    colours = plt.get_cmap("tab10").colors
    figure, axes = plt.subplots(
        1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False
    )
    for axis, metric in zip(axes[0], metrics, strict=True):
        key = f"{task}/{metric}"
        values = [
            (c, e[key]["mean"], e[key]["ci_half"] or 0.0)
            for c, e in entries
            if key in e
        ]
        axis.set_title(titles(metric))
        if not values:
            axis.set_axis_off()
            continue
        names = [c for c, _, _ in values]
        axis.bar(
            names,
            [v for _, v, _ in values],
            yerr=[h for _, _, h in values],
            capsize=3,
            color=[colours[order.index(c) % len(colours)] for c in names],
        )
        axis.axhline(0.0, color="black", linewidth=0.8)
        line = reference(metric, key)
        if line is not None:
            axis.axhline(
                line[0], color="black", linestyle="--", linewidth=1, label=line[1]
            )
            axis.legend(loc="lower right", fontsize="small")
        axis.set_xlabel("condition")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot(summary: dict, path: pathlib.Path, metrics=("cc", "nss", "ig")) -> None:
    """Bar chart (PNG, matplotlib): one panel per metric, bars ± 95% CI.

    The dashed line in each panel is the centre-bias baseline.
    """
    entries = list(summary["conditions"].values())

    def centre(metric, key):
        value = entries[0]["baselines"].get("centre_bias", {}).get(metric)
        return None if value is None else (value, "centre bias")

    _bar_panels(summary, path, "saliency", metrics, EVALUATED, str.upper, centre)


# ------------------------------------------------------------------ docs/
DOCS_PAGE = "experiments.md"


def _markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- begin {name}: written by experiments/study.py --docs -->",
        f"<!-- end {name} -->",
    )


def docs_block(page: str, name: str) -> str | None:
    """The text between `name`'s markers in a docs page, or None if none.

    Raises:
        ValueError: the begin marker is there twice, or without its end marker.
    """
    begin, end = _markers(name)
    if begin not in page:
        return None
    if page.count(begin) > 1:
        raise ValueError(f"{begin!r} is there twice; keep one block.")
    rest = page.split(begin, 1)[1]
    if end not in rest:
        raise ValueError(f"{begin!r} has no {end!r} after it; put it back.")
    return rest.split(end, 1)[0].removeprefix("\n\n").removesuffix("\n")


def write_docs(docs: pathlib.Path, name: str, text: str) -> None:
    """Writes `docs/<name>` and, where `docs/experiments.md` has `name`'s
    markers, the same text between them (the docs' copy of the table).

    Raises:
        ValueError: `docs/experiments.md` has the begin marker but not the end
            (named with the file).
    """
    docs.mkdir(parents=True, exist_ok=True)
    (docs / name).write_text(text)
    page = docs / DOCS_PAGE
    if not page.exists():
        return
    content = page.read_text()
    try:
        old = docs_block(content, name)
    except ValueError as error:
        raise ValueError(f"{page}: {error}") from None
    if old is None:
        logging.warning("%s has no block for %s; only the file written", page, name)
        return
    begin, end = _markers(name)
    head, rest = content.split(begin, 1)
    tail = rest.split(end, 1)[1]
    page.write_text(f"{head}{begin}\n\n{text}\n{end}{tail}")


# ---------------------------------------------------- the reverse direction
def reverse_summary(seeds: list[str], root: pathlib.Path | None = None) -> dict:
    """Conditions R1-R7: aesthetics metrics, paired by seed against R1.

    Args:
        seeds: the seeds to read.
        root: the folder holding `<condition>/seed<k>/`; default `--output_dir`.

    Returns:
        `{"seeds", "comparisons", "conditions": {id: entry}}` as `summarise`,
        with `diff_vs_R1` on the aesthetics metrics of R3, R5 and R7 and the
        comparisons of `REVERSE_PREREGISTERED`.
    """
    summary: dict = {
        "seeds": seeds,
        "comparisons": compare(
            REVERSE_PREREGISTERED, seeds, root, REVERSE_METRICS, REVERSE_MARGIN
        ),
        "conditions": {},
    }
    base = _load("R1", seeds, root)
    for condition in REVERSE_CONDITIONS:
        runs = _load(condition, seeds, root)
        if runs is None:
            continue
        comparisons = (
            {} if condition == "R1" else {"diff_vs_R1": (base, ("aesthetics",))}
        )
        entry = _summarise_condition(condition, runs, root, comparisons)
        for name in list(entry):  # saliency is not the question here
            if name.startswith("saliency/"):
                del entry[name]
        summary["conditions"][condition] = entry
    return summary


def reverse_markdown(summary: dict) -> str:
    """The reverse direction's tables: aesthetics per condition, then Δ vs R1."""
    conditions = summary["conditions"]
    lines = [
        *_comparisons_lines(summary, REVERSE_METRICS[2]),
        "Reverse direction (does saliency help aesthetics?): aesthetics on 200 "
        "labelled images; mean ± 95% t-interval over seeds "
        f"{', '.join(summary['seeds'])} (each seed's value is over the 500 test "
        "images).",
        "",
        *_means_rows(conditions, "aesthetics", AESTHETICS_METRICS, seconds=True),
    ]
    others = [e for c, e in conditions.items() if c != "R1"]
    if others:
        lines += [
            "",
            "Paired difference against R1 (aesthetics only; same seed, same 200 "
            "aesthetics images), mean ± 95% t-interval over seeds (n = seeds "
            "with both runs); positive = better except for EMD:",
            "",
            *_diff_table(others, "aesthetics", AESTHETICS_METRICS, "diff_vs_R1"),
        ]
    return "\n".join(lines) + "\n"


def reverse_plot(
    summary: dict, path: pathlib.Path, metrics=("srcc", "plcc", "accuracy", "emd_r2")
) -> None:
    """Bar chart (PNG): one panel per aesthetics metric, bars ± 95% CI.

    The dashed line in each panel is R1's mean (aesthetics only).
    """

    def r1(metric, key):
        base = summary["conditions"].get("R1", {}).get(key)
        return None if base is None else (base["mean"], "R1")

    def title(metric):
        return f"{metric.upper()} {'↓' if metric in LOWER_IS_BETTER else '↑'}"

    _bar_panels(summary, path, "aesthetics", metrics, REVERSE_CONDITIONS, title, r1)


def _write_reverse(seeds: list[str], out: pathlib.Path) -> str | None:
    """`reverse.{md,json,png}` into `out` (and `--docs`) when R runs exist."""
    summary = reverse_summary(seeds)
    if not summary["conditions"]:
        return None
    (out / "reverse.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = reverse_markdown(summary)
    (out / "reverse.md").write_text(table)
    reverse_plot(summary, out / "reverse.png")
    if _DOCS.value:
        docs = pathlib.Path(_DOCS.value)
        write_docs(docs, "reverse_table.md", table)
        if (out / "reverse.png").exists():
            shutil.copy(out / "reverse.png", docs / "reverse.png")
    return table


# ------------------------------------------------------- the scarcity sweep
SWEEP_CONDITIONS = ("3", "5", "7")  # compared with condition 1 at each N


def sweep_dir(
    root: pathlib.Path, count: int, extra_aesthetics: int = STUDY_EXTRA_AESTHETICS
) -> pathlib.Path:
    """Where the sweep's runs at `count` saliency labels live.

    At the study's own budgets (200 saliency labels, 2,000 extra aesthetics
    images) that is `root` itself, the study's layout: the sweep's N = 200 is
    the study's runs. Any other N (or extra) is `root / f"n{N}"`.
    """
    own = (count, extra_aesthetics) == (STUDY_SALIENCY_LABELS, STUDY_EXTRA_AESTHETICS)
    return root if own else root / f"n{count}"


def scarcity_summary(
    counts: list[int],
    seeds: list[str],
    root: pathlib.Path,
    extra_aesthetics: int = STUDY_EXTRA_AESTHETICS,
) -> dict:
    """Paired ΔCC (and ΔNSS, ΔIG) against condition 1 at each label count.

    Args:
        counts: saliency label counts N, each read from `sweep_dir(root, N)`.
        seeds: the seeds to read.
        root: the sweep's output folder.
        extra_aesthetics: aesthetics-only images beside the N.

    Returns:
        `{"seeds", "counts", "by_count": {N: summarise(...)}}` (JSON types).
    """
    return {
        "seeds": seeds,
        "counts": counts,
        "by_count": {
            str(n): summarise(seeds, sweep_dir(root, n, extra_aesthetics))
            for n in counts
        },
    }


def scarcity_markdown(sweep: dict, metrics=("cc", "nss", "ig")) -> str:
    """One row per (N, condition): condition 1's value and each Δ vs 1."""
    lines = [
        "Paired difference against condition 1 (saliency only) at each saliency "
        f"label count N, mean ± 95% t-interval over seeds {', '.join(sweep['seeds'])} "
        "(n = seeds with both runs); each seed's value is the mean over the 500 "
        "test images.",
        "",
        "| N | condition | n | "
        + " | ".join(f"{m} of 1" for m in metrics)
        + " | "
        + " | ".join(f"Δ{m}" for m in metrics)
        + " |",
        "|---" * (3 + 2 * len(metrics)) + "|",
    ]
    for n in sweep["counts"]:
        conditions = sweep["by_count"][str(n)]["conditions"]
        base = conditions.get("1")
        for condition in SWEEP_CONDITIONS:
            entry = conditions.get(condition)
            if entry is None:
                continue
            base_cells = [
                (
                    _fmt(
                        base[f"saliency/{m}"]["mean"], base[f"saliency/{m}"]["ci_half"]
                    )
                    if base and f"saliency/{m}" in base
                    else "—"
                )
                for m in metrics
            ]
            diffs = [entry.get(f"saliency/{m}", {}).get("diff_vs_1") for m in metrics]
            count = max((d["n"] for d in diffs if d), default=0)
            diff_cells = [
                "—" if d is None else _fmt(d["mean"], d["ci_half"]) for d in diffs
            ]
            lines.append(
                f"| {n} | {condition} | {count} | "
                + " | ".join(base_cells + diff_cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


def scarcity_plot(sweep: dict, path: pathlib.Path, metric: str = "cc") -> None:
    """ΔCC vs condition 1 against the label count (log x), ± 95% CI, per condition."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    colours = plt.get_cmap("tab10").colors
    plotted = False
    for offset, condition in enumerate(SWEEP_CONDITIONS):
        points = []
        for n in sweep["counts"]:
            entry = sweep["by_count"][str(n)]["conditions"].get(condition, {})
            diff = entry.get(f"saliency/{metric}", {}).get("diff_vs_1")
            if diff is not None:
                points.append((n * (1.0 + 0.04 * (offset - 1)), diff))
        if not points:
            continue
        plotted = True
        axis.errorbar(
            [x for x, _ in points],
            [d["mean"] for _, d in points],
            yerr=[d["ci_half"] or 0.0 for _, d in points],
            marker="o",
            capsize=3,
            color=colours[EVALUATED.index(condition) % len(colours)],
            label=CONDITIONS[condition][1].replace("200 images", "N images"),
        )
    if not plotted:
        plt.close(figure)
        return
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_xscale("log")
    axis.minorticks_off()  # only the label counts as ticks
    axis.set_xticks(sweep["counts"], [str(n) for n in sweep["counts"]])
    axis.set_xlabel("saliency labels N")
    axis.set_ylabel(f"Δ{metric.upper()} vs condition 1 (saliency only)")
    axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _sweep(counts: list[int], seeds: list[str], chosen: list[str]) -> None:
    root = _root()
    extra = _EXTRA_AESTHETICS.value
    if (root / f"n{STUDY_SALIENCY_LABELS}").exists() and extra == (
        STUDY_EXTRA_AESTHETICS
    ):
        logging.warning(
            "%s is not read: the sweep's N = %d is the study's runs in %s "
            "(move its condition folders there to use them)",
            root / f"n{STUDY_SALIENCY_LABELS}",
            STUDY_SALIENCY_LABELS,
            root,
        )
    if not _TABLE_ONLY.value:
        for seed in seeds:  # one seed at every N first: early results span N
            for n in counts:
                where = sweep_dir(root, n, extra)
                # At the study's own N: exactly the study's run (its flagfile).
                label_flags = (
                    ()
                    if where == root
                    else (
                        f"--saliency_labels={n}",
                        f"--aesthetics_labels={n + extra}",
                    )
                )
                for condition in [c for c in CONDITIONS if c in chosen]:
                    if not _done(condition, seed, where):
                        _run(condition, seed, seeds, where, label_flags)
    sweep = scarcity_summary(counts, seeds, root, extra)
    root.mkdir(parents=True, exist_ok=True)
    (root / "scarcity.json").write_text(json.dumps(sweep, indent=2) + "\n")
    table = scarcity_markdown(sweep)
    (root / "scarcity.md").write_text(table)
    scarcity_plot(sweep, root / "scarcity.png")
    if _DOCS.value:
        docs = pathlib.Path(_DOCS.value)
        write_docs(docs, "scarcity_table.md", table)
        (docs / "scarcity.json").write_text(json.dumps(sweep, indent=2) + "\n")
        if (root / "scarcity.png").exists():
            shutil.copy(root / "scarcity.png", docs / "scarcity.png")
    print(table)


def run_order(chosen: list[str], seeds: list[str]) -> list[tuple[str, str]]:
    """`(condition, seed)` in the order they run: seed-major (every condition
    of a seed, in `CONDITIONS` order, then the next seed), so that a run
    stopped early leaves complete pairs; 4a comes before 4b within a seed, and
    6a-6c come last, seed by seed (their best of 2/3 needs 2 and 3 at every
    seed)."""
    order = [c for c in CONDITIONS if c in chosen]
    late = [c for c in order if c.startswith("6")]
    early = [c for c in order if c not in late]
    return [(c, s) for s in seeds for c in early] + [
        (c, s) for s in seeds for c in late
    ]


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    seeds = parse_seeds(list(_SEEDS.value))
    default = ["1", *SWEEP_CONDITIONS] if _SALIENCY_LABELS.value else list(CONDITIONS)
    chosen = _CONDITIONS.value or default
    unknown = [c for c in chosen if c not in CONDITIONS]
    if unknown:
        raise app.UsageError(
            f"--conditions: unknown {unknown}; known {list(CONDITIONS)}"
        )
    if _SALIENCY_LABELS.value:
        try:
            counts = [int(n) for n in _SALIENCY_LABELS.value]
        except ValueError as error:
            raise app.UsageError(f"--saliency_labels: {error}") from None
        if min(counts) < 1:
            raise app.UsageError("--saliency_labels: counts must be >= 1.")
        swept = set(SWEEP_CONDITIONS) | {"1"}
        if not set(chosen) <= swept:
            raise app.UsageError(
                f"--saliency_labels sweeps conditions {sorted(swept)}; "
                f"got --conditions={','.join(chosen)}."
            )
        _sweep(counts, seeds, chosen)
        return
    if "4b" in chosen and "4a" not in chosen and not all(_done("4a", s) for s in seeds):
        chosen = ["4a", *chosen]
    if not _TABLE_ONLY.value:
        for condition, seed in run_order(chosen, seeds):
            if not _done(condition, seed):
                _run(condition, seed, seeds)
    summary = summarise(seeds)
    out = pathlib.Path(_OUTPUT_DIR.value)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = markdown(summary)
    (out / "study.md").write_text(table)
    plot(summary, out / "study.png")
    if _DOCS.value:
        docs = pathlib.Path(_DOCS.value)
        write_docs(docs, "study_table.md", table)
        if (out / "study.png").exists():
            shutil.copy(out / "study.png", docs / "study.png")
    print(table)
    reverse = _write_reverse(seeds, out)
    if reverse:
        print(reverse)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
