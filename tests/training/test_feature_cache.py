"""Feature caches (`aesthal.training.feature_cache`): keyed by the frozen prefix's
weights, and read from another cache of the folder that holds the taps."""

import dataclasses

import numpy as np
import pytest

from aesthal.config import DataConfig, ModelConfig
from aesthal.data import prepare
from aesthal.models import build_model
from aesthal.training import feature_cache

SIZE = (32, 48)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("feature_cache")
    config = DataConfig(
        dataset="synthetic_scenes/tiny",
        data_dir=str(root / "tfds"),
        tasks=("saliency",),
        batch_size=4,
        validation_split=None,
        saliency_target="fixation_counts",
        cache_features=True,
    )
    prepare.prepare_data(config)
    return config


def _model(frozen_up_to):
    # The tiny trunk; the readout reads stage3 and stage4, so a prefix frozen
    # up to stage4 caches both taps and one frozen up to stage3 only stage3.
    return build_model(
        ModelConfig(
            input_size=SIZE,
            tasks=("saliency",),
            saliency_head="readout",
            readout_taps=("stage3", "stage4"),
            centre_prior="none",
            frozen_up_to=frozen_up_to,
        )
    )


def _files(folder):
    return sorted(p.name for p in folder.glob("features_*.npz"))


def test_a_deeper_prefix_cache_serves_a_shallower_prefix(data, tmp_path):
    data = dataclasses.replace(data, feature_cache_dir=str(tmp_path))
    deep, shallow = _model("stage4"), _model("stage3")
    shallow.backbone.set_weights(deep.backbone.get_weights())
    assert deep.cached_taps == ("stage3", "stage4")
    assert shallow.cached_taps == ("stage3",)
    written = feature_cache.load_or_compute_cached_features(data, deep)
    assert _files(tmp_path) == [
        f"features_{feature_cache.feature_cache_key(data, deep)}.npz"
    ]

    read = feature_cache.load_or_compute_cached_features(data, shallow)
    # Read from the deeper cache: nothing computed, no second file.
    assert _files(tmp_path) == [
        f"features_{feature_cache.feature_cache_key(data, deep)}.npz"
    ]
    assert sorted(read) == sorted(k for k in written if k != "features/stage4")
    np.testing.assert_array_equal(read["features/stage3"], written["features/stage3"])
    np.testing.assert_array_equal(read["targets/saliency"], written["targets/saliency"])
    # And they are the shallower prefix's own features.
    own = feature_cache.compute_cached_features(data, shallow)
    np.testing.assert_allclose(
        read["features/stage3"].astype(np.float32),
        own["features/stage3"].astype(np.float32),
        rtol=1e-2,
        atol=1e-3,
    )


def test_a_prefix_with_other_weights_gets_its_own_cache(data, tmp_path):
    # Version 1 keyed the weights file only: a trunk whose early layers were
    # trained (init_from) or randomly initialised with another seed read the
    # first one's features.
    data = dataclasses.replace(data, feature_cache_dir=str(tmp_path))
    first = _model("stage3")
    cached = feature_cache.load_or_compute_cached_features(data, first)
    weights = first.backbone.get_weights()
    changed = _model("stage3")
    changed.backbone.set_weights([weights[0] * 2.0] + weights[1:])  # first conv
    assert feature_cache.feature_cache_key(
        data, changed
    ) != feature_cache.feature_cache_key(data, first)
    read = feature_cache.load_or_compute_cached_features(data, changed)
    assert len(_files(tmp_path)) == 2
    own = feature_cache.compute_cached_features(data, changed)
    # Exact: the same prefix on the same images in the same batches, twice in
    # this process, on one CPU.
    np.testing.assert_array_equal(read["features/stage3"], own["features/stage3"])
    assert not np.allclose(
        read["features/stage3"].astype(np.float32),
        cached["features/stage3"].astype(np.float32),
    )


def test_weights_after_the_tap_do_not_change_its_key(data):
    shallow, deep = _model("stage3"), _model("stage4")
    before = (
        feature_cache.feature_cache_key(data, shallow),
        feature_cache.feature_cache_key(data, deep),
    )
    for model in (shallow, deep):
        weights = model.backbone.get_weights()
        # The trunk's last weight belongs to stage4, after stage3's prefix.
        model.backbone.set_weights(weights[:-1] + [weights[-1] + 1.0])
    assert feature_cache.feature_cache_key(data, shallow) == before[0]
    assert feature_cache.feature_cache_key(data, deep) != before[1]


def test_caches_without_a_readable_key_are_passed_over(data, tmp_path):
    data = dataclasses.replace(data, feature_cache_dir=str(tmp_path))
    model = _model("stage3")
    # A version-1 cache (no key inside) of the same shapes, and a broken file.
    old = feature_cache.compute_cached_features(data, model)
    np.savez(tmp_path / "features_0000000000000000.npz", **old)
    (tmp_path / "features_1111111111111111.npz").write_bytes(b"not a zip")
    feature_cache.load_or_compute_cached_features(data, model)
    assert f"features_{feature_cache.feature_cache_key(data, model)}.npz" in _files(
        tmp_path
    )
    assert len(_files(tmp_path)) == 3
