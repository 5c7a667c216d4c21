"""`ModelConfig`: an `AesthalModel`'s architecture, composed of parts.

    config = ModelConfig(
        trunk=TrunkConfig(name="vgg16", weights="imagenet", frozen_up_to="stage4"),
        saliency=SaliencyHeadConfig(kind="readout", centre_prior="fixed"),
        input_size=(384, 512),
    )

The nested form is the stored one: `to_dict()` (plain JSON types, with
`config_version`) is what the network's `get_config()` writes into a `.keras`
file and a run's `config.json` holds; `from_dict()` reads it, and older
dicts through `aesthal.config.migration`. Every field is checked when the
config is made, so a crafted file is refused before anything is built.

The flat view: every field of a part also has its flat name (its flag's, and
the name the field had when the config was flat), as a keyword and as a
read-only attribute, so `ModelConfig(backbone="vgg16", saliency_head="readout")`
is the config above's kind and `config.backbone` is `config.trunk.name`.
Flat keywords are applied on top of the parts given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from aesthal.config import migration
from aesthal.config.constants import (
    MAX_SIDE_HEADS,
    TASKS,
    check_input_size,
)
from aesthal.config.fields import setting
from aesthal.config.parts import (
    FLAT_FIELDS,
    PARTS,
    AestheticsHeadConfig,
    SaliencyHeadConfig,
    SharingConfig,
    TrunkConfig,
)


class _Flat:
    """A flat name's read-only view of a part's field."""

    def __init__(self, part: str, field: str):
        self.part, self.field = part, field

    def __get__(self, config, owner=None):
        if config is None:
            return self
        return getattr(getattr(config, self.part), self.field)


def _jsonable(value: Any) -> Any:
    """Tuples to lists, recursively (what JSON gives back)."""
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True, init=False)
class ModelConfig:
    """Architecture of a multi-task saliency + aesthetics model.

    Attributes:
        trunk: the trunk (`TrunkConfig`).
        saliency: the saliency head (`SaliencyHeadConfig`).
        aesthetics: the aesthetics head (`AestheticsHeadConfig`).
        task_sharing: how the tasks share the trunk (`SharingConfig`).
        input_size: `(height, width)` of the model input in pixels: each side
            32..4096, at most 2048x2048 pixels in all (`check_input_size`).
        tasks: the tasks the model was trained on (a non-empty subset of
            `TASKS`, in `TASKS` order); the runner sets it from
            `DataConfig.tasks`. Both heads always exist, but the outputs of
            an untrained one are not predictions: `aesthal.inference.Predictor`,
            `python -m aesthal.predict` and the SavedModel leave them out.
        side_heads: training-only auxiliary heads, each `(task, tap,
            loss_weight)` with `task` in `TASKS`; their loss, times
            `loss_weight`, is added to that task's loss. They are not in
            `predict()` nor in exports.

    Every field of a part can also be given and read by its flat name
    (`FLAT_FIELDS`: `backbone`, `backbone_weights`, `saliency_head`,
    `readout_taps`, `sharing`, ...). Configs saved flat, before the parts
    (config_version 1), load through `aesthal.config.migration`, with
    their fields of later versions at their defaults.
    """

    trunk: TrunkConfig = TrunkConfig()
    saliency: SaliencyHeadConfig = SaliencyHeadConfig()
    aesthetics: AestheticsHeadConfig = AestheticsHeadConfig()
    task_sharing: SharingConfig = SharingConfig()
    input_size: tuple[int, int] = setting(
        (240, 320),
        composite="size",
        flag_default=(96, 128),
        help="Model input (height, width).",
    )
    tasks: tuple[str, ...] = setting(TASKS, help="Tasks trained.")
    side_heads: tuple[tuple[str, str, float], ...] = setting(
        (),
        composite="side_heads",
        help="Auxiliary heads, each task:tap:weight, e.g. saliency:stage2:0.3.",
    )

    # The flat view (read-only): one name per field of a part.
    backbone = _Flat("trunk", "name")
    backbone_weights = _Flat("trunk", "weights")
    frozen_up_to = _Flat("trunk", "frozen_up_to")
    frozen_batch_norm = _Flat("trunk", "frozen_batch_norm")
    saliency_head = _Flat("saliency", "kind")
    saliency_taps = _Flat("saliency", "decoder_taps")
    decoder_channels = _Flat("saliency", "decoder_channels")
    readout_taps = _Flat("saliency", "readout_taps")
    readout_channels = _Flat("saliency", "readout_channels")
    readout_blur = _Flat("saliency", "blur")
    readout_learn_blur = _Flat("saliency", "learn_blur")
    centre_prior = _Flat("saliency", "centre_prior")
    prior_grid = _Flat("saliency", "prior_grid")
    output_log_density = _Flat("saliency", "output_log_density")
    aesthetics_taps = _Flat("aesthetics", "taps")
    aesthetics_dropout = _Flat("aesthetics", "dropout")
    sharing = _Flat("task_sharing", "mode")
    coupling_weight = _Flat("task_sharing", "coupling_weight")
    cross_stitch_taps = _Flat("task_sharing", "cross_stitch_taps")

    def __init__(
        self,
        *,
        trunk: TrunkConfig | Mapping[str, Any] | None = None,
        saliency: SaliencyHeadConfig | Mapping[str, Any] | None = None,
        aesthetics: AestheticsHeadConfig | Mapping[str, Any] | None = None,
        task_sharing: SharingConfig | Mapping[str, Any] | None = None,
        input_size: tuple[int, int] = (240, 320),
        tasks: tuple[str, ...] = TASKS,
        side_heads: tuple[tuple[str, str, float], ...] = (),
        **flat: Any,
    ):
        unknown = sorted(set(flat) - set(FLAT_FIELDS))
        if unknown:
            raise TypeError(
                f"ModelConfig: unknown keyword(s) {unknown}; the parts are "
                f"{list(PARTS)} and the flat names {sorted(FLAT_FIELDS)}."
            )
        given = {
            "trunk": trunk,
            "saliency": saliency,
            "aesthetics": aesthetics,
            "task_sharing": task_sharing,
        }
        for name, cls in PARTS.items():
            part = given[name]
            if isinstance(part, Mapping):
                part = cls(**part)
            changes = {
                field: flat[key]
                for key, (owner, field) in FLAT_FIELDS.items()
                if owner == name and key in flat
            }
            if part is None:
                part = cls(**changes)
            elif changes:
                part = dataclasses.replace(part, **changes)
            if not isinstance(part, cls):
                raise TypeError(
                    f"ModelConfig.{name} must be a {cls.__name__}, got "
                    f"{type(part).__name__}."
                )
            object.__setattr__(self, name, part)
        object.__setattr__(self, "input_size", input_size)
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "side_heads", side_heads)
        self._check()

    def _check(self) -> None:
        """Normalises (tuples, task order) and checks across the parts."""
        set_ = object.__setattr__
        if isinstance(self.tasks, str) or not all(
            isinstance(t, str) for t in self.tasks
        ):
            raise ValueError(
                f"ModelConfig.tasks={self.tasks!r} must be a tuple of task names."
            )
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(
                f"ModelConfig.tasks={tuple(self.tasks)} must be a non-empty subset "
                f"of {TASKS}" + (f"; unknown: {unknown}." if unknown else ".")
            )
        set_(self, "tasks", tuple(t for t in TASKS if t in self.tasks))
        set_(self, "input_size", tuple(int(v) for v in self.input_size))
        set_(
            self,
            "side_heads",
            tuple((str(t), str(tap), float(w)) for t, tap, w in self.side_heads),
        )
        check_input_size(self.input_size, "ModelConfig.input_size")
        taps = self.trunk.taps
        for flat_name, value in (
            ("saliency_taps", self.saliency.decoder_taps),
            ("aesthetics_taps", self.aesthetics.taps),
        ):
            bad = [t for t in value or () if t not in taps]
            if bad:
                raise ValueError(
                    f"ModelConfig.{flat_name} has unknown taps {bad} for backbone "
                    f"{self.backbone!r}; available: {taps}."
                )
        for flat_name, value in (
            ("readout_taps", self.saliency.readout_taps),
            ("cross_stitch_taps", self.task_sharing.cross_stitch_taps),
        ):
            bad = [t for t in value or () if t not in taps]
            if bad:
                raise ValueError(
                    f"ModelConfig.{flat_name}={value} must be a non-empty subset "
                    f"of backbone {self.backbone!r}'s taps {taps}; unknown: {bad}."
                )
        self._check_side_heads(taps)
        self._check_sharing()

    def _check_side_heads(self, taps: tuple[str, ...]) -> None:
        for task, tap, weight in self.side_heads:
            if task not in TASKS:
                raise ValueError(
                    f"ModelConfig.side_heads: task {task!r} is not one of {TASKS}."
                )
            if tap not in taps:
                raise ValueError(
                    f"ModelConfig.side_heads: tap {tap!r} is unknown for backbone "
                    f"{self.backbone!r}; available: {taps}."
                )
            if not weight >= 0:
                raise ValueError(
                    f"ModelConfig.side_heads: loss weight {weight} must be >= 0."
                )
        if len(self.side_heads) > MAX_SIDE_HEADS:
            raise ValueError(
                f"ModelConfig.side_heads: {len(self.side_heads)} heads; at most "
                f"{MAX_SIDE_HEADS}."
            )

    def _check_sharing(self) -> None:
        """Sharing against the trunk and the tasks; cross-stitch taps in
        trunk order."""
        sharing = self.task_sharing
        if sharing.cross_stitch_taps is not None:
            ordered = tuple(
                t for t in self.trunk.taps if t in sharing.cross_stitch_taps
            )
            if ordered != sharing.cross_stitch_taps:
                object.__setattr__(
                    self,
                    "task_sharing",
                    dataclasses.replace(sharing, cross_stitch_taps=ordered),
                )
        if sharing.mode == "hard":
            return
        if self.tasks != TASKS:
            raise ValueError(
                f"ModelConfig: sharing={sharing.mode!r} gives each task its own "
                f"trunk, but only {self.tasks} is trained: with one task there "
                "is nothing to share; use sharing='hard'."
            )
        if self.trunk.frozen_up_to is not None:
            raise ValueError(
                f"ModelConfig: sharing={sharing.mode!r} with frozen_up_to="
                f"{self.trunk.frozen_up_to!r} is not supported (the per-task "
                "trunks are trained whole); use sharing='hard' or frozen_up_to=None."
            )

    # ------------------------------------------------------------ resolved
    @property
    def resolved_saliency_taps(self) -> tuple[str, ...]:
        """The saliency decoder's taps, with the default (three deepest)."""
        return self.saliency.decoder_taps or self.trunk.taps[-3:]

    @property
    def resolved_readout_taps(self) -> tuple[str, ...]:
        """The readout's taps, with the default (two deepest) filled in."""
        return self.saliency.readout_taps or self.trunk.taps[-2:]

    @property
    def resolved_aesthetics_taps(self) -> tuple[str, ...]:
        """The aesthetics head's taps, with the default (the deepest)."""
        return self.aesthetics.taps or self.trunk.taps[-1:]

    @property
    def head_taps(self) -> tuple[str, ...]:
        """Every tap a head reads (saliency head, aesthetics head, side
        heads), shallow to deep."""
        used = set(self.resolved_aesthetics_taps)
        used |= set(
            self.resolved_readout_taps
            if self.saliency.kind == "readout"
            else self.resolved_saliency_taps
        )
        used |= {tap for _, tap, _ in self.side_heads}
        return tuple(t for t in self.trunk.taps if t in used)

    @property
    def resolved_cross_stitch_taps(self) -> tuple[str, ...]:
        """The taps followed by a cross-stitch unit: `cross_stitch_taps`, or
        every tap up to (and including) the deepest one a head reads; empty
        unless sharing is `"cross_stitch"`."""
        if self.task_sharing.mode != "cross_stitch":
            return ()
        if self.task_sharing.cross_stitch_taps is not None:
            return self.task_sharing.cross_stitch_taps
        names = self.trunk.taps
        return names[: names.index(self.head_taps[-1]) + 1]

    # -------------------------------------------------------------- stored
    def to_dict(self) -> dict[str, Any]:
        """The config as JSON types, nested, with `config_version`."""
        out = {"config_version": migration.CONFIG_VERSION}
        for name in PARTS:
            out[name] = _jsonable(dataclasses.asdict(getattr(self, name)))
        out["input_size"] = list(self.input_size)
        out["tasks"] = list(self.tasks)
        out["side_heads"] = _jsonable(self.side_heads)
        return out

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; reads a dict of any earlier version
        (`migration.migrate_model`) and rejects unknown keys."""
        config = migration.migrate_model(config)
        config.pop("config_version")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(config) - names
        for name, part in PARTS.items():
            value = config.get(name, {})
            if not isinstance(value, Mapping):
                raise ValueError(f"ModelConfig.{name}: expected a dict, got {value!r}.")
            fields = {f.name for f in dataclasses.fields(part)}
            unknown |= {f"{name}.{key}" for key in set(value) - fields}
        if unknown:
            raise ValueError(f"ModelConfig: unknown keys {sorted(unknown)}.")
        return cls(**config)
