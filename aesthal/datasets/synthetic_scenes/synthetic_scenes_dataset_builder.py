"""synthetic_scenes: generated scenes with known saliency and aesthetics.

No download: every example is generated from a seed derived from
`(config.seed, split, index)`, so an example does not depend on generation
order or parallelism. The generative model (the study's ground truth) is
documented in `aesthal.datasets.synthetic_scenes.generator`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from aesthal.datasets.synthetic_scenes import generator


@dataclasses.dataclass
class SyntheticScenesConfig(tfds.core.BuilderConfig):
    """Sizes and counts of one variant.

    Attributes:
        height: image height in pixels.
        width: image width in pixels.
        num_train: examples in the train split.
        num_validation: examples in the validation split.
        num_test: examples in the test split.
        num_observers: simulated observers per image.
        seed: base seed of every example.
    """

    height: int = 96
    width: int = 128
    num_train: int = 3000
    num_validation: int = 300
    num_test: int = 500
    num_observers: int = 8
    seed: int = 0

    def scene_config(self) -> generator.SceneConfig:
        return generator.SceneConfig(
            height=self.height, width=self.width, num_observers=self.num_observers
        )


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for synthetic_scenes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        SyntheticScenesConfig(
            name="default",
            description="96x128 images; 3000 train, 300 validation, 500 test.",
        ),
        SyntheticScenesConfig(
            name="tiny",
            description="32x48 images; 24 train, 8 validation, 8 test (for tests).",
            height=32,
            width=48,
            num_train=24,
            num_validation=8,
            num_test=8,
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "default"

    @staticmethod
    def fixation_map_sigma(image_shape: tuple[int, ...]) -> float:
        """Sigma (px) of the Gaussian that blurred this image's `fixation_map`.

        `generator.FIXATION_SIGMA` times the image width (step 6 of the
        generator). The evaluation blurs a predicted density with it for
        CC/KLD/SIM (docs/metrics.md).
        """
        return generator.FIXATION_SIGMA * float(image_shape[1])

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        h, w = cfg.height, cfg.width
        return self.dataset_info_from_configs(
            description=(
                "Generated scenes (textured background, 1-5 objects, some "
                "face-like) with a known fixation density, fixations of "
                "simulated observers and votes of simulated raters whose "
                "latent score depends on composition."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(h, w, 3), dtype=np.uint8),
                    "image/filename": tfds.features.Text(),
                    "has_saliency": tfds.features.Scalar(dtype=np.bool_),
                    "has_aesthetics": tfds.features.Scalar(dtype=np.bool_),
                    "fixation_map": tfds.features.Image(
                        shape=(h, w, 1), dtype=np.uint16
                    ),
                    "fixations": tfds.features.Tensor(
                        shape=(None, 2), dtype=np.float32
                    ),
                    "aesthetics_votes": tfds.features.Tensor(
                        shape=(10,), dtype=np.int32
                    ),
                    "true_density": tfds.features.Tensor(
                        shape=(h, w),
                        dtype=np.float32,
                        encoding=tfds.features.Encoding.ZLIB,
                    ),
                }
            ),
            supervised_keys=None,
            homepage="https://github.com/aesthal/aesthal",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # Nothing to download, ever.
        cfg = self.builder_config
        return {
            "train": self._generate_examples("train", cfg.num_train),
            "validation": self._generate_examples("validation", cfg.num_validation),
            "test": self._generate_examples("test", cfg.num_test),
        }

    def _generate_examples(self, split: str, num_examples: int):
        cfg = self.builder_config
        scene_config = cfg.scene_config()
        for index in range(num_examples):
            scene = generator.generate_scene(
                scene_config, generator.example_seed(cfg.seed, split, index)
            )
            key = f"{split}_{index:06d}"
            yield key, {
                "image": scene.image,
                "image/filename": f"{key}.png",
                "has_saliency": True,
                "has_aesthetics": True,
                "fixation_map": scene.fixation_map,
                "fixations": scene.fixations,
                "aesthetics_votes": scene.aesthetics_votes,
                "true_density": scene.true_density,
            }
