r"""Trains a model, exports its SavedModel and evaluates it on the test split.

    aesthal train --flagfile=experiments/configs/quickstart.flags

Trains (`aesthal.training.runner`), exports the SavedModel
(`aesthal.export.export_run`), evaluates on the test split
(`aesthal.evaluation.report`) and prints the results table; with `--crops`
it also scores saliency-aware crops (`crops.md` beside `metrics.md`).
Everything goes to `--output_dir` (described in `aesthal.training.runner`).
Killed and started again with the same command, a run resumes from its last
readable backup (`--start_over` trains from epoch 1 instead); run again once
finished, it trains nothing and only redoes a missing export or evaluation.
The model, data and training flags are generated from the config
dataclasses' fields (`aesthal.cli.config_flags`). Exit status: 0 done; 1 a
run error in one line (another configuration in `--output_dir`, the folder
in use, a batch larger than a split, no readable backup); 2 a usage error
in one line.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sys

from absl import flags, logging

from aesthal.cli import common, config_flags, reporting
from aesthal.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig

FLAGS = flags.FLAGS
_M = __name__
_OUTPUT_DIR = config_flags.define_flag(
    "string",
    "output_dir",
    None,
    "Run directory: config, logs, checkpoints, model, metrics.",
    _M,
)
CONFIG_FLAGS = config_flags.define((DataConfig, ModelConfig, TrainConfig), _M)
_START_OVER = config_flags.define_flag(
    "bool",
    "start_over",
    False,
    "train: discard --output_dir's training state (backup/, checkpoints/; e.g. "
    "a backup that cannot be read) and train from epoch 1 with the same "
    "configuration.",
    _M,
)
# Distribution (aesthal.training.distribute).
_DISTRIBUTION = config_flags.define_flag(
    "enum",
    "distribution",
    "default",
    "train: default = one device; mirrored = tf.distribute.MirroredStrategy over "
    "the local devices; multi_worker = MultiWorkerMirroredStrategy over the "
    "workers in the TF_CONFIG environment variable (docs/usage.md, 'Training on "
    "several machines'). --batch_size is the global batch.",
    _M,
    enum_values=["default", "mirrored", "multi_worker"],
)
_COLLECTIVE_TIMEOUT_S = config_flags.define_flag(
    "float",
    "collective_timeout_s",
    300.0,
    "multi_worker: seconds an all-reduce waits for the other workers before the "
    "run fails (a dead worker).",
    _M,
)
_STARTUP_TIMEOUT_S = config_flags.define_flag(
    "float",
    "startup_timeout_s",
    300.0,
    "multi_worker: seconds the other workers have to come up.",
    _M,
)
# Evaluation after training.
_EVALUATE = config_flags.define_flag(
    "bool", "evaluate", True, "train: evaluate on the test split.", _M
)
_EXPORT = config_flags.define_flag(
    "bool", "export", True, "train: write the SavedModel.", _M
)
EVAL_MAX_IMAGES = config_flags.define_flag(
    "integer", "eval_max_images", None, "Evaluate only the first N test images.", _M
)
CROPS = config_flags.define_flag(
    "list",
    "crops",
    [],
    "Aspect ratios width:height, e.g. 1:1,16:9,9:16,4:5: also score "
    "saliency-aware crops on the test split's fixations (crops.md/crops.json "
    "beside metrics.md, aesthal.evaluation.crop_report).",
    _M,
)
CROP_CEILING = config_flags.define_flag(
    "bool",
    "crop_ceiling",
    True,
    "--crops: add the leave-one-observer-out human ceiling where the data set "
    "has observer ids (osie).",
    _M,
)


def check_crops() -> None:
    """Raises `common.UsageError` for a malformed `--crops` ratio."""
    from aesthal import crop

    for ratio in CROPS.value:
        try:
            crop.parse_ratio(ratio)
        except ValueError as error:
            raise common.UsageError(f"--crops: {error}") from error


def experiment_config() -> ExperimentConfig:
    """Every training flag, checked, as an `ExperimentConfig`.

    Raises:
        common.UsageError: a missing or bad flag, or a combination the
            configs refuse (the message names the flag).
    """
    if not _OUTPUT_DIR.value:
        raise common.UsageError("--output_dir is required.")
    value = {name: holder.value for name, holder in CONFIG_FLAGS.items()}
    if value["budget_mode"] != "independent" and not (
        value["saliency_labels"] and value["aesthetics_labels"]
    ):
        raise common.UsageError(
            f"--budget_mode={value['budget_mode']} needs both --saliency_labels "
            "and --aesthetics_labels."
        )
    check_crops()
    if value["init_heads"] and not value["init_from"]:
        raise common.UsageError(
            "--init_heads needs --init_from (the model to start from)."
        )
    if value["init_from"] and not os.path.exists(value["init_from"]):
        raise common.UsageError(
            f"--init_from: {value['init_from']}: no such file or folder."
        )
    try:
        return config_flags.experiment_config(_OUTPUT_DIR.value)
    except ValueError as error:
        raise common.UsageError(str(error)) from error


def run_error(error: Exception) -> str | None:
    """The one-line message of an error a run ends with instead of a
    traceback, or None for any other error (a bug: its traceback)."""
    import tensorflow as tf

    from aesthal.training import distribute

    if _DISTRIBUTION.value == "multi_worker" and isinstance(error, tf.errors.OpError):
        # A dead worker: end with a message, not a traceback or a hang.
        return distribute.worker_failure_message(error)
    if not isinstance(error, OSError | ValueError):
        return None
    from aesthal.data.prepare import BatchSizeError, DataDirError
    from aesthal.training.callbacks import BackupUnreadableError
    from aesthal.training.distribute import ClusterConfigError
    from aesthal.training.output_lock import OutputDirInUseError
    from aesthal.training.runner import ConfigConflictError

    known = (
        DataDirError
        | ConfigConflictError
        | ClusterConfigError
        | BatchSizeError
        | BackupUnreadableError
        | OutputDirInUseError
    )
    return str(error) if isinstance(error, known) else None


def train(config: ExperimentConfig) -> None:
    """Trains, exports and evaluates the run `config` describes (its folder
    locked, the distribution strategy made first)."""
    from aesthal.training import distribute, output_lock, runner

    common.quiet_logging()
    out = pathlib.Path(config.output_dir)
    # The chief (the only process of a one-process run) locks the run
    # directory before anything else, the cluster's start-up included: a
    # refused chief never joins, and the other workers end after
    # --startup_timeout_s, naming it, instead of waiting in a collective.
    chief = _DISTRIBUTION.value != "multi_worker" or distribute.is_chief_task(
        distribute.parse_tf_config(os.environ.get("TF_CONFIG"))
    )
    with output_lock.locked(out) if chief else contextlib.nullcontext():
        runner.check_resumable(out, config)  # before flags.txt: keep its record
        # Before any other TensorFlow op (MultiWorkerMirroredStrategy needs it).
        strategy = distribute.make_strategy(
            _DISTRIBUTION.value,
            collective_timeout_s=_COLLECTIVE_TIMEOUT_S.value,
            startup_timeout_s=_STARTUP_TIMEOUT_S.value,
        )
        _train(config, strategy)


def _train(config: ExperimentConfig, strategy) -> None:
    """`train` once the run directory is locked and the strategy made."""
    from aesthal.export import export_run
    from aesthal.inference import load_model
    from aesthal.training import distribute, runner

    out = pathlib.Path(config.output_dir)
    start_over = _START_OVER.value
    if not distribute.is_chief(strategy):
        # A non-chief worker of a multi-worker run: it trains and saves beside
        # the chief, into temporary folders; the chief writes the run directory.
        model = runner.train(config, strategy=strategy, start_over=start_over)
        if _EXPORT.value:
            own = distribute.write_dir(out, strategy)
            export_run(model, own)  # saving may take collectives: every worker saves
            distribute.cleanup_write_dir(own, strategy)
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "flags.txt").write_text(FLAGS.flags_into_string())
    # A rerun of a finished run keeps its record and only does what is missing.
    finished = not start_over and runner.is_finished(config)
    model = runner.train(config, strategy=strategy, start_over=start_over)
    exported = finished and (out / "saved_model").is_dir()
    evaluated = finished and (out / "metrics.json").is_file()
    # Only a rerun has nothing to do: a run trained just now (even with
    # --noexport --noevaluate) says nothing here.
    if (
        finished
        and (exported or not _EXPORT.value)
        and (evaluated or not _EVALUATE.value)
    ):
        names = (
            "history.json",
            "train_time.json",
            "model.keras",
            "saved_model",
            "metrics.json",
        )
        kept = [name for name in names if (out / name).exists()]
        print(
            f"{out} holds this run, finished: nothing to do (kept: "
            f"{', '.join(kept)}). Use another --output_dir to train again."
        )
        return
    if _EXPORT.value and not exported:
        logging.info("SavedModel: %s", export_run(model, out))
    if _EVALUATE.value and not evaluated:
        if distribute.is_multi_worker(strategy):
            # The chief alone evaluates, on a copy outside the strategy (the
            # other workers have finished).
            model = load_model(out / "model.keras")
        reporting.evaluate(
            model,
            config.data,
            out,
            crops=CROPS.value,
            max_images=EVAL_MAX_IMAGES.value,
            crop_ceiling=CROP_CEILING.value,
        )


def run_and_report(work, prog: str) -> int:
    """`work()`, its known errors as one line: 1 (a run error) or 2 (a model
    that cannot be loaded); returns the exit status."""
    from aesthal.models.loading import ModelLoadError

    try:
        work()
    except ModelLoadError as error:
        print(f"error: {common.one_line(error)}", file=sys.stderr)
        return common.USAGE
    except Exception as error:
        message = run_error(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


@common.guarded
def main(argv: list[str]) -> int:
    """`aesthal train`: returns the exit status."""
    stray = common.stray_arguments(argv)
    if stray:
        raise common.UsageError(stray)
    config = experiment_config()  # every flag is checked before any work starts
    return run_and_report(lambda: train(config), argv[0])
