"""`AesthalModel`: one shared trunk, a saliency decoder and an aesthetics head."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from aesthal.config import TASKS, ModelConfig
from aesthal.models.aesthetics_head import AestheticsHead
from aesthal.models.backbone import build_backbone, resolve_backbone_weights
from aesthal.models.saliency_head import SaliencyHead
from aesthal.training.trainer import MultiTaskTrainer
from aesthal.training.variable_groups import GROUPS


@keras.saving.register_keras_serializable(package="aesthal")
class AesthalModel(MultiTaskTrainer, keras.Model):
    """Multi-task saliency + aesthetics model.

    `call(images)` takes float32 RGB `[B, H, W, 3]` with values in 0..255
    (`(H, W) == config.input_size`; the trunk scales them itself) and returns

        {"saliency":   float32 [B, H, W, 1], a density summing to 1 per image,
         "aesthetics": float32 [B, 10], a distribution over scores 1..10}

    plus `"saliency_log_density"` (`[B, H, W, 1]`) when
    `config.output_log_density`. Side heads are only evaluated in `train_step`.

    Training (`compile` / `fit` with three grouped optimizers) comes from
    `aesthal.training.MultiTaskTrainer`.

    Args:
        config: a `ModelConfig` (or its `to_dict()`).
        load_backbone_weights: load `config.backbone_weights` into the trunk.
            `from_config` (used by `keras.models.load_model`) passes False: the
            saved file holds the weights.
    """

    def __init__(
        self,
        config: ModelConfig | Mapping[str, Any],
        load_backbone_weights: bool = True,
        **kwargs,
    ):
        if isinstance(config, Mapping):
            config = ModelConfig.from_dict(config)
        kwargs.setdefault("name", "aesthal_model")
        super().__init__(**kwargs)
        # === Config ===
        self.config = config
        self.load_backbone_weights = load_backbone_weights
        # === Layers ===
        weights_path = None
        if load_backbone_weights:
            weights_path = resolve_backbone_weights(
                config.backbone, config.backbone_weights, config.input_size
            )
        self.backbone = build_backbone(config.backbone, config.input_size, weights_path)
        self.saliency_head = SaliencyHead(
            config.resolved_saliency_taps,
            config.input_size,
            config.decoder_channels,
            name="saliency_head",
        )
        self.aesthetics_head = AestheticsHead(
            config.resolved_aesthetics_taps,
            config.aesthetics_dropout,
            name="aesthetics_head",
        )
        side_heads = []
        for index, (task, tap, _) in enumerate(config.side_heads):
            if task == "saliency":
                head = SaliencyHead(
                    (tap,),
                    config.input_size,
                    config.decoder_channels,
                    name=f"side{index}_saliency_head",
                )
            else:
                head = AestheticsHead((tap,), name=f"side{index}_aesthetics_head")
            side_heads.append(head)
        self.side_heads = side_heads
        self._create_trackers()
        # === Build ===
        self.build((None, *config.input_size, 3))

    def build(self, input_shape):
        tap_shapes = {k: tuple(v.shape) for k, v in self.backbone.output.items()}
        self.saliency_head.build(tap_shapes)
        self.aesthetics_head.build(tap_shapes)
        for head in self.side_heads:
            head.build(tap_shapes)
        self.built = True

    # ------------------------------------------------------------- forward
    def _check_images(self, images) -> None:
        """Static (trace-time) check of the image tensor's shape."""
        height, width = self.config.input_size
        shape = tuple(images.shape)
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(
                f"AesthalModel: images must be RGB [B, {height}, {width}, 3] with "
                f"values in 0..255; got shape {shape}."
            )
        if None not in shape[1:3] and tuple(shape[1:3]) != (height, width):
            raise ValueError(
                f"AesthalModel: images are {shape[1]}x{shape[2]} but the model input "
                f"is {height}x{width} (config.input_size); resize them first."
            )

    def _forward(self, images, training=False):
        """All outputs: `(outputs, side_outputs)`.

        `outputs` holds "saliency", "saliency_log_density" and "aesthetics";
        `side_outputs[i]` is side head i's log-density `[B, H, W, 1]` (saliency)
        or distribution `[B, 10]` (aesthetics).
        """
        self._check_images(images)
        features = self.backbone(images, training=training)
        log_density = self.saliency_head(features)
        outputs = {
            "saliency": keras.ops.exp(log_density),
            "saliency_log_density": log_density,
            "aesthetics": self.aesthetics_head(features, training=training),
        }
        side_outputs = [
            (
                head(features, training=training)
                if isinstance(head, AestheticsHead)
                else head(features)
            )
            for head in self.side_heads
        ]
        return outputs, side_outputs

    def call(self, images, training=None):
        outputs, _ = self._forward(images, training=training)
        if not self.config.output_log_density:
            outputs.pop("saliency_log_density")
        return outputs

    def compute_output_spec(self, images, training=None):
        height, width = self.config.input_size
        batch = images.shape[0]
        spec = {
            "saliency": keras.KerasTensor((batch, height, width, 1), "float32"),
            "aesthetics": keras.KerasTensor((batch, 10), "float32"),
        }
        if self.config.output_log_density:
            spec["saliency_log_density"] = keras.KerasTensor(
                (batch, height, width, 1), "float32"
            )
        return spec

    # -------------------------------------------------------------- groups
    def variable_groups(self) -> dict[str, list]:
        """Trainable variables by owner: `{"shared", "aesthetics", "saliency"}`.

        shared = the trunk; each task = its head, its side heads and its
        variables in the loss-weighting strategy (after `compile`). Disjoint and,
        together, every trainable variable of the model and strategy.
        """
        groups = {group: [] for group in GROUPS}
        groups["shared"] = list(self.backbone.trainable_variables)
        groups["saliency"] = list(self.saliency_head.trainable_variables)
        groups["aesthetics"] = list(self.aesthetics_head.trainable_variables)
        for (task, _, _), head in zip(
            self.config.side_heads, self.side_heads, strict=True
        ):
            groups[task].extend(head.trainable_variables)
        strategy = getattr(self, "loss_weighting", None)
        if strategy is not None:
            for task in TASKS:
                groups[task].extend(strategy.variables_for_task(task))
        return groups

    # -------------------------------------------------------------- config
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "config": self.config.to_dict(),
            "load_backbone_weights": False,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def build_model(config: ModelConfig) -> AesthalModel:
    """Builds an `AesthalModel`, loading trunk weights as `config` says.

    Args:
        config: the architecture.

    Returns:
        A built, uncompiled `AesthalModel`.

    Raises:
        FileNotFoundError: `backbone_weights` is `"imagenet"` and the file is not in
            the Keras cache (the message names the file and the folder), or a
            given weights path does not exist.
    """
    return AesthalModel(config)
