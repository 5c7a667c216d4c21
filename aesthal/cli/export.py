r"""Exports a `.keras` model as a SavedModel (the serving signature).

    aesthal export --model=runs/quickstart/model.keras --output_dir=runs/export

Writes `--output_dir/saved_model` (`aesthal.export.export_run`) and prints
its path. Exit status: 0 done; 2 a usage error or a `--model` that cannot be
loaded, in one line.
"""

from __future__ import annotations

import pathlib

from absl import flags

from aesthal.cli import common, config_flags

FLAGS = flags.FLAGS
_M = __name__
MODEL = config_flags.define_flag(
    "string", "model", None, "The .keras file (or SavedModel folder) to export.", _M
)
OUTPUT_DIR = config_flags.define_flag(
    "string", "output_dir", None, "Where saved_model/ goes (created).", _M
)


def export(model_path: str, output_dir: str) -> pathlib.Path:
    """Loads `model_path` (the network only) and exports it into `output_dir`.

    Raises:
        aesthal.models.loading.ModelLoadError: the model cannot be loaded.
    """
    from aesthal.export import export_run
    from aesthal.models.loading import load_model

    common.quiet_logging()
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "flags.txt").write_text(FLAGS.flags_into_string())
    return export_run(load_model(model_path), out)


@common.guarded
def main(argv: list[str]) -> int:
    """`aesthal export`: returns the exit status."""
    from aesthal.cli import train

    stray = common.stray_arguments(argv)
    if stray:
        raise common.UsageError(stray)
    if not MODEL.value:
        raise common.UsageError("--model is required.")
    if "," in MODEL.value:
        raise common.UsageError("--model: export takes one model, not a list.")
    if not pathlib.Path(MODEL.value).exists():
        raise common.UsageError(f"--model: {MODEL.value}: no such file or folder.")
    if not OUTPUT_DIR.value:
        raise common.UsageError("--output_dir is required.")

    def work():
        print(f"SavedModel: {export(MODEL.value, OUTPUT_DIR.value)}")

    return train.run_and_report(work, argv[0])
