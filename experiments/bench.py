r"""Benchmarks: step overhead, input stall, FLOP efficiency, serving, growth, memory.

Every figure is a ratio against a baseline measured in the same run,
interleaved (A B A B ...), because the development machines are shared and
absolute times drift. Prints a table and writes every number to JSON.

    python experiments/bench.py \
        --trunks=tiny,mobilenet_v2 --input_sizes=96x128,120x160 \
        --batch_size=16 --steps=5 --rounds=4 --output=/tmp/bench.json

Parts (`--parts`, comma-separated; default all but `threads`): `overhead`,
`pipeline`, `flops`, `serving`, `growth`, `memory`, `xla`, `spe`
(steps_per_execution), `balancing` (each `--loss_weightings` method's step
time over fixed weights), `cache` (step time on cached frozen-prefix
features over the step on images, same model; `--frozen_up_to`),
`threads` (one subprocess per thread setting).
See docs/performance.md for the results and what they mean.
"""

from __future__ import annotations

import json
import math
import os
import time

from absl import app, flags, logging

_TRUNKS = flags.DEFINE_list("trunks", ["tiny"], "Trunks to benchmark.")
_INPUT_SIZES = flags.DEFINE_list(
    "input_sizes",
    ["96x128"],
    "HxW per trunk (same order as --trunks), or one size for all.",
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Training batch size.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per block.")
_ROUNDS = flags.DEFINE_integer("rounds", 4, "Interleaved rounds (A B A B ...).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after tracing.")
_PARTS = flags.DEFINE_list(
    "parts",
    [
        "overhead",
        "pipeline",
        "flops",
        "serving",
        "growth",
        "memory",
        "xla",
        "spe",
        "balancing",
        "cache",
    ],
    "Which benchmarks to run: overhead, pipeline, flops, serving, growth, "
    "memory, xla, spe, balancing, cache, threads.",
)
_FROZEN_UP_TO = flags.DEFINE_string(
    "frozen_up_to",
    None,
    "--parts=cache: the tap the trunk is frozen up to (default: the deepest).",
)
_LOSS_WEIGHTINGS = flags.DEFINE_list(
    "loss_weightings",
    ["uncertainty", "dwa", "gradnorm", "pcgrad", "cagrad"],
    "Task-balancing methods whose step time --parts=balancing compares with "
    "fixed weights.",
)
_DATASET = flags.DEFINE_string(
    "dataset", "synthetic_scenes", "TFDS name for the pipeline benchmark."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_CACHE = flags.DEFINE_list(
    "pipeline_cache", ["false", "true"], "make_dataset cache settings to time."
)
_GROWTH_SCALES = flags.DEFINE_list(
    "growth_scales",
    ["0.5", "0.7", "1.0"],
    "Side scales of --input_sizes for the cost-growth fit (3-4 values).",
)
_SERVING_BATCHES = flags.DEFINE_list(
    "serving_batches", ["1", "16"], "Batch sizes for the serving benchmark."
)
_THREADS = flags.DEFINE_list(
    "thread_settings",
    ["default", "2x1", "2x2", "1x1"],
    "intra_op x inter_op settings for --parts=threads ('default' = 0x0).",
)
_OUTPUT = flags.DEFINE_string(
    "output", "/tmp/aesthal_bench.json", "Where to write the JSON results."
)

_ALL_PARTS = (
    "overhead",
    "pipeline",
    "flops",
    "serving",
    "growth",
    "memory",
    "xla",
    "spe",
    "balancing",
    "cache",
    "threads",
)


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise app.UsageError(
            f"input size {text!r} is not HxW (e.g. 96x128)."
        ) from error
    return height, width


def _settings() -> dict:
    """Turns the flags into one checked, typed dict."""
    parts = tuple(_PARTS.value)
    unknown = set(parts) - set(_ALL_PARTS)
    if unknown:
        raise app.UsageError(f"--parts: unknown {sorted(unknown)}; known {_ALL_PARTS}.")
    sizes = [_size(s) for s in _INPUT_SIZES.value]
    if len(sizes) == 1:
        sizes = sizes * len(_TRUNKS.value)
    if len(sizes) != len(_TRUNKS.value):
        raise app.UsageError("--input_sizes needs one size, or one per trunk.")
    threads = []
    for text in _THREADS.value:
        threads.append(None if text == "default" else _size(text))
    return {
        "trunks": list(zip(_TRUNKS.value, sizes, strict=True)),
        "batch_size": _BATCH_SIZE.value,
        "steps": _STEPS.value,
        "rounds": _ROUNDS.value,
        "warmup": _WARMUP.value,
        "parts": parts,
        "cache": [v.lower() in ("true", "1", "yes") for v in _CACHE.value],
        "growth_scales": [float(v) for v in _GROWTH_SCALES.value],
        "serving_batches": [int(v) for v in _SERVING_BATCHES.value],
        "threads": threads,
        "loss_weightings": list(_LOSS_WEIGHTINGS.value),
    }


def _specs(settings: dict, spec_class: type) -> list:
    """One `benchmarks.BenchSpec` per trunk; a bad value is a flag error."""
    try:
        return [
            spec_class(
                trunk,
                size,
                settings["batch_size"],
                settings["steps"],
                rounds=settings["rounds"],
                warmup=settings["warmup"],
            )
            for trunk, size in settings["trunks"]
        ]
    except ValueError as error:  # "BenchSpec.<field> must be ...": name the flag
        field = str(error).split("BenchSpec.", 1)[-1].split(" ", 1)[0]
        flag = {"backbone": "trunks", "input_size": "input_sizes"}.get(field, field)
        raise app.UsageError(f"--{flag}: {error}") from error


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return tuple(max(32, int(round(v * scale / 8)) * 8) for v in size)


def _fmt_ratio(r: dict) -> str:
    return f"{r['ratio']:.3f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    settings = _settings()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import benchmarks as bench  # experiments/benchmarks.py, beside this file

    specs = _specs(settings, bench.BenchSpec)
    results: dict = {"machine": bench.machine_info(), "settings": settings}
    rows: list[tuple[str, str, str, str]] = []
    start = time.perf_counter()
    peak = None
    if "flops" in settings["parts"]:
        peak = bench.matmul_peak()
        results["matmul_peak"] = peak
        rows.append(
            ("matmul peak", "-", f"{peak['flops_per_s'] / 1e9:.1f} GFLOP/s", "-")
        )
    for spec in specs:
        key, size, common = spec.key, spec.input_size, spec.timing
        out = results.setdefault(key, {})
        logging.info("benchmarking %s", spec.describe())
        if "overhead" in settings["parts"]:
            r = bench.step_overhead(*spec.model_args, **common)
            out["step_overhead"] = r
            rows.append(
                (
                    key,
                    "step time: AesthalModel / plain Keras",
                    _fmt_ratio(r),
                    f"{r['aesthal_images_per_s']:.1f} vs "
                    f"{r['plain_keras_images_per_s']:.1f} img/s (goal <= 1.05)",
                )
            )
        if "pipeline" in settings["parts"]:
            for cache in settings["cache"]:
                r = bench.pipeline_stall(
                    _DATASET.value,
                    _DATA_DIR.value,
                    *spec.model_args,
                    cache=cache,
                    **common,
                )
                out[f"pipeline_stall_cache_{cache}"] = r
                rows.append(
                    (
                        key,
                        f"step time: real pipeline / in memory (cache={cache})",
                        _fmt_ratio(r),
                        f"stall {100 * r['stall']:.0f}% (goal <= 5%); pipeline "
                        f"alone {1e3 * r['pipeline_only_s_per_batch']:.0f} ms/batch",
                    )
                )
        if "flops" in settings["parts"]:
            r = bench.compute_efficiency(*spec.model_args, peak=peak, **common)
            out["compute_efficiency"] = r
            rows.append(
                (
                    key,
                    "achieved training FLOP/s / matmul peak",
                    f"{r['efficiency']:.3f}",
                    f"{r['training_flops_per_image'] / 1e9:.3f} GFLOP/img x "
                    f"{r['images_per_s']:.1f} img/s",
                )
            )
        if "serving" in settings["parts"]:
            r = bench.serving(
                spec.backbone,
                size,
                settings["serving_batches"],
                calls=spec.steps,
                rounds=spec.rounds,
            )
            out["serving"] = r
            for b in settings["serving_batches"]:
                s = r[str(b)]
                rows.append(
                    (
                        key,
                        f"serving batch {b}: predict time / SavedModel time",
                        f"{s['ratio']:.2f} ({s['ratio_min']:.2f}-{s['ratio_max']:.2f})",
                        f"SavedModel {s['saved_model_images_per_s']:.1f} vs predict "
                        f"{s['predict_images_per_s']:.1f} img/s",
                    )
                )
        if "growth" in settings["parts"]:
            sizes = [_scaled(size, s) for s in settings["growth_scales"]]
            r = bench.cost_growth(spec.backbone, sizes, spec.batch_size, **common)
            out["cost_growth"] = r
            rel = ", ".join(
                f"{k}: {v:.2f}" for k, v in r["relative_to_smallest"].items()
            )
            rows.append((key, "step time ~ pixels^p", f"p = {r['exponent']:.2f}", rel))
        if "xla" in settings["parts"]:
            r = bench.xla(*spec.model_args, **common)
            out["xla"] = r
            rows.append(
                (
                    key,
                    "step time: jit_compile=True / False",
                    _fmt_ratio(r),
                    f"auto -> {r['auto_resolves_to']}; warm-up "
                    f"{r['xla_warmup_s']:.0f} s vs {r['no_xla_warmup_s']:.0f} s",
                )
            )
        if "spe" in settings["parts"]:
            r = bench.steps_per_execution(*spec.model_args, **common)
            out["steps_per_execution"] = r
            rows.append(
                (
                    key,
                    "step time: steps_per_execution=4 / 1",
                    _fmt_ratio(r),
                    "Python work per step",
                )
            )
        if "balancing" in settings["parts"]:
            r = bench.balancing_overhead(
                *spec.model_args, methods=settings["loss_weightings"], **common
            )
            out["balancing"] = r
            for method, ratio in r["methods"].items():
                rows.append(
                    (
                        key,
                        f"step time: loss_weighting={method} / fixed",
                        _fmt_ratio(ratio),
                        (
                            "gradient-level: one backward pass per task"
                            if method in ("gradnorm", "pcgrad", "cagrad")
                            else "loss-level"
                        ),
                    )
                )
        if "threads" in settings["parts"]:
            r = bench.thread_settings(
                *spec.model_args,
                settings["threads"],
                steps=spec.steps,
                rounds=spec.rounds,
            )
            out["threads"] = r
            rows.append(
                (
                    key,
                    "step time per thread setting / default",
                    ", ".join(
                        f"{k}: {v:.2f}" for k, v in r["ratio_to_default"].items()
                    ),
                    "each in a subprocess",
                )
            )
        if "cache" in settings["parts"]:
            r = bench.cached_features(
                *spec.model_args, frozen_up_to=_FROZEN_UP_TO.value, **common
            )
            out["cached_features"] = r
            rows.append(
                (
                    key,
                    f"step time: cached prefix to {r['frozen_up_to']} / images",
                    _fmt_ratio(r),
                    f"{r['candidate_s'] * 1e3:.0f} vs {r['baseline_s'] * 1e3:.0f} "
                    f"ms/step; {r['feature_bytes_per_example'] / 2**20:.2f} MiB "
                    "of features per example",
                )
            )
        if "memory" in settings["parts"]:
            r = bench.peak_rss(*spec.model_args)
            out["peak_rss"] = r
            rows.append(
                (
                    key,
                    "peak RSS of a training run",
                    f"{r['peak_rss_mib']:.0f} MiB",
                    f"{r['rss_after_import_mib']:.0f} MiB after importing TF",
                )
            )
        _write(results)
    results["seconds"] = time.perf_counter() - start
    _write(results)
    widths = [max(len(r[i]) for r in rows + [_HEADER]) for i in range(4)]
    for row in [_HEADER, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\nGPU: {results['machine']['gpus'] or 'not available'}")
    print(f"wrote {_OUTPUT.value} ({results['seconds']:.0f} s)")


_HEADER = ("model", "measure", "ratio (min-max over rounds)", "detail")


def _write(results: dict) -> None:
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    with open(_OUTPUT.value, "w") as f:
        json.dump(clean(results), f, indent=2, sort_keys=True)


if __name__ == "__main__":
    app.run(main)
