"""The installed `aesthal` command: subcommands, help, usage errors, and a
tiny train -> evaluate -> export -> predict round on generated data."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import background_fixture, fork_run

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY = REPO / "experiments" / "configs" / "tiny.flags"
SUBCOMMANDS = ("train", "evaluate", "export", "predict", "serve")


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _installed(*args, cwd=REPO):
    """The `aesthal` executable that `pip install -e .` puts on the PATH."""
    executable = shutil.which("aesthal")
    assert executable, "no `aesthal` command on the PATH: pip install -e . first"
    return subprocess.run(
        [executable, *map(str, args)],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _aesthal(*args, cwd=REPO):
    """`aesthal ARGS` through the same entry point (aesthal.cli.main:run), in
    a child of conftest's fork server (no TensorFlow import of its own)."""
    return fork_run(
        [sys.executable, "-m", "aesthal.cli.main", *map(str, args)],
        cwd=cwd,
        env=_env(),
        timeout=600,
    )


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_the_installed_command_lists_its_subcommands():
    result = _installed("--help")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in SUBCOMMANDS:
        assert f"\n  {name} " in result.stdout
    # Its errors go through the same entry point: run in the fork server, as
    # the cases below (the console script only calls aesthal.cli.main:run,
    # whose SystemExit sets the status either way).
    missing = _aesthal()
    assert missing.returncode == 2
    assert _errors(missing) == [
        "error: no subcommand; expected one of train, evaluate, export, predict, "
        "serve"
    ]


def test_a_bad_flag_and_a_bad_model_are_one_line(tmp_path):
    # Through the entry point in the fork server: each run of the installed
    # executable imports TensorFlow (~6 CPU-s); its --help is checked above.
    bad_flag = _aesthal("train", "--output_dir=x", "--epochs=many")
    assert bad_flag.returncode == 2
    assert _errors(bad_flag) == [
        "error: flag --epochs=many: invalid literal for int() with base 10: 'many' "
        "(aesthal train --help lists the flags)"
    ]
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip archive")
    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((8, 8, 3), np.uint8))
    bad_model = _aesthal(
        "predict",
        f"--model={broken}",
        f"--input={tmp_path}",
        "--output=out",
        cwd=tmp_path,
    )
    assert bad_model.returncode == 2
    [line] = _errors(bad_model)
    assert line.startswith(f"error: {broken}: ")
    assert "Traceback" not in bad_model.stderr


HELP = {
    "train": (["--output_dir", "--backbone", "--epochs", "--saliency_head"], "--input"),
    "evaluate": (["--model", "--dataset", "--crops", "--scales"], "--epochs"),
    "export": (["--model", "--output_dir"], "--dataset"),
    "predict": (["--model", "--input", "--output", "--max_pixels"], "--epochs"),
    "serve": (["--model", "--port", "--host"], "--epochs"),
}


@background_fixture
def helps(tmp_path):
    """`aesthal <sub> --help` for every subcommand."""
    return {name: _aesthal(name, "--help") for name in SUBCOMMANDS}


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_help_lists_its_own_flags(helps, name):
    result = helps[name]
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"aesthal {name}: ")
    shown, absent = HELP[name]
    for flag in shown:
        assert f"  {flag}:" in result.stdout or f"  --[no]{flag[2:]}:" in (
            result.stdout
        ), flag
    assert f"  {absent}:" not in result.stdout


USAGE_ERRORS = [
    (["train"], "error: --output_dir is required."),
    (
        ["train", "--output_dir=OUT", "--model=m.keras"],
        "error: Unknown command line flag 'model'",
    ),
    (
        ["export", "--model=m.keras", "--output_dir=OUT", "--epochs=3"],
        "error: Unknown command line flag 'epochs'",
    ),
    (
        ["train", "--output_dir=OUT", "--saliency_taps=stage9"],
        "unknown taps ['stage9']",
    ),
    (["train", "--output_dir=OUT", "stray"], "error: unexpected arguments: stray"),
    (["evaluate", "--output_dir=OUT"], "error: --model is required."),
    (
        ["evaluate", "--model=/no/such.keras", "--output_dir=OUT"],
        "error: --model: /no/such.keras: no such file or folder.",
    ),
    (["export", "--model=a,b", "--output_dir=OUT"], "takes one model, not a list"),
    (["predict", "--model=m", "--output=OUT"], "error: --input is required."),
    (["predict", "--input=.", "--output=OUT", "--batch_size=0"], "--batch_size"),
    (["predict", "--input=.", "--output=OUT", "--crops=16x9"], "--crops: "),
    (["serve", "--model=m", "--port=70000"], "error: --port=70000"),
]


@background_fixture
def usage_errors(tmp_path):
    """Every case of USAGE_ERRORS, run one after another."""
    out = str(tmp_path / "out")
    return [
        _aesthal(*[a.replace("OUT", out) for a in args], cwd=tmp_path)
        for args, _ in USAGE_ERRORS
    ]


@pytest.mark.parametrize("index", range(len(USAGE_ERRORS)))
def test_usage_errors_exit_2_in_one_line(usage_errors, index):
    result = usage_errors[index]
    args, message = USAGE_ERRORS[index]
    assert result.returncode == 2, result.stderr[-3000:]
    [line] = _errors(result)
    assert message in line
    assert "Traceback" not in result.stderr


def test_without_a_model_predict_uses_the_shipped_one_or_says_there_is_none(
    tmp_path,
):
    from aesthal import released

    result = _aesthal("predict", f"--input={tmp_path}", f"--output={tmp_path}/o")
    if released.DEFAULT is None:
        assert result.returncode == 2
        assert _errors(result) == [
            "error: no shipped model named None (shipped: none); pass a model file "
            "instead (--model=PATH)"
        ]
    else:
        assert f"using the shipped model {released.DEFAULT}" in result.stderr


# The flags of `aesthal train` and of run.py, each parsed in its own process,
# as the ExperimentConfig each would train.
_CONFIGS = r"""
import importlib.util, json, sys
which, flagfiles = sys.argv[1], sys.argv[2:]
if which == "aesthal":
    from aesthal.cli import common, train
    configs = lambda: train.experiment_config()
    parse = lambda args: common.parse(["aesthal train", *args], train)
else:
    from absl import flags
    spec = importlib.util.spec_from_file_location("run", which)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    configs = run._configs
    parse = lambda args: flags.FLAGS(["run.py", *args])
out = {}
for name in flagfiles:
    from absl import flags
    flags.FLAGS.unparse_flags()
    # A flagfile without --output_dir gets one (the flagfile's wins).
    parse(["--output_dir=unset", f"--flagfile={name}"])
    out[name] = configs().to_dict()
print(json.dumps(out))
"""


def test_aesthal_train_reads_every_flagfile_as_run_py_does():
    """`aesthal train --flagfile=experiments/configs/quickstart.flags` trains
    the configuration run.py trains (the same `aesthal.cli.train.train`
    runs it): every flagfile gives the same ExperimentConfig in both."""
    names = sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "experiments" / "configs").glob("*.flags")
        if not p.name.endswith("_ft.flags")  # they need an --init_from file
    )
    assert "experiments/configs/quickstart.flags" in names
    results = {
        which: fork_run(
            [sys.executable, "-c", _CONFIGS, which, *names],
            cwd=REPO,
            env=_env(),
            timeout=300,
        )
        for which in ("aesthal", str(REPO / "experiments" / "run.py"))
    }
    parsed = {}
    for which, result in results.items():
        assert result.returncode == 0, result.stderr[-3000:]
        parsed[which] = json.loads(result.stdout.strip().splitlines()[-1])
    mine, theirs = parsed.values()
    assert mine == theirs
    quickstart = mine["experiments/configs/quickstart.flags"]
    assert quickstart["output_dir"] == "runs/quickstart"
    assert quickstart["data"]["saliency_target"] == "fixation_counts"


@background_fixture
def tiny_round(tmp_path):
    """`aesthal train` on the tiny flagfile, then evaluate, export and predict
    with its model (a generated photo)."""
    out, data_dir = tmp_path / "run", tmp_path / "tfds"
    results = {
        "train": _aesthal(
            "train",
            f"--flagfile={TINY}",
            f"--output_dir={out}",
            f"--data_dir={data_dir}",
        )
    }
    model = out / "model.keras"
    results["evaluate"] = _aesthal(
        "evaluate",
        f"--model={model}",
        "--dataset=synthetic_scenes/tiny",
        f"--data_dir={data_dir}",
        f"--output_dir={tmp_path / 'eval'}",
    )
    results["export"] = _aesthal(
        "export", f"--model={model}", f"--output_dir={tmp_path / 'export'}"
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), np.uint8)
    cv2.imwrite(str(photos / "photo.png"), image)
    results["predict"] = _aesthal(
        "predict",
        f"--model={model}",
        f"--input={photos}",
        f"--output={tmp_path / 'pred'}",
        "--no_progress",
        "--crops=1:1",
    )
    return tmp_path, results


def test_train_evaluate_export_predict_on_the_tiny_data(tiny_round):
    root, results = tiny_round
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr[-3000:])
    run = root / "run"
    for name in ("config.json", "model.keras", "metrics.json", "flags.txt"):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["config_version"] == 2
    assert config["model"]["trunk"]["name"] == "tiny"
    assert config["model"]["input_size"] == [32, 48]
    # The printed table is the one written to metrics.md.
    assert (run / "metrics.md").read_text().strip() in results["train"].stdout
    metrics = json.loads((root / "eval" / "metrics.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())
    # The same model on the same split: the same scores.
    assert json.dumps(metrics["saliency"]["metrics"]["model"]) == json.dumps(
        trained["saliency"]["metrics"]["model"]
    )
    assert (root / "export" / "saved_model" / "saved_model.pb").exists()
    assert f"SavedModel: {root / 'export' / 'saved_model'}" in results["export"].stdout
    saliency = cv2.imread(
        str(root / "pred" / "photo_saliency.png"), cv2.IMREAD_UNCHANGED
    )
    assert saliency.dtype == np.uint16 and saliency.shape == (50, 70)
    assert (root / "pred" / "photo_crop_1x1.png").exists()
    rows = (root / "pred" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("photo.png,")
    assert "wrote 1 prediction(s)" in results["predict"].stdout
