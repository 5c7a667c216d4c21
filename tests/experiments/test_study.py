"""experiments/study.py: the paired summary by hand, and a tiny end-to-end run."""

import json
import os
import pathlib
import sys

import pytest
from absl import flags
from conftest import background_fixture, fork_run, load_script
from scipy import stats

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


@background_fixture
def finetune_study(tmp_path):
    """The study's condition 4b on tiny settings, in the background from the
    session's start (conftest.background_fixture): `(result, tmp_path)`."""
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
    result = fork_run(  # forked from conftest's fork server
        [
            sys.executable,
            str(STUDY),
            f"--output_dir={tmp_path / 'study'}",
            f"--data_dir={tmp_path / 'tfds'}",
            "--conditions=4b",
            "--seeds=0",
            "--extra_flags=" + ",".join(tiny),
        ],
        timeout=600,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    return result, tmp_path


@pytest.mark.slow
def test_pretrain_then_finetune_runs_end_to_end(finetune_study):
    """Condition 4b pulls in 4a and starts from its model; the table is rebuilt."""
    result, tmp_path = finetune_study
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
            _fake_run(
                tmp_path / f"n{n}", "1_saliency_only", seed, base[seed], ["saliency"]
            )
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
    assert "| 400 | 3 | 3 | 0.700 ± " in table
    assert f"-0.020 ± {half:.3f}" in table
    study.scarcity_plot(sweep, tmp_path / "scarcity.png")
    assert (tmp_path / "scarcity.png").stat().st_size > 1000


def _fake_aesthetics_run(root, stem, seed, srcc, emd, tasks, saliency_cc=None):
    """A run folder with aesthetics metrics (and saliency ones if `saliency_cc`)."""
    out = root / stem / f"seed{seed}"
    out.mkdir(parents=True)
    aesthetics = {"accuracy": 0.7, "srcc": srcc, "plcc": srcc + 0.01, "emd_r2": emd}
    result = {
        "aesthetics": {
            "metrics": {"model": {k: {"mean": v} for k, v in aesthetics.items()}}
        }
    }
    if saliency_cc is not None:
        names = ("auc_judd", "auc_borji", "auc_shuffled", "nss", "kld", "sim", "ig")
        metrics = {name: {"mean": 0.5} for name in names}
        metrics["cc"] = {"mean": saliency_cc}
        result["saliency"] = {"metrics": {"model": metrics}}
    (out / "metrics.json").write_text(json.dumps(result))
    config = {"data": {"tasks": tasks}, "train": {"loss_weights": {}}}
    (out / "config.json").write_text(json.dumps(config))


def test_sharing_conditions_are_paired_with_condition_3(study, tmp_path):
    flags.FLAGS(["study", f"--output_dir={tmp_path}"])
    both = ["saliency", "aesthetics"]
    # Condition 3 vs 9c (DWA): ΔCC +0.02, +0.04, +0.03; ΔSRCC -0.10 each seed.
    three = {"0": 0.50, "1": 0.60, "2": 0.55}
    dwa = {"0": 0.52, "1": 0.64, "2": 0.58}
    for seed in three:
        _fake_run(tmp_path, "1_saliency_only", seed, 0.40, ["saliency"])
        _fake_aesthetics_run(
            tmp_path, "3_multitask_extra_images", seed, 0.6, 0.3, both, three[seed]
        )
        _fake_aesthetics_run(tmp_path, "9c_dwa", seed, 0.5, 0.3, both, dwa[seed])
    summary = study.summarise(["0", "1", "2"])
    cc = summary["conditions"]["9c"]["saliency/cc"]
    half = stats.t.ppf(0.975, 2) * stats.tstd([0.02, 0.04, 0.03]) / 3**0.5
    assert cc["diff_vs_3"]["mean"] == pytest.approx(0.03)
    assert cc["diff_vs_3"]["ci_half"] == pytest.approx(half)
    assert cc["diff_vs_1"]["mean"] == pytest.approx(0.18)  # 0.58 - 0.40
    srcc = summary["conditions"]["9c"]["aesthetics/srcc"]["diff_vs_3"]
    assert srcc["mean"] == pytest.approx(-0.10)
    assert srcc["ci_half"] == pytest.approx(0.0, abs=1e-12)
    assert "diff_vs_3" not in summary["conditions"]["3"]["saliency/cc"]
    table = study.markdown(summary)
    section = table.split("### Sharing and balancing, on condition 3's setting")
    assert len(section) == 2  # the section is there, once, after the old tables
    assert "| 3 multi-task + 2,000 aesthetics-only images |" in section[0]
    zero = "0.000 ± 0.000"  # the other saliency metrics are equal in 3 and 9c
    row = " | ".join([zero] * 4 + [f"0.030 ± {half:.3f}"] + [zero] * 3)
    assert f"| 9c as 3, DWA | 3 | {row} |" in section[1]  # auc_judd ... cc ... ig
    assert "| 9c as 3, DWA | 3 | 0.000 ± 0.000 | -0.100 ± 0.000 |" in section[1]
    # Without any 9x run the table is as before: no new section.
    del summary["conditions"]["9c"]
    assert "Sharing and balancing" not in study.markdown(summary)


def test_reverse_direction_is_paired_with_r1(study, tmp_path):
    flags.FLAGS(["study", f"--output_dir={tmp_path}"])
    both = ["saliency", "aesthetics"]
    # R3 gains SRCC 0.05, 0.07, 0.06 and EMD -0.02 on every seed over R1.
    r1 = {"0": 0.30, "1": 0.35, "2": 0.32}
    r3 = {"0": 0.35, "1": 0.42, "2": 0.38}
    for seed in r1:
        _fake_aesthetics_run(
            tmp_path, "R1_aesthetics_only_scarce", seed, r1[seed], 0.20, ["aesthetics"]
        )
        _fake_aesthetics_run(
            tmp_path,
            "R3_multitask_extra_saliency_images",
            seed,
            r3[seed],
            0.18,
            both,
            saliency_cc=0.7,
        )
    # The main study table does not list the reverse conditions.
    assert not study.summarise(["0", "1", "2"])["conditions"]
    summary = study.reverse_summary(["0", "1", "2"])
    assert sorted(summary["conditions"]) == ["R1", "R3"]
    srcc = summary["conditions"]["R3"]["aesthetics/srcc"]
    half = stats.t.ppf(0.975, 2) * stats.tstd([0.05, 0.07, 0.06]) / 3**0.5
    assert srcc["mean"] == pytest.approx(sum(r3.values()) / 3)
    assert srcc["diff_vs_R1"]["mean"] == pytest.approx(0.06)
    assert srcc["diff_vs_R1"]["ci_half"] == pytest.approx(half)
    emd = summary["conditions"]["R3"]["aesthetics/emd_r2"]["diff_vs_R1"]
    assert emd["mean"] == pytest.approx(-0.02)
    assert "saliency/cc" not in summary["conditions"]["R3"]
    assert "diff_vs_R1" not in summary["conditions"]["R1"]["aesthetics/srcc"]
    table = study.reverse_markdown(summary)
    assert "| R1 aesthetics only (200 images) | 0.700 ± 0.000 | 0.323 ± " in table
    assert (
        f"| R3 multi-task + 2,000 saliency-only images | 3 | 0.000 ± 0.000 | "
        f"0.060 ± {half:.3f} | 0.060 ± {half:.3f} | -0.020 ± 0.000 |"
    ) in table
    study.reverse_plot(summary, tmp_path / "reverse.png")
    assert (tmp_path / "reverse.png").stat().st_size > 1000
    # main() writes them beside the study's own files.
    study._write_reverse(["0", "1", "2"], tmp_path)
    assert (tmp_path / "reverse.md").read_text() == table
    assert json.loads((tmp_path / "reverse.json").read_text())["seeds"] == [
        "0",
        "1",
        "2",
    ]


def test_new_conditions_have_flagfiles_built_on_their_base():
    configs = REPO / "experiments" / "configs" / "study"
    study_module = load_script(STUDY, "study_script_flagfiles")
    for condition in (*study_module.SHARING_CONDITIONS, "R5", "R7"):
        stem = study_module.CONDITIONS[condition][0]
        text = (configs / f"{stem}.flags").read_text()
        base = "3_multitask_extra_images" if condition[0] == "9" else "R3_multitask"
        assert f"configs/study/{base}" in text, condition
    r3 = (configs / "R3_multitask_extra_saliency_images.flags").read_text()
    assert "--aesthetics_labels=200" in r3 and "--saliency_labels=2200" in r3
    assert (
        "--permute_saliency"
        in (configs / "R5_multitask_permuted_saliency.flags").read_text()
    )
