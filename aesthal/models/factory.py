"""The factory: each part of a `ModelConfig` built into the layers it names.

    parts = build_parts(config)          # trunk(s), heads, cross-stitch units
    network = AesthalModel(config)       # calls build_parts and wires them

One builder per config part, as DeepGaze composes `DeepGazeII(features,
readout_network, ...)` from pieces built outside the model: `build_trunk`
(`TrunkConfig`), `build_saliency_head` (`SaliencyHeadConfig`: the decoder or
the readout with its blur and prior), `build_aesthetics_head`
(`AestheticsHeadConfig`), `build_side_heads`, and for `SharingConfig` the
second trunk and `build_cross_stitch_units`. `AesthalModel` holds the parts,
runs them and rebuilds them from its config when a `.keras` file loads; the
layers' names (and so every variable's path) are those of the model before
the factory, so every saved file loads.
"""

from __future__ import annotations

import dataclasses

import keras

from aesthal.config import ModelConfig, SaliencyHeadConfig, TrunkConfig
from aesthal.models.aesthetics_head import AestheticsHead
from aesthal.models.readout import Readout
from aesthal.models.saliency_head import SaliencyHead
from aesthal.models.sharing import CrossStitchUnit
from aesthal.trunks import build_backbone, resolve_backbone_weights


@dataclasses.dataclass
class ModelParts:
    """The layers of one network, built from its config.

    Attributes:
        backbone: the trunk (with sharing other than "hard", the saliency
            task's).
        aesthetics_backbone: the aesthetics task's trunk ("soft" and
            "cross_stitch" sharing), starting from `backbone`'s weights;
            else None.
        cross_stitch_units: one `CrossStitchUnit` per cross-stitch tap.
        saliency_head: a `SaliencyHead` (decoder) or a `Readout`.
        aesthetics_head: an `AestheticsHead`.
        side_heads: the training-only side heads, in `config.side_heads` order.
    """

    backbone: keras.Model
    aesthetics_backbone: keras.Model | None
    cross_stitch_units: list[CrossStitchUnit]
    saliency_head: keras.layers.Layer
    aesthetics_head: AestheticsHead
    side_heads: list[keras.layers.Layer]


def build_trunk(
    trunk: TrunkConfig,
    input_size: tuple[int, int],
    load_weights: bool = True,
    name: str | None = None,
) -> keras.Model:
    """The trunk `trunk` describes, its starting weights loaded.

    Args:
        trunk: name, weights and freezing.
        input_size: `(height, width)`.
        load_weights: load `trunk.weights` (False: random weights, which a
            saved file's replace).
        name: the trunk model's name; None = `"<name>_backbone"`.

    Returns:
        `aesthal.trunks.build_backbone`'s model, with every BatchNormalization
        layer frozen when `trunk.frozen_batch_norm` (the prefix up to
        `frozen_up_to` is frozen by `AesthalModel`, which splits it off).

    Raises:
        FileNotFoundError, ImportError, ValueError: the weights cannot be
            found or made (`aesthal.trunks.weights.resolve_backbone_weights`).
    """
    weights_path = None
    if load_weights:
        weights_path = resolve_backbone_weights(trunk.name, trunk.weights, input_size)
    model = build_backbone(trunk.name, input_size, weights_path, name=name)
    if trunk.frozen_batch_norm:
        freeze_batch_norm(model)
    return model


def freeze_batch_norm(model: keras.Model) -> None:
    """Every BatchNormalization layer of `model` not trainable (inference mode)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def build_saliency_head(
    saliency: SaliencyHeadConfig, taps: tuple[str, ...], input_size: tuple[int, int]
) -> keras.layers.Layer:
    """The saliency head, named "saliency_head": a `Readout` (with its blur
    and centre prior) or a `SaliencyHead` decoder, reading `taps`."""
    if saliency.kind == "readout":
        return Readout(
            taps,
            input_size,
            hidden_channels=saliency.readout_channels,
            blur_sigma=saliency.blur,
            learn_blur=saliency.learn_blur,
            prior_grid=None if saliency.centre_prior == "none" else saliency.prior_grid,
            learn_prior=saliency.centre_prior == "learned",
            name="saliency_head",
        )
    return SaliencyHead(
        taps, input_size, saliency.decoder_channels, name="saliency_head"
    )


def build_aesthetics_head(config: ModelConfig) -> AestheticsHead:
    """The aesthetics head, named "aesthetics_head"."""
    return AestheticsHead(
        config.resolved_aesthetics_taps,
        config.aesthetics.dropout,
        name="aesthetics_head",
    )


def build_side_heads(config: ModelConfig) -> list[keras.layers.Layer]:
    """One head per `config.side_heads` entry, named "side<i>_<task>_head": a
    one-tap decoder (saliency) or aesthetics head."""
    heads = []
    for index, (task, tap, _) in enumerate(config.side_heads):
        if task == "saliency":
            heads.append(
                SaliencyHead(
                    (tap,),
                    config.input_size,
                    config.saliency.decoder_channels,
                    name=f"side{index}_saliency_head",
                )
            )
        else:
            heads.append(AestheticsHead((tap,), name=f"side{index}_aesthetics_head"))
    return heads


def build_cross_stitch_units(taps: tuple[str, ...]) -> list[CrossStitchUnit]:
    """One unit per tap, named "cross_stitch_<tap>"."""
    return [CrossStitchUnit(name=f"cross_stitch_{tap}") for tap in taps]


def build_parts(config: ModelConfig, load_trunk_weights: bool = True) -> ModelParts:
    """Every part of the network `config` describes, in the order (and so
    with the layer names) the network has always built them.

    Args:
        config: the architecture.
        load_trunk_weights: load the trunk's starting weights
            (`TrunkConfig.weights`); False when a saved file holds them.
    """
    backbone = build_trunk(config.trunk, config.input_size, load_trunk_weights)
    aesthetics_backbone = None
    if config.task_sharing.mode != "hard":
        # Built alike and starting from the same weights.
        aesthetics_backbone = build_trunk(
            config.trunk,
            config.input_size,
            load_weights=False,
            name=f"{config.trunk.name}_aesthetics_backbone",
        )
        aesthetics_backbone.set_weights(backbone.get_weights())
    units = build_cross_stitch_units(config.resolved_cross_stitch_taps)
    saliency_taps = (
        config.resolved_readout_taps
        if config.saliency.kind == "readout"
        else config.resolved_saliency_taps
    )
    return ModelParts(
        backbone=backbone,
        aesthetics_backbone=aesthetics_backbone,
        cross_stitch_units=units,
        saliency_head=build_saliency_head(
            config.saliency, saliency_taps, config.input_size
        ),
        aesthetics_head=build_aesthetics_head(config),
        side_heads=build_side_heads(config),
    )
