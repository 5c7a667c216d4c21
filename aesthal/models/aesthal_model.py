"""`AesthalModel`: the network. A trunk (or two), a saliency head, an aesthetics head.

(Or one trunk per task, with `ModelConfig.sharing` "soft" or "cross_stitch":
see `aesthal.models.sharing` and docs/design.md, "Sharing".)

The network holds its parts (trunks from `aesthal.trunks`, the heads of this
package), runs them (`call`: inference; `forward`: with the side heads, for
training), names its variable groups by ownership (`variable_groups`) and
rebuilds itself from its `ModelConfig` (`get_config` / `from_config`). It is
not trained by itself: `aesthal.training.Trainer` wraps it with the grouped
optimizers, the loss weighting, the NaN/Inf guard and the batch checks.
Export (`aesthal.export`) and inference (`aesthal.inference`) load only this.

`.keras` files written before the trainer was split off (issue 25) hold this
class's weights under the same paths, plus a compile config and training
state that loading ignores (`compile_from_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from aesthal.config import GROUPS, NUM_SCORES, TASKS, ModelConfig
from aesthal.models.aesthetics_head import AestheticsHead
from aesthal.models.factory import build_parts
from aesthal.models.sharing import coupling_loss
from aesthal.trunks import last_shared_layer, split_backbone, split_backbone_stages


@keras.saving.register_keras_serializable(package="aesthal")
class AesthalModel(keras.Model):
    """Multi-task saliency + aesthetics network.

    `call(images)` takes float32 RGB `[B, H, W, 3]` with values in 0..255
    (`(H, W) == config.input_size`; the trunk scales them itself) and returns

        {"saliency":   float32 [B, H, W, 1], a density summing to 1 per image,
         "aesthetics": float32 [B, 10], a distribution over scores 1..10}

    plus `"saliency_log_density"` (`[B, H, W, 1]`) when
    `config.saliency.output_log_density`. Side heads are only evaluated by `forward`
    (training). With `config.trunk.frozen_up_to`, `call` also takes a dict of the
    frozen prefix's features (`prefix_features`) instead of images: the
    cached-feature training stream of `aesthal.training.feature_cache`.

    Args:
        config: a `ModelConfig` (or its `to_dict()`).
        load_backbone_weights: load `config.trunk.weights` into the trunk.
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
        # === Layers === (each from its config part: aesthal.models.factory)
        parts = build_parts(config, load_trunk_weights=load_backbone_weights)
        self.backbone = parts.backbone
        # The frozen prefix and the trainable suffix share the trunk's layers;
        # held untracked so that the weights are saved once (the trunk's).
        prefix, suffix = None, None
        if config.trunk.frozen_up_to is not None:
            prefix, suffix = split_backbone(self.backbone, config.trunk.frozen_up_to)
            for layer in prefix.layers:
                layer.trainable = False
        object.__setattr__(self, "backbone_prefix", prefix)
        object.__setattr__(self, "backbone_suffix", suffix)
        # Soft and cross-stitch sharing (`config.task_sharing`): `backbone` is
        # the saliency task's trunk and `aesthetics_backbone` the aesthetics
        # task's.
        self.aesthetics_backbone = parts.aesthetics_backbone
        # Cross-stitch: each trunk runs stage by stage (the stages share the
        # trunks' layers, held untracked as the prefix is), a unit after each
        # cut mixing the two trunks' features.
        cross_taps = config.resolved_cross_stitch_taps
        self.cross_stitch_units = parts.cross_stitch_units
        stages = {}
        if cross_taps:
            stages = {
                "saliency": split_backbone_stages(self.backbone, cross_taps),
                "aesthetics": split_backbone_stages(
                    self.aesthetics_backbone, cross_taps
                ),
            }
        object.__setattr__(self, "trunk_stages", stages)
        self.saliency_head = parts.saliency_head
        self.aesthetics_head = parts.aesthetics_head
        self.side_heads = parts.side_heads
        # === Build ===
        self.build((None, *config.input_size, 3))

    def build(self, input_shape):
        tap_shapes = {k: tuple(v.shape) for k, v in self.backbone.output.items()}
        self.saliency_head.build(tap_shapes)
        self.aesthetics_head.build(tap_shapes)
        for head in self.side_heads:
            head.build(tap_shapes)
        for tap, unit in zip(
            self.config.resolved_cross_stitch_taps, self.cross_stitch_units, strict=True
        ):
            unit.build((tap_shapes[tap], tap_shapes[tap]))
        self.built = True

    # ============================================================== forward
    def check_images(self, images) -> None:
        """Static (trace-time) check of an image tensor's shape.

        Raises:
            ValueError: not RGB `[B, H, W, 3]` at `config.input_size`.
        """
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

    @property
    def cached_taps(self) -> tuple[str, ...]:
        """The frozen prefix's taps that cached features must hold: those the
        heads read, and `frozen_up_to` itself when a trainable suffix follows.
        Empty without `config.trunk.frozen_up_to`."""
        tap = self.config.trunk.frozen_up_to
        if tap is None:
            return ()
        names = list(self.backbone_prefix.output)
        needed = set(self.config.head_taps) & set(names)
        if self.backbone_suffix is not None:
            needed.add(tap)
        return tuple(t for t in names if t in needed)

    def prefix_features(self, images) -> dict[str, tf.Tensor]:
        """The frozen prefix's features of `images`, what `call` also accepts.

        Args:
            images: float32 `[B, H, W, 3]`, 0..255, at `config.input_size`.

        Returns:
            `{tap: float32 [B, h, w, c]}` for `cached_taps`.

        Raises:
            ValueError: the model has no frozen prefix (`config.trunk.frozen_up_to`).
        """
        if self.backbone_prefix is None:
            raise ValueError(
                "prefix_features: this model has no frozen prefix; set "
                "ModelConfig.frozen_up_to to a tap name."
            )
        self.check_images(images)
        features = self.backbone_prefix(images, training=False)
        return {t: features[t] for t in self.cached_taps}

    def set_centre_prior(self, log_prior) -> None:
        """Sets the centre prior's log map (a weight: saved and exported).

        Args:
            log_prior: float `[gh, gw]` (`config.saliency.prior_grid`), finite, e.g.
                `aesthal.models.priors.centre_bias_log_density` of the
                training split's fixations.

        Raises:
            ValueError: the model has no centre prior, or the shape differs.
        """
        prior = getattr(self.saliency_head, "prior", None)
        if prior is None:
            raise ValueError(
                "set_centre_prior: this model has no centre prior "
                f"(centre_prior={self.config.saliency.centre_prior!r})."
            )
        log_prior = np.asarray(log_prior, np.float32)
        if log_prior.shape != prior.grid_shape or not np.all(np.isfinite(log_prior)):
            raise ValueError(
                f"set_centre_prior: expected a finite {prior.grid_shape} map "
                f"(config.saliency.prior_grid), got shape {log_prior.shape}."
            )
        prior.log_prior.assign(log_prior)

    def _features(self, inputs, training=False) -> dict:
        """The trunk's taps from images, or from cached prefix features."""
        if not isinstance(inputs, Mapping):
            return self.backbone(inputs, training=training)
        missing = [t for t in self.cached_taps if t not in inputs]
        if self.backbone_prefix is None or missing:
            raise ValueError(
                "AesthalModel: a dict input must hold the frozen prefix's "
                f"features {self.cached_taps} (see prefix_features); "
                + (
                    f"missing {missing}."
                    if self.backbone_prefix is not None
                    else "this model has no frozen prefix (frozen_up_to)."
                )
            )
        features = {t: keras.ops.cast(inputs[t], "float32") for t in self.cached_taps}
        if self.backbone_suffix is not None:
            features.update(
                self.backbone_suffix(
                    features[self.config.trunk.frozen_up_to], training=training
                )
            )
        return features

    def _task_features(self, inputs, training=False) -> dict[str, dict]:
        """`{task: {tap: features}}`: each task's trunk taps (`config.task_sharing`).

        Hard sharing: the one trunk's taps for both tasks. Soft: each task's
        own trunk. Cross-stitch: both trunks run stage by stage; after each
        cross-stitch tap, the unit mixes the two trunks' features there, and
        each trunk's next stage (and its heads) read its mixed features.
        """
        sharing = self.config.task_sharing.mode
        if sharing == "hard":
            features = self._features(inputs, training=training)
            return {task: features for task in TASKS}
        if isinstance(inputs, Mapping):
            raise ValueError(
                f"AesthalModel: sharing={sharing!r} takes images, not a dict of "
                "cached features (frozen_up_to is not supported with it)."
            )
        if sharing == "soft":
            return {
                "saliency": self.backbone(inputs, training=training),
                "aesthetics": self.aesthetics_backbone(inputs, training=training),
            }
        stages = self.trunk_stages
        taps = self.config.resolved_cross_stitch_taps
        features = {"saliency": {}, "aesthetics": {}}
        x_s, x_a = inputs, inputs
        for index, stage_s in enumerate(stages["saliency"]):
            features["saliency"].update(stage_s(x_s, training=training))
            features["aesthetics"].update(
                stages["aesthetics"][index](x_a, training=training)
            )
            if index < len(taps):
                tap = taps[index]
                x_s, x_a = self.cross_stitch_units[index](
                    [features["saliency"][tap], features["aesthetics"][tap]]
                )
                features["saliency"][tap], features["aesthetics"][tap] = x_s, x_a
        return features

    def forward(self, images, training=False):
        """All outputs, the side heads' included: `(outputs, side_outputs)`.

        What training reads (`aesthal.training.Trainer`); `call` returns
        `outputs` alone.

        `images` are images, or a dict of the frozen prefix's features
        (`prefix_features`). `outputs` holds "saliency",
        "saliency_log_density" and "aesthetics"; `side_outputs[i]` is side
        head i's log-density `[B, H, W, 1]` (saliency) or distribution
        `[B, 10]` (aesthetics).
        """
        features = self._task_features(images, training=training)
        log_density = self.saliency_head(features["saliency"])
        outputs = {
            "saliency": keras.ops.exp(log_density),
            "saliency_log_density": log_density,
            "aesthetics": self.aesthetics_head(
                features["aesthetics"], training=training
            ),
        }
        side_outputs = [
            (
                head(features["aesthetics"], training=training)
                if isinstance(head, AestheticsHead)
                else head(features["saliency"])
            )
            for head in self.side_heads
        ]
        return outputs, side_outputs

    def call(self, images, training=None):
        """Outputs for images, or for cached features (see `prefix_features`)."""
        if not isinstance(images, Mapping):
            self.check_images(images)
        outputs, _ = self.forward(images, training=training)
        if not self.config.saliency.output_log_density:
            outputs.pop("saliency_log_density")
        return outputs

    def compute_output_spec(self, images, training=None):
        height, width = self.config.input_size
        if isinstance(images, Mapping):
            images = next(iter(images.values()))
        batch = images.shape[0]
        spec = {
            "saliency": keras.KerasTensor((batch, height, width, 1), "float32"),
            "aesthetics": keras.KerasTensor((batch, NUM_SCORES), "float32"),
        }
        if self.config.saliency.output_log_density:
            spec["saliency_log_density"] = keras.KerasTensor(
                (batch, height, width, 1), "float32"
            )
        return spec

    # =============================================================== groups
    def variable_groups(self) -> dict[str, list]:
        """Trainable variables by owner: `{"shared", "aesthetics", "saliency"}`.

        shared = the trunk; each task = its head and its side heads. With
        `config.task_sharing.mode` "soft" or "cross_stitch" each task's trunk is in its
        task's group, and shared = the cross-stitch units (empty for "soft").
        Disjoint and, together, every trainable variable of the network
        (`aesthal.training.Trainer` adds its loss weighting's variables to
        their tasks' groups).
        """
        groups = {group: [] for group in GROUPS}
        if self.config.task_sharing.mode == "hard":
            groups["shared"] = list(self.backbone.trainable_variables)
        else:
            for unit in self.cross_stitch_units:
                groups["shared"].extend(unit.trainable_variables)
            groups["saliency"].extend(self.backbone.trainable_variables)
            groups["aesthetics"].extend(self.aesthetics_backbone.trainable_variables)
        groups["saliency"].extend(self.saliency_head.trainable_variables)
        groups["aesthetics"].extend(self.aesthetics_head.trainable_variables)
        for (task, _, _), head in zip(
            self.config.side_heads, self.side_heads, strict=True
        ):
            groups[task].extend(head.trainable_variables)
        return groups

    def forward_state_variables(self) -> list:
        """The non-trainable variables a training forward pass changes.

        The moving statistics of the BatchNormalization layers that are
        trainable (a frozen one runs in inference mode and changes nothing);
        never frozen weights, nor fixed priors or blurs. The NaN/Inf guard
        copies these before a step and puts them back when it refuses one.
        """
        return [
            v
            for layer in self._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
            for v in layer.non_trainable_variables
        ]

    def last_shared_layer(self) -> keras.layers.Layer:
        """The last shared layer that feeds the heads (GradNorm's `W`).

        With hard sharing the trunk's last layer with a trainable kernel that
        the taps the heads read depend on (`aesthal.trunks.last_shared_layer`);
        with cross-stitch sharing the last (deepest) cross-stitch unit.

        Raises:
            ValueError: no such layer (a frozen trunk; soft sharing shares none).
        """
        if self.config.task_sharing.mode == "cross_stitch":
            return self.cross_stitch_units[-1]
        if self.config.task_sharing.mode == "soft":
            raise ValueError("sharing='soft' shares no layer between the tasks.")
        taps = {
            *self.config.resolved_saliency_taps,
            *self.config.resolved_aesthetics_taps,
            *(tap for _, tap, _ in self.config.side_heads),
        }
        return last_shared_layer(self.backbone, sorted(taps))

    def soft_sharing_loss(self) -> tf.Tensor | None:
        """The coupling of the two trunks with `config.task_sharing.mode == "soft"`.

        `sharing.coupling_loss` of the two trunks' trainable weights (Duong
        et al. 2015), a float32 scalar; None with any other sharing.
        """
        if self.config.task_sharing.mode != "soft":
            return None
        return coupling_loss(
            self.backbone.trainable_variables,
            self.aesthetics_backbone.trainable_variables,
            self.config.task_sharing.coupling_weight,
        )

    # ============================================================ not trained
    def compile(self, *args, **kwargs):
        """Refused: the network is trained by `aesthal.training.Trainer`.

        Raises:
            TypeError: always, saying what to call instead.
        """
        raise TypeError(
            "AesthalModel is the network only; train it with "
            "aesthal.training.Trainer(model).compile(optimizers=..., ...) and "
            "trainer.fit(...), or aesthal.training.runner.make_trainer."
        )

    def compile_from_config(self, config) -> None:
        """Ignores the compile config of a `.keras` file written before issue 25.

        Until then the class was also its own trainer and saved its optimizers,
        loss weighting and metrics as a compile config; the network has none
        (training state lives in the trainer's backups), so loading such a
        file restores the weights alone, without a warning. Nothing in the
        compile config is deserialised.
        """

    # =============================================================== config
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "config": self.config.to_dict(),
            "load_backbone_weights": False,
        }

    @classmethod
    def from_config(cls, config):
        """Rebuilds the model from `get_config()`, reading no file.

        A saved model's trunk weights are in the saved file: the
        `backbone_weights` of its `ModelConfig` (`"imagenet"`, `"hed"`, a
        path) are never resolved, read or downloaded here, whatever the
        config's `load_backbone_weights` says (a crafted `.keras` file could
        name any file there); the trunk is built with random weights, which
        loading then replaces. Keys other than those `get_config` writes are
        refused.

        Raises:
            ValueError: an unknown key, or an invalid `ModelConfig`.
        """
        known = {"name", "trainable", "config", "load_backbone_weights"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"AesthalModel config: unknown keys {unknown}")
        return cls(
            config["config"],
            load_backbone_weights=False,
            name=config.get("name", "aesthal_model"),
            trainable=config.get("trainable", True),
        )


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
