"""MirroredStrategy over 2 logical CPUs equals one device for the same global batch.

Logical devices must be configured before TensorFlow initialises, so the check
runs in a fresh Python process (the script below), not in the pytest process:
two processes at once (half the cases each) train every loss weighting under
both strategies (the gradient-level ones all-reduce their per-task gradients
before combining them), in the background from the start of the session.
"""

import concurrent.futures
import json
import os
import sys

import pytest
from conftest import background_fixture, fork_run

_SCRIPT = r"""
import dataclasses, json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras
import aesthal

METHODS = sys.argv[1].split(",")

config = aesthal.ModelConfig(
    input_size=(32, 32), side_heads=(("saliency", "stage2", 0.5),)
)
rng = np.random.default_rng(0)
images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
targets = {
    "saliency": rng.uniform(0, 1, (4, 32, 32, 1)).astype("float32") ** 4,
    "aesthetics": rng.integers(1, 50, (4, 10)).astype("float32"),
}
# Uneven labels across the two replicas' halves ([1, 1] vs [1, 0] and [0, 0]
# vs [1, 1]): a per-replica mean would differ from the global-batch mean.
weights = {
    "saliency": np.array([1, 1, 1, 0], "float32"),
    "aesthetics": np.array([0, 0, 1, 1], "float32"),
}
dataset = tf.data.Dataset.from_tensors((images, targets, weights)).repeat(2)


def train(strategy, case):
    # "method" or "method:sharing" (ModelConfig.sharing; default hard).
    method, _, sharing = case.partition(":")
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = aesthal.build_model(
            dataclasses.replace(config, sharing=sharing or "hard")
        )
        model.compile(
            optimizers={
                "shared": keras.optimizers.Adam(1e-3),
                "aesthetics": keras.optimizers.SGD(0.5, momentum=0.9),
                "saliency": keras.optimizers.Adam(1e-2),
            },
            loss_weighting=method,
            jit_compile=False,
        )
    # DWA changes its weights from the third epoch on.
    history = model.fit(dataset, epochs=3 if method == "dwa" else 1, verbose=0)
    return model, {k: float(v[-1]) for k, v in history.history.items()}


def state(model):
    # Model weights, the strategy's variables and its own optimizer's.
    strategy = model.loss_weighting
    variables = list(model.weights) + list(strategy.variables)
    optimizer = getattr(strategy, "weight_optimizer", None)
    if optimizer is not None:
        variables += list(optimizer.variables)
    return variables


mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
results = {}
for method in METHODS:
    one, one_logs = train(tf.distribute.OneDeviceStrategy("/cpu:0"), method)
    two, two_logs = train(mirrored, method)
    a, b = state(one), state(two)
    diffs = [
        float(np.max(np.abs(u.numpy() - v.numpy()))) for u, v in zip(a, b, strict=True)
    ]
    results[method] = {
        "replicas": mirrored.num_replicas_in_sync,
        "max_weight_diff": max(diffs),
        "worst": [w.path for w, d in zip(a, diffs) if d > 1e-5][:8],
        "one_logs": one_logs,
        "two_logs": two_logs,
        "strategy_variables": [
            np.asarray(v.numpy()).tolist() for v in two.loss_weighting.variables
        ],
        "steps": int(two.step_counter.count.numpy()),
    }
print(json.dumps(results))
"""

METHODS = ("uncertainty", "dwa", "gradnorm", "pcgrad", "cagrad")
# ModelConfig.sharing: soft (the coupling term, divided by the replicas) and
# cross-stitch (GradNorm's norms at the last unit).
SHARING_CASES = ("fixed:soft", "uncertainty:cross_stitch", "gradnorm:cross_stitch")


@background_fixture
def mirrored_results(tmp_path):
    """Every case, both strategies: two processes at once (half the cases each),
    started in the background at collection (conftest.background_fixture)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    cases = METHODS + SHARING_CASES
    halves = [cases[0::2], cases[1::2]]

    def run(half):  # forked from conftest's fork server
        command = [sys.executable, "-c", _SCRIPT, ",".join(half)]
        return fork_run(command, cwd=tmp_path, timeout=900, env=env)

    with concurrent.futures.ThreadPoolExecutor(len(halves)) as pool:
        runs = list(pool.map(run, halves))
    results = {}
    for result in runs:
        assert result.returncode == 0, result.stderr[-3000:]
        results.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_mirrored_strategy_equals_one_device(mirrored_results, method):
    out = mirrored_results[method]
    assert out["replicas"] == 2
    assert out["max_weight_diff"] < 1e-5, (out["max_weight_diff"], out["worst"])
    for key, value in out["one_logs"].items():
        assert out["two_logs"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    # Training happened, and the strategy's own state moved where it has one.
    assert out["steps"] == (6 if method == "dwa" else 2)
    variables = out["strategy_variables"]
    if method == "uncertainty":  # the learned log-variances left 0
        assert all(abs(v) > 1e-3 for v in variables)
    elif method in ("dwa", "gradnorm"):  # task_weights left 1, summing to 2
        assert abs(variables[0][0] - 1.0) > 1e-4
        assert sum(variables[0]) == pytest.approx(2.0, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("case", SHARING_CASES)
def test_mirrored_strategy_equals_one_device_with_per_task_trunks(
    mirrored_results, case
):
    out = mirrored_results[case]
    assert out["max_weight_diff"] < 1e-5, (out["max_weight_diff"], out["worst"])
    for key, value in out["one_logs"].items():
        assert out["two_logs"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert out["steps"] == 2
    if case == "fixed:soft":  # the coupling, at its global value
        assert out["two_logs"]["coupling_loss"] > 0
