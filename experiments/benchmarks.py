"""Benchmarks of training, input pipeline, serving and memory, as ratios.

`experiments/bench.py` is the command-line entry; this module (beside it, not
in the library) holds the measurements so that tests can run them on tiny
sizes. Every comparison times a
candidate and a baseline *in the same process, interleaved* (A B A B ... in
blocks of a few steps) and reports the ratio of their median per-step times:
on a shared 2-core machine absolute times drift by tens of percent between
runs, while a ratio of interleaved measurements is stable to a few percent.

Measurements (each returns a plain dict of JSON types):

- `step_overhead`: `AesthalModel` with three grouped Adam optimizers vs the
  same layers as a plain functional `keras.Model` compiled with one Adam and
  the same per-task losses (`model.compile(loss=...)`, masked means).
- `pipeline_stall`: a training step fed by `aesthal.data.make_dataset` vs fed
  by the same batches held in memory.
- `compute_efficiency`: counted training FLOPs per image times images/s,
  divided by this machine's measured float32 matmul rate in TF.
- `serving`: the exported SavedModel's `serving_default` vs `model.predict`,
  images/s at several batch sizes.
- `cost_growth`: step time at several input sizes and the fitted exponent
  `p` of `time ~ pixels**p`.
- `xla`: `jit_compile=True` vs False (step time ratio; compile time apart).
- `balancing_overhead`: step time of each `compile(loss_weighting=...)`
  method over fixed weights (the gradient-level ones take one backward pass
  per task; docs/balancing.md).
- `peak_rss`: peak resident memory of a short training run, in a fresh
  subprocess per (trunk, size).
- `thread_settings`: step time per (intra-op, inter-op) thread pool setting,
  each in a subprocess (TF fixes its pools at start-up).

Step times here exclude tracing and compilation: each model is warmed up
(`fit` for `warmup` steps) before timing, and timed steps call
`model.train_function` on a persistent iterator, which is exactly what `fit`
does per step (minus callbacks).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from aesthal import losses as losses_lib
from aesthal.config import GROUPS, LOSS_WEIGHTINGS, TAP_NAMES, ModelConfig
from aesthal.models import AesthalModel
from aesthal.training import Trainer

# Forward FLOPs per output element, per MAC: 2 (one multiply, one add).
_FLOPS_PER_MAC = 2
# Training = forward + backward; the backward of a conv/dense layer is two
# products of the forward's size (input gradient, weight gradient).
TRAINING_FLOPS_FACTOR = 3


# --------------------------------------------------------------- threading
def configure_threads(intra_op: int = 0, inter_op: int = 0) -> dict[str, int]:
    """Sets TensorFlow's thread pools; call before any TF op runs.

    Measured on the 2-core development machine (`experiments/bench.py
    --parts=threads`, docs/performance.md): no setting of (intra, inter) in
    {(2, 1), (2, 2), (1, 1)} beat TF's default (0, 0) by more than the noise
    (0.96-1.03x the default's step time), so the defaults here are TF's own
    and the experiment runner need not call this. It exists for machines where
    a setting does win (measure with `--parts=threads`).

    Args:
        intra_op: threads used inside one op (e.g. a convolution), >= 0;
            0 = TF decides (all cores).
        inter_op: threads running independent ops concurrently, >= 0;
            0 = TF decides.

    Returns:
        `{"intra_op": ..., "inter_op": ...}` as now in effect.

    Raises:
        ValueError: a negative count.
        RuntimeError: TF has already started its pools with other sizes (the
            settings cannot change after the first op has run).
    """
    if intra_op < 0 or inter_op < 0:
        raise ValueError(
            f"configure_threads: intra_op={intra_op}, inter_op={inter_op} must "
            "be >= 0."
        )
    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(intra_op)
        threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as error:
        current = (
            threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads(),
        )
        if current != (intra_op, inter_op):
            raise RuntimeError(
                "configure_threads must run before TensorFlow executes its first "
                f"op; the pools are already (intra_op, inter_op) = {current}."
            ) from error
    return {
        "intra_op": threading.get_intra_op_parallelism_threads(),
        "inter_op": threading.get_inter_op_parallelism_threads(),
    }


# ------------------------------------------------------------------ machine
def machine_info() -> dict[str, Any]:
    """CPU model, core count, RAM, TF/Keras versions and accelerators."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram_gib = None
    try:
        with open("/proc/meminfo") as f:
            ram_gib = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "ram_gib": ram_gib,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "load_average": list(os.getloadavg()),
    }


def matmul_peak(n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """This machine's float32 matmul rate in TF (FLOP/s), best of `repeats`.

    Args:
        n: the matrices are `[n, n]` float32.
        repeats: timed products (after one warm-up); the fastest counts, as
            the least disturbed by other jobs.

    Returns:
        `{"n": n, "flops_per_s": best, "median_flops_per_s": median}`.
    """
    a = tf.random.stateless_normal([n, n], seed=[1, 2])
    b = tf.random.stateless_normal([n, n], seed=[3, 4])
    product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    product(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        times.append(time.perf_counter() - start)
    flops = 2.0 * n**3
    return {
        "n": n,
        "flops_per_s": flops / min(times),
        "median_flops_per_s": flops / statistics.median(times),
    }


# -------------------------------------------------------------------- FLOPs
def _num(shape, name: str) -> list[int]:
    dims = list(shape)
    if any(d is None for d in dims):
        raise ValueError(f"count_flops: op {name} has an unknown shape {shape}.")
    return [int(d) for d in dims]


def count_graph_flops(graph: tf.Graph) -> dict[str, int]:
    """Counts the multiply-add FLOPs of Conv2D, depthwise conv and MatMul ops.

    The counted formula: `2 * MACs`, with, per op,
    Conv2D: `prod(output) * kh * kw * c_in`;
    DepthwiseConv2dNative: `prod(output) * kh * kw`;
    MatMul / BatchMatMul: `prod(output) * k` (the contracted size).
    Every other op (BN, activations, resizes, softmax) is left out: on a CNN
    they are a few percent of the FLOPs (the TF profiler counts them too).

    Args:
        graph: a graph with fully static shapes (batch included).

    Returns:
        `{op_type: FLOPs}` plus `"total"`.
    """
    counts: dict[str, int] = {}
    for op in graph.get_operations():
        kind = op.type
        if kind == "Conv2D":
            out = _num(op.outputs[0].shape, op.name)
            kh, kw, c_in, _ = _num(op.inputs[1].shape, op.name)
            macs = int(np.prod(out)) * kh * kw * c_in
        elif kind == "DepthwiseConv2dNative":
            out = _num(op.outputs[0].shape, op.name)
            kh, kw, _, _ = _num(op.inputs[1].shape, op.name)
            macs = int(np.prod(out)) * kh * kw
        elif kind in ("MatMul", "BatchMatMulV2", "BatchMatMulV3"):
            out = _num(op.outputs[0].shape, op.name)
            a = _num(op.inputs[0].shape, op.name)
            transpose_a = op.get_attr("transpose_a" if kind == "MatMul" else "adj_x")
            k = a[-2] if transpose_a else a[-1]
            macs = int(np.prod(out)) * k
            kind = "MatMul"
        else:
            continue
        counts[kind] = counts.get(kind, 0) + _FLOPS_PER_MAC * macs
    counts["total"] = sum(counts.values())
    return counts


def _forward_function(model: keras.Model, input_shape: Sequence[int]):
    spec = tf.TensorSpec([1, *input_shape], tf.float32)
    return tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)


def forward_flops(model: keras.Model, input_shape: Sequence[int]) -> dict[str, int]:
    """Counted forward FLOPs of `model` on one image (`count_graph_flops`).

    Args:
        model: any Keras model taking float32 `[B, *input_shape]`.
        input_shape: one example's shape, e.g. `(H, W, 3)`.

    Returns:
        `{op_type: FLOPs}` and `"total"`, for batch 1.
    """
    return count_graph_flops(_forward_function(model, input_shape).graph)


def profiler_flops(model: keras.Model, input_shape: Sequence[int]) -> int:
    """Forward FLOPs of one image from the TF profiler on the frozen graph.

    Counts every op the profiler has a FLOP rule for (convolutions, matmuls,
    bias adds, element-wise ops), so it is a little above `forward_flops`.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(_forward_function(model, input_shape))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph=frozen.graph, options=options)
    return int(profile.total_float_ops)


# ------------------------------------------------------------------- models
def build_aesthal(
    backbone: str,
    input_size: tuple[int, int],
    seed: int = 0,
    jit_compile: bool | str = False,
    steps_per_execution: int = 1,
    loss_weighting: str = "fixed",
) -> Trainer:
    """A `Trainer` of an `AesthalModel`, compiled with three Adams (defaults:
    fixed weights, KLD); its network is `.network`."""
    keras.utils.set_random_seed(seed)
    network = AesthalModel(ModelConfig(backbone=backbone, input_size=input_size))
    model = Trainer(network)
    model.compile(
        optimizers={g: keras.optimizers.Adam(1e-4) for g in GROUPS},
        loss_weighting=loss_weighting,
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


class _PerExampleLoss(keras.losses.Loss):
    """A per-example `aesthal.losses` function, masked mean over the batch."""

    def __init__(self, fn, name: str):
        super().__init__(name=name, reduction="mean_with_sample_weight")
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def build_plain_keras(
    backbone: str,
    input_size: tuple[int, int],
    seed: int = 0,
    jit_compile: bool | str = False,
) -> keras.Model:
    """The same network as a plain functional model, one Adam, `compile(loss=...)`.

    Layers come from a fresh `AesthalModel` (same config, same seed, so the
    same initial weights); outputs are `{"saliency": log-density [B, H, W, 1],
    "aesthetics": [B, 10]}`. Losses: per-example KLD on the log-density and
    squared EMD, each reduced as a mean over examples whose sample weight is 1
    (`"mean_with_sample_weight"`), summed with weight 1: the same total as
    `AesthalModel`'s fixed weighting.
    """
    keras.utils.set_random_seed(seed)
    source = AesthalModel(ModelConfig(backbone=backbone, input_size=input_size))
    images = keras.Input((*input_size, 3), name="images")
    features = source.backbone(images)
    outputs = {
        "saliency": source.saliency_head(features),
        "aesthetics": source.aesthetics_head(features),
    }
    model = keras.Model(images, outputs, name="plain_keras")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss={
            "saliency": _PerExampleLoss(losses_lib.kld, "kld"),
            "aesthetics": _PerExampleLoss(losses_lib.squared_emd, "emd"),
        },
        jit_compile=jit_compile,
    )
    return model


def random_batches(
    input_size: tuple[int, int], batch_size: int, count: int = 4, seed: int = 0
) -> list[tuple]:
    """`count` in-memory batches in the `make_dataset` format, random values.

    Images are uniform 0..255, saliency targets positive and summing to 1,
    aesthetics targets are vote counts; every example is labelled for both
    tasks except that the last example of each batch lacks aesthetics.
    """
    rng = np.random.default_rng(seed)
    height, width = input_size
    batches = []
    for _ in range(count):
        images = rng.uniform(0, 255, (batch_size, height, width, 3)).astype("float32")
        maps = rng.uniform(0.1, 1.0, (batch_size, height, width, 1)).astype("float32")
        maps /= maps.sum(axis=(1, 2, 3), keepdims=True)
        votes = rng.integers(1, 30, (batch_size, 10)).astype("float32")
        weights = {
            "saliency": np.ones(batch_size, "float32"),
            "aesthetics": np.ones(batch_size, "float32"),
        }
        weights["aesthetics"][-1] = 0.0
        votes[-1] = 0.0
        batches.append((images, {"saliency": maps, "aesthetics": votes}, weights))
    return batches


def in_memory_dataset(batches: Sequence[tuple]) -> tf.data.Dataset:
    """Repeats the given batches forever from memory (static batch shape)."""
    stacked = tf.nest.map_structure(lambda *xs: np.stack(xs), *batches)
    return tf.data.Dataset.from_tensor_slices(stacked).repeat().prefetch(len(batches))


# ------------------------------------------------------------------- timing
def _sync(logs) -> None:
    value = logs["loss"] if isinstance(logs, Mapping) and "loss" in logs else logs
    np.asarray(tf.nest.flatten(value)[0])


class _Runner:
    """Times training steps of one compiled model on one dataset."""

    def __init__(
        self,
        model: keras.Model,
        dataset: tf.data.Dataset,
        warmup: int,
        skip_batches: int = 0,
    ):
        self.model = model
        trace_start = time.perf_counter()
        model.fit(
            dataset,
            epochs=1,
            steps_per_epoch=max(1, warmup),
            verbose=0,
            shuffle=False,
        )
        self.warmup_s = time.perf_counter() - trace_start
        self.iterator = iter(dataset)
        for _ in range(skip_batches):  # e.g. to fill a cache before timing
            next(self.iterator)
        _sync(model.train_function(self.iterator))
        self.steps_per_call = max(1, int(getattr(model, "steps_per_execution", 1)))

    def block(self, steps: int) -> float:
        """Runs about `steps` training steps; returns seconds per step."""
        calls = max(1, steps // self.steps_per_call)
        start = time.perf_counter()
        logs = None
        for _ in range(calls):
            logs = self.model.train_function(self.iterator)
        _sync(logs)
        return (time.perf_counter() - start) / (calls * self.steps_per_call)


def interleaved(
    timers: Mapping[str, Callable[[int], float]], steps: int, rounds: int
) -> dict[str, list[float]]:
    """Runs `timers[name](steps)` round-robin (A B A B ...) `rounds` times.

    One extra first round is run and discarded (first calls after another
    model was built can re-trace: `keras.utils.set_random_seed` changes the
    graph-level seed, which is part of `tf.function`'s cache key).
    """
    for timer in timers.values():
        timer(1)
    out: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            out[name].append(timer(steps))
    return out


@dataclasses.dataclass(frozen=True)
class BenchSpec:
    """One timed setup: which model, what it trains on, how it is timed.

    `bench.py` builds one per `--trunks` entry and `scaling_bench.py` one per
    run; the measurements below still take the values as arguments, which
    `model_args` and `timing` hand over.

    Attributes:
        backbone: Trunk name (`ModelConfig.backbone`), e.g. "tiny".
        input_size: `(height, width)` of the training images, positive ints.
        batch_size: Images per training step, >= 1.
        steps: Timed steps per block, >= 1.
        rounds: Interleaved rounds (A B A B ...), >= 1.
        warmup: Untimed steps after tracing, >= 0 (0 still runs the one
            tracing step).

    Raises:
        ValueError: A field is out of range; the message names the field.
    """

    backbone: str
    input_size: tuple[int, int]
    batch_size: int
    steps: int
    rounds: int = 1
    warmup: int = 2

    def __post_init__(self):
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ValueError(
                f"BenchSpec.backbone must be a trunk name, got {self.backbone!r}."
            )
        size = tuple(self.input_size)
        if len(size) != 2 or not all(_is_int(v) and v >= 1 for v in size):
            raise ValueError(
                "BenchSpec.input_size must be (height, width), two positive ints, "
                f"got {self.input_size!r}."
            )
        object.__setattr__(self, "input_size", (int(size[0]), int(size[1])))
        for name, least in (("batch_size", 1), ("steps", 1), ("rounds", 1)):
            value = getattr(self, name)
            if not _is_int(value) or value < least:
                raise ValueError(
                    f"BenchSpec.{name} must be a positive int, got {value!r}."
                )
        if not _is_int(self.warmup) or self.warmup < 0:
            raise ValueError(
                f"BenchSpec.warmup must be an int >= 0, got {self.warmup!r}."
            )

    @property
    def key(self) -> str:
        """`backbone@HxW`, the name of this setup in `bench.py`'s JSON and table."""
        return f"{self.backbone}@{self.input_size[0]}x{self.input_size[1]}"

    @property
    def model_args(self) -> tuple[str, tuple[int, int], int]:
        """`(backbone, input_size, batch_size)`, the measurements' first arguments."""
        return self.backbone, self.input_size, self.batch_size

    @property
    def timing(self) -> dict[str, int]:
        """`{"steps", "rounds", "warmup"}`, the measurements' keyword arguments."""
        return {"steps": self.steps, "rounds": self.rounds, "warmup": self.warmup}

    def describe(self) -> str:
        """One line, e.g. `tiny@96x128, batch 16: 4 rounds x 5 steps, 2 warm-up`."""
        return (
            f"{self.key}, batch {self.batch_size}: {self.rounds} rounds x "
            f"{self.steps} steps, {self.warmup} warm-up"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _ratio_summary(candidate: list[float], baseline: list[float]) -> dict[str, Any]:
    per_round = [c / b for c, b in zip(candidate, baseline, strict=True)]
    return {
        "candidate_s": statistics.median(candidate),
        "baseline_s": statistics.median(baseline),
        "ratio": statistics.median(candidate) / statistics.median(baseline),
        "ratio_per_round": per_round,
        "ratio_min": min(per_round),
        "ratio_max": max(per_round),
    }


def step_overhead(
    backbone: str,
    input_size: tuple[int, int],
    batch_size: int,
    steps: int = 5,
    rounds: int = 4,
    warmup: int = 2,
) -> dict[str, Any]:
    """Step time of `AesthalModel` (3 grouped Adams) over plain Keras (1 Adam).

    Both train on the same in-memory batches. Returns the ratio (goal <= 1.05)
    and each model's seconds per step and images/s.
    """
    ds = in_memory_dataset(random_batches(input_size, batch_size))
    models = {
        "aesthal": build_aesthal(backbone, input_size),
        "plain_keras": build_plain_keras(backbone, input_size),
    }
    runners = {k: _Runner(m, ds, warmup) for k, m in models.items()}
    times = interleaved({k: r.block for k, r in runners.items()}, steps, rounds)
    out = _ratio_summary(times["aesthal"], times["plain_keras"])
    out.update(
        {
            "backbone": backbone,
            "input_size": list(input_size),
            "batch_size": batch_size,
            "aesthal_images_per_s": batch_size / out["candidate_s"],
            "plain_keras_images_per_s": batch_size / out["baseline_s"],
            "goal": 1.05,
        }
    )
    return out


def pipeline_stall(
    dataset: str,
    data_dir: str | None,
    backbone: str,
    input_size: tuple[int, int],
    batch_size: int,
    steps: int = 5,
    rounds: int = 4,
    warmup: int = 2,
    cache: bool = False,
    shuffle_buffer: int = 256,
) -> dict[str, Any]:
    """Step time fed by `make_dataset` over step time fed from memory.

    One model; two iterators: the real pipeline (TFDS read, PNG decode,
    resize, flips, masks, batch, prefetch) and `in_memory_dataset` of
    `2 * steps` batches taken from that same pipeline. With `cache=True` (the
    experiment runner's default) one pass over the split runs first, so the
    steady state (shuffle, flip, batch from memory) is timed.

    Returns:
        `stall = ratio - 1` (goal <= 0.05), times, and the batches/s the
        pipeline alone delivers (no model) for reference.
    """
    import aesthal.datasets  # noqa: F401  (registers the TFDS builders)
    from aesthal import data as data_lib

    builder = tfds.builder(dataset, data_dir=data_dir)
    builder.download_and_prepare()
    # With a cache, time the steady state: one pass fills it first.
    skip = builder.info.splits["train"].num_examples // batch_size + 1 if cache else 0
    spec = data_lib.SourceSpec(dataset, split="train", data_dir=data_dir)
    real = data_lib.make_dataset(
        spec,
        image_size=input_size,
        batch_size=batch_size,
        training=True,
        cache=cache,
        shuffle_buffer=shuffle_buffer,
    )
    # The pipeline alone: batches per second once the shuffle buffer is full.
    it = iter(real)
    for _ in range(skip + 1):
        next(it)
    count = 2 * steps
    start = time.perf_counter()
    held = [tf.nest.map_structure(np.asarray, next(it)) for _ in range(count)]
    pipeline_only_s = (time.perf_counter() - start) / count
    memory = in_memory_dataset(held)
    model = build_aesthal(backbone, input_size)
    real_runner = _Runner(model, real, warmup, skip_batches=skip)
    memory_runner = _Runner(model, memory, 0)
    times = interleaved(
        {"real": real_runner.block, "memory": memory_runner.block}, steps, rounds
    )
    out = _ratio_summary(times["real"], times["memory"])
    out.update(
        {
            "dataset": dataset,
            "cache": bool(cache),
            "backbone": backbone,
            "input_size": list(input_size),
            "batch_size": batch_size,
            "stall": out["ratio"] - 1.0,
            "pipeline_only_s_per_batch": pipeline_only_s,
            "goal": 0.05,
        }
    )
    return out


def compute_efficiency(
    backbone: str,
    input_size: tuple[int, int],
    batch_size: int,
    steps: int = 5,
    rounds: int = 3,
    warmup: int = 2,
    peak: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Achieved training FLOP/s over the measured matmul peak.

    `achieved = 3 * forward_flops(one image) * images/s`; the peak is
    measured between timing blocks (interleaved) and the best rate counts.
    """
    model = build_aesthal(backbone, input_size)
    flops = forward_flops(model, (*input_size, 3))
    try:
        prof = profiler_flops(model, (*input_size, 3))
    except Exception as error:  # noqa: BLE001  (reported, not fatal)
        prof = f"profiler failed: {error}"
    runner = _Runner(
        model, in_memory_dataset(random_batches(input_size, batch_size)), warmup
    )
    step_s, peaks = [], []
    for _ in range(rounds):
        step_s.append(runner.block(steps))
        peaks.append(matmul_peak(repeats=3)["flops_per_s"])
    if peak is not None:
        peaks.append(peak["flops_per_s"])
    train_flops = TRAINING_FLOPS_FACTOR * flops["total"]
    images_per_s = batch_size / statistics.median(step_s)
    achieved = train_flops * images_per_s
    return {
        "backbone": backbone,
        "input_size": list(input_size),
        "batch_size": batch_size,
        "forward_flops_per_image": flops,
        "profiler_forward_flops_per_image": prof,
        "training_flops_per_image": train_flops,
        "images_per_s": images_per_s,
        "achieved_flops_per_s": achieved,
        "peak_flops_per_s": max(peaks),
        "efficiency": achieved / max(peaks),
    }


def serving(
    backbone: str,
    input_size: tuple[int, int],
    batch_sizes: Sequence[int] = (1, 16),
    calls: int = 5,
    rounds: int = 4,
) -> dict[str, Any]:
    """Images/s of the exported SavedModel vs `model.predict`, per batch size.

    The SavedModel gets uint8 images at the model's size (it still resizes
    and renormalises, as in serving); `predict` gets the same images as
    float32. Returns `{batch: {"saved_model_images_per_s", ...,
    "ratio"}}` where ratio = predict time / SavedModel time (> 1: SavedModel
    faster).
    """
    from aesthal.export import export_saved_model

    model = build_aesthal(backbone, input_size)
    out: dict[str, Any] = {"backbone": backbone, "input_size": list(input_size)}
    with tempfile.TemporaryDirectory() as folder:
        path = export_saved_model(model.network, os.path.join(folder, "saved_model"))
        loaded = tf.saved_model.load(path)
        serve = loaded.signatures["serving_default"]
        rng = np.random.default_rng(0)
        for batch in batch_sizes:
            images = rng.integers(0, 256, (batch, *input_size, 3), dtype=np.uint8)
            as_float = images.astype("float32")
            uint8_tensor = tf.constant(images)

            def time_saved(n, uint8_tensor=uint8_tensor):
                start = time.perf_counter()
                for _ in range(n):
                    result = serve(images=uint8_tensor)
                np.asarray(result["aesthetics"])
                return (time.perf_counter() - start) / n

            def time_predict(n, as_float=as_float, batch=batch):
                start = time.perf_counter()
                for _ in range(n):
                    model.predict(as_float, batch_size=batch, verbose=0)
                return (time.perf_counter() - start) / n

            time_saved(1)
            time_predict(1)
            times = interleaved(
                {"saved_model": time_saved, "predict": time_predict}, calls, rounds
            )
            summary = _ratio_summary(times["predict"], times["saved_model"])
            out[str(batch)] = {
                "saved_model_images_per_s": batch / summary["baseline_s"],
                "predict_images_per_s": batch / summary["candidate_s"],
                "ratio": summary["ratio"],
                "ratio_min": summary["ratio_min"],
                "ratio_max": summary["ratio_max"],
            }
    return out


def fit_exponent(pixels: Sequence[float], seconds: Sequence[float]) -> float:
    """Least-squares slope `p` of `log(seconds) = p * log(pixels) + c`."""
    if len(pixels) < 2:
        raise ValueError("fit_exponent needs at least two sizes.")
    slope, _ = np.polyfit(np.log(pixels), np.log(seconds), 1)
    return float(slope)


def cost_growth(
    backbone: str,
    sizes: Sequence[tuple[int, int]],
    batch_size: int,
    steps: int = 4,
    rounds: int = 3,
    warmup: int = 2,
) -> dict[str, Any]:
    """Step time at several input sizes (round-robin) and its exponent in pixels."""
    models = {f"{h}x{w}": build_aesthal(backbone, (h, w)) for h, w in sizes}
    runners = {
        f"{h}x{w}": _Runner(
            models[f"{h}x{w}"],
            in_memory_dataset(random_batches((h, w), batch_size)),
            warmup,
        )
        for h, w in sizes
    }
    times = interleaved({k: r.block for k, r in runners.items()}, steps, rounds)
    medians = {k: statistics.median(v) for k, v in times.items()}
    pixels = [h * w for h, w in sizes]
    return {
        "backbone": backbone,
        "batch_size": batch_size,
        "sizes": [list(s) for s in sizes],
        "step_s": medians,
        "relative_to_smallest": {
            k: v / medians[f"{sizes[0][0]}x{sizes[0][1]}"] for k, v in medians.items()
        },
        "exponent": fit_exponent(pixels, list(medians.values())),
    }


def xla(
    backbone: str,
    input_size: tuple[int, int],
    batch_size: int,
    steps: int = 4,
    rounds: int = 3,
    warmup: int = 2,
) -> dict[str, Any]:
    """Step time with `jit_compile=True` over `False`, and the auto choice."""
    ds = in_memory_dataset(random_batches(input_size, batch_size))
    auto = build_aesthal(backbone, input_size, jit_compile="auto")
    models = [build_aesthal(backbone, input_size, jit_compile=j) for j in (True, False)]
    on, off = (_Runner(m, ds, warmup) for m in models)
    times = interleaved({"on": on.block, "off": off.block}, steps, rounds)
    out = _ratio_summary(times["on"], times["off"])
    out.update(
        {
            "backbone": backbone,
            "input_size": list(input_size),
            "batch_size": batch_size,
            "auto_resolves_to": bool(auto.jit_compile),
            "xla_warmup_s": on.warmup_s,
            "no_xla_warmup_s": off.warmup_s,
        }
    )
    return out


def balancing_overhead(
    backbone: str,
    input_size: tuple[int, int],
    batch_size: int,
    methods: Sequence[str] = tuple(m for m in LOSS_WEIGHTINGS if m != "fixed"),
    steps: int = 4,
    rounds: int = 3,
    warmup: int = 2,
) -> dict[str, Any]:
    """Step time of each task-balancing method over fixed weights.

    One model per method (same seed, same in-memory batches), timed
    round-robin with fixed weights. The gradient-level methods (GradNorm,
    PCGrad, CAGrad) run one backward pass per task plus their combination;
    DWA and uncertainty weighting change only the loss.

    Returns:
        `{"methods": {method: ratio summary (see `_ratio_summary`)}, ...}`.
    """
    unknown = set(methods) - set(LOSS_WEIGHTINGS)
    if unknown:
        raise ValueError(
            f"balancing_overhead: unknown methods {sorted(unknown)}; known "
            f"{LOSS_WEIGHTINGS}."
        )
    ds = in_memory_dataset(random_batches(input_size, batch_size))
    names = ["fixed", *(m for m in methods if m != "fixed")]
    runners = {
        name: _Runner(
            build_aesthal(backbone, input_size, loss_weighting=name), ds, warmup
        )
        for name in names
    }
    times = interleaved({k: r.block for k, r in runners.items()}, steps, rounds)
    return {
        "backbone": backbone,
        "input_size": list(input_size),
        "batch_size": batch_size,
        "fixed_s": statistics.median(times["fixed"]),
        "methods": {
            name: _ratio_summary(times[name], times["fixed"]) for name in names[1:]
        },
    }


def cached_features(
    backbone: str,
    input_size: tuple[int, int],
    batch_size: int,
    frozen_up_to: str | None = None,
    steps: int = 4,
    rounds: int = 3,
    warmup: int = 2,
) -> dict[str, Any]:
    """Step time on cached prefix features over the step on images, same model.

    Two instances of one `ModelConfig` (same seed): a DeepGaze II readout
    (16-32-2) over the two deepest taps, the trunk frozen up to
    `frozen_up_to` (default: the deepest tap, i.e. whole). One trains on
    in-memory image batches, the other on the frozen prefix's float16
    features of the same batches (`AesthalModel.prefix_features`, what
    `aesthal.training.feature_cache.cached_training_dataset` yields), timed
    round-robin.

    Returns:
        The ratio summary (`_ratio_summary`: cached / uncached seconds per
        step), the feature bytes per example and the settings.
    """
    tap = frozen_up_to or TAP_NAMES[backbone][-1]
    config = ModelConfig(
        backbone=backbone,
        input_size=input_size,
        saliency_head="readout",
        frozen_up_to=tap,
    )
    batches = random_batches(input_size, batch_size)
    models = {}
    for name in ("uncached", "cached"):
        keras.utils.set_random_seed(0)
        models[name] = Trainer(AesthalModel(config))
        models[name].compile(
            optimizers={g: keras.optimizers.Adam(1e-4) for g in GROUPS}
        )
    cached = models["cached"].network
    feature_batches = [
        (
            {
                t: np.asarray(v).astype(np.float16)
                for t, v in cached.prefix_features(images).items()
            },
            targets,
            weights,
        )
        for images, targets, weights in batches
    ]
    datasets = {
        "uncached": in_memory_dataset(batches),
        "cached": in_memory_dataset(feature_batches),
    }
    runners = {k: _Runner(models[k], datasets[k], warmup) for k in models}
    times = interleaved({k: r.block for k, r in runners.items()}, steps, rounds)
    out = _ratio_summary(times["cached"], times["uncached"])
    out.update(
        {
            "backbone": backbone,
            "input_size": list(input_size),
            "batch_size": batch_size,
            "frozen_up_to": tap,
            "cached_taps": list(cached.cached_taps),
            "feature_bytes_per_example": int(
                sum(v[0].nbytes for v in feature_batches[0][0].values())
            ),
        }
    )
    return out


def steps_per_execution(
    backbone: str,
    input_size: tuple[int, int],
    batch_size: int,
    value: int = 4,
    steps: int = 8,
    rounds: int = 3,
    warmup: int = 2,
) -> dict[str, Any]:
    """Step time with `steps_per_execution=value` over 1 (Python work per step)."""
    ds = in_memory_dataset(random_batches(input_size, batch_size))
    models = [
        build_aesthal(backbone, input_size, steps_per_execution=n) for n in (value, 1)
    ]
    many, one = (_Runner(m, ds, warmup) for m in models)
    times = interleaved({"many": many.block, "one": one.block}, steps, rounds)
    out = _ratio_summary(times["many"], times["one"])
    out.update({"backbone": backbone, "steps_per_execution": value})
    return out


# ---------------------------------------------------------- subprocess runs
# The child process of `peak_rss` and `thread_settings`: a script beside this one.
_CHILD = pathlib.Path(__file__).with_name("benchmark_child.py")


def _run_child(args: Mapping[str, Any], timeout: float = 600) -> dict[str, Any]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, str(_CHILD), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(
        f"benchmark subprocess {dict(args)} failed (exit {proc.returncode}):\n"
        f"{proc.stderr[-3000:]}"
    )


def peak_rss(
    backbone: str,
    input_size: tuple[int, int],
    batch_size: int,
    steps: int = 3,
    warmup: int = 1,
) -> dict[str, Any]:
    """Peak resident memory (MiB) of a short training run in a fresh process.

    Returns `peak_rss_mib` (`ru_maxrss` of the child at the end: imports,
    model build, tracing, `warmup + steps` steps) and `rss_after_import_mib`
    (the resident size right after importing TensorFlow and aesthal).
    """
    spec = BenchSpec(backbone, input_size, batch_size, steps, rounds=1, warmup=warmup)
    result = _run_child(dataclasses.asdict(spec))
    result.pop("step_s")
    result.update(
        {"backbone": backbone, "input_size": list(input_size), "batch_size": batch_size}
    )
    return result


def thread_settings(
    backbone: str,
    input_size: tuple[int, int],
    batch_size: int,
    settings: Sequence[tuple[int, int] | None] = (None, (2, 1), (2, 2), (1, 1)),
    steps: int = 4,
    rounds: int = 3,
    repeats: int = 2,
) -> dict[str, Any]:
    """Step time per `(intra_op, inter_op)` setting, each in a fresh process.

    Settings run round-robin `repeats` times (A B C A B C), each child timing
    `rounds` blocks of `steps`; `None` is TF's default (0, 0). Returns each
    setting's median step time and its ratio to the default.
    """
    spec = BenchSpec(backbone, input_size, batch_size, steps, rounds=rounds, warmup=2)
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for setting in settings:
            key = (
                "default" if setting is None else f"intra{setting[0]}_inter{setting[1]}"
            )
            child = _run_child(
                {
                    **dataclasses.asdict(spec),
                    "threads": None if setting is None else list(setting),
                }
            )
            times.setdefault(key, []).extend(child["step_s"])
    medians = {k: statistics.median(v) for k, v in times.items()}
    base = medians.get("default", next(iter(medians.values())))
    return {
        "backbone": backbone,
        "input_size": list(input_size),
        "batch_size": batch_size,
        "step_s": medians,
        "ratio_to_default": {k: v / base for k, v in medians.items()},
    }
