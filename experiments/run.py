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
training or validation split (each a one-line error, exit status 1). A flag
error is printed alone (exit status 2, a usage error, in every mode).
`--mode=predict` is `python -m aesthal.predict` (same outputs, same exit
status: 0 written, 1 nothing written, 2 bad arguments or input). A `--model`
that cannot be loaded (evaluate, export, predict) is one line on stderr and
exit status 2.

Each mode is a subcommand of the installed command, `aesthal train`,
`aesthal evaluate`, `aesthal export` and `aesthal predict` (`aesthal.cli`):
this script is their thin entry point, with `--mode` and the flags of all four.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

# Quiet TensorFlow's C++ start-up logs (importing aesthal imports it) unless the
# user asked for them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The subcommands' flags (each defined once, in its module; the configs'
# generated from the dataclasses' fields: aesthal.cli.config_flags).
from aesthal.cli import common, evaluate, export, train  # noqa: E402
from aesthal.cli.config_flags import define_flag  # noqa: E402

_MODE = define_flag(
    "enum",
    "mode",
    "train",
    "What to do.",
    __name__,
    enum_values=["train", "evaluate", "export", "predict"],
)
_INPUT = define_flag(
    "string",
    "input",
    None,
    "predict: an image file or a folder (searched recursively).",
    __name__,
)
_MAX_PIXELS = define_flag(
    "integer",
    "max_pixels",
    None,
    "predict: skip images of more pixels (read from the file's header); "
    "default aesthal.predict's (50 megapixels).",
    __name__,
)
for _module in (train, evaluate, export):
    flags.adopt_module_key_flags(_module)


def _configs():
    """All flags to an `ExperimentConfig`; raises `common.UsageError`."""
    mode = _MODE.value
    if not flags.FLAGS.output_dir:
        raise common.UsageError("--output_dir is required.")
    if mode != "train" and not evaluate.MODEL.value:
        raise common.UsageError(f"--mode={mode} needs --model.")
    if _INPUT.value and mode != "predict":
        raise common.UsageError("--input is for --mode=predict.")
    if mode == "train" and evaluate.MODEL.value:
        raise common.UsageError(
            "--model is for evaluate/export; use --init_from to start from one."
        )
    if train.CROPS.value and mode not in ("train", "evaluate"):
        raise common.UsageError("--crops is for --mode=evaluate, train or predict.")
    if mode == "export" and "," in evaluate.MODEL.value:
        raise common.UsageError("--mode=export takes one --model, not a list.")
    if evaluate.MIRROR.value and mode not in ("evaluate", "predict"):
        raise common.UsageError("--mirror is for --mode=evaluate or predict.")
    if evaluate.scales() != (1.0,) and mode not in ("evaluate", "predict"):
        raise common.UsageError("--scales is for --mode=evaluate or predict.")
    if flags.FLAGS.start_over and mode != "train":
        raise common.UsageError("--start_over is for --mode=train.")
    if mode != "train":
        evaluate.model_paths()
    return train.experiment_config()


def _predict() -> int:
    """`--mode=predict`: `python -m aesthal.predict`'s `main`, and its exit status."""
    from aesthal import predict

    argv = [f"--batch_size={flags.FLAGS.batch_size}", "--no_progress"]
    if train.CROPS.value:
        argv.append(f"--crops={','.join(train.CROPS.value)}")
    if evaluate.MIRROR.value:
        argv.append("--mirror")
    argv.append(f"--scales={evaluate.SCALES.value}")
    if _MAX_PIXELS.value is not None:
        argv.append(f"--max_pixels={_MAX_PIXELS.value}")
    for name, value in (
        ("model", evaluate.MODEL.value),
        ("input", _INPUT.value),
        ("output", flags.FLAGS.output_dir),
    ):
        if value:
            argv.append(f"--{name}={value}")
    try:
        return predict.main(argv)
    except SystemExit as error:  # argparse: a missing flag (status 2)
        return int(error.code or 0)


def _exit_with_error(message: str) -> None:
    """Prints a flag error alone (as absl does its own) and exits 2."""
    print(
        f"FATAL Flags parsing error: {message}\n"
        "Pass --helpshort or --helpfull to see help on flags.",
        file=sys.stderr,
    )
    sys.exit(common.USAGE)


def _parse(argv: list[str]) -> list[str]:
    """absl's parsing, its errors exiting 2 (a usage error) instead of 1."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        _exit_with_error(str(error))


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _exit_with_error(f"unexpected arguments: {' '.join(argv[1:])}")
    if _MODE.value == "predict":
        sys.exit(_predict())
    try:
        config = _configs()  # every flag is checked before any work starts
    except common.UsageError as error:
        _exit_with_error(str(error))
    output_dir = config.output_dir
    if _MODE.value == "train":
        work = lambda: train.train(config)  # noqa: E731
    elif _MODE.value == "evaluate":
        work = lambda: evaluate.evaluate(config.data, output_dir)  # noqa: E731
    else:

        def work():
            print(f"SavedModel: {export.export(evaluate.MODEL.value, output_dir)}")

    sys.exit(train.run_and_report(work, "run.py"))


if __name__ == "__main__":
    app.run(main, flags_parser=_parse)
