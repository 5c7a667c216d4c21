"""Training on several devices or machines with `tf.distribute`.

    strategy = distribute.make_strategy("multi_worker")   # reads TF_CONFIG
    model = runner.train(config, strategy=strategy)

Three distributions (`DISTRIBUTIONS`):

- `"default"`: one device, no strategy (`tf.distribute.get_strategy()`).
- `"mirrored"`: `tf.distribute.MirroredStrategy` over the local devices.
- `"multi_worker"`: `tf.distribute.MultiWorkerMirroredStrategy` over the
  processes listed in the `TF_CONFIG` environment variable, as in TF's
  "Multi-worker training with Keras" tutorial
  (https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras):

      TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                  "task": {"type": "worker", "index": 0}}'

  Every worker runs the same command with its own `task.index`; worker 0 (or
  the task of type "chief") is the chief. `TF_CONFIG` is checked before the
  strategy starts (`parse_tf_config`: a clear `ClusterConfigError`, not a
  hang), every peer must come up within `startup_timeout_s` (else a
  watchdog ends the process with exit status 1, naming the absent ones),
  and every collective (all-reduce) gives up after `timeout_seconds`
  (`tf.distribute.experimental.CommunicationOptions`), so that the workers
  that survive a dead one end with an error instead of waiting for ever.

Writing, as TF's guidance on multi-worker checkpoints says: every worker
saves (saving reads the variables, which can take a collective), but only the
chief into the run directory; the others write into temporary folders of
their own (`write_dir`), deleted at the end (`cleanup_write_dir`). The
backup is read by every worker from the run directory (a shared file system,
or a copy of the chief's `backup/`).
"""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from typing import Any

import tensorflow as tf

DISTRIBUTIONS = ("default", "mirrored", "multi_worker")

# Seconds a collective waits for its peers before failing (a dead worker).
DEFAULT_COLLECTIVE_TIMEOUT_S = 300.0
# Seconds every other worker has to open its port at start-up.
DEFAULT_STARTUP_TIMEOUT_S = 300.0

_TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


class ClusterConfigError(ValueError):
    """`TF_CONFIG` is missing or wrong, or a worker of the cluster is absent."""


def parse_tf_config(text: str | None) -> dict[str, Any]:
    """Checks a `TF_CONFIG` value and returns it parsed.

    Args:
        text: the environment variable's value (None: unset).

    Returns:
        `{"cluster": {task_type: ["host:port", ...]}, "task": {"type", "index"}}`.

    Raises:
        ClusterConfigError: unset or unparsable, no `cluster` or `task`, a
            task type or index that the cluster does not list, or an address
            that is not `host:port`; the message shows a valid example.
    """
    fix = f" Set TF_CONFIG on every worker, e.g. TF_CONFIG='{_TF_CONFIG_EXAMPLE}'."
    if not text:
        raise ClusterConfigError(
            "--distribution=multi_worker reads the cluster from the TF_CONFIG "
            "environment variable, which is not set." + fix
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClusterConfigError(
            f"TF_CONFIG is not valid JSON ({error}).{fix}"
        ) from None
    if not isinstance(value, dict):
        raise ClusterConfigError("TF_CONFIG must be a JSON object." + fix)
    cluster, task = value.get("cluster"), value.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ClusterConfigError(
            "TF_CONFIG has no 'cluster' (the list of workers' host:port)." + fix
        )
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ClusterConfigError(
            "TF_CONFIG has no 'task' with 'type' and 'index' (which worker this "
            "process is)." + fix
        )
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ClusterConfigError(
                f"TF_CONFIG cluster[{kind!r}] must be a non-empty list of "
                f"'host:port'; got {addresses!r}." + fix
            )
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit():
                raise ClusterConfigError(
                    f"TF_CONFIG cluster[{kind!r}] has {address!r}, not "
                    "'host:port'." + fix
                )
    kind, index = task["type"], task["index"]
    if kind not in cluster:
        raise ClusterConfigError(
            f"TF_CONFIG task type {kind!r} is not in the cluster "
            f"({sorted(cluster)})." + fix
        )
    if not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ClusterConfigError(
            f"TF_CONFIG task index {index!r} is out of range: the cluster has "
            f"{len(cluster[kind])} {kind!r} task(s), indices 0..."
            f"{len(cluster[kind]) - 1}." + fix
        )
    return value


def is_chief_task(tf_config: dict[str, Any]) -> bool:
    """Whether the task of a parsed `TF_CONFIG` is the cluster's chief: the
    task of type "chief", or worker 0 of a cluster without one (as
    `MultiWorkerMirroredStrategy` decides, known before it starts)."""
    kind, index = tf_config["task"]["type"], tf_config["task"]["index"]
    if "chief" in tf_config["cluster"]:
        return kind == "chief"
    return kind == "worker" and index == 0


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def absent_peers(tf_config: dict[str, Any]) -> list[str]:
    """The other tasks of the cluster whose port does not answer, as
    `"worker 1 at host:port"`."""
    me = (tf_config["task"]["type"], tf_config["task"]["index"])
    return [
        f"{kind} {index} at {address}"
        for kind, addresses in tf_config["cluster"].items()
        for index, address in enumerate(addresses)
        if (kind, index) != me and not _answers(address)
    ]


def startup_failure_message(tf_config: dict[str, Any], timeout_s: float) -> str:
    """Why the cluster did not form within `timeout_s`, naming absent tasks."""
    absent = absent_peers(tf_config)
    if not absent:
        return (
            f"the cluster did not form within {timeout_s:g} s although every "
            "listed address answers: check that each worker runs with its own "
            "task index in TF_CONFIG and the same cluster list."
        )
    return (
        f"{', '.join(absent)}: did not come up within {timeout_s:g} s. Start the "
        "same command on that machine with its TF_CONFIG (its task index), "
        "check the address and that the port is open, or raise the start-up "
        "timeout (--startup_timeout_s)."
    )


def _exit_1_on_sighup():
    """Makes SIGHUP end this process at once with exit status 1, until undone.

    The handler is C's `_exit` itself, installed with `signal(2)`: the kernel
    calls `_exit(SIGHUP)`, and SIGHUP is 1, so the status is 1 without the
    GIL (which the strategy's constructor holds: a Python handler would
    never run). Python's own handlers are not touched.

    Returns:
        A function that puts the previous SIGHUP handler back.
    """
    assert signal.SIGHUP == 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    previous = libc.signal(signal.SIGHUP, ctypes.cast(libc._exit, ctypes.c_void_p))
    return lambda: libc.signal(signal.SIGHUP, previous)


def _start_watchdog(tf_config: dict[str, Any], timeout_s: float) -> tuple[int, int]:
    """Forks a watchdog that ends this process if the cluster has not formed.

    The strategy's constructor waits in C++, holding the GIL, until every task
    has registered, with no deadline of its own: no Python thread or signal
    handler can run meanwhile. The forked child (plain Python: sockets and a
    pipe) prints `startup_failure_message` on stderr after `timeout_s` and
    ends the parent with SIGHUP, which `_exit_1_on_sighup` turns into exit
    status 1 (SIGKILL if the parent still lives 10 s later), unless
    `_stop_watchdog` is called first.

    Returns:
        `(child pid, write end of the pipe)` for `_stop_watchdog`.
    """
    read, write = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the watchdog
        try:
            os.close(write)
            ready, _, _ = select.select([read], [], [], timeout_s)
            if not ready:
                message = startup_failure_message(tf_config, timeout_s)
                sys.stderr.write(f"error: {message}\n")
                sys.stderr.flush()
                os.kill(parent, signal.SIGHUP)
                deadline = time.monotonic() + 10.0
                while os.getppid() == parent and time.monotonic() < deadline:
                    time.sleep(0.05)
                if os.getppid() == parent:
                    os.kill(parent, signal.SIGKILL)
        finally:
            os._exit(0)
    os.close(read)
    return pid, write


def _stop_watchdog(pid: int, write: int) -> None:
    os.close(write)  # the child's select returns: it exits
    os.waitpid(pid, 0)


def make_strategy(
    distribution: str = "default",
    collective_timeout_s: float = DEFAULT_COLLECTIVE_TIMEOUT_S,
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy of a `--distribution` name.

    Call it at the start of the program, before any other TensorFlow op
    (`MultiWorkerMirroredStrategy` requires it).

    Args:
        distribution: one of `DISTRIBUTIONS`.
        collective_timeout_s: multi_worker: seconds a collective waits for
            its peers before failing.
        startup_timeout_s: multi_worker: seconds the other workers have to
            come up.

    Returns:
        The strategy; under "multi_worker", every worker is up.

    Raises:
        ValueError: an unknown name.
        ClusterConfigError: see `parse_tf_config`. A cluster that does not
            form within `startup_timeout_s` ends the process with exit
            status 1 (from a forked watchdog) and `startup_failure_message`
            on stderr.
    """
    if distribution == "default":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution != "multi_worker":
        raise ValueError(
            f"distribution={distribution!r}; expected one of {DISTRIBUTIONS}."
        )
    tf_config = parse_tf_config(os.environ.get("TF_CONFIG"))
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=collective_timeout_s
    )
    # A watchdog ends the process with a message naming the absent tasks
    # when the cluster has not formed in time (the constructor cannot).
    restore_sighup = _exit_1_on_sighup()
    watchdog = _start_watchdog(tf_config, startup_timeout_s)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=options
        )
    finally:
        _stop_watchdog(*watchdog)
        restore_sighup()
    return strategy


def worker_failure_message(error: BaseException) -> str:
    """The message a multi-worker run ends with when a collective failed.

    A worker that died (killed, out of memory, its machine gone) stops
    answering; the others' next all-reduce fails, at the latest after the
    collective timeout, with a TensorFlow `OpError` whose text is long.
    """
    first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return (
        "a worker of the cluster stopped answering: a collective (all-reduce) "
        f"failed or timed out ({type(error).__name__}: {first}). Restart every "
        "worker with the same command (the same TF_CONFIG each): training "
        "resumes from the last epoch in the run directory's backup/."
    )


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether `strategy` spans several worker processes."""
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the run directory (True but on non-chief workers)."""
    return not is_multi_worker(strategy) or bool(strategy.extended.should_checkpoint)


def worker_index(strategy: tf.distribute.Strategy | None) -> int:
    """This process's task index (0 outside multi-worker training)."""
    if not is_multi_worker(strategy):
        return 0
    return int(strategy.cluster_resolver.task_id or 0)


def write_dir(
    out: str | os.PathLike, strategy: tf.distribute.Strategy | None
) -> pathlib.Path:
    """Where this process writes: `out` on the chief, a fresh temporary folder
    of its own on every other worker (delete it with `cleanup_write_dir`)."""
    if is_chief(strategy):
        return pathlib.Path(out)
    return pathlib.Path(
        tempfile.mkdtemp(prefix=f"aesthal-worker{worker_index(strategy)}-")
    )


def cleanup_write_dir(
    path: str | os.PathLike, strategy: tf.distribute.Strategy | None
) -> None:
    """Deletes a non-chief worker's temporary folder (the chief's is kept)."""
    if not is_chief(strategy):
        shutil.rmtree(path, ignore_errors=True)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with auto-sharding by data (`AutoShardPolicy.DATA`).

    Under `MultiWorkerMirroredStrategy`, `fit` then splits every global batch
    between the workers (each keeps its share of the same batch), so the
    global batch is the same set of examples as in one process. The default
    policy (`AUTO`) would shard the TFDS files instead: other examples, and
    an error when there are fewer files than workers.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.with_options(options)
