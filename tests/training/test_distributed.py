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
import pathlib
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
        model = aesthal.Trainer(
            aesthal.build_model(dataclasses.replace(config, sharing=sharing or "hard"))
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


# Issue 30, item 2: `--distribution=mirrored` through the runner's own code
# path (`runner.train` and `export.export_run`, as experiments/run.py calls
# them), on two logical CPUs, against the default strategy (one device).
# `distribute.make_strategy("mirrored")` takes the local GPUs, or the one CPU
# where there are none, so the two devices are named here.
_RUNNER_SCRIPT = r"""
import json, pathlib, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import numpy as np
import aesthal
from aesthal.config import DataConfig, ExperimentConfig, TrainConfig
from aesthal.export import export_run
from aesthal.training import runner

root = pathlib.Path(sys.argv[1])


def config(name):
    return ExperimentConfig(
        output_dir=str(root / name),
        model=aesthal.ModelConfig(
            input_size=(32, 48), side_heads=(("saliency", "stage2", 0.3),)
        ),
        data=DataConfig(
            dataset="synthetic_scenes/tiny", data_dir=str(root / "tfds"), batch_size=4
        ),
        train=TrainConfig(epochs=2, steps_per_epoch=3, validation_steps=1),
    )


one = runner.train(config("one"), verbose=0)
export_run(one, root / "one")
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
two = runner.train(config("two"), verbose=0, strategy=mirrored)
export_run(two, root / "two")
print("RESULT" + json.dumps({"replicas": mirrored.num_replicas_in_sync}))
"""


@background_fixture
def mirrored_runner(tmp_path):
    """The script above, in the background (conftest.background_fixture):
    `(root, replicas)`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = fork_run(
        [sys.executable, "-c", _RUNNER_SCRIPT, str(tmp_path)],
        cwd=tmp_path,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    replicas = json.loads(result.stdout.split("RESULT", 1)[1])["replicas"]
    return tmp_path, replicas


@pytest.mark.slow
def test_the_runner_under_mirrored_strategy_equals_one_device(mirrored_runner):
    import numpy as np

    from aesthal.inference import Predictor, load_model

    root, replicas = mirrored_runner
    one, two = root / "one", root / "two"
    assert replicas == 2
    times = json.loads((two / "train_time.json").read_text())
    assert (times["strategy"], times["replicas"]) == ("MirroredStrategy", 2)
    # One history and one export, for the run (not one per replica).
    assert [p.relative_to(two) for p in two.rglob("history.json")] == [
        pathlib.Path("history.json")
    ]
    assert [p.relative_to(two) for p in two.rglob("saved_model.pb")] == [
        pathlib.Path("saved_model/saved_model.pb")
    ]
    history = json.loads((two / "history.json").read_text())
    reference = json.loads((one / "history.json").read_text())
    assert set(history) == set(reference)
    for name, values in reference.items():
        assert len(history[name]) == 2, name
        # The per-replica losses are summed over the replicas: float32
        # round-off only.
        np.testing.assert_allclose(
            history[name], values, rtol=1e-4, atol=1e-7, err_msg=name
        )
    # The same weights: each global batch of 4 is split 2 + 2 and the
    # gradients all-reduced; float32 summation order apart, 6 Adam steps
    # stay within 3e-5 of the largest weight (as test_multi_worker's).
    a = load_model(one / "model.keras").get_weights()
    b = load_model(two / "model.keras").get_weights()
    gap = max(float(np.max(np.abs(u - v))) for u, v in zip(a, b, strict=True))
    scale = max(float(np.max(np.abs(u))) for u in a)
    assert gap <= 3e-5 * scale, (gap, scale)
    # And the exports give the same maps.
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    mine = Predictor(str(two / "saved_model")).predict(image)["saliency"]
    theirs = Predictor(str(one / "saved_model")).predict(image)["saliency"]
    np.testing.assert_allclose(mine, theirs, rtol=1e-3, atol=1e-4 * float(theirs.max()))
