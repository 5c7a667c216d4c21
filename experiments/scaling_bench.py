r"""Scaling out on one machine: 2 workers x 1 core against 1 process x 2 cores.

    python experiments/scaling_bench.py --backbone=tiny --input_height=96 \
        --input_width=128 --batch_size=16 --steps=30

Runs, one after the other, (a) one process with 2 intra-op threads and (b)
two `MultiWorkerMirroredStrategy` workers on 127.0.0.1 with 1 thread each,
the same global batch, model and in-memory data, and prints one JSON line:
images/s of each, their ratio, and in (b) the share of a step spent in the
gradient all-reduce (the same tensors all-reduced alone, timed in each worker
after training) and the latency of one scalar all-reduce (a step also makes
several small ones: synchronized BatchNorm, the labelled counts, the NaN/Inf
flags, the batch check, Keras' reduction of the logs). docs/performance.md,
"Scaling out", quotes it. Loopback on one machine is not a cluster: both
workers share the machine's cores and memory bandwidth, and the "network" is
a memory copy.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from absl import app, flags

_BACKBONE = flags.DEFINE_string("backbone", "tiny", "Trunk.")
_HEIGHT = flags.DEFINE_integer("input_height", 96, "Input height.")
_WIDTH = flags.DEFINE_integer("input_width", 128, "Input width.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Global batch size.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed training steps (after 3 warm-up).")
_ROLE = flags.DEFINE_enum(
    "role", "main", ["main", "single", "worker"], "Internal: which process this is."
)


_WARMUP_STEPS = 3  # untimed `fit` steps (tracing) before the timed ones


def _spec():
    """The flags as one `benchmarks.BenchSpec` (one round; a bad value: flag error).

    Imported here, not at the top: `benchmarks` imports TensorFlow, and a
    worker must set its thread pools before that runtime starts.
    """
    from benchmarks import BenchSpec  # experiments/benchmarks.py, beside this file

    try:
        return BenchSpec(
            _BACKBONE.value,
            (_HEIGHT.value, _WIDTH.value),
            _BATCH.value,
            _STEPS.value,
            rounds=1,
            warmup=_WARMUP_STEPS,
        )
    except ValueError as error:  # "BenchSpec.<field> must be ...": name the flag
        field = str(error).split("BenchSpec.", 1)[-1].split(" ", 1)[0]
        flag = {"input_size": "input_height/--input_width"}.get(field, field)
        raise app.UsageError(f"--{flag}: {error}") from error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measure(threads: int, multi_worker: bool) -> dict:
    """Trains `--steps` steps; returns images/s (and the all-reduce time)."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from aesthal.training import distribute

    strategy = distribute.make_strategy(
        "multi_worker" if multi_worker else "default", collective_timeout_s=120
    )
    import keras

    import aesthal

    spec = _spec()
    size, batch = spec.input_size, spec.batch_size
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, *size, 3)).astype("float32")
    targets = {
        "saliency": rng.uniform(0, 1, (batch, *size, 1)).astype("float32"),
        "aesthetics": rng.integers(1, 50, (batch, 10)).astype("float32"),
    }
    dataset = distribute.shard_by_data(
        tf.data.Dataset.from_tensors((images, targets)).repeat()
    )
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = aesthal.Trainer(
            aesthal.build_model(
                aesthal.ModelConfig(backbone=spec.backbone, input_size=size)
            )
        )
        model.compile(jit_compile=False)
    # warm-up, trace
    model.fit(dataset, epochs=1, steps_per_epoch=spec.warmup, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=spec.steps, verbose=0)
    seconds = time.perf_counter() - start
    result = {
        "images_per_s": batch * spec.steps / seconds,
        "step_s": seconds / spec.steps,
        "weights": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
    }
    if multi_worker:
        variables = model.trainable_variables

        @tf.function
        def all_reduce():
            def replica_fn():
                context = tf.distribute.get_replica_context()
                return context.all_reduce(
                    tf.distribute.ReduceOp.SUM, [tf.ones_like(v) for v in variables]
                )

            return strategy.run(replica_fn)

        @tf.function
        def scalar_all_reduce():
            def replica_fn():
                context = tf.distribute.get_replica_context()
                return context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0)

            return strategy.run(replica_fn)

        for name, function in (
            ("all_reduce_s", all_reduce),
            ("scalar_all_reduce_s", scalar_all_reduce),
        ):
            function()  # trace
            start = time.perf_counter()
            for _ in range(spec.steps):
                function()
            result[name] = (time.perf_counter() - start) / spec.steps
    return result


def _child(role: str, tf_config: str | None, threads: int) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = tf_config
    argv = [a for a in sys.argv[1:] if not a.startswith("--role")]
    return subprocess.Popen(
        [sys.executable, __file__, f"--role={role}", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _result(process: subprocess.Popen) -> dict:
    stdout, _ = process.communicate(timeout=900)
    if process.returncode != 0:
        raise RuntimeError(f"a benchmark process failed (status {process.returncode})")
    return json.loads(stdout.split("RESULT", 1)[1])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if _ROLE.value == "single":
        print("RESULT" + json.dumps(_measure(threads=2, multi_worker=False)))
        return
    if _ROLE.value == "worker":
        print("RESULT" + json.dumps(_measure(threads=1, multi_worker=True)))
        return
    spec = _spec()  # checked before any worker starts
    single = _result(_child("single", None, 2))
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    workers = [
        _child(
            "worker",
            json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
            1,
        )
        for i in range(2)
    ]
    results = [_result(w) for w in workers]
    two = min(r["images_per_s"] for r in results)
    all_reduce = max(r["all_reduce_s"] for r in results)
    step = max(r["step_s"] for r in results)
    print(
        json.dumps(
            {
                "backbone": spec.backbone,
                "input_size": list(spec.input_size),
                "global_batch": spec.batch_size,
                "weights": single["weights"],
                "one_process_2_threads_images_per_s": round(single["images_per_s"], 1),
                "two_workers_1_thread_images_per_s": round(two, 1),
                "ratio_two_workers_to_one_process": round(
                    two / single["images_per_s"], 3
                ),
                "two_workers_step_s": round(step, 4),
                "all_reduce_s": round(all_reduce, 4),
                "all_reduce_share_of_step": round(all_reduce / step, 3),
                "scalar_all_reduce_s": round(
                    max(r["scalar_all_reduce_s"] for r in results), 4
                ),
                "load_average": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
