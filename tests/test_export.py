"""Tests for aesthal.export_saved_model: reload without aesthal, any input size."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import aesthal

# Runs in a fresh, isolated Python (-I: no PYTHONPATH, no user site) in which
# `import aesthal` fails, so the SavedModel must stand on TensorFlow alone.
_LOAD = r"""
import json, sys
sys.modules["aesthal"] = None
import numpy as np
import tensorflow as tf
try:
    import aesthal
    raise SystemExit("aesthal is importable")
except ImportError:
    pass
signatures = tf.saved_model.load(sys.argv[1]).signatures
serve = signatures["serving_default"]
at_size = serve(images=tf.constant(np.load(sys.argv[2])))
other = serve(images=tf.constant(np.load(sys.argv[3])))
raw = signatures["predict_at_model_size"](
    images=tf.constant(np.load(sys.argv[2]).astype("float32")))
out = {"at_size": {k: v.numpy().tolist() for k, v in at_size.items()},
       "other": {k: v.numpy().tolist() for k, v in other.items()},
       "raw": {k: v.numpy().tolist() for k, v in raw.items()},
       "input_size": signatures["input_size"]()["input_size"].numpy().tolist()}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_saved_model_reloads_without_aesthal(tmp_path):
    keras.utils.set_random_seed(0)
    model = aesthal.build_model(
        aesthal.ModelConfig(
            input_size=(32, 48), side_heads=(("saliency", "stage2", 1.0),)
        )
    )
    trainer = aesthal.Trainer(model)
    trainer.compile(jit_compile=False)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 48, 3)).astype("uint8")
    # Train a step so that the heads are not at their near-uniform start.
    trainer.fit(
        images.astype("float32"),
        {"saliency": rng.uniform(size=(2, 32, 48, 1)).astype("float32") ** 8},
        verbose=0,
    )
    other = rng.integers(0, 256, (3, 50, 70, 3)).astype("uint8")
    np.save(tmp_path / "at_size.npy", images)
    np.save(tmp_path / "other.npy", other)
    path = aesthal.export_saved_model(model, tmp_path / "saved")
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            _LOAD,
            path,
            str(tmp_path / "at_size.npy"),
            str(tmp_path / "other.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])

    expected = model.predict(images.astype("float32"), verbose=0)
    at_size = {k: np.asarray(v) for k, v in out["at_size"].items()}
    np.testing.assert_allclose(
        at_size["saliency"], expected["saliency"], rtol=1e-4, atol=1e-9
    )
    np.testing.assert_allclose(at_size["aesthetics"], expected["aesthetics"], rtol=1e-5)
    np.testing.assert_allclose(
        at_size["aesthetics_mean"], expected["aesthetics"] @ np.arange(1, 11), rtol=1e-5
    )

    # The two extra signatures: the model's size, and the model at that size.
    assert out["input_size"] == [32, 48]
    raw = {k: np.asarray(v) for k, v in out["raw"].items()}
    assert sorted(raw) == ["aesthetics", "saliency"]
    np.testing.assert_allclose(
        raw["saliency"], expected["saliency"], rtol=1e-4, atol=1e-9
    )
    np.testing.assert_allclose(raw["aesthetics"], expected["aesthetics"], rtol=1e-5)

    other_out = {k: np.asarray(v) for k, v in out["other"].items()}
    assert other_out["saliency"].shape == (3, 50, 70, 1)
    assert other_out["aesthetics"].shape == (3, 10)
    assert other_out["aesthetics_mean"].shape == (3,)
    assert (other_out["saliency"] >= 0).all()
    np.testing.assert_allclose(other_out["saliency"].sum((1, 2, 3)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(other_out["aesthetics"].sum(-1), 1.0, rtol=1e-5)
    assert (
        (other_out["aesthetics_mean"] >= 1) & (other_out["aesthetics_mean"] <= 10)
    ).all()
    # The export stretches a 50x70 image to 32x48 (bilinear, antialiased) first.
    np.testing.assert_allclose(
        other_out["aesthetics"][0],
        model.predict(
            keras.ops.image.resize(
                other[:1].astype("float32"), (32, 48), antialias=True
            ),
            verbose=0,
        )["aesthetics"][0],
        rtol=1e-3,
    )


def test_export_rejects_other_models(tmp_path):
    with pytest.raises(TypeError, match="expects an AesthalModel"):
        aesthal.export_saved_model(keras.Sequential([keras.layers.Dense(1)]), tmp_path)


@pytest.mark.parametrize(
    "model_size, image_size",
    [
        ((24, 32), (24, 32)),
        ((24, 32), (600, 800)),
        ((48, 64), (61, 203)),
        ((7, 5), (7, 91)),
    ],
)
def test_upsample_density_equals_the_exports_resize(model_size, image_size):
    # The fast path Predictor takes when an image is at least the model's size.
    rng = np.random.default_rng(sum(image_size))
    density = rng.gamma(0.5, size=model_size).astype(np.float32)
    density /= density.sum()
    want = aesthal.export.to_image_size(density[None, ..., None], image_size)
    want = want.numpy()[0, ..., 0]
    got = aesthal.export.upsample_density(density, image_size)
    assert got.shape == image_size and got.dtype == np.float32
    np.testing.assert_allclose(got.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * want.max())
