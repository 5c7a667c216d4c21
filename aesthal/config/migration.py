"""Configs of older runs and older `.keras` files, read as today's.

One number versions every stored config (`config_version`, at the top of a
model's dict and of a run's `config.json`); each version bump adds one step
here, and nothing else in the library patches old configs.

    version 1   no `config_version`: every config written before issue 25's
                parts. `ModelConfig` is flat (`{"backbone": "vgg16",
                "saliency_head": "readout", ...}`). A field added after a
                file was written is absent from it and takes its default:
                `ModelConfig.tasks` (a `.keras` file: both tasks; a run's
                `config.json`: its data's tasks), `saliency_head` ...
                `frozen_up_to` (the decoder, no prior, nothing frozen),
                `sharing` ... `cross_stitch_taps` (hard sharing),
                `frozen_batch_norm`, and every later field of `DataConfig`
                and `TrainConfig` (`saliency_target`, `cache_features`, ...).
    version 2   `ModelConfig` nested in its parts: `trunk`, `saliency`,
                `aesthetics`, `task_sharing` (`aesthal.config.parts`), beside
                `input_size`, `tasks` and `side_heads`.

`migrate_model` and `migrate_experiment` take a dict of any version and
return today's (a copy); a version newer than this code's is refused. No
TensorFlow, no absl: `.keras` configs are migrated before anything is built.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

#: The version `to_dict()` writes.
CONFIG_VERSION = 2

# Version 1 -> 2: each flat name's place in the parts. Frozen history: a later
# rename adds a step, it does not change this table.
_V1_FLAT_TO_V2: dict[str, tuple[str, str]] = {
    "backbone": ("trunk", "name"),
    "backbone_weights": ("trunk", "weights"),
    "frozen_up_to": ("trunk", "frozen_up_to"),
    "frozen_batch_norm": ("trunk", "frozen_batch_norm"),
    "saliency_head": ("saliency", "kind"),
    "saliency_taps": ("saliency", "decoder_taps"),
    "decoder_channels": ("saliency", "decoder_channels"),
    "readout_taps": ("saliency", "readout_taps"),
    "readout_channels": ("saliency", "readout_channels"),
    "readout_blur": ("saliency", "blur"),
    "readout_learn_blur": ("saliency", "learn_blur"),
    "centre_prior": ("saliency", "centre_prior"),
    "prior_grid": ("saliency", "prior_grid"),
    "output_log_density": ("saliency", "output_log_density"),
    "aesthetics_taps": ("aesthetics", "taps"),
    "aesthetics_dropout": ("aesthetics", "dropout"),
    "sharing": ("task_sharing", "mode"),
    "coupling_weight": ("task_sharing", "coupling_weight"),
    "cross_stitch_taps": ("task_sharing", "cross_stitch_taps"),
}
_V2_PARTS = ("trunk", "saliency", "aesthetics", "task_sharing")


def _version(config: Mapping[str, Any], what: str, default: int = 1) -> int:
    version = config.get("config_version", default)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            f"{what}: config_version={version!r} is not a version (1, 2, ...)."
        )
    if version > CONFIG_VERSION:
        raise ValueError(
            f"{what}: config_version {version} was written by a newer aesthal than "
            f"this one, which reads versions up to {CONFIG_VERSION}: upgrade "
            "aesthal (pip install -U aesthal)."
        )
    return version


def _model_1_to_2(flat: dict[str, Any]) -> dict[str, Any]:
    """A flat `ModelConfig` dict nested in its parts."""
    clash = sorted(set(flat) & set(_V2_PARTS))
    if clash:
        raise ValueError(f"ModelConfig (version 1): unknown keys {clash}.")
    nested: dict[str, Any] = {part: {} for part in _V2_PARTS}
    for key, value in flat.items():
        if key in _V1_FLAT_TO_V2:
            part, field = _V1_FLAT_TO_V2[key]
            nested[part][field] = value
        else:  # input_size, tasks, side_heads; unknown keys are refused later
            nested[key] = value
    return nested


def migrate_model(
    config: Mapping[str, Any], default_version: int = 1
) -> dict[str, Any]:
    """A `ModelConfig` dict of any version as today's (with `config_version`).

    Args:
        config: what `ModelConfig.to_dict()` wrote, now or in an earlier
            version (a `.keras` file's, a run's, a release's).
        default_version: the version of a dict without `config_version`
            (a model inside a run's config of that version).

    Raises:
        ValueError: not a dict, or a version newer than `CONFIG_VERSION`.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"ModelConfig: expected a dict, got {type(config).__name__}.")
    config = copy.deepcopy(dict(config))
    version = _version(config, "ModelConfig", default_version)
    config.pop("config_version", None)
    if version < 2:
        config = _model_1_to_2(config)
    config["config_version"] = CONFIG_VERSION
    return config


def migrate_experiment(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's `config.json` (an `ExperimentConfig` dict) of any version as
    today's (with `config_version`, its model's too).

    Raises:
        ValueError: not a dict, or a version newer than `CONFIG_VERSION`.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"config.json: expected a dict, got {type(config).__name__}.")
    config = copy.deepcopy(dict(config))
    version = _version(config, "config.json")
    model = config.get("model", {})
    if version < 2 and isinstance(model, dict) and "tasks" not in model:
        # Before ModelConfig.tasks, a run's model was trained on its data's tasks.
        tasks = config.get("data", {}).get("tasks")
        if tasks is not None:
            model["tasks"] = tasks
    config["model"] = migrate_model(model, default_version=version)
    config["config_version"] = CONFIG_VERSION
    return config
