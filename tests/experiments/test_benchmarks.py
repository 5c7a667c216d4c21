"""Tests of the benchmark harness (experiments/benchmarks.py): counts, fits, structure.

Timings themselves are never asserted (the machine is shared); the tests check
hand-worked FLOP counts, the exponent fit, the loss equivalence of the plain
Keras baseline, and that each measurement returns real, positive numbers.
"""

import dataclasses
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "experiments"))
import benchmarks as bench  # noqa: E402


def _tiny_net():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="valid", name="depthwise")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5, name="dense")(x)
    return keras.Model(inputs, outputs)


def test_counted_flops_equal_a_hand_count():
    counts = bench.forward_flops(_tiny_net(), (8, 8, 3))
    conv = 2 * (8 * 8 * 4) * (3 * 3 * 3)  # outputs x (kh kw c_in) MACs = 13824
    depthwise = 2 * (6 * 6 * 4) * (3 * 3)  # 2592
    dense = 2 * 5 * (6 * 6 * 4)  # 1440
    assert counts["Conv2D"] == conv
    assert counts["DepthwiseConv2dNative"] == depthwise
    assert counts["MatMul"] == dense
    assert counts["total"] == conv + depthwise + dense


def test_profiler_adds_exactly_the_bias_adds():
    # The TF profiler also counts one FLOP per bias-add output element.
    biases = 8 * 8 * 4 + 6 * 6 * 4 + 5
    counted = bench.forward_flops(_tiny_net(), (8, 8, 3))["total"]
    assert bench.profiler_flops(_tiny_net(), (8, 8, 3)) == counted + biases


def test_aesthal_flops_scale_with_pixels():
    # Every conv of the tiny trunk and decoder scales with the pixel count.
    small = bench.forward_flops(bench.build_aesthal("tiny", (32, 32)), (32, 32, 3))
    large = bench.forward_flops(bench.build_aesthal("tiny", (64, 64)), (64, 64, 3))
    assert large["Conv2D"] == 4 * small["Conv2D"]
    assert small["MatMul"] == large["MatMul"] == 2 * 64 * 10  # aesthetics dense


def test_fit_exponent_recovers_a_power_law():
    pixels = [1_000, 4_000, 9_000, 16_000]
    seconds = [3.0 * p**0.8 for p in pixels]
    assert bench.fit_exponent(pixels, seconds) == pytest.approx(0.8, abs=1e-9)
    with pytest.raises(ValueError, match="two sizes"):
        bench.fit_exponent([1], [1.0])


def test_matmul_peak_is_positive():
    peak = bench.matmul_peak(n=128, repeats=2)
    assert peak["n"] == 128
    assert peak["flops_per_s"] >= peak["median_flops_per_s"] > 0


def test_plain_keras_baseline_has_the_same_loss_and_weights():
    size = (32, 32)
    batches = bench.random_batches(size, batch_size=3, count=1)
    images, targets, weights = batches[0]
    aesthal = bench.build_aesthal("tiny", size, seed=3)
    plain = bench.build_plain_keras("tiny", size, seed=3)
    network = aesthal.network
    for part in (network.backbone, network.saliency_head, network.aesthetics_head):
        ours = part.get_weights()
        theirs = plain.get_layer(part.name).get_weights()
        assert len(ours) == len(theirs) > 0
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)
    aesthal_logs = aesthal.evaluate(
        images,
        targets,
        sample_weight=weights,
        batch_size=3,
        verbose=0,
        return_dict=True,
    )
    plain_logs = plain.evaluate(
        images,
        targets,
        sample_weight=weights,
        batch_size=3,
        verbose=0,
        return_dict=True,
    )
    # Masked means: the last example has no aesthetics label in either model.
    assert plain_logs["loss"] == pytest.approx(aesthal_logs["loss"], rel=1e-5)
    assert aesthal_logs["loss"] > 0


def test_random_batches_follow_the_data_contract():
    images, targets, weights = bench.random_batches((32, 48), 4, count=1)[0]
    assert images.shape == (4, 32, 48, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255
    np.testing.assert_allclose(targets["saliency"].sum(axis=(1, 2, 3)), 1, rtol=1e-5)
    np.testing.assert_array_equal(weights["aesthetics"], [1, 1, 1, 0])
    assert targets["aesthetics"][-1].sum() == 0 and targets["aesthetics"][0].sum() > 0


def test_bench_spec_describes_itself_and_feeds_the_measurements():
    spec = bench.BenchSpec("tiny", [96, 128], 16, 5, rounds=4, warmup=2)
    assert spec.input_size == (96, 128)  # a JSON list becomes a tuple
    assert spec.key == "tiny@96x128"
    assert spec.describe() == "tiny@96x128, batch 16: 4 rounds x 5 steps, 2 warm-up"
    assert spec.model_args == ("tiny", (96, 128), 16)
    assert spec.timing == {"steps": 5, "rounds": 4, "warmup": 2}
    # benchmark_child.py rebuilds the spec from the JSON its parent sends.
    sent = json.loads(json.dumps({**dataclasses.asdict(spec), "threads": None}))
    sent.pop("threads")
    assert bench.BenchSpec(**sent) == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.steps = 6


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("batch_size", 0, "BenchSpec.batch_size must be a positive int, got 0"),
        ("steps", -1, "BenchSpec.steps must be a positive int, got -1"),
        ("rounds", 2.0, "BenchSpec.rounds must be a positive int, got 2.0"),
        ("warmup", -1, "BenchSpec.warmup must be an int >= 0, got -1"),
        ("input_size", (96, 0), "BenchSpec.input_size must be"),
        ("input_size", (96,), "BenchSpec.input_size must be"),
        ("backbone", "", "BenchSpec.backbone must be"),
    ],
)
def test_bench_spec_names_the_bad_field(field, value, message):
    good = {
        "backbone": "tiny",
        "input_size": (32, 32),
        "batch_size": 2,
        "steps": 1,
        "rounds": 1,
        "warmup": 0,
    }
    bench.BenchSpec(**good)  # warm-up 0 is allowed
    with pytest.raises(ValueError, match=re.escape(message)):
        bench.BenchSpec(**{**good, field: value})


@pytest.mark.slow
def test_bench_script_reports_a_bad_spec_as_a_flag_error():
    script = pathlib.Path(bench.__file__).with_name("bench.py")
    proc = subprocess.run(
        [sys.executable, str(script), "--steps=0", "--parts=memory"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""),
    )
    assert proc.returncode != 0
    assert "--steps: BenchSpec.steps must be a positive int, got 0" in proc.stderr


def test_configure_threads_checks_and_reports():
    with pytest.raises(ValueError, match="must be >= 0"):
        bench.configure_threads(-1, 1)
    tf.constant(1.0) + 1.0  # the runtime is now initialised
    threading = tf.config.threading
    current = (
        threading.get_intra_op_parallelism_threads(),
        threading.get_inter_op_parallelism_threads(),
    )
    assert bench.configure_threads(*current) == {
        "intra_op": current[0],
        "inter_op": current[1],
    }
    with pytest.raises(RuntimeError, match="before TensorFlow executes"):
        bench.configure_threads(current[0] + 3, current[1] + 3)


@pytest.mark.slow
def test_step_overhead_smoke():
    r = bench.step_overhead("tiny", (32, 32), 2, steps=1, rounds=2, warmup=1)
    assert len(r["ratio_per_round"]) == 2
    assert r["aesthal_images_per_s"] > 0 and r["plain_keras_images_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["candidate_s"] / r["baseline_s"])
    assert math.isfinite(r["ratio"]) and r["ratio"] > 0


@pytest.mark.slow
def test_balancing_overhead_smoke():
    r = bench.balancing_overhead(
        "tiny", (32, 32), 2, methods=("pcgrad", "dwa"), steps=1, rounds=2, warmup=1
    )
    assert set(r["methods"]) == {"pcgrad", "dwa"} and r["fixed_s"] > 0
    for ratio in r["methods"].values():
        assert len(ratio["ratio_per_round"]) == 2
        assert ratio["baseline_s"] == pytest.approx(r["fixed_s"])
        assert math.isfinite(ratio["ratio"]) and ratio["ratio"] > 0
    with pytest.raises(ValueError, match=r"unknown methods \['mgda'\]"):
        bench.balancing_overhead("tiny", (32, 32), 2, methods=("mgda",))


@pytest.mark.slow
def test_compute_efficiency_and_serving_smoke():
    r = bench.compute_efficiency("tiny", (32, 32), 2, steps=1, rounds=1, warmup=1)
    assert r["training_flops_per_image"] == 3 * r["forward_flops_per_image"]["total"]
    assert r["profiler_forward_flops_per_image"] > r["forward_flops_per_image"]["total"]
    assert r["images_per_s"] > 0 and 0 < r["efficiency"] < 1
    s = bench.serving("tiny", (32, 32), (1, 2), calls=1, rounds=1)
    for batch in ("1", "2"):
        assert s[batch]["saved_model_images_per_s"] > 0
        assert s[batch]["predict_images_per_s"] > 0


@pytest.mark.slow
def test_peak_rss_in_a_subprocess():
    r = bench.peak_rss("tiny", (32, 32), 2, steps=1, warmup=1)
    # TF alone takes hundreds of MiB; the peak includes everything after.
    assert 100 < r["rss_after_import_mib"] <= r["peak_rss_mib"] < 20_000


def test_cached_features_smoke():
    # The whole tiny trunk frozen: the cached model trains only the heads on
    # stage3 + stage4 features, float16, 16x16 + 8x8 at 64x64 input.
    r = bench.cached_features("tiny", (64, 64), 2, steps=1, rounds=1, warmup=1)
    assert r["frozen_up_to"] == "stage4"
    assert r["cached_taps"] == ["stage3", "stage4"]
    assert r["feature_bytes_per_example"] == 2 * (8 * 8 * 48 + 4 * 4 * 64)
    assert r["ratio"] > 0 and len(r["ratio_per_round"]) == 1
