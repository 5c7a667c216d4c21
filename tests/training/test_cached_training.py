"""Issue 11 through the runner: the cached-feature stream, its cache file, the
fixed centre prior saved in model.keras, and runs recorded before the new
config fields still resuming."""

import json

import numpy as np
from conftest import version1_dict

import aesthal
from aesthal.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from aesthal.data import prepare
from aesthal.models.priors import centre_bias_log_density
from aesthal.training import feature_cache, runner

SIZE = (32, 48)


def _config(tmp_path) -> ExperimentConfig:
    return ExperimentConfig(
        output_dir=str(tmp_path / "run"),
        model=ModelConfig(
            input_size=SIZE,
            saliency_head="readout",
            readout_taps=("stage3", "stage4"),
            centre_prior="fixed",
            prior_grid=(4, 6),
            frozen_up_to="stage4",
        ),
        data=DataConfig(
            dataset="synthetic_scenes/tiny",
            data_dir=str(tmp_path / "tfds"),
            tasks=("saliency",),
            batch_size=4,
            validation_split=None,
            saliency_target="fixation_counts",
            cache_features=True,
            feature_cache_dir=str(tmp_path / "features"),
        ),
        train=TrainConfig(epochs=1, steps_per_epoch=2),
    )


def test_cached_run_saves_the_fixed_prior_and_reuses_its_cache(tmp_path):
    config = _config(tmp_path)
    model = runner.train(config, verbose=0)
    assert model.variable_groups()["shared"] == []
    # The prior is the training fixations' log density, and model.keras has it.
    expected = centre_bias_log_density(
        prepare.training_fixations(config.data), grid_shape=(4, 6)
    )
    saved = aesthal.inference.load_model(tmp_path / "run" / "model.keras")
    np.testing.assert_allclose(
        saved.saliency_head.prior.log_prior.numpy(), expected, rtol=1e-6
    )
    # One cache file, keyed by the prefix and the split; read back as written.
    files = list((tmp_path / "features").glob("features_*.npz"))
    assert [f.name for f in files] == [
        f"features_{feature_cache.feature_cache_key(config.data, model)}.npz"
    ]
    arrays = feature_cache.load_or_compute_cached_features(config.data, model)
    train_examples = 24  # synthetic_scenes/tiny's train split
    assert arrays["features/stage3"].shape == (2 * train_examples, 4, 6, 48)
    assert arrays["features/stage4"].dtype == np.float16
    # Each example is followed by its mirror image: features and targets.
    targets = arrays["targets/saliency"]
    np.testing.assert_array_equal(targets[1::2], targets[0::2, :, ::-1])
    np.testing.assert_allclose(targets.sum(axis=(1, 2, 3)), 1.0, rtol=1e-5)
    images = next(
        iter(
            aesthal.data.pipeline.flipped_pairs(
                prepare.training_spec(config.data), image_size=SIZE
            ).batch(2)
        )
    )[0]
    direct = model.prefix_features(images)
    np.testing.assert_allclose(
        arrays["features/stage4"][:2].astype(np.float32),
        direct["stage4"].numpy(),
        rtol=2e-3,
        atol=1e-3,
    )


def test_runs_recorded_before_the_new_fields_still_resume(tmp_path):
    config = ExperimentConfig(output_dir=str(tmp_path), model=ModelConfig())
    old = config.to_dict()
    del old["config_version"]  # version 1: flat model, no version
    old["model"] = version1_dict(config.model)
    for key in ("saliency_head", "readout_taps", "frozen_up_to", "prior_grid"):
        old["model"].pop(key)
    for key in ("saliency_target", "cache_features", "feature_cache_dir"):
        old["data"].pop(key)
    (tmp_path / "backup").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(old))
    runner.check_resumable(tmp_path, config)  # no error: same run
