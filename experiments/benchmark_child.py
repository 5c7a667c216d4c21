"""One benchmark run in a fresh process (`benchmarks.peak_rss`, `thread_settings`).

    python experiments/benchmark_child.py '{"backbone": "tiny", "input_size": [96, 128],
        "batch_size": 8, "steps": 3, "rounds": 1, "warmup": 1, "threads": null}'

The JSON is a `benchmarks.BenchSpec`'s fields plus `threads`.

Prints one line `RESULT {json}`: peak and after-import resident memory (MiB)
and the per-round step times. TensorFlow fixes its thread pools at start-up, and
peak memory is per process: hence a process per measurement.
"""

import json
import os
import resource
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _current_rss_kib() -> int:
    with open("/proc/self/status") as handle:
        return next(
            int(line.split()[1]) for line in handle if line.startswith("VmRSS:")
        )


def main(args: dict) -> None:
    import tensorflow as tf  # noqa: F401  (imported first: counted in rss0)

    if args.get("threads") is not None:
        from benchmarks import configure_threads

        configure_threads(*args["threads"])
    import benchmarks as b

    spec = b.BenchSpec(**{k: v for k, v in args.items() if k != "threads"})
    rss0 = _current_rss_kib()
    model = b.build_aesthal(spec.backbone, spec.input_size)
    ds = b.in_memory_dataset(
        b.random_batches(spec.input_size, spec.batch_size, count=2)
    )
    runner = b._Runner(model, ds, spec.warmup)
    times = [runner.block(spec.steps) for _ in range(spec.rounds)]
    result = {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_import_mib": rss0 / 1024,
        "step_s": times,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
