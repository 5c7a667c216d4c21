r"""Evaluates a model (or several, averaged) on a data set's test split.

    aesthal evaluate --model=runs/quickstart/model.keras \
        --dataset=synthetic_scenes --output_dir=runs/quickstart/eval
    aesthal evaluate --model=runs/osie/model.keras \
        --flagfile=experiments/configs/osie.flags --crops=1:1,16:9,9:16,4:5 \
        --output_dir=runs/osie/eval

Writes `metrics.md` / `metrics.json` (and with `--crops`, `crops.md` /
`crops.json`) to `--output_dir` and prints the tables. The data flags are
`DataConfig`'s (`aesthal.cli.config_flags`); a training flagfile may be
given, its training and model flags are then read and ignored. Exit status:
0 done; 2 a usage error or a `--model` that cannot be loaded, in one line.
"""

from __future__ import annotations

import pathlib

from absl import flags

from aesthal.cli import common, config_flags, reporting, train
from aesthal.config import DataConfig

FLAGS = flags.FLAGS
_M = __name__
MODEL = config_flags.define_flag(
    "string",
    "model",
    None,
    "A .keras file or SavedModel folder; several, comma-separated, whose maps "
    "are averaged (aesthal.inference.Ensemble).",
    _M,
)
OUTPUT_DIR = config_flags.define_flag(
    "string", "output_dir", None, "Where the tables go.", _M
)
MIRROR = config_flags.define_flag(
    "bool",
    "mirror",
    False,
    "Also average each model's prediction of the left-right mirror image "
    "(test-time augmentation; one more forward pass per model).",
    _M,
)
SCALES = config_flags.define_flag(
    "string",
    "scales",
    "1",
    "Factors of each model's input size to run it at, comma-separated, their "
    "maps averaged (multi-scale test-time augmentation, e.g. 1,1.25,1.5; one "
    "more forward pass per model and scale). Other than 1 needs .keras models.",
    _M,
)
DATA_FLAGS = config_flags.define((DataConfig,), _M)
for _name in ("eval_max_images", "crops", "crop_ceiling"):
    FLAGS.register_key_flag_for_module(_M, FLAGS[_name])
#: Read from a training flagfile (`--flagfile=experiments/configs/osie.flags`)
#: and ignored: the model and training flags of `aesthal train`.
ACCEPTED_FLAGS = config_flags.flag_names((train.ModelConfig, train.TrainConfig)) | {
    "start_over",
    "distribution",
    "collective_timeout_s",
    "startup_timeout_s",
    "evaluate",
    "export",
}


def model_paths() -> list[str]:
    """`--model`'s paths, each checked to exist.

    Raises:
        common.UsageError: no `--model`, or a path that does not exist.
    """
    paths = [p.strip() for p in (MODEL.value or "").split(",") if p.strip()]
    if not paths:
        raise common.UsageError("--model is required.")
    for path in paths:
        if not pathlib.Path(path).exists():
            raise common.UsageError(f"--model: {path}: no such file or folder.")
    return paths


def scales() -> tuple[float, ...]:
    """`--scales`, parsed (`common.UsageError` when malformed)."""
    from aesthal.inference import parse_scales

    try:
        return parse_scales(SCALES.value)
    except ValueError as error:
        raise common.UsageError(f"--scales: {error}") from error


def evaluate(data: DataConfig, output_dir: str) -> None:
    """Loads `--model` (with `--mirror`, `--scales`) and evaluates it on
    `data`'s test split into `output_dir`.

    Raises:
        aesthal.models.loading.ModelLoadError: a model cannot be loaded.
    """
    from aesthal.inference import make_predictor

    common.quiet_logging()
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "flags.txt").write_text(FLAGS.flags_into_string())
    predictor = make_predictor(MODEL.value, mirror=MIRROR.value, scales=SCALES.value)
    reporting.evaluate(
        predictor,
        data,
        out,
        crops=FLAGS["crops"].value,
        max_images=FLAGS["eval_max_images"].value,
        crop_ceiling=FLAGS["crop_ceiling"].value,
    )


@common.guarded
def main(argv: list[str]) -> int:
    """`aesthal evaluate`: returns the exit status."""
    stray = common.stray_arguments(argv)
    if stray:
        raise common.UsageError(stray)
    model_paths()
    if not OUTPUT_DIR.value:
        raise common.UsageError("--output_dir is required.")
    scales()
    train.check_crops()
    try:
        data = config_flags.data_config()
    except ValueError as error:
        raise common.UsageError(str(error)) from error
    return train.run_and_report(lambda: evaluate(data, OUTPUT_DIR.value), argv[0])
