"""experiments/study.py: the paired summary by hand, and a tiny end-to-end run."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from absl import flags
from scipy import stats

from conftest import load_script

REPO = pathlib.Path(__file__).resolve().parents[2]
STUDY = REPO / "experiments" / "study.py"


@pytest.fixture(scope="module")
def study():
    return load_script(STUDY, "study_script")


def _fake_run(root, stem, seed, cc, tasks, seconds=10.0):
    out = root / stem / f"seed{seed}"
    out.mkdir(parents=True)
    metrics = {
        name: {"mean": value}
        for name, value in {
            "auc_judd": 0.8,
            "auc_borji": 0.7,
            "auc_shuffled": 0.6,
            "nss": 1.0,
            "cc": cc,
            "kld": 0.9,
            "sim": 0.5,
            "ig": 0.1,
        }.items()
    }
    result = {
        "saliency": {
            "metrics": {"model": metrics, "centre_bias": {"cc": {"mean": 0.3}}}
        }
    }
    (out / "metrics.json").write_text(json.dumps(result))
    config = {"data": {"tasks": tasks}, "train": {"loss_weights": {}}}
    (out / "config.json").write_text(json.dumps(config))
    (out / "train_time.json").write_text(json.dumps({"seconds": seconds}))


def test_summary_pairs_conditions_by_seed(study, tmp_path):
    flags.FLAGS(["study", f"--output_dir={tmp_path}"])
    base = {"0": 0.50, "1": 0.60, "2": 0.55}
    other = {"0": 0.56, "1": 0.62, "2": 0.64}
    for seed in base:
        _fake_run(tmp_path, "1_saliency_only", seed, base[seed], ["saliency"])
        _fake_run(tmp_path, "3_multitask_extra_images", seed, other[seed], ["saliency"])
    summary = study.summarise(["0", "1", "2"])
    three = summary["conditions"]["3"]["saliency/cc"]
    assert three["mean"] == pytest.approx(sum(other.values()) / 3)
    diffs = [other[s] - base[s] for s in base]  # 0.06, 0.02, 0.09
    mean = sum(diffs) / 3
    sd = (sum((d - mean) ** 2 for d in diffs) / 2) ** 0.5
    half = stats.t.ppf(0.975, 2) * sd / 3**0.5
    assert three["diff_vs_1"]["mean"] == pytest.approx(mean)
    assert three["diff_vs_1"]["ci_half"] == pytest.approx(half)
    assert "diff_vs_1" not in summary["conditions"]["1"]["saliency/cc"]
    table = study.markdown(summary)
    assert f"{mean:.3f} ± {half:.3f}" in table
    assert "*centre_bias (baseline)*" in table
    study.plot(summary, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


@pytest.mark.slow
def test_pretrain_then_finetune_runs_end_to_end(tmp_path):
    """Condition 4b pulls in 4a and starts from its model; the table is rebuilt."""
    tiny = [
        "--dataset=synthetic_scenes/tiny",
        "--input_height=32",
        "--input_width=48",
        "--batch_size=4",
        "--epochs=1",
        "--steps_per_epoch=2",
        "--validation_steps=1",
        "--saliency_labels=4",
        "--aesthetics_labels=12",
        "--eval_max_images=4",
    ]
    result = subprocess.run(
        [
            sys.executable,
            str(STUDY),
            f"--output_dir={tmp_path / 'study'}",
            f"--data_dir={tmp_path / 'tfds'}",
            "--conditions=4b",
            "--seeds=0",
            "--extra_flags=" + ",".join(tiny),
        ],
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study_dir = tmp_path / "study"
    pretrained = study_dir / "4a_aesthetics_pretraining" / "seed0"
    finetuned = study_dir / "4b_saliency_finetuning" / "seed0"
    assert (pretrained / "model.keras").exists()
    assert not (pretrained / "metrics.json").exists()  # stage 1 is not evaluated
    config = json.loads((finetuned / "config.json").read_text())
    assert config["train"]["init_from"] == str(pretrained / "model.keras")
    assert config["data"]["tasks"] == ["saliency"]
    assert (
        "4 pre-train on aesthetics, fine-tune saliency"
        in (study_dir / "study.md").read_text()
    )


def test_scarcity_sweep_pairs_each_label_count_with_its_own_condition_1(
    study, tmp_path
):
    flags.FLAGS(["study", f"--output_dir={tmp_path}"])
    # N=50: condition 3 gains 0.10 on every seed; N=400: condition 3 loses
    # 0.01, 0.03, 0.02 (a paired interval that excludes 0 only at N=50's side).
    runs = {
        50: ({"0": 0.40, "1": 0.42, "2": 0.38}, {"0": 0.50, "1": 0.52, "2": 0.48}),
        400: ({"0": 0.70, "1": 0.71, "2": 0.69}, {"0": 0.69, "1": 0.68, "2": 0.67}),
    }
    for n, (base, three) in runs.items():
        for seed in base:
            _fake_run(tmp_path / f"n{n}", "1_saliency_only", seed, base[seed], ["saliency"])
            _fake_run(
                tmp_path / f"n{n}",
                "3_multitask_extra_images",
                seed,
                three[seed],
                ["saliency"],
            )
    sweep = study.scarcity_summary([50, 400], ["0", "1", "2"], tmp_path)
    at_50 = sweep["by_count"]["50"]["conditions"]["3"]["saliency/cc"]["diff_vs_1"]
    assert at_50["mean"] == pytest.approx(0.10)
    assert at_50["ci_half"] == pytest.approx(0.0, abs=1e-12)
    at_400 = sweep["by_count"]["400"]["conditions"]["3"]["saliency/cc"]["diff_vs_1"]
    diffs = [-0.01, -0.03, -0.02]
    half = stats.t.ppf(0.975, 2) * stats.tstd(diffs) / 3**0.5
    assert at_400["mean"] == pytest.approx(-0.02)
    assert at_400["ci_half"] == pytest.approx(half)
    table = study.scarcity_markdown(sweep)
    assert f"| 400 | 3 | 3 | 0.700 ± " in table
    assert f"-0.020 ± {half:.3f}" in table
    study.scarcity_plot(sweep, tmp_path / "scarcity.png")
    assert (tmp_path / "scarcity.png").stat().st_size > 1000
