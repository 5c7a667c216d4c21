"""experiments/study.py: the paired summary by hand, and a tiny end-to-end run."""

import json
import os
import pathlib
import statistics
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


@background_fixture
def group_norm_study(tmp_path):
    """Condition 7n (issue 28's batch-norm test) on tiny settings, in the
    background from the session's start: `(result, tmp_path)`."""
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
    result = fork_run(
        [
            sys.executable,
            str(STUDY),
            f"--output_dir={tmp_path / 'study'}",
            f"--data_dir={tmp_path / 'tfds'}",
            "--conditions=7n",
            "--seeds=0-0",
            "--extra_flags=" + ",".join(tiny),
        ],
        timeout=600,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    return result, tmp_path


@pytest.mark.slow
def test_group_norm_condition_runs_end_to_end(group_norm_study):
    """7n trains the tiny_gn trunk on condition 7's stream (both tasks' labels
    in the batches, aesthetics weight 0), is evaluated and enters the table."""
    result, tmp_path = group_norm_study
    assert result.returncode == 0, result.stderr[-3000:]
    study_dir = tmp_path / "study"
    run = study_dir / "7n_extra_images_no_aesthetics_loss_group_norm" / "seed0"
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["trunk"]["name"] == "tiny_gn"
    assert config["data"]["tasks"] == ["saliency", "aesthetics"]
    assert config["train"]["loss_weights"]["aesthetics"] == 0.0
    # --extra_flags come after the flagfile's budgets and win.
    assert (config["data"]["saliency_labels"], config["data"]["aesthetics_labels"]) == (
        4,
        12,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["saliency"]["metrics"]["model"]["cc"]["mean"] <= 1
    table = (study_dir / "study.md").read_text()
    assert "| 7n as 7, group norm in the trunk | " in table
    assert "Pre-registered" not in table  # 7n pairs with nothing alone


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


# ------------------------------------------------------------------ issue 28
def _interval(diffs):
    """Hand-computed mean and 95% t-interval of paired differences."""
    n = len(diffs)
    mean = sum(diffs) / n
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(diffs) / n**0.5
    return mean, mean - half, mean + half


def test_seeds_take_lists_and_ranges(study):
    assert study.parse_seeds(["0-9"]) == [str(s) for s in range(10)]
    assert study.parse_seeds(["0", "3-4", "7"]) == ["0", "3", "4", "7"]
    assert study.parse_seeds(["5-5"]) == ["5"]
    for bad, match in (
        (["a"], "neither a seed nor a range"),
        (["1-x"], "neither a seed nor a range"),
        (["5-3"], "a <= b"),
        (["0-2", "1"], r"seeds \['1'\] are given twice"),
    ):
        with pytest.raises(study.app.UsageError, match=match):
            study.parse_seeds(bad)


def test_runs_go_seed_major_with_6abc_last(study):
    order = study.run_order(["7", "1", "6a", "3", "2", "1n"], ["0", "1"])
    assert order == [
        ("1", "0"),
        ("2", "0"),
        ("3", "0"),
        ("7", "0"),
        ("1n", "0"),
        ("1", "1"),
        ("2", "1"),
        ("3", "1"),
        ("7", "1"),
        ("1n", "1"),
        ("6a", "0"),
        ("6a", "1"),
    ]


@pytest.mark.parametrize(
    "low, high, n, expected",
    [
        (0.01, 0.05, 10, "> 0"),
        (0.001, 0.015, 10, "> 0, below 0.02"),
        (-0.05, -0.01, 10, "< 0"),
        (-0.019, -0.001, 10, "< 0, above −0.02"),
        (-0.019, 0.019, 10, "no effect beyond ±0.02"),
        (-0.01, 0.03, 10, "not resolved"),
        (-0.03, 0.01, 10, "not resolved"),
        (0.0, 0.01, 10, "no effect beyond ±0.02"),  # lo = 0 is not clear of 0
        (None, None, 1, "n < 2: no interval"),
        (None, None, 0, "no runs"),
    ],
)
def test_verdict_is_the_stated_rule(study, low, high, n, expected):
    assert study.verdict(low, high, 0.02, n) == expected


def test_comparisons_table_by_hand(study, tmp_path):
    """The five pre-registered comparisons on fake runs, means and intervals
    computed by hand, verdicts on both sides of the rule."""
    flags.FLAGS(["study", f"--output_dir={tmp_path}"])
    cc = {
        "1": (0.60, 0.62, 0.58),
        "3": (0.65, 0.68, 0.65),  # 3 - 1: +0.05, +0.06, +0.07
        "5": (0.649, 0.682, 0.646),  # 3 - 5: +0.001, -0.002, +0.004
        "7": (0.60, 0.72, 0.64),  # 3 - 7: +0.05, -0.04, +0.01; 7 - 1: 0, .10, .06
        "1n": (0.61, 0.60, 0.59),
        "7n": (0.58, 0.57, None),  # seed 2 missing: 7n - 1n = -0.03, -0.03
    }
    for condition, values in cc.items():
        stem = study.CONDITIONS[condition][0]
        for seed, value in enumerate(values):
            if value is not None:
                _fake_run(tmp_path, stem, seed, value, ["saliency"])
    summary = study.summarise(["0", "1", "2"])
    results = {r["name"]: r for r in summary["comparisons"]}
    assert list(results) == ["C1", "C2", "C3", "C4", "C5", "C5 part"]
    expected = {
        "C1": ([0.05, 0.06, 0.07], "> 0"),
        "C2": ([0.00, 0.10, 0.06], "not resolved"),
        "C3": ([0.001, -0.002, 0.004], "no effect beyond ±0.02"),
        "C4": ([0.05, -0.04, 0.01], "not resolved"),
        "C5": ([0.03, 0.13], "not resolved"),  # (7 - 1) - (7n - 1n), seeds 0, 1
        "C5 part": ([-0.03, -0.03], "< 0"),
    }
    table = study.markdown(summary)
    for name, (diffs, verdict) in expected.items():
        result = results[name]
        mean, low, high = _interval(diffs)
        assert result["n"] == len(diffs), name
        assert result["mean"] == pytest.approx(mean, abs=1e-12), name
        assert result["ci_low"] == pytest.approx(low, abs=1e-9), name
        assert result["ci_high"] == pytest.approx(high, abs=1e-9), name
        assert result["verdict"] == verdict, name
        # NSS and IG are equal in every fake run: Δ 0 ± 0, secondary.
        nss = {"mean": 0.0, "ci_half": 0.0, "n": len(diffs)}
        assert result["secondary"]["nss"] == nss
        row = (
            f"| {name} | {result['label']} | {result['question']} | {len(diffs)} "
            f"| {mean:+.3f} | [{low:+.3f}, {high:+.3f}] | {verdict} | "
            "+0.000 ± 0.000 | +0.000 ± 0.000 |"
        )
        assert row in table, row
    assert results["C5"]["seeds"] == ["0", "1"]
    assert results["C1"]["per_seed"]["2"] == pytest.approx(0.07)
    # The comparisons open study.md; 1n and 7n are in the main tables too.
    assert table.startswith("Pre-registered comparisons")
    assert "| 7n as 7, group norm in the trunk | " in table
    assert "verdict (X = 0.02)" in table


def test_comparisons_table_is_absent_without_its_runs(study, tmp_path):
    flags.FLAGS(["study", f"--output_dir={tmp_path}"])
    _fake_run(tmp_path, "2_multitask_same_images", 0, 0.6, ["saliency"])
    summary = study.summarise(["0"])
    assert {r["verdict"] for r in summary["comparisons"]} == {"no runs"}
    assert "Pre-registered" not in study.markdown(summary)


def test_reverse_comparisons_use_srcc_and_their_margin(study, tmp_path):
    flags.FLAGS(["study", f"--output_dir={tmp_path}"])
    both = ["saliency", "aesthetics"]
    r1, r3 = (0.30, 0.35, 0.32), (0.33, 0.37, 0.36)  # R3 - R1: .03, .02, .04
    for seed in range(3):
        _fake_aesthetics_run(
            tmp_path, "R1_aesthetics_only_scarce", seed, r1[seed], 0.2, ["aesthetics"]
        )
        _fake_aesthetics_run(
            tmp_path, "R3_multitask_extra_saliency_images", seed, r3[seed], 0.2, both
        )
    summary = study.reverse_summary(["0", "1", "2"])
    first = summary["comparisons"][0]
    mean, low, high = _interval([0.03, 0.02, 0.04])
    assert (first["name"], first["metric"]) == ("R-C1", "aesthetics/srcc")
    assert first["mean"] == pytest.approx(mean)
    assert first["ci_low"] == pytest.approx(low)
    assert high == pytest.approx(0.0548, abs=1e-4)  # past X = 0.05: plain "> 0"
    assert first["verdict"] == "> 0"
    table = study.reverse_markdown(summary)
    assert "verdict (X = 0.05)" in table and "| R-C1 | R3 − R1 |" in table


def test_docs_blocks_are_replaced_by_the_written_table(study, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    begin, end = study._markers("study_table.md")
    page = f"# Title\n\nBefore.\n\n{begin}\n\nold table\n{end}\n\nAfter.\n"
    (docs / "experiments.md").write_text(page)
    study.write_docs(docs, "study_table.md", "| new | table |\n")
    assert (docs / "study_table.md").read_text() == "| new | table |\n"
    text = (docs / "experiments.md").read_text()
    assert text == (
        f"# Title\n\nBefore.\n\n{begin}\n\n| new | table |\n\n{end}\n\nAfter.\n"
    )
    assert study.docs_block(text, "study_table.md") == "| new | table |\n"
    # A page without the markers is left alone; a lost end marker is an error.
    study.write_docs(docs, "scarcity_table.md", "x\n")
    assert (docs / "experiments.md").read_text() == text
    (docs / "experiments.md").write_text(f"{begin}\n\nold\n")
    with pytest.raises(ValueError, match="experiments.md.*<!-- end study_table.md"):
        study.write_docs(docs, "study_table.md", "y\n")
    (docs / "experiments.md").write_text(f"{begin}\n\n{end}\n{begin}\n\n{end}\n")
    with pytest.raises(ValueError, match="experiments.md.*is there twice"):
        study.write_docs(docs, "study_table.md", "y\n")


def test_docs_study_tables_are_study_py_output(study):
    """docs/experiments.md holds each generated table verbatim (the block
    `study.py --docs` rewrites), the study's own table at least."""
    page = (REPO / "docs" / "experiments.md").read_text()
    found = []
    for name in ("study_table.md", "scarcity_table.md", "reverse_table.md"):
        block = study.docs_block(page, name)
        if block is not None:
            assert block == (REPO / "docs" / name).read_text(), name
            found.append(name)
    assert "study_table.md" in found


def test_sweep_reads_the_studys_own_runs_at_n_200(study, tmp_path):
    flags.FLAGS(["study", f"--output_dir={tmp_path}"])
    assert study.sweep_dir(tmp_path, 200) == tmp_path
    assert study.sweep_dir(tmp_path, 400) == tmp_path / "n400"
    assert study.sweep_dir(tmp_path, 200, extra_aesthetics=500) == tmp_path / "n200"
    for seed, (base, three) in enumerate(((0.60, 0.65), (0.62, 0.66))):
        _fake_run(tmp_path, "1_saliency_only", seed, base, ["saliency"])
        _fake_run(tmp_path, "3_multitask_extra_images", seed, three, ["saliency"])
    sweep = study.scarcity_summary([200], ["0", "1"], tmp_path)
    study_summary = study.summarise(["0", "1"])
    assert sweep["by_count"]["200"] == study_summary
    # The study's budgets are the ones the sweep assumes at N = 200.
    configs = REPO / "experiments" / "configs" / "study"
    assert "--saliency_labels=200\n" in (configs / "common.flags").read_text()
    for stem in ("1_saliency_only", "3_multitask_extra_images"):
        assert "--aesthetics_labels=2200\n" in (configs / f"{stem}.flags").read_text()


_RESOLVE = """
import dataclasses, importlib.util, json, sys
from absl import flags
spec = importlib.util.spec_from_file_location("run_script", sys.argv[1])
run = importlib.util.module_from_spec(spec)
sys.modules["run_script"] = run
spec.loader.exec_module(run)
configs = {}
for flagfile in sys.argv[2:]:
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["run", f"--flagfile={flagfile}", "--output_dir=unused"])
    configs[flagfile] = run._configs().to_dict()
print(json.dumps(configs))
"""


def _flat(config, prefix=""):
    out = {}
    for key, value in config.items():
        # The sections, and the model's parts (model.trunk.name, ...).
        if isinstance(value, dict) and (
            key in ("model", "data", "train") or prefix == "model."
        ):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def test_group_norm_conditions_differ_from_1_and_7_only_in_the_trunk(tmp_path):
    """run.py parses the flagfiles of 1n and 7n into configs equal to those of
    1 and 7 but for model.backbone (tiny_gn instead of tiny)."""
    script = tmp_path / "resolve.py"
    script.write_text(_RESOLVE)
    configs = REPO / "experiments" / "configs" / "study"
    stems = {
        "1": "1_saliency_only",
        "1n": "1n_saliency_only_group_norm",
        "7": "7_extra_images_no_aesthetics_loss",
        "7n": "7n_extra_images_no_aesthetics_loss_group_norm",
    }
    paths = {c: str(configs / f"{s}.flags") for c, s in stems.items()}
    result = fork_run(
        [sys.executable, str(script), str(REPO / "experiments" / "run.py")]
        + list(paths.values()),
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = {
        c: _flat(json.loads(result.stdout.strip().splitlines()[-1])[p])
        for c, p in paths.items()
    }
    for base in ("1", "7"):
        plain, grouped = resolved[base], resolved[base + "n"]
        differ = {k for k in plain if plain[k] != grouped[k]}
        assert differ == {"model.trunk.name"}, base
        assert (plain["model.trunk.name"], grouped["model.trunk.name"]) == (
            "tiny",
            "tiny_gn",
        )
    assert resolved["7"]["train.loss_weights"]["aesthetics"] == 0.0
