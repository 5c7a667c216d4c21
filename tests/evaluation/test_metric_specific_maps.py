"""Metric-specific maps (Kuemmerer, Wallis, Bethge 2018): derivation, rules, report."""

import numpy as np
import pytest

from aesthal import fixations as fixation_utils
from aesthal.datasets.cat2000 import cat2000_dataset_builder
from aesthal.datasets.mit1003 import mit1003_dataset_builder
from aesthal.datasets.osie import osie_dataset_builder
from aesthal.datasets.salicon import salicon_dataset_builder
from aesthal.datasets.synthetic_scenes import synthetic_scenes_dataset_builder
from aesthal.evaluation import report, tables
from aesthal.metrics import baselines, saliency

SHAPE = (40, 56)
SIGMA = 3.0
POINTS = np.array([[12.0, 15.0], [25.0, 40.0], [30.0, 20.0]], np.float32)


def _delta_example():
    """Ground truth blurred from three fixations, as the OSIE builder blurs."""
    binary = fixation_utils.points_to_binary_map(POINTS, SHAPE)
    truth = fixation_utils.blur_fixation_map(binary, SIGMA)
    return binary, {"fixations": POINTS, "fixation_map": truth[..., None]}


def test_blurred_density_of_a_delta_is_the_kernel():
    # A delta at the centre of 9x9, sigma 1: the +-4 sigma kernel fits, so the
    # map is outer(g, g) with g(x) = exp(-x^2 / 2) / sum_{-4..4} exp(-k^2 / 2);
    # sum = 1 + 2 (e^-0.5 + e^-2 + e^-4.5 + e^-8) = 2.5066208, g(0) = 0.3989431.
    delta = np.zeros((9, 9))
    delta[4, 4] = 7.0  # any scale
    blurred = saliency.blurred_density(delta, (9, 9), 1.0)
    assert blurred.sum() == pytest.approx(1.0, abs=1e-12)
    assert blurred[4, 4] == pytest.approx(0.3989431**2, rel=1e-5)
    assert blurred[4, 5] / blurred[4, 4] == pytest.approx(np.exp(-0.5), rel=1e-5)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        saliency.blurred_density(delta, (9, 9), 0.0)


def test_log_prior_ratio_hand_worked():
    # density [1, 3] -> [0.25, 0.75]; prior [2, 2] -> [0.5, 0.5]; ratio
    # [0.5, 1.5]; log ratio shifted to start at 0: [0, log 3].
    ratio = saliency.log_prior_ratio(np.array([[1.0, 3.0]]), np.array([[2.0, 2.0]]))
    np.testing.assert_allclose(ratio, [[0.0, np.log(3.0)]], atol=1e-12)
    # A zero of the density takes half the smallest positive value: last in
    # the ranking, finite. [0, 1, 2] -> [0.5, 1, 2] / 3.5, prior uniform.
    ratio = saliency.log_prior_ratio(np.array([[0.0, 1.0, 2.0]]), np.ones((1, 3)))
    np.testing.assert_allclose(ratio, [[0.0, np.log(2.0), np.log(4.0)]], atol=1e-12)
    # A coarser density is taken at the prior's size: the uniform map over a
    # prior [1, 3] ranks the low-prior pixel first, [log 3, 0].
    ratio = saliency.log_prior_ratio(np.ones((1, 1)), np.array([[1.0, 3.0]]))
    np.testing.assert_allclose(ratio, [[np.log(3.0), 0.0]], atol=1e-12)
    with pytest.raises(ValueError, match=r"prior has pixels <= 0.*uniform_weight"):
        saliency.log_prior_ratio(np.ones((2, 2)), np.array([[1.0, 0.0], [1.0, 1.0]]))


def test_delta_density_scores_cc_1_with_its_metric_specific_map():
    binary, example = _delta_example()
    density = binary / binary.sum()  # the fixations themselves, as a density
    result = tables.evaluate_saliency_maps(
        [density], [example], baselines={}, ground_truth_sigma=lambda shape: SIGMA
    )
    one = result["metrics"]["model"]
    specific = result["metric_specific"]["metrics"]["model"]
    # The blurred delta is the ground truth up to its min-max scaling (min 0).
    assert specific["cc"]["mean"] == pytest.approx(1.0, abs=1e-9)
    assert specific["sim"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert abs(specific["kld"]["mean"]) < 1e-9
    assert one["cc"]["mean"] < 0.5 and one["sim"]["mean"] < 0.1
    assert one["kld"]["mean"] > 10.0
    # NSS, the AUCs and IG take the density itself: the same numbers.
    for metric in ("nss", "auc_judd", "auc_borji", "ig"):
        assert specific[metric] == one[metric]
    rules = result["metric_specific"]["rules"]
    assert rules["cc"] == tables.BLURRED_RULE
    assert rules["nss"] == tables.DENSITY_RULE
    assert rules["auc_shuffled"] == tables.NO_PRIOR_RULE
    assert result["metric_specific"]["ground_truth_sigma_px"] == [SIGMA]


def test_unknown_blur_keeps_the_density_and_says_so():
    binary, example = _delta_example()
    result = tables.evaluate_saliency_maps([binary], [example], baselines={})
    specific = result["metric_specific"]
    assert specific["rules"]["cc"] == tables.NO_BLUR_RULE
    assert specific["ground_truth_sigma_px"] is None
    assert specific["per_image"] == result["per_image"]


def test_shuffled_auc_of_the_prior_itself_is_chance():
    # sAUC's rule divides by the shuffled prior: the centre bias row, and a
    # model that predicts the centre bias, get a constant map, i.e. 0.5.
    rng = np.random.default_rng(0)
    centre = baselines.fit_centre_bias(
        [(rng.uniform([10, 10], [30, 46], size=(20, 2)), SHAPE) for _ in range(5)],
        uniform_weight=0.01,
    )
    examples = []
    for _ in range(4):
        points = rng.uniform([5, 5], [35, 51], size=(12, 2)).astype(np.float32)
        binary = fixation_utils.points_to_binary_map(points, SHAPE)
        examples.append(
            {
                "fixations": points,
                "fixation_map": fixation_utils.blur_fixation_map(binary, SIGMA),
            }
        )
    result = tables.evaluate_saliency_maps(
        [centre] * 4,
        examples,
        baselines=tables.standard_baselines(centre_bias=centre),
        ground_truth_sigma=lambda shape: SIGMA,
    )
    specific = result["metric_specific"]
    assert (
        specific["rules"]["auc_shuffled"]
        == "log(density / shuffled prior (centre_bias))"
    )
    for name in ("model", tables.CENTRE_BIAS):
        assert specific["per_image"][name]["auc_shuffled"] == [0.5] * 4
        # The one-map sAUC of the centre bias is not exactly chance.
        assert result["per_image"][name]["auc_shuffled"] != [0.5] * 4
    # Baselines get the same rules: the uniform map blurred like the truth.
    uniform = specific["per_image"][tables.UNIFORM]
    for i, example in enumerate(examples):
        blurred = saliency.blurred_density(np.ones((1, 1)), SHAPE, SIGMA)
        assert uniform["cc"][i] == pytest.approx(
            saliency.cc(blurred, example["fixation_map"]), abs=1e-12
        )


def test_report_has_both_labelled_tables():
    binary, example = _delta_example()
    saliency_result = tables.evaluate_saliency_maps(
        [binary], [example], baselines={}, ground_truth_sigma=lambda shape: SIGMA
    )
    text = report.format_results(
        {"dataset": "osie", "split": "test", "saliency": saliency_result}
    )
    one_at = text.index("### One map for every metric")
    specific_at = text.index("### Metric-specific maps (Kümmerer, Wallis, Bethge 2018)")
    assert one_at < specific_at
    assert "ground-truth blur: sigma 3 px" in text
    assert "- cc: density blurred with the ground truth's Gaussian\n" in text
    assert "- nss: density\n" in text
    # Two tables (header row, then the model row): CC 1.000 only in the second.
    one_table, specific_table = text[one_at:specific_at], text[specific_at:]
    assert "| model |" in one_table and "| model |" in specific_table
    cc_column = 5  # model, auc_judd, auc_borji, auc_shuffled, nss, cc
    row = [r for r in specific_table.splitlines() if r.startswith("| model |")][-1]
    assert row.split("|")[cc_column + 1].strip() == "1.000"
    row = [r for r in one_table.splitlines() if r.startswith("| model |")][-1]
    assert row.split("|")[cc_column + 1].strip() != "1.000"


def test_each_builder_states_its_ground_truth_sigma():
    osie_rule = report.ground_truth_sigma(osie_dataset_builder.Builder)
    assert osie_rule((600, 800, 3)) == 24.0
    assert osie_rule((300, 400)) == 12.0
    synthetic = synthetic_scenes_dataset_builder.Builder
    assert report.ground_truth_sigma(synthetic)((96, 128)) == pytest.approx(0.03 * 128)
    for module in (
        mit1003_dataset_builder,
        cat2000_dataset_builder,
        salicon_dataset_builder,
    ):
        assert report.ground_truth_sigma(module.Builder) is None


def test_a_prior_with_zeros_keeps_the_density_for_sauc():
    binary, example = _delta_example()
    other = {"fixations": POINTS[::-1] + 3, "fixation_map": example["fixation_map"]}
    prior = np.ones((8, 8))
    prior[0, 0] = 0.0  # a centre bias fitted without a uniform floor
    result = tables.evaluate_saliency_maps(
        [binary, binary], [example, other], baselines={"centre_bias": prior}
    )
    specific = result["metric_specific"]
    assert specific["rules"]["auc_shuffled"] == (
        "density (the shuffled prior centre_bias has zeros)"
    )
    assert specific["per_image"]["model"]["auc_shuffled"] == (
        result["per_image"]["model"]["auc_shuffled"]
    )


def test_evaluate_on_osie_dummy_blurs_with_the_builders_sigma(tmp_path):
    # End to end: report.evaluate reads the sigma from the OSIE builder.
    import aesthal
    from aesthal.config import DataConfig
    from aesthal.data import pipeline

    dummy = osie_dataset_builder.__file__.rsplit("/", 1)[0] + "/dummy_data"
    data = DataConfig(
        dataset="osie",
        data_dir=str(tmp_path / "tfds"),
        manual_dir=dummy,
        tasks=("saliency",),
    )
    model = aesthal.build_model(aesthal.ModelConfig(input_size=(32, 48)))
    result = report.evaluate(model, data, tmp_path / "eval")
    specific = result["saliency"]["metric_specific"]
    # 1601.jpg is 48x64: 24 px * sqrt(48 * 64 / (800 * 600)) = 24 * 0.08.
    assert specific["ground_truth_sigma_px"] == [pytest.approx(1.92)]
    assert (
        specific["rules"]["auc_shuffled"]
        == "log(density / shuffled prior (centre_bias))"
    )
    (example,) = list(
        pipeline.iterate_eval_examples("osie", split="test", data_dir=data.data_dir)
    )
    blurred_uniform = saliency.blurred_density(np.ones((1, 1)), (48, 64), 1.92)
    assert specific["per_image"]["uniform"]["cc"] == [
        pytest.approx(saliency.cc(blurred_uniform, example.fixation_map), abs=1e-9)
    ]
    text = (tmp_path / "eval" / "metrics.md").read_text()
    assert "### One map for every metric" in text
    assert "### Metric-specific maps" in text and "sigma 1.92 px" in text
