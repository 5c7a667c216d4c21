"""Several worker processes (`MultiWorkerMirroredStrategy`, `TF_CONFIG`) train
like one process, survive a killed worker, and refuse a bad cluster.

Loopback only: every worker listens on 127.0.0.1 at a port chosen free at run
time, and every subprocess has a hard timeout, so a hang fails the test. Each
TensorFlow process takes ~10-15 s to start on the 2-core CI machine: the
module shares its runs between asserts (module-scoped fixtures), which run in
the background from the session's start (`conftest.background_fixture`).

- `experiments/run.py --distribution=multi_worker`, 2 workers, against
  `--distribution=default` (one process), same flags, seed, data and global
  batch, on the shuffled generated data (fixed loss weights): equal final
  weights, equal SavedModel maps; the chief alone writes the run directory.
- The library in a strategy scope (no runner): 2 workers against one process
  for every other loss weighting: `uncertainty`, `dwa`, `pcgrad`, `gradnorm`
  and `cagrad` (the runs above use `fixed`), uneven labels between
  the workers' halves of the batch (the all-reduced labelled counts).
- Cached features (`--cache_features`) on 2 workers sharing one cache
  folder: the same cache file and the one-process run's weights.
- A worker SIGKILLed in the middle of an epoch: the chief ends with a clear
  error after the collective timeout; the same commands again resume from the
  last backup and end with the uninterrupted run's weights.
- A bad `TF_CONFIG`: clear errors, and a worker that never comes up ends the
  run after `--startup_timeout_s` with exit status 1, not a hang; so does
  every worker when the chief refuses a run directory another run holds.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import background_fixture, background_popen, fork_run

from aesthal.training import distribute

REPO = pathlib.Path(__file__).resolve().parents[2]
RUN = REPO / "experiments" / "run.py"
TINY = REPO / "experiments" / "configs" / "tiny.flags"
TIMEOUT_S = 420  # any one process; a hang fails the test instead of CI

pytestmark = pytest.mark.slow


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_configs(n: int) -> list[str]:
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(n)]}
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(n)
    ]


def _env(tmp: pathlib.Path | None = None, tf_config: str | None = None) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    if tmp is not None:  # where a non-chief worker's temporary folders go
        tmp.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmp)
    return env


def _run_flags(out: pathlib.Path, data_dir: pathlib.Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(RUN),
        f"--flagfile={TINY}",
        f"--output_dir={out}",
        f"--data_dir={data_dir}",
        "--collective_timeout_s=20",
        "--startup_timeout_s=120",
        *extra,
    ]


def _run_workers(out, data_dir, tmp, *extra) -> list[int]:
    """Two workers no test kills: each forked from conftest's fork server (one
    thread each, at once), its output written to `{out}.worker{i}.log`
    afterwards; their exit statuses."""
    command = _run_flags(out, data_dir, "--distribution=multi_worker", *extra)

    def run(i_and_tf_config):
        i, tf_config = i_and_tf_config
        result = fork_run(
            command,
            timeout=TIMEOUT_S,
            env=_env(tmp / f"worker{i}", tf_config),
            stderr=subprocess.STDOUT,
        )
        pathlib.Path(f"{out}.worker{i}.log").write_text(result.stdout)
        return result.returncode

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return list(pool.map(run, enumerate(_tf_configs(2))))


def _log(out: pathlib.Path, worker: int) -> str:
    return pathlib.Path(f"{out}.worker{worker}.log").read_text()[-3000:]


def _weights(path: pathlib.Path) -> list[np.ndarray]:
    from aesthal.inference import load_model

    return [np.asarray(w) for w in load_model(path).get_weights()]


def _max_gap(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, float]:
    gap = max(float(np.max(np.abs(u - v))) for u, v in zip(a, b, strict=True))
    return gap, max(float(np.max(np.abs(u))) for u in a)


# ------------------------------------------------------------------ runs
@background_fixture
def cluster_runs(tmp_path):
    """One process, then two workers, then two workers killed and resumed:
    started in the background at collection (conftest.background_fixture)."""
    root = tmp_path
    data_dir = root / "tfds"
    one = fork_run(  # forked from conftest's fork server
        _run_flags(root / "one", data_dir, "--noevaluate"),
        timeout=TIMEOUT_S,
        env=_env(),
    )
    assert one.returncode == 0, one.stderr[-3000:]
    # The same flags on 2 workers (the data set is built: no worker builds it).
    two = root / "two"
    codes = _run_workers(two, data_dir, root / "tmp_two")
    assert codes == [0, 0], (_log(two, 0), _log(two, 1))
    return (root, data_dir), _killed(root, data_dir)


@pytest.fixture(scope="module")
def runs(cluster_runs):
    """`(root, data_dir)`: `root/one` (one process), `root/two` (two workers)."""
    return cluster_runs[0]


@pytest.fixture(scope="module")
def killed(cluster_runs):
    """`(out, facts of the killed run)`: the killed and resumed cluster."""
    return cluster_runs[1]


def _killed(root, data_dir):
    """Two workers; worker 1 SIGKILLed during epoch 2; then both restarted.

    The chief is forked from conftest's fork server (in a thread); worker 1,
    which the test kills, is a process of its own."""
    out = root / "killed"
    tmp = root / "tmp_killed"
    extra = ("--noevaluate", "--noexport")
    command = _run_flags(out, data_dir, "--distribution=multi_worker", *extra)
    chief_config, worker_config = _tf_configs(2)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    chief = pool.submit(
        fork_run,
        command,
        timeout=TIMEOUT_S,
        env=_env(tmp / "worker0", chief_config),
        stderr=subprocess.STDOUT,
    )
    with open(f"{out}.worker1.log", "w") as log:
        worker = background_popen(
            command,
            env=_env(tmp / "worker1", worker_config),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    metadata = out / "backup" / "training_metadata.json"
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and worker.poll() is None:
        if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch"):
            break
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    start = time.monotonic()
    try:
        worker_code = worker.wait(timeout=180)
        chief_result = chief.result(timeout=max(1.0, 180 - (time.monotonic() - start)))
    finally:
        pool.shutdown(wait=False)
    chief_seconds = time.monotonic() - start
    pathlib.Path(f"{out}.worker0.log").write_text(chief_result.stdout)
    first = {
        "codes": [chief_result.returncode, worker_code],
        "chief_seconds": chief_seconds,
        "chief_log": _log(out, 0),
        "epochs_backed_up": json.loads(metadata.read_text())["epoch"],
        "model_written": (out / "model.keras").exists(),
    }
    codes = _run_workers(out, data_dir, tmp, *extra)
    assert codes == [0, 0], (_log(out, 0), _log(out, 1))
    return out, first


def test_two_workers_train_like_one_process(runs):
    root, _ = runs
    gap, scale = _max_gap(
        _weights(root / "one" / "model.keras"), _weights(root / "two" / "model.keras")
    )
    # 6 steps of Adam (lr 1e-3): float32 round-off from the all-reduce's
    # summation order is amplified where Adam divides a near-zero gradient by
    # its own RMS; the largest gap (1.1e-5 here, in the side head's fuse
    # kernel) stays within 3e-5 of the largest weight.
    assert gap <= 3e-5 * scale, (gap, scale)
    one = json.loads((root / "one" / "history.json").read_text())
    two = json.loads((root / "two" / "history.json").read_text())
    for name in ("loss", "saliency_loss", "aesthetics_loss", "val_loss"):
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, err_msg=name)


def test_exported_models_give_the_same_maps(runs):
    from aesthal.inference import Predictor

    root, _ = runs
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    one = Predictor(str(root / "one" / "saved_model")).predict(image)["saliency"]
    two = Predictor(str(root / "two" / "saved_model")).predict(image)["saliency"]
    assert one.shape == (40, 60) and one.sum() == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(two, one, rtol=1e-3, atol=1e-4 * float(one.max()))


def test_only_the_chief_writes_the_run_directory(runs):
    root, _ = runs
    out = root / "two"
    for name in (
        "config.json",
        "flags.txt",
        "model.keras",
        "checkpoints/last.keras",
        "backup/latest.weights.h5",
        "history.json",
        "saved_model/saved_model.pb",
        "metrics.json",
    ):
        assert (out / name).exists(), name
    assert "--distribution=multi_worker" in (out / "flags.txt").read_text()
    # Worker 1 wrote only into temporary folders of its own, deleted at the end.
    assert list((root / "tmp_two" / "worker1").iterdir()) == []
    assert "Results:" in _log(out, 0) and "Results:" not in _log(out, 1)


def test_killed_worker_ends_the_others_and_the_rerun_resumes(runs, killed):
    root, _ = runs
    out, first = killed
    # The survivor ended with a message, bounded by the collective timeout.
    assert first["codes"][1] == -signal.SIGKILL
    assert first["codes"][0] == 1, first["chief_log"]
    assert "a worker of the cluster stopped answering" in first["chief_log"]
    assert first["chief_seconds"] < 120
    assert first["epochs_backed_up"] == 1 and not first["model_written"]
    # The restarted cluster resumed at epoch 2 (each worker skipping the 3
    # global batches of epoch 1) and ended where the uninterrupted run did.
    gap, scale = _max_gap(
        _weights(root / "two" / "model.keras"), _weights(out / "model.keras")
    )
    assert gap <= 1e-6 * scale, (gap, scale)
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 2


# ------------------------------------------------- cached features, 2 workers
@background_fixture
def cached_runs(tmp_path):
    """Issue 30, item 3: `--cache_features` (frozen trunk up to stage1) in one
    process, then on 2 workers that share one feature cache folder (each
    computes the features and writes the same file), in the background
    (conftest.background_fixture): `root`."""
    root = tmp_path
    data_dir = root / "tfds"
    extra = ("--frozen_up_to=stage1", "--cache_features", "--noevaluate")
    one = fork_run(
        _run_flags(
            root / "one", data_dir, *extra, f"--feature_cache_dir={root / 'cache1'}"
        ),
        timeout=TIMEOUT_S,
        env=_env(),
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = root / "two"
    codes = _run_workers(
        two,
        data_dir,
        root / "tmp_two",
        *extra,
        f"--feature_cache_dir={root / 'cache2'}",
    )
    assert codes == [0, 0], (_log(two, 0), _log(two, 1))
    return root


def test_cached_features_on_two_workers_train_like_one_process(cached_runs):
    root = cached_runs
    # One cache file, with the features the one-process run computed.
    (mine,) = (root / "cache2").glob("features_*.npz")
    (theirs,) = (root / "cache1").glob("features_*.npz")
    assert mine.name == theirs.name
    with np.load(mine) as a, np.load(theirs) as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            if name.startswith("features/"):
                # The prefix's float16 output, computed in other processes
                # (thread pools): one float16 step (2**-10 relative) apart at most.
                np.testing.assert_allclose(
                    a[name].astype(np.float32),
                    b[name].astype(np.float32),
                    rtol=2**-10,
                    atol=1e-6,
                    err_msg=name,
                )
            elif name != "key":  # the data set's targets and weights, copied
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    gap, scale = _max_gap(
        _weights(root / "one" / "model.keras"), _weights(root / "two" / "model.keras")
    )
    # As for the image stream above: float32 round-off of the all-reduce,
    # within 3e-5 of the largest weight after 6 Adam steps.
    assert gap <= 3e-5 * scale, (gap, scale)
    one = json.loads((root / "one" / "history.json").read_text())
    two = json.loads((root / "two" / "history.json").read_text())
    for name in ("loss", "saliency_loss", "aesthetics_loss", "val_loss"):
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, err_msg=name)
    assert (root / "two" / "saved_model" / "saved_model.pb").exists()
    assert list((root / "tmp_two" / "worker1").iterdir()) == []


# ---------------------------------------------------- the library, per method
_LIBRARY_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
from aesthal.training import distribute

strategy = distribute.make_strategy(
    sys.argv[1], collective_timeout_s=60, startup_timeout_s=120
)
import keras
import aesthal

config = aesthal.ModelConfig(
    input_size=(32, 48), side_heads=(("saliency", "stage2", 0.5),)
)
rng = np.random.default_rng(0)
images = rng.uniform(0, 255, (4, 32, 48, 3)).astype("float32")
targets = {
    "saliency": rng.uniform(0, 1, (4, 32, 48, 1)).astype("float32") ** 4,
    "aesthetics": rng.integers(1, 50, (4, 10)).astype("float32"),
}
# Uneven labels between the workers' halves ([1, 1] | [1, 0], [0, 0] | [1, 1]):
# a per-worker mean would differ from the global-batch mean.
weights = {
    "saliency": np.array([1, 1, 1, 0], "float32"),
    "aesthetics": np.array([0, 0, 1, 1], "float32"),
}
dataset = distribute.shard_by_data(
    tf.data.Dataset.from_tensors((images, targets, weights)).repeat(2)
)
results = {}
for method in sys.argv[2].split(","):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = aesthal.Trainer(aesthal.build_model(config))
        model.compile(
            optimizers={
                "shared": keras.optimizers.Adam(1e-3),
                "aesthetics": keras.optimizers.SGD(0.5, momentum=0.9),
                "saliency": keras.optimizers.Adam(1e-2),
            },
            loss_weighting=method,
            jit_compile=False,
        )
    history = model.fit(dataset, epochs=1, verbose=0)
    variables = list(model.weights) + list(model.loss_weighting.variables)
    results[method] = {
        "weights": [np.asarray(v.numpy()).ravel().tolist() for v in variables],
        "logs": {k: float(v[-1]) for k, v in history.history.items()},
        "steps": int(model.step_counter.count.numpy()),
    }
print("RESULT" + json.dumps(results))
"""

LIBRARY_METHODS = ("uncertainty", "dwa", "pcgrad", "gradnorm", "cagrad")


@background_fixture
def library_results(tmp_path):
    """Two workers and one process, at once, in the background from the
    session's start (conftest.background_fixture)."""
    root = tmp_path
    methods = ",".join(LIBRARY_METHODS)
    envs = [_env(tf_config=tf_config) for tf_config in _tf_configs(2)] + [_env()]
    roles = ["multi_worker", "multi_worker", "default"]

    def run(role_and_env):  # forked from conftest's fork server
        role, env = role_and_env
        command = [sys.executable, "-c", _LIBRARY_SCRIPT, role, methods]
        return fork_run(command, timeout=TIMEOUT_S, env=env, cwd=root)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        *workers, one = pool.map(run, zip(roles, envs, strict=True))
    outputs = []
    for worker in workers:
        assert worker.returncode == 0, worker.stderr[-3000:]
        outputs.append(worker.stdout)
    assert one.returncode == 0, one.stderr[-3000:]
    parse = lambda text: json.loads(text.split("RESULT", 1)[1])  # noqa: E731
    return parse(one.stdout), [parse(o) for o in outputs]


@pytest.mark.parametrize("method", LIBRARY_METHODS)
def test_library_on_two_workers_equals_one_process(library_results, method):
    one, workers = library_results
    reference = [np.asarray(w) for w in one[method]["weights"]]
    for worker in workers:
        out = worker[method]
        assert out["steps"] == 2
        gap, scale = _max_gap(reference, [np.asarray(w) for w in out["weights"]])
        assert gap <= 1e-5 * scale, (method, gap, scale)
        for key, value in one[method]["logs"].items():
            assert out["logs"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


# ------------------------------------------------------------ bad clusters
@pytest.mark.parametrize(
    "text, message",
    [
        (None, "TF_CONFIG environment variable, which is not set"),
        ("{cluster: ", "TF_CONFIG is not valid JSON"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "TF_CONFIG has no 'task'"),
        (
            '{"cluster": {"worker": ["127.0.0.1:1"]}, '
            '"task": {"type": "worker", "index": 1}}',
            r"task index 1 is out of range: the cluster has 1 'worker' task\(s\)",
        ),
        (
            '{"cluster": {"worker": ["localhost"]}, '
            '"task": {"type": "worker", "index": 0}}',
            "has 'localhost', not 'host:port'",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
            "task type 'chief' is not in the cluster",
        ),
    ],
)
def test_bad_tf_config_is_named_with_an_example(text, message):
    with pytest.raises(distribute.ClusterConfigError, match=message) as error:
        distribute.parse_tf_config(text)
    assert 'TF_CONFIG=\'{"cluster"' in str(error.value)  # the fix, by example


@background_fixture
def lone_worker(tmp_path):
    """Worker 0 of 2 alone, in the background (conftest.background_fixture):
    `(result, seconds, tmp_path)`."""
    tf_config = _tf_configs(2)[0]  # worker 1 is never started
    start = time.monotonic()
    result = fork_run(  # forked from conftest's fork server
        _run_flags(tmp_path / "out", tmp_path / "tfds", "--distribution=multi_worker")
        + ["--startup_timeout_s=5"],
        timeout=120,
        env=_env(tf_config=tf_config),
    )
    return result, time.monotonic() - start, tmp_path


def test_a_worker_that_never_comes_up_ends_the_run_in_bounded_time(lone_worker):
    result, seconds, tmp_path = lone_worker
    # Ended by the start-up watchdog (TensorFlow waits in C++ without a
    # deadline), with exit status 1 (issue 24, item 12: it was SIGKILL, 137).
    assert result.returncode == 1, result.stderr[-3000:]
    assert "worker 1 at 127.0.0.1:" in result.stderr
    assert "did not come up within 5 s" in result.stderr, result.stderr[-2000:]
    assert seconds < 120
    assert not (tmp_path / "out" / "model.keras").exists()


# Locks `argv[1]`'s run.lock as aesthal.training.output_lock does, says so,
# then waits for stdin to close (plain Python: no TensorFlow).
_LOCK_HOLDER = r"""
import fcntl, os, sys
os.makedirs(sys.argv[1], exist_ok=True)
handle = os.open(os.path.join(sys.argv[1], "run.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@background_fixture
def refused_chief(tmp_path):
    """Two workers on a run directory another process has locked, in the
    background (conftest.background_fixture): `[(result, seconds)] * 2`."""
    out = tmp_path / "out"
    holder = background_popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    command = _run_flags(out, tmp_path / "tfds", "--distribution=multi_worker")
    command.append("--startup_timeout_s=5")

    def run(tf_config):  # forked from conftest's fork server
        start = time.monotonic()
        result = fork_run(command, timeout=120, env=_env(tf_config=tf_config))
        return result, time.monotonic() - start

    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            return list(pool.map(run, _tf_configs(2)))
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_a_locked_run_directory_ends_every_worker_with_status_1(refused_chief):
    (chief, _), (worker, seconds) = refused_chief
    # The chief refuses before the cluster forms (issue 24, item 10) ...
    assert chief.returncode == 1, chief.stderr[-3000:]
    assert "is in use by another training run" in chief.stderr
    # ... and the other worker, whose chief never comes up, ends after the
    # start-up timeout with status 1 and a message naming it (item 12), not
    # in a collective that waits for ever.
    assert worker.returncode == 1, worker.stderr[-3000:]
    assert "worker 0 at 127.0.0.1:" in worker.stderr
    assert "did not come up within 5 s" in worker.stderr
    assert seconds < 100


# ----------------------------------------- a bad share of the batch, 2 replicas
_BAD_SHARE_SCRIPT = r"""
import json
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras
import aesthal
from aesthal.training import InvalidBatchError

rng = np.random.default_rng(0)
images = rng.uniform(0, 255, (2, 4, 32, 32, 3)).astype("float32")
images[1, 3, 0, 0, 0] = 300.0  # batch 2, example 4 (the second replica's share)
targets = {
    "saliency": rng.uniform(0, 1, (2, 4, 32, 32, 1)).astype("float32"),
    "aesthetics": rng.integers(1, 9, (2, 4, 10)).astype("float32"),
}
data = tf.data.Dataset.from_tensor_slices((images, targets))
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
keras.utils.set_random_seed(0)
with strategy.scope():
    network = aesthal.build_model(aesthal.ModelConfig(input_size=(32, 32)))
    model = aesthal.Trainer(network)
    model.compile(jit_compile=False)
after_first = {}


class Snapshot(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            after_first["weights"] = [v.numpy() for v in self.model.trainable_weights]


error = ""
try:
    model.fit(data, epochs=1, callbacks=[Snapshot()], verbose=0)
except InvalidBatchError as caught:
    error = str(caught)
gap = max(
    float(np.max(np.abs(a - b.numpy())))
    for a, b in zip(after_first["weights"], model.trainable_weights)
)
iterations = [int(o.iterations.numpy()) for o in model.group_optimizers.values()]
print("RESULT" + json.dumps({"error": error, "gap": gap, "iterations": iterations}))
"""


@background_fixture
def bad_share_run(tmp_path):
    """The script above, in the background (conftest.background_fixture)."""
    return fork_run(  # forked from conftest's fork server
        [sys.executable, "-c", _BAD_SHARE_SCRIPT],
        timeout=TIMEOUT_S,
        env=_env(),
        cwd=tmp_path,
    )


def test_a_bad_share_on_one_replica_stops_every_replica(bad_share_run):
    # The "known gap" checked: `batch_checks.batch_report` gathers every
    # replica's results, so both replicas see the second one's bad example,
    # refuse the update (the merge_call path reads only the first replica's
    # flag) and `BatchChecker` raises.
    result = bad_share_run
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT", 1)[1])
    assert "images must have values in 0..255" in out["error"], out["error"]
    assert out["gap"] == 0.0  # the second step's update was refused
    assert out["iterations"] == [1, 1, 1]
