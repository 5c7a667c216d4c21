"""experiments/ablation.py: paired per-image differences between ladder rows."""

import json
import pathlib

import pytest
from conftest import load_script

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ablation():
    return load_script(ROOT / "experiments" / "ablation.py", "ablation_script")


def _write_run(folder, per_image, split="train[540:]"):
    folder.mkdir(parents=True)
    block = {"per_image": {"model": per_image, "centre_bias": per_image}}
    results = {
        "dataset": "osie",
        "split": split,
        "saliency": {**block, "metric_specific": block},
    }
    (folder / "metrics.json").write_text(json.dumps(results))
    return str(folder)


def test_rows_are_differenced_pairwise_over_the_images(ablation, tmp_path):
    a = _write_run(tmp_path / "a", {"cc": [0.1, 0.2, 0.3], "kld": [1.0, 1.0, 1.0]})
    b = _write_run(tmp_path / "b", {"cc": [0.3, 0.3, 0.6], "kld": [0.5, None, 0.7]})
    text = ablation.table(
        [("base", a), ("better", b)], "metric_specific", ["cc", "kld"]
    )
    lines = text.splitlines()
    assert lines[4] == "| base | 0.200 | 1.000 |"
    assert lines[5] == "| better | 0.400 | 0.600 |"
    # cc differences 0.2, 0.1, 0.3: mean 0.2, sd 0.1, t(0.975, 2) = 4.303,
    # half-width 4.303 * 0.1 / sqrt(3) = 0.248. kld pairs only images 0 and 2:
    # differences -0.5, -0.3, mean -0.4, sd 0.1414, t(0.975, 1) = 12.706,
    # half-width 12.706 * 0.1414 / sqrt(2) = 1.271; the row's n is the
    # smallest pair count (2 for kld, 3 for cc).
    assert lines[6] == "| Δ (n=2) | +0.200 [-0.048, +0.448] | -0.400 [-1.671, +0.871] |"


def test_runs_on_different_splits_are_refused(ablation, tmp_path):
    a = _write_run(tmp_path / "a", {"cc": [0.1, 0.2]})
    b = _write_run(tmp_path / "b", {"cc": [0.1, 0.2]}, split="test")
    with pytest.raises(ValueError, match="different splits"):
        ablation.table([("a", a), ("b", b)], "one_map", ["cc"])


def test_a_run_without_metrics_names_the_fix(ablation, tmp_path):
    with pytest.raises(FileNotFoundError, match="--mode=evaluate"):
        ablation.load_per_image(tmp_path / "missing", "one_map")
