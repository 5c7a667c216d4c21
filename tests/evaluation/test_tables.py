"""The per-image evaluation core: metrics per image, CI, baselines, table."""

import json

import cv2
import numpy as np
import pytest

from aesthal import fixations as fixation_utils
from aesthal.evaluation import tables
from aesthal.metrics import baselines, saliency


def _examples(num=3, shape=(24, 32), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    examples = []
    for _ in range(num):
        centre = rng.uniform([4, 4], [shape[0] - 4, shape[1] - 4])
        density = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / 18.0)
        density /= density.sum()
        flat = rng.choice(density.size, size=15, p=density.ravel())
        points = np.stack(np.unravel_index(flat, shape), axis=-1).astype(np.float32)
        examples.append(
            {
                "fixations": points,
                "fixation_map": (density * 5e4)[..., None],  # any scale
                "true_density": density.astype(np.float32),
            }
        )
    return examples


def test_evaluate_saliency_maps_with_baselines():
    examples = _examples()
    examples.append(  # no fixations: skipped and counted
        {
            "fixations": np.zeros((0, 2), np.float32),
            "fixation_map": np.zeros((24, 32, 1)),
            "true_density": np.full((24, 32), 1 / 768, np.float32),
        }
    )
    preds = [
        cv2.resize(ex["true_density"], (16, 12), interpolation=cv2.INTER_AREA)[
            ..., None
        ]
        for ex in examples
    ]
    centre = baselines.fit_centre_bias(
        [(ex["fixations"], (24, 32)) for ex in examples], (16, 16), 0.1
    )
    result = tables.evaluate_saliency_maps(
        preds, examples, tables.standard_baselines(centre, with_true_density=True)
    )
    json.dumps(result)  # serialisable as metrics.json

    assert result["num_images"] == 4 and result["num_evaluated"] == 3
    assert [s["index"] for s in result["skipped"]] == [3]
    assert result["ig_baseline"] == "centre_bias"
    assert set(result["metrics"]) == {"model", "uniform", "centre_bias", "true_density"}

    truth = result["metrics"]["true_density"]
    assert truth["cc"]["mean"] == pytest.approx(1.0)
    assert truth["sim"]["mean"] == pytest.approx(1.0)
    assert truth["kld"]["mean"] == pytest.approx(0.0, abs=1e-6)
    uniform = result["metrics"]["uniform"]
    assert uniform["cc"]["mean"] == 0.0 and uniform["nss"]["mean"] == 0.0
    assert result["metrics"]["centre_bias"]["ig"]["mean"] == 0.0
    shares = result["explainable_information_gain_share"]
    assert shares["true_density"] == pytest.approx(1.0)
    assert shares["centre_bias"] == 0.0

    # Per-image values are the reference functions at the truth's resolution.
    binary = saliency.fixation_points_to_map(examples[1]["fixations"], (24, 32))
    model = result["per_image"]["model"]
    assert model["nss"][1] == saliency.nss(preds[1], binary)
    assert model["cc"][1] == saliency.cc(preds[1], examples[1]["fixation_map"])
    assert model["auc_judd"][1] == saliency.auc_judd(preds[1], binary, seed=1)
    assert model["ig"][1] == saliency.information_gain(preds[1], binary, centre)
    summary = result["metrics"]["model"]["nss"]
    assert summary["n"] == 3
    assert summary["ci_low"] < summary["mean"] == pytest.approx(np.mean(model["nss"]))
    assert all(len(v) == 3 for v in model.values())
    assert result["metrics"]["model"]["auc_judd"]["mean"] > 0.8

    table = tables.format_markdown_table(result)
    lines = table.strip().split("\n")
    assert len(lines) == 2 + 4
    assert lines[0].startswith("| model | auc_judd ↑") and "kld ↓" in lines[0]
    assert lines[0].endswith("IG share ↑ |")
    assert lines[5].startswith("| true_density | ")
    assert lines[5].split(" | ")[5] == "1.000 ± 0.000"  # CC of the truth


def test_evaluate_without_centre_bias_uses_uniform_for_ig():
    examples = _examples(num=2)
    preds = [ex["true_density"] for ex in examples]
    result = tables.evaluate_saliency_maps(preds, examples)
    assert result["ig_baseline"] == "uniform"
    assert result["ig_normalization"] == "min_max"
    as_density = tables.evaluate_saliency_maps(preds, examples, ig_normalization="sum")
    ig_sum = as_density["per_image"]["model"]["ig"][0]
    binary = saliency.fixation_points_to_map(examples[0]["fixations"], (24, 32))
    assert ig_sum == saliency.information_gain(
        preds[0], binary, np.ones((1, 1)), normalization="sum"
    )
    assert "explainable_information_gain_share" not in result
    assert result["metrics"]["model"]["ig"]["mean"] > 0
    with pytest.raises(ValueError, match="2 predicted maps for 1 examples"):
        tables.evaluate_saliency_maps(preds, examples[:1])


def test_shuffled_auc_skipped_for_a_single_image():
    examples = _examples(num=1)
    result = tables.evaluate_saliency_maps([examples[0]["true_density"]], examples)
    assert result["per_image"]["model"]["auc_shuffled"] == [None]
    assert result["metrics"]["model"]["auc_shuffled"]["mean"] is None
    assert "| — |" in tables.format_markdown_table(result)


def test_evaluate_aesthetics():
    y_true = np.zeros((3, 10))
    y_true[[0, 1, 2], [3, 5, 8]] = 10  # means 4, 6, 9
    y_pred = np.zeros((3, 10))
    y_pred[[0, 1, 2], [4, 5, 7]] = 1  # means 5, 6, 8
    result = tables.evaluate_aesthetics(y_true, y_pred)
    metrics = result["metrics"]["model"]
    assert metrics["accuracy"]["mean"] == pytest.approx(2 / 3)
    assert metrics["mean_score_mse"]["mean"] == pytest.approx(2 / 3)
    assert metrics["emd_r1"]["mean"] == pytest.approx(0.2 / 3)
    assert metrics["srcc"]["mean"] == pytest.approx(1.0)
    assert "srcc ↑" in tables.format_markdown_table(result)


def test_blurred_fixation_maps_work_as_ground_truth():
    examples = _examples(num=2)
    for ex in examples:
        binary = fixation_utils.points_to_binary_map(ex["fixations"], (24, 32))
        ex["fixation_map"] = fixation_utils.blur_fixation_map(binary, 2.0)
    preds = [ex["true_density"] for ex in examples]
    result = tables.evaluate_saliency_maps(preds, examples)
    # The blurred map, not the true density, is the truth of CC, KLD and SIM.
    model = result["per_image"]["model"]
    for i, (pred, ex) in enumerate(zip(preds, examples, strict=True)):
        assert model["cc"][i] == saliency.cc(pred, ex["fixation_map"])
        assert model["kld"][i] == saliency.kld(pred, ex["fixation_map"])
        assert model["sim"][i] == saliency.sim(pred, ex["fixation_map"])
        assert model["cc"][i] != pytest.approx(1.0, abs=1e-3)
    assert 0.3 < result["metrics"]["model"]["cc"]["mean"] < 1.0
