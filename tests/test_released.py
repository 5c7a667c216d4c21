"""aesthal.released: a release round-trips through its float16 file, and a
damaged file or an unknown name is refused."""

import numpy as np
import pytest

import aesthal
from aesthal import released


@pytest.fixture
def tiny_release(tmp_path, monkeypatch):
    model = aesthal.build_model(
        aesthal.ModelConfig(
            backbone="tiny",
            input_size=(32, 48),
            tasks=("saliency",),
            saliency_head="readout",
            centre_prior="fixed",
        )
    )
    rng = np.random.default_rng(0)
    for variable in model.weights:  # away from the initial values
        variable.assign(variable.numpy() + rng.normal(0, 0.05, variable.shape))
    sha = released.save_release(model, tmp_path, "tiny-test")
    monkeypatch.setitem(
        released.RELEASES, "tiny-test", released.Release("tiny-test", sha, "test")
    )
    return model, tmp_path


def test_a_release_predicts_the_saved_model_within_float16(tiny_release):
    model, directory = tiny_release
    loaded = released.load_model("tiny-test", directory)
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 48, 3))
    images = images.astype(np.float32)
    want = model(images)["saliency"].numpy()
    got = loaded(images)["saliency"].numpy()
    assert not np.array_equal(want, got)  # float16 weights: not bit-identical
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=1e-3 * want.max())
    assert loaded.config == model.config


def test_a_changed_byte_is_refused(tiny_release):
    _, directory = tiny_release
    path = directory / "tiny-test.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(released.ReleaseError, match="sha256 .* differs"):
        released.load_model("tiny-test", directory)


def test_an_unknown_name_lists_the_shipped_ones(tiny_release):
    with pytest.raises(released.ReleaseError, match="tiny-test"):
        released.load_model("no-such-model")
