"""The OSIE flagfiles: they parse into valid configs, and osie.flags runs on real OSIE.

The end-to-end test reads the real OSIE files from `../shared/data/osie` and is
skipped with a reason when they are absent (a user's fresh clone).
"""

import json
import os
import pathlib
import sys

import pytest
from conftest import OSIE_DIR, background_fixture, fork_run

REPO = pathlib.Path(__file__).resolve().parents[2]
RUN = REPO / "experiments" / "run.py"
CONFIGS = REPO / "experiments" / "configs"
OSIE_FLAGFILES = sorted(p.name for p in CONFIGS.glob("osie*.flags"))

# Parses each flagfile (from the repository root, as the README runs them)
# as `aesthal train` does and prints the ExperimentConfig it would train
# (`aesthal.cli.train.experiment_config`, what run.py's `_configs()` also
# returns), as JSON, its model flat.
_PARSE = r"""
import json, sys
from absl import flags
from aesthal.cli import common, train
from aesthal.config.parts import FLAT_FIELDS
out = {}
for name in sys.argv[2:]:
    flags.FLAGS.unparse_flags()
    # A second stage (*_ft.flags) starts from a first stage's model: a stand-in
    # file (the command checks only that it exists before training).
    start = [f"--init_from={sys.argv[1]}"] if name.endswith("_ft.flags") else []
    common.parse(
        ["aesthal train", f"--flagfile=experiments/configs/{name}", *start], train
    )
    config = train.experiment_config().to_dict()
    # The model flat ({"backbone": ..., "saliency_head": ...}): each part's
    # fields by their flag names.
    model = config["model"]
    flat = {key: model[key] for key in ("input_size", "tasks", "side_heads")}
    for key, (part, field) in FLAT_FIELDS.items():
        flat[key] = model[part][field]
    config["model"] = flat
    out[name] = config
print(json.dumps(out))
"""


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


@background_fixture
def parsed(tmp_path):
    """Every OSIE flagfile parsed, in the background from the session's start
    (conftest.background_fixture)."""
    stage1 = tmp_path / "stage1.keras"
    stage1.write_bytes(b"")
    result = fork_run(  # forked from conftest's fork server
        [sys.executable, "-c", _PARSE, str(stage1), *OSIE_FLAGFILES],
        timeout=300,
        cwd=REPO,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_osie_flagfile_builds_a_valid_config(parsed):
    assert {"osie.flags", "osie_vgg16_hed.flags", "osie_vgg16.flags"} <= set(parsed)
    for name, config in parsed.items():
        data = config["data"]
        assert data["dataset"] == "osie", name
        assert data["tasks"] == ["saliency"], name
        # Relative to the repository root, where the README runs them.
        assert data["manual_dir"] == "../shared/data/osie", name
        # A validation part held out of train; the 100-image test split.
        assert (data["train_split"], data["validation_split"]) == (
            "train[:540]",
            "train[540:]",
        ), name
        assert data["test_split"] == "test", name
        assert config["output_dir"] == f"runs/{name[: -len('.flags')]}", name


def test_vgg16_runs_differ_only_in_the_trunk_initialisation(parsed):
    hed, scratch = parsed["osie_vgg16_hed.flags"], parsed["osie_vgg16.flags"]
    assert hed["model"]["backbone"] == "vgg16"
    assert hed["model"]["backbone_weights"] == "hed"
    assert scratch["model"]["backbone_weights"] is None
    assert hed["train"] == scratch["train"]
    assert {**hed["model"], "backbone_weights": None} == scratch["model"]
    # The nested osie.flags is read first, the trunk's flags override it.
    assert parsed["osie.flags"]["model"]["backbone"] == "tiny"
    assert hed["model"]["input_size"] == [96, 128]


def test_recommended_real_photo_flagfile_is_the_cached_readout_recipe(parsed):
    config = parsed["osie_vgg16_imagenet.flags"]
    model, data = config["model"], config["data"]
    assert (model["backbone"], model["backbone_weights"]) == ("vgg16", "imagenet")
    assert model["input_size"] == [192, 256]
    assert model["frozen_up_to"] == "stage5"
    assert model["saliency_head"] == "readout"
    assert model["readout_taps"] == ["stage4", "stage5"]
    assert model["readout_channels"] == [16, 32, 2]
    assert model["readout_blur"] is None
    assert (model["centre_prior"], model["prior_grid"]) == ("fixed", [24, 32])
    assert data["cache_features"] and data["saliency_target"] == "fixation_counts"
    # 540 training images and their mirror images in batches of 8: one epoch.
    assert (data["batch_size"], config["train"]["steps_per_epoch"]) == (8, 135)


@pytest.mark.real_data
def test_manual_dir_finds_the_shared_osie_from_the_repository_root(parsed, osie_dir):
    for name, config in parsed.items():
        manual = REPO / config["data"]["manual_dir"]
        assert (manual / "data" / "eye" / "fixations.mat").exists(), name
        assert manual.resolve() == osie_dir.resolve(), name


def _osie_subset(osie_dir, folder, train, test):
    """A manual_dir with the real fixations.mat and a few real stimuli (links)."""
    (folder / "data" / "eye").mkdir(parents=True)
    (folder / "data" / "stimuli").mkdir()
    (folder / "data" / "eye" / "fixations.mat").symlink_to(
        osie_dir / "data" / "eye" / "fixations.mat"
    )
    for number in [*train, *test]:
        name = f"{number}.jpg"
        (folder / "data" / "stimuli" / name).symlink_to(
            osie_dir / "data" / "stimuli" / name
        )
    return folder


@background_fixture
def osie_one_step(tmp_path):
    """The run of the test below, in the background from the session's start
    (conftest.background_fixture): `(result, out)`; None without the data (the
    test skips on `osie_dir` first)."""
    if not (OSIE_DIR / "data" / "eye" / "fixations.mat").exists():
        return None
    # The real files, but only 6 train and 2 test images, so the TFDS build
    # takes a second instead of 30 (the other 692 are counted missing_file).
    manual = _osie_subset(OSIE_DIR, tmp_path / "osie", range(1001, 1007), (1601, 1602))
    out = tmp_path / "out"
    result = fork_run(  # forked from conftest's fork server
        [
            sys.executable,
            str(RUN),
            "--flagfile=experiments/configs/osie.flags",
            f"--manual_dir={manual}",
            f"--data_dir={tmp_path / 'tfds'}",
            f"--output_dir={out}",
            "--train_split=train[:4]",
            "--validation_split=train[4:]",
            "--input_height=32",
            "--input_width=48",
            "--batch_size=2",
            "--epochs=1",
            "--steps_per_epoch=1",
            "--noexport",
        ],
        timeout=300,
        cwd=REPO,
        env=_env(),
    )
    return result, out


@pytest.mark.slow
@pytest.mark.real_data
def test_osie_flags_train_one_step_and_evaluate_at_800x600(osie_dir, osie_one_step):
    result, out = osie_one_step
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["tasks"] == ["saliency"]
    assert config["train"]["lr_schedule"] == "cosine"  # from osie.flags
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["dataset"], metrics["split"]) == ("osie", "test")
    saliency = metrics["saliency"]
    assert saliency["num_evaluated"] == 2
    assert saliency["ig_baseline"] == "centre_bias"
    # Real data has no true density; the baselines are uniform and centre bias.
    assert set(saliency["metrics"]) == {"model", "uniform", "centre_bias"}
    assert saliency["metrics"]["uniform"]["nss"]["mean"] == 0.0
    assert saliency["metrics"]["centre_bias"]["ig"]["mean"] == 0.0
    assert "aesthetics" not in metrics
    assert (out / "metrics.md").read_text().strip() in result.stdout


def test_second_stage_flagfile_fine_tunes_under_the_recipe_readout(parsed):
    base = parsed["osie_vgg16_imagenet.flags"]
    config = parsed["osie_vgg16_imagenet_ft.flags"]
    model, train = config["model"], config["train"]
    # Block4 and block5 train on cached block3_conv3 features; all else is
    # the recipe's.
    assert model["frozen_up_to"] == "stage3"
    assert {**model, "frozen_up_to": "stage5"} == base["model"]
    assert config["data"] == base["data"]
    assert train["init_from"].endswith("stage1.keras") and train["init_heads"]
    assert train["group_learning_rates"] == {"shared": 1e-4, "saliency": 3e-4}
    assert (train["epochs"], train["steps_per_epoch"]) == (5, 135)
    assert train["lr_schedule"] == "cosine"


def test_lite2_flagfiles_are_the_vgg16_recipe_on_efficientnet_lite2(parsed):
    vgg, vgg_ft = (
        parsed["osie_vgg16_imagenet.flags"],
        parsed["osie_vgg16_imagenet_ft.flags"],
    )
    first, second = parsed["osie_lite2.flags"], parsed["osie_lite2_ft.flags"]
    # The same readout on another trunk, at twice the input size (the taps on
    # VGG16's 24x32 and 12x16 grids), trained at 1e-3 for 5 epochs.
    model = first["model"]
    assert (model["backbone"], model["backbone_weights"]) == (
        "efficientnet_lite2",
        "imagenet",
    )
    assert model["input_size"] == [384, 512]
    assert {**model, "backbone": "vgg16", "input_size": [192, 256]} == vgg["model"]
    assert first["data"] == vgg["data"]
    assert first["train"]["learning_rate"] == 1e-3
    assert first["train"]["epochs"] == 5
    # The second stage: after stage3 fine-tuned with frozen batch norms, at
    # the VGG16 second stage's rates.
    model = second["model"]
    assert model["frozen_up_to"] == "stage3" and model["frozen_batch_norm"]
    assert {**model, "frozen_up_to": "stage5", "frozen_batch_norm": False} == (
        first["model"]
    )
    assert second["train"]["init_heads"]
    for key in ("group_learning_rates", "epochs", "steps_per_epoch", "lr_schedule"):
        assert second["train"][key] == vgg_ft["train"][key], key
