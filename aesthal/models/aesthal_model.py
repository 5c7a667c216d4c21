"""`AesthalModel`: one shared trunk, a saliency decoder and an aesthetics head.

(Or one trunk per task, with `ModelConfig.sharing` "soft" or "cross_stitch":
see `aesthal.models.sharing` and docs/design.md, "Sharing".)

The model owns its training, as in keras-io's "customizing what happens in
fit" GAN example: `compile` takes one optimizer per variable group and holds
them as `shared_optimizer`, `aesthetics_optimizer` and `saliency_optimizer`;
`train_step` is the whole update.

Batches are checked twice: at the edge (`validate_batch` on the first batch
of `fit`/`evaluate`, which also refuse empty data) and in the step (`_unpack`:
shapes at trace time; `_check_batch`: pixel and label values of every batch,
recorded without asserts so that it holds under XLA too, and raised by the
`BatchChecker` callback that `fit`/`evaluate` add, with the same message).

One training step (the TF1 recipe `tf.gradients(loss, shared + a + b)`, split by
position, three `AdamOptimizer`s, one grouped op, in Keras 3):

1. one `tf.GradientTape` around the forward pass and the loss;
2. per task `t`, `L_t = masked mean of the head's loss + sum_side w_i * side_i`,
   where the mean is over the examples of the *global* batch whose
   `sample_weights[t]` is 1 (0 if there are none);
3. `total = loss_weighting.combine({t: L_t})`;
4. one `tape.gradient(total, shared + aesthetics + saliency)`, split by group,
   each part applied by that group's optimizer (`_apply_grouped_gradients`);
   with a gradient-level strategy (`aesthal.models.balancing`: GradNorm,
   PCGrad, CAGrad) instead one backward pass per task, whose shared-group
   gradients are all-reduced and combined by the strategy
   (`_balanced_gradients`), while each head group keeps its task's gradient;
5. the NaN/Inf guard: if any task loss or any gradient is NaN or Inf (on any
   replica), *no* group's update is applied: weights, Adam moments and the
   optimizers' `iterations` (hence learning-rate schedules) stay as they were,
   and the state the forward pass changed (`forward_state_variables`: the
   moving statistics of trainable BatchNorm layers; never frozen weights) is
   put back.
   The step is counted in the `{group}_nonfinite` training statistics
   ("saliency" and "aesthetics": that task's loss or its head's gradients;
   "shared": the trunk's gradients), which
   `aesthal.training.callbacks.StopOnNonFinite` turns into an error naming the
   step and the task.

Under `tf.distribute`, each replica's `L_t` is its local masked sum divided by
the global count of labelled examples (an all-reduce), and the regularizer of
the loss weighting is divided by the number of replicas; the optimizers'
gradient all-reduce (a sum) then yields exactly the single-device gradient of
the global batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from aesthal import losses as losses_lib
from aesthal.config import (
    DEFAULT_LEARNING_RATE,
    GROUPS,
    NUM_SCORES,
    TASKS,
    ModelConfig,
)
from aesthal.models.aesthetics_head import AestheticsHead
from aesthal.models.balancing import first_replica_only
from aesthal.models.loss_weighting import LossWeighting, get_loss_weighting
from aesthal.models.readout import Readout
from aesthal.models.saliency_head import SaliencyHead
from aesthal.models.sharing import CrossStitchUnit, coupling_loss
from aesthal.models.step_counter import StepCounter
from aesthal.models.validation import (
    CHECKS,
    REPORT_SIZE,
    BatchChecker,
    batch_report,
    validate_batch,
)
from aesthal.models.variable_groups import check_partition
from aesthal.trunks import (
    build_backbone,
    last_shared_layer,
    resolve_backbone_weights,
    split_backbone,
    split_backbone_stages,
)


@keras.saving.register_keras_serializable(package="aesthal")
class AesthalModel(keras.Model):
    """Multi-task saliency + aesthetics model, with grouped-optimizer training.

    `call(images)` takes float32 RGB `[B, H, W, 3]` with values in 0..255
    (`(H, W) == config.input_size`; the trunk scales them itself) and returns

        {"saliency":   float32 [B, H, W, 1], a density summing to 1 per image,
         "aesthetics": float32 [B, 10], a distribution over scores 1..10}

    plus `"saliency_log_density"` (`[B, H, W, 1]`) when
    `config.output_log_density`. Side heads are only evaluated in `train_step`.
    With `config.frozen_up_to`, `call` (and `fit`, `evaluate`) also take a
    dict of the frozen prefix's features (`prefix_features`) instead of
    images: the cached-feature training stream of `aesthal.data.prepare`.

    Training: `compile(optimizers={group: optimizer})`, then `fit`. The logs
    `fit` prints hold the total loss, each trained task's loss (and its side
    heads') and the task metrics; the learning rates, task weights and the
    steps the NaN/Inf guard refused are `training_stats()`, which `fit` adds
    to its `History` (and `TrainingStatsLogger` writes to TensorBoard).

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
        # The frozen prefix and the trainable suffix share the trunk's layers;
        # held untracked so that the weights are saved once (the trunk's).
        prefix, suffix = None, None
        if config.frozen_up_to is not None:
            prefix, suffix = split_backbone(self.backbone, config.frozen_up_to)
            for layer in prefix.layers:
                layer.trainable = False
        object.__setattr__(self, "backbone_prefix", prefix)
        object.__setattr__(self, "backbone_suffix", suffix)
        # Soft and cross-stitch sharing (`config.sharing`): `backbone` is the
        # saliency task's trunk and `aesthetics_backbone` the aesthetics
        # task's, built alike and starting from the same weights.
        self.aesthetics_backbone = None
        if config.sharing != "hard":
            self.aesthetics_backbone = build_backbone(
                config.backbone,
                config.input_size,
                name=f"{config.backbone}_aesthetics_backbone",
            )
            self.aesthetics_backbone.set_weights(self.backbone.get_weights())
        if config.frozen_batch_norm:
            for trunk in (self.backbone, self.aesthetics_backbone):
                for layer in trunk.layers if trunk is not None else ():
                    if isinstance(layer, keras.layers.BatchNormalization):
                        layer.trainable = False
        # Cross-stitch: each trunk runs stage by stage (the stages share the
        # trunks' layers, held untracked as the prefix is), a unit after each
        # cut mixing the two trunks' features.
        cross_taps = config.resolved_cross_stitch_taps
        self.cross_stitch_units = [
            CrossStitchUnit(name=f"cross_stitch_{tap}") for tap in cross_taps
        ]
        stages = {}
        if cross_taps:
            stages = {
                "saliency": split_backbone_stages(self.backbone, cross_taps),
                "aesthetics": split_backbone_stages(
                    self.aesthetics_backbone, cross_taps
                ),
            }
        object.__setattr__(self, "trunk_stages", stages)
        if config.saliency_head == "readout":
            self.saliency_head = Readout(
                config.resolved_readout_taps,
                config.input_size,
                hidden_channels=config.readout_channels,
                blur_sigma=config.readout_blur,
                learn_blur=config.readout_learn_blur,
                prior_grid=(
                    None if config.centre_prior == "none" else config.prior_grid
                ),
                learn_prior=config.centre_prior == "learned",
                name="saliency_head",
            )
        else:
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
        # === Trackers ===
        # Losses: logged by fit/evaluate (the progress bar).
        loss_names = ["loss"] + [f"{t}_loss" for t in TASKS]
        loss_names += [
            f"side{i}_{task}_loss" for i, (task, _, _) in enumerate(config.side_heads)
        ]
        if config.sharing == "soft":
            loss_names.append("coupling_loss")
        self.loss_trackers = {n: keras.metrics.Mean(name=n) for n in loss_names}
        # Training statistics: kept out of the logs (see `training_stats`).
        self.stat_trackers = {
            **{f"{t}_weight": keras.metrics.Mean(name=f"{t}_weight") for t in TASKS},
            **{f"{g}_lr": keras.metrics.Mean(name=f"{g}_lr") for g in GROUPS},
            # Steps refused by the NaN/Inf guard this epoch (a count).
            **{
                f"{g}_nonfinite": keras.metrics.Sum(name=f"{g}_nonfinite")
                for g in GROUPS
            },
        }
        # Training steps run, saved with the model but not one of its weights
        # (`object.__setattr__` bypasses the layer tracker, as in `compile`).
        object.__setattr__(self, "step_counter", StepCounter(name="step_counter"))
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

    @property
    def cached_taps(self) -> tuple[str, ...]:
        """The frozen prefix's taps that cached features must hold: those the
        heads read, and `frozen_up_to` itself when a trainable suffix follows.
        Empty without `config.frozen_up_to`."""
        tap = self.config.frozen_up_to
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
            ValueError: the model has no frozen prefix (`config.frozen_up_to`).
        """
        if self.backbone_prefix is None:
            raise ValueError(
                "prefix_features: this model has no frozen prefix; set "
                "ModelConfig.frozen_up_to to a tap name."
            )
        self._check_images(images)
        features = self.backbone_prefix(images, training=False)
        return {t: features[t] for t in self.cached_taps}

    def set_centre_prior(self, log_prior) -> None:
        """Sets the centre prior's log map (a weight: saved and exported).

        Args:
            log_prior: float `[gh, gw]` (`config.prior_grid`), finite, e.g.
                `aesthal.models.priors.centre_bias_log_density` of the
                training split's fixations.

        Raises:
            ValueError: the model has no centre prior, or the shape differs.
        """
        prior = getattr(self.saliency_head, "prior", None)
        if prior is None:
            raise ValueError(
                "set_centre_prior: this model has no centre prior "
                f"(centre_prior={self.config.centre_prior!r})."
            )
        log_prior = np.asarray(log_prior, np.float32)
        if log_prior.shape != prior.grid_shape or not np.all(np.isfinite(log_prior)):
            raise ValueError(
                f"set_centre_prior: expected a finite {prior.grid_shape} map "
                f"(config.prior_grid), got shape {log_prior.shape}."
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
                    features[self.config.frozen_up_to], training=training
                )
            )
        return features

    def _task_features(self, inputs, training=False) -> dict[str, dict]:
        """`{task: {tap: features}}`: each task's trunk taps (`config.sharing`).

        Hard sharing: the one trunk's taps for both tasks. Soft: each task's
        own trunk. Cross-stitch: both trunks run stage by stage; after each
        cross-stitch tap, the unit mixes the two trunks' features there, and
        each trunk's next stage (and its heads) read its mixed features.
        """
        sharing = self.config.sharing
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

    def _forward(self, images, training=False):
        """All outputs: `(outputs, side_outputs)`.

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
            self._check_images(images)
        outputs, _ = self._forward(images, training=training)
        if not self.config.output_log_density:
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
        if self.config.output_log_density:
            spec["saliency_log_density"] = keras.KerasTensor(
                (batch, height, width, 1), "float32"
            )
        return spec

    # =============================================================== groups
    def variable_groups(self) -> dict[str, list]:
        """Trainable variables by owner: `{"shared", "aesthetics", "saliency"}`.

        shared = the trunk; each task = its head, its side heads and its
        variables in the loss-weighting strategy (after `compile`). With
        `config.sharing` "soft" or "cross_stitch" each task's trunk is in its
        task's group, and shared = the cross-stitch units (empty for "soft").
        Disjoint and, together, every trainable variable of the model and
        strategy.
        """
        groups = {group: [] for group in GROUPS}
        if self.config.sharing == "hard":
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
        strategy = getattr(self, "loss_weighting", None)
        if strategy is not None:
            for task in TASKS:
                groups[task].extend(strategy.variables_for_task(task))
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

    # ============================================================== compile
    def compile(
        self,
        optimizers: Mapping[str, keras.optimizers.Optimizer | str | dict] | None = None,
        loss_weighting: str | LossWeighting = "fixed",
        loss_weights: Mapping[str, float] | None = None,
        saliency_loss: losses_lib.SaliencyLoss | Mapping[str, float] | None = None,
        metrics: Mapping[str, list] | None = None,
        tasks: tuple[str, ...] | list[str] = TASKS,
        jit_compile: bool | str = "auto",
        steps_per_execution: int = 1,
        run_eagerly: bool = False,
    ) -> None:
        """Configures training.

        Args:
            optimizers: `{"shared"|"aesthetics"|"saliency": optimizer}` (instances,
                names or serialized configs); a missing group gets
                `keras.optimizers.Adam(DEFAULT_LEARNING_RATE)`. One instance per
                group; they become `shared_optimizer`, `aesthetics_optimizer`
                and `saliency_optimizer`.
            loss_weighting: a name in `aesthal.config.LOSS_WEIGHTINGS`
                (`"fixed"`, `"uncertainty"`, `"dwa"`; the gradient-level
                `"gradnorm"`, `"pcgrad"`, `"cagrad"`, see docs/balancing.md)
                or a `LossWeighting` instance.
            loss_weights: `{task: weight}` for `"fixed"` (missing tasks: 1.0).
            saliency_loss: a `SaliencyLoss` or its kwargs
                (`{"kld_weight", "cc_weight", "nss_weight"}`); default KLD only.
            metrics: `{task: [keras.metrics.Metric, ...]}`; each is updated with
                `update_state(target, prediction, sample_weight=mask)` where, for
                saliency, `prediction` is the density `[B, H, W, 1]` and
                `target` the raw map; for aesthetics `[B, 10]` both.
            tasks: the tasks trained; only their losses and metrics are logged
                (an untrained task's loss is computed, on its masked-out
                labels, but not shown).
            jit_compile, steps_per_execution, run_eagerly: as in `keras.Model`.

        Raises:
            ValueError: unknown group or task names, an optimizer shared between
                groups, bad loss settings, or a gradient-level strategy for a
                model without shared trainable variables.
        """
        super().compile(
            optimizer=None,
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
            run_eagerly=run_eagerly,
        )
        optimizers = dict(optimizers or {})
        unknown = set(optimizers) - set(GROUPS)
        if unknown:
            raise ValueError(
                f"optimizers: unknown group names {sorted(unknown)}; expected keys "
                f"in {GROUPS}."
            )
        resolved = {}
        for group in GROUPS:
            optimizer = optimizers.get(group)
            optimizer = (
                keras.optimizers.Adam(DEFAULT_LEARNING_RATE)
                if optimizer is None
                else keras.optimizers.get(optimizer)
            )
            if any(optimizer is other for other in resolved.values()):
                raise ValueError(
                    f"optimizers: the same optimizer instance is given for group "
                    f"{group!r} and another group; each group needs its own."
                )
            resolved[group] = optimizer
        strategy = get_loss_weighting(loss_weighting, loss_weights)
        if strategy.acts_on_gradients and self.config.sharing == "soft":
            raise ValueError(
                f"loss_weighting={type(strategy).__name__} balances the tasks' "
                "gradients of the shared variables, but sharing='soft' has none "
                "(each task trains its own trunk); use 'fixed', 'uncertainty' or "
                "'dwa', or sharing='hard' or 'cross_stitch'."
            )
        if strategy.acts_on_gradients and not self.variable_groups()["shared"]:
            raise ValueError(
                f"loss_weighting={type(strategy).__name__} balances the tasks' "
                "gradients of the shared variables, but this model has none (a "
                "frozen trunk, or sharing without a shared trunk); use 'fixed', "
                "'uncertainty' or 'dwa'."
            )
        if saliency_loss is None:
            saliency_loss = losses_lib.SaliencyLoss()
        elif isinstance(saliency_loss, Mapping):
            saliency_loss = losses_lib.SaliencyLoss(**saliency_loss)
        elif not isinstance(saliency_loss, losses_lib.SaliencyLoss):
            raise ValueError(
                "saliency_loss must be an aesthal.losses.SaliencyLoss or a dict of "
                f"its weights; got {type(saliency_loss).__name__}."
            )
        metrics = dict(metrics or {})
        tasks = tuple(tasks)
        for name, keys in (("metrics", metrics), ("tasks", tasks)):
            unknown = set(keys) - set(TASKS)
            if unknown or not tasks:
                raise ValueError(
                    f"{name}: unknown tasks {sorted(unknown)}; expected tasks in "
                    f"{TASKS}."
                )
        task_metrics = {
            task: [keras.metrics.get(m) for m in metrics.get(task, [])]
            for task in TASKS
        }
        # Optimizers, the loss weighting and the other compile-time objects are
        # kept out of layer tracking, as Keras' own `compile` keeps its
        # optimizer: they are saved through `get_compile_config`, not as
        # sub-layers (`object.__setattr__` bypasses the tracker).
        untracked = object.__setattr__
        with self.distribute_strategy.scope():
            if not strategy.built:
                strategy.build_tasks(TASKS)
            untracked(self, "loss_weighting", strategy)
            groups = self.variable_groups()
            for group, optimizer in resolved.items():
                if not optimizer.built:
                    optimizer.build(groups[group])
        untracked(self, "shared_optimizer", resolved["shared"])
        untracked(self, "aesthetics_optimizer", resolved["aesthetics"])
        untracked(self, "saliency_optimizer", resolved["saliency"])
        untracked(self, "saliency_loss", saliency_loss)
        untracked(self, "task_metrics", task_metrics)
        untracked(self, "tasks", tasks)
        with self.distribute_strategy.scope():
            # The first failed `batch_report` of the running fit/evaluate (all
            # zeros = none), read by `BatchChecker`; not a model weight.
            untracked(
                self,
                "batch_check",
                tf.Variable(
                    tf.zeros([REPORT_SIZE]),
                    trainable=False,
                    name="batch_check",
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                ),
            )
        untracked(
            self,
            "_aesthal_compile_args",
            {"jit_compile": jit_compile, "steps_per_execution": steps_per_execution},
        )
        check_partition(groups, self._all_trainable_variables())

    @property
    def group_optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        """`{group: optimizer}` after `compile`."""
        return {
            "shared": self.shared_optimizer,
            "aesthetics": self.aesthetics_optimizer,
            "saliency": self.saliency_optimizer,
        }

    def _all_trainable_variables(self) -> list:
        strategy = getattr(self, "loss_weighting", None)
        extra = list(strategy.trainable_variables) if strategy is not None else []
        return list(self.trainable_variables) + extra

    def get_compile_config(self) -> dict | None:
        if not getattr(self, "compiled", False) or not hasattr(self, "loss_weighting"):
            return None
        serialize = keras.saving.serialize_keras_object
        config = {
            "optimizers": {g: serialize(o) for g, o in self.group_optimizers.items()},
            "loss_weighting": serialize(self.loss_weighting),
            "saliency_loss": self.saliency_loss.get_config(),
            "metrics": {
                t: [serialize(m) for m in ms] for t, ms in self.task_metrics.items()
            },
            **self._aesthal_compile_args,
        }
        if self.tasks != TASKS:
            config["tasks"] = list(self.tasks)
        return config

    def compile_from_config(self, config: Mapping) -> None:
        deserialize = keras.saving.deserialize_keras_object
        config = dict(config)
        self.compile(
            optimizers={g: deserialize(o) for g, o in config.pop("optimizers").items()},
            loss_weighting=deserialize(config.pop("loss_weighting")),
            saliency_loss=config.pop("saliency_loss"),
            metrics={
                t: [deserialize(m) for m in ms]
                for t, ms in config.pop("metrics").items()
            },
            **config,
        )

    @property
    def metrics(self) -> list:
        """Every tracker and task metric; `fit` resets them at each epoch."""
        out = [*self.loss_trackers.values(), *self.stat_trackers.values()]
        for task in TASKS:
            out.extend(getattr(self, "task_metrics", {}).get(task, []))
        return out

    def training_stats(self) -> dict[str, tf.Tensor]:
        """This epoch's training statistics so far (kept out of `fit`'s logs).

        Returns:
            `{"{task}_weight": mean task weight, "{group}_lr": mean learning
            rate, "{group}_nonfinite": steps the NaN/Inf guard refused}`, float32
            scalars, for every task and group.
        """
        return {name: t.result() for name, t in self.stat_trackers.items()}

    # ================================================================ steps
    def _unpack(self, data):
        """`(images, targets, masks)` with every task present (zeros, mask 0).

        The trace-time check of a batch (structure and shapes); the values are
        checked by `_check_batch`.
        """
        images, targets, sample_weights = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(images, Mapping):
            images = dict(images)  # cached prefix features: checked in _features
        else:
            self._check_images(images)
        if targets is None:
            raise ValueError(
                "train/test data must yield (images, targets[, sample_weights])."
            )
        if not isinstance(targets, Mapping):
            raise ValueError(
                f"targets must be a dict with keys in {TASKS}; "
                f"got {type(targets).__name__}."
            )
        sample_weights = {} if sample_weights is None else sample_weights
        if not isinstance(sample_weights, Mapping):
            raise ValueError(
                f"sample_weights must be a dict {{task: [B]}}; got "
                f"{type(sample_weights).__name__}."
            )
        for name, mapping in (("targets", targets), ("sample_weights", sample_weights)):
            unknown = set(mapping) - set(TASKS)
            if unknown:
                raise ValueError(
                    f"{name} has unknown tasks {sorted(unknown)}; expected {TASKS}."
                )
        height, width = self.config.input_size
        first = next(iter(images.values())) if isinstance(images, dict) else images
        batch = tf.shape(first)[0]
        shapes = {"saliency": (height, width, 1), "aesthetics": (NUM_SCORES,)}
        full_targets, masks = {}, {}
        for task in TASKS:
            if task in targets:
                target = tf.cast(targets[task], tf.float32)
                if tuple(target.shape[1:]) != shapes[task]:
                    raise ValueError(
                        f"targets[{task!r}] has shape {tuple(target.shape)}; the model "
                        f"outputs [B, {', '.join(map(str, shapes[task]))}]."
                    )
                mask = sample_weights.get(task)
                mask = (
                    tf.ones([batch])
                    if mask is None
                    else tf.reshape(tf.cast(mask, tf.float32), [-1])
                )
            else:
                target = tf.zeros(tf.concat([[batch], shapes[task]], 0))
                mask = tf.zeros([batch])
            full_targets[task], masks[task] = target, mask
        return images, full_targets, masks

    def _check_batch(self, images, targets, masks) -> tf.Tensor:
        """Every batch's value check (`validation.batch_report`), XLA-safe.

        Records the first failed report in `batch_check` (for `BatchChecker`,
        which raises with `validate_batch`'s message) and returns a bool
        scalar: True when this batch passed (the step applies no update
        otherwise).
        """
        if isinstance(images, Mapping):
            # Cached features were computed from images checked when the cache
            # was built (`aesthal.data.prepare`); the labels are checked here.
            first = next(iter(images.values()))
            images = tf.zeros([tf.shape(first)[0], 1, 1, 3])
        report = batch_report(images, targets, masks)
        passed = tf.equal(tf.reduce_sum(report[: len(CHECKS)]), 0.0)
        record = getattr(self, "batch_check", None)
        if record is not None:
            failed_before = tf.reduce_sum(record[: len(CHECKS)]) > 0.0
            record.assign(tf.where(failed_before, record, report))
        return passed

    def _compute_losses(self, targets, masks, outputs, side_outputs):
        """Per-replica task losses (share of the global-batch mean) and log values.

        Returns:
            `(task_losses, log_losses)`: `{task: scalar}` to combine, and
            `{tracker_name: scalar}` at the global scale (for logging).
        """
        num_replicas = self.distribute_strategy.num_replicas_in_sync
        context = tf.distribute.get_replica_context()

        def global_mean(per_example, task):
            local_sum, local_count = losses_lib.masked_sum_and_count(
                per_example, masks[task]
            )
            count = local_count
            if context is not None and num_replicas > 1:
                count = context.all_reduce(tf.distribute.ReduceOp.SUM, local_count)
            return tf.math.divide_no_nan(local_sum, count)

        per_example = {
            "saliency": self.saliency_loss(
                targets["saliency"], outputs["saliency_log_density"]
            ),
            "aesthetics": losses_lib.squared_emd(
                targets["aesthetics"], outputs["aesthetics"]
            ),
        }
        task_losses = {t: global_mean(per_example[t], t) for t in TASKS}
        logs = {f"{t}_loss": task_losses[t] * num_replicas for t in TASKS}
        for i, ((task, _, weight), side) in enumerate(
            zip(self.config.side_heads, side_outputs, strict=True)
        ):
            if task == "saliency":
                side_loss = self.saliency_loss(targets["saliency"], side)
            else:
                side_loss = losses_lib.squared_emd(targets["aesthetics"], side)
            side_loss = global_mean(side_loss, task)
            logs[f"side{i}_{task}_loss"] = side_loss * num_replicas
            task_losses[task] = task_losses[task] + weight * side_loss
        return task_losses, logs

    def _update_loss_trackers(self, loss_logs, total_global) -> None:
        self.loss_trackers["loss"].update_state(total_global)
        for name, value in loss_logs.items():
            self.loss_trackers[name].update_state(value)

    def _update_task_metrics(self, targets, masks, outputs) -> None:
        for task in TASKS:
            for metric in self.task_metrics.get(task, []):
                metric.update_state(
                    targets[task], outputs[task], sample_weight=masks[task]
                )

    def _logs(self) -> dict:
        """What `fit`/`evaluate` log (and the progress bar shows): the total
        loss, the trained tasks' losses (their side heads' too) and metrics."""
        logs = {"loss": self.loss_trackers["loss"].result()}
        for name, tracker in self.loss_trackers.items():
            if name == "coupling_loss" or (
                name != "loss" and _task_of(name) in self.tasks
            ):
                logs[name] = tracker.result()
        for task in self.tasks:
            for metric in self.task_metrics.get(task, []):
                result = metric.result()
                if isinstance(result, Mapping):
                    logs.update({f"{task}_{k}": v for k, v in result.items()})
                else:
                    logs[f"{task}_{metric.name}"] = result
        return logs

    def headline_logs(self) -> dict[str, str]:
        """The logs a progress line shows, with their short names.

        The total loss, each trained task's loss and its first metric (the
        order `compile` was given them in): `{"loss": "loss",
        "saliency_loss": "saliency", "saliency_cc": "cc", "aesthetics_loss":
        "aesthetics", "aesthetics_emd": "emd"}` by default. Every other log
        (side heads, the other metrics) still reaches the callbacks
        (`History`, TensorBoard): `aesthal.training.progress.ProgressLine`.
        A metric name that two tasks share keeps its task prefix.
        """
        pairs = [("loss", "loss")]
        for task in self.tasks:
            pairs.append((f"{task}_loss", task))
            for metric in self.task_metrics.get(task, [])[:1]:
                result = metric.result()
                key = next(iter(result)) if isinstance(result, Mapping) else metric.name
                pairs.append((f"{task}_{key}", key))
        shorts = [short for _, short in pairs]
        return {log: short if shorts.count(short) == 1 else log for log, short in pairs}

    def _step_logs(self) -> dict:
        """`_logs()` as a step returns them to `fit`/`evaluate`.

        Workaround for tensorflow/tensorflow#72388 (keras-team/keras#20585):
        under `MultiWorkerMirroredStrategy` Keras reduces a step's outputs
        with `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars
        ("Invalid reduction dimension 0 for input with 0 dimensions"). Each
        log is returned as `[1]` there, so that the reduction is the mean
        over replicas, as Keras takes under the other strategies. Tested by
        tests/training/test_multi_worker.py (fails at `fit` without it).
        """
        logs = self._logs()
        strategy = self.distribute_strategy
        if (
            isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode()
        ):
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    def _nonfinite_flags(self, task_losses, grads_by_group) -> dict:
        """`{group: float32 scalar}`, 1.0 where a loss or gradient is NaN/Inf.

        A task's flag covers its loss and its head group's gradients; "shared"
        covers the trunk's gradients. Under `tf.distribute` the flags are summed
        over replicas (then clipped to 1), so every replica takes the same
        branch of the guard.
        """

        def bad(tensors) -> tf.Tensor:
            finite = [tf.reduce_all(tf.math.is_finite(t)) for t in tensors]
            if not finite:
                return tf.constant(0.0)
            return 1.0 - tf.cast(tf.reduce_all(tf.stack(finite)), tf.float32)

        flags = {}
        for group in GROUPS:
            tensors = [g for g in grads_by_group[group] if g is not None]
            if group in task_losses:
                tensors.append(task_losses[group])
            flags[group] = bad(tensors)
        context = tf.distribute.get_replica_context()
        if context is not None and self.distribute_strategy.num_replicas_in_sync > 1:
            flags = context.all_reduce(tf.distribute.ReduceOp.SUM, flags)
        return {g: tf.minimum(f, 1.0) for g, f in flags.items()}

    def _apply_grouped_gradients(
        self, groups, grads_by_group, finite=None, balancing_update=None
    ) -> None:
        """Applies each group's gradients with its own optimizer, if `finite`.

        The single place where updates happen. When `finite` (a bool scalar,
        equal on every replica) is False, no optimizer is called at all, so no
        variable, moment or iteration count changes (a `tf.cond`; under a
        strategy that needs `merge_call`, the cond runs in cross-replica
        context, as `keras.optimizers.LossScaleOptimizer` does). A non-empty
        `balancing_update` (what a gradient-level strategy's `balance`
        returned) is applied by the strategy under the same condition.
        """
        balancing_update = balancing_update or {}

        def apply_all(grads_by_group, balancing_update):
            for group in GROUPS:
                variables = groups[group]
                if variables:
                    self.group_optimizers[group].apply_gradients(
                        zip(grads_by_group[group], variables, strict=True)
                    )
            if balancing_update:
                self.loss_weighting.apply_update(balancing_update)

        if finite is None:
            apply_all(grads_by_group, balancing_update)
            return
        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.cond(
                finite,
                lambda: apply_all(grads_by_group, balancing_update),
                lambda: None,
            )
            return

        def cross_replica(distribution, grads_by_group, finite, balancing_update):
            finite = distribution.experimental_local_results(finite)[0]

            def apply_fn():
                distribution.extended.call_for_each_replica(
                    apply_all, args=(grads_by_group, balancing_update)
                )

            tf.cond(finite, apply_fn, lambda: None)

        tf.distribute.get_replica_context().merge_call(
            cross_replica, args=(grads_by_group, finite, balancing_update)
        )

    def _balanced_gradients(self, tape, task_losses, groups):
        """Gradients by group for a gradient-level strategy, and its update.

        One backward pass per task (`tape` is persistent) gives the task's
        gradient for the shared group and for its own head group. Under
        `tf.distribute` the shared ones and the task losses are summed across
        replicas first (each replica's `L_t` is its share of the global-batch
        mean, so the sums are the single-device values); the strategy's
        `balance` then combines them, and only the first replica passes the
        result on (`first_replica_only`), so that the shared optimizer's own
        all-reduce returns it unchanged. Each task group `g` gets
        `sum_t w_t * dL_t/dtheta_g`, reduced by its optimizer as usual: with
        hard sharing only its own task's term is non-zero (`w_g dL_g/dhead_g`);
        with cross-stitch sharing a task's trunk also feeds the other task
        through the units.

        GradNorm's norms are taken at the last shared layer that feeds the
        heads: `last_shared_layer` of the trunk with hard sharing; with
        cross-stitch sharing, the last (deepest) cross-stitch unit.

        Returns:
            `(grads_by_group, update)`: `{group: [gradient per variable]}` and
            the strategy's update for `apply_update`.
        """
        strategy = self.loss_weighting
        shared = groups["shared"]
        weights = {
            t: tf.stop_gradient(w) for t, w in strategy.weights_by_task().items()
        }
        grads_by_group, task_shared = {t: None for t in TASKS}, {}
        targets = shared + groups["saliency"] + groups["aesthetics"]
        for task in TASKS:
            grads = tape.gradient(task_losses[task], targets)
            # Unconnected (e.g. the other task's head): zeros. (Not
            # `UnconnectedGradients.ZERO`, which fails on Keras variables.)
            grads = [
                tf.zeros(v.shape, v.dtype) if g is None else g
                for g, v in zip(grads, targets, strict=True)
            ]
            task_shared[task] = grads[: len(shared)]
            start = len(shared)
            for group in ("saliency", "aesthetics"):
                part = grads[start : start + len(groups[group])]
                start += len(groups[group])
                if group != task and self.config.sharing == "hard":
                    continue  # unconnected: zeros
                part = [weights[task] * g for g in part]
                previous = grads_by_group[group]
                grads_by_group[group] = (
                    part
                    if previous is None
                    else [p + g for p, g in zip(previous, part, strict=True)]
                )
        losses = {t: tf.cast(task_losses[t], tf.float32) for t in TASKS}
        context = tf.distribute.get_replica_context()
        if context is not None and self.distribute_strategy.num_replicas_in_sync > 1:
            task_shared, losses = context.all_reduce(
                tf.distribute.ReduceOp.SUM, (task_shared, losses)
            )
        taps = {
            *self.config.resolved_saliency_taps,
            *self.config.resolved_aesthetics_taps,
            *(tap for _, tap, _ in self.config.side_heads),
        }
        if self.config.sharing == "cross_stitch":
            norm_layer = self.cross_stitch_units[-1]
        else:
            norm_layer = last_shared_layer(self.backbone, sorted(taps))
        norm_layer = {id(v) for v in norm_layer.trainable_variables}
        norm_indices = [i for i, v in enumerate(shared) if id(v) in norm_layer]
        combined, update = strategy.balance(
            task_shared, losses, norm_indices, self.step_counter.count.value
        )
        grads_by_group["shared"] = first_replica_only(combined)
        return grads_by_group, update

    def _add_coupling(self, total, loss_logs, num_replicas):
        """`total` plus this replica's share of the soft-sharing coupling.

        With `config.sharing == "soft"`: `sharing.coupling_loss` of the two
        trunks' trainable weights (Duong et al. 2015), divided by the number
        of replicas (the optimizers sum the replicas' gradients), and logged
        as `coupling_loss` at its global value. Otherwise `total` unchanged.
        """
        if self.config.sharing != "soft":
            return total
        coupling = coupling_loss(
            self.backbone.trainable_variables,
            self.aesthetics_backbone.trainable_variables,
            self.config.coupling_weight,
        )
        loss_logs["coupling_loss"] = coupling
        return total + coupling / num_replicas

    def train_step(self, data):
        images, targets, masks = self._unpack(data)
        batch_passed = self._check_batch(images, targets, masks)
        num_replicas = self.distribute_strategy.num_replicas_in_sync
        groups = self.variable_groups()
        flat = [v for g in GROUPS for v in groups[g]]
        # The forward pass itself updates state (BatchNorm moving statistics):
        # kept here so that the guard can undo it for a refused step.
        state = [(v, tf.identity(v.value)) for v in self.forward_state_variables()]
        # Gradient-level strategies take one backward pass per task.
        balancing = self.loss_weighting.acts_on_gradients
        with tf.GradientTape(persistent=balancing) as tape:
            outputs, side_outputs = self._forward(images, training=True)
            task_losses, loss_logs = self._compute_losses(
                targets, masks, outputs, side_outputs
            )
            total = self.loss_weighting.combine(task_losses, num_replicas)
            total = self._add_coupling(total, loss_logs, num_replicas)
        balancing_update = {}
        if balancing:
            grads_by_group, balancing_update = self._balanced_gradients(
                tape, task_losses, groups
            )
        else:
            grads = tape.gradient(
                total, flat, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )
            grads_by_group, start = {}, 0
            for group in GROUPS:
                grads_by_group[group] = grads[start : start + len(groups[group])]
                start += len(groups[group])
        stats = {
            f"{task}_weight": weight
            for task, weight in self.loss_weighting.weights_by_task().items()
        }
        for group, optimizer in self.group_optimizers.items():
            stats[f"{group}_lr"] = tf.cast(optimizer.learning_rate, tf.float32)
        flags = self._nonfinite_flags(task_losses, grads_by_group)
        for group in GROUPS:
            # Every replica holds the same (all-reduced) flag, and reading a
            # metric outside the step sums its replicas: count 1/N per replica.
            stats[f"{group}_nonfinite"] = flags[group] / num_replicas
        finite = tf.equal(tf.add_n(list(flags.values())), 0.0)
        finite = tf.logical_and(finite, batch_passed)  # a bad batch: no update
        self._apply_grouped_gradients(groups, grads_by_group, finite, balancing_update)
        for variable, before in state:
            variable.assign(tf.where(finite, variable.value, before))
        self.step_counter.increment()
        self._update_loss_trackers(loss_logs, total * num_replicas)
        for name, value in stats.items():
            self.stat_trackers[name].update_state(value)
        self._update_task_metrics(targets, masks, outputs)
        return self._step_logs()

    def test_step(self, data):
        images, targets, masks = self._unpack(data)
        self._check_batch(images, targets, masks)
        num_replicas = self.distribute_strategy.num_replicas_in_sync
        outputs, side_outputs = self._forward(images, training=False)
        task_losses, loss_logs = self._compute_losses(
            targets, masks, outputs, side_outputs
        )
        total = self.loss_weighting.combine(task_losses, num_replicas)
        total = self._add_coupling(total, loss_logs, num_replicas)
        self._update_loss_trackers(loss_logs, total * num_replicas)
        self._update_task_metrics(targets, masks, outputs)
        return self._step_logs()

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras' symbolic build, from one replica's share of the first batch.

        Workaround for keras-team/keras#20585 (Keras 3 does not support
        `MultiWorkerMirroredStrategy`): Keras reduces the whole first
        distributed batch with `strategy.reduce("MEAN", nest)`, which the
        multi-worker strategy cannot do ("Attempt to convert a value
        (PerReplica ...) to a Tensor"). The build needs only the shapes, which
        every replica's share has; no value crosses workers. Tested by
        tests/training/test_multi_worker.py (fails at `fit` without it).

        A built model (`build_model` builds it) reads no batch at all: Keras'
        read opens an extra iterator, which draws one more shuffle pass of a
        `reshuffle_each_iteration` stream (`aesthal.data.make_dataset`), so
        that a distributed run would see other batches than one device (see
        `SkipBatchesOnTrainBegin`). Tested by the same module's comparison
        of a 2-worker run with one process on the shuffled generated data.
        """
        if iterator is not None and self._distribute_strategy is not None:
            if all(layer.built for layer in self._flatten_layers()):
                return super()._maybe_symbolic_build(data_batch=None)
            local = self.distribute_strategy.experimental_local_results
            for _, _, batches in iterator:
                batch = next(batches)
                data_batch = tf.nest.map_structure(
                    lambda v: (
                        local(v)[0]
                        if isinstance(v, tf.distribute.DistributedValues)
                        else v
                    ),
                    batch,
                )
                break
        return super()._maybe_symbolic_build(data_batch=data_batch)

    # ============================================================ fit, edge
    def validate_data(self, x, y=None, sample_weight=None) -> None:
        """Runs `validate_batch` on the first batch of `fit`/`evaluate` data.

        Handles `tf.data.Dataset`s (reads one batch) and in-memory arrays (checks
        the first 64 examples); other inputs (generators, distributed datasets)
        are left to the in-step checks.

        Raises:
            ValueError: see `aesthal.models.validation.validate_batch`; or the
                data is empty (a dataset that yields no batch, or no examples).
        """
        if isinstance(x, tf.data.Dataset):
            first = list(x.take(1))  # one read: see SkipBatchesOnTrainBegin
            if not first:
                raise ValueError(
                    "the data is empty: the dataset yields no batch, so there is "
                    "nothing to train or evaluate on. Check the split, the label "
                    "budgets and the filters of the pipeline (with "
                    "drop_remainder=True, a split smaller than one batch is empty)."
                )
            for batch in first:
                images, targets, weights = keras.utils.unpack_x_y_sample_weight(batch)
                if isinstance(images, Mapping):
                    # Cached prefix features: the images were checked when the
                    # cache was built; check the labels against a neutral image.
                    size = len(next(iter(images.values())))
                    images = np.zeros((size, *self.config.input_size, 3), np.float32)
                validate_batch(
                    _numpy(images),
                    _numpy(targets),
                    _numpy(weights),
                    self.config.input_size,
                )
            return
        if isinstance(x, (np.ndarray, tf.Tensor)):
            if len(x) == 0:
                raise ValueError(
                    "the data is empty: images has 0 examples, so there is nothing "
                    "to train or evaluate on."
                )
            head = lambda v: None if v is None else _numpy(v)[:64]  # noqa: E731
            targets = None if y is None else {k: head(v) for k, v in dict(y).items()}
            weights = (
                None
                if sample_weight is None
                else {k: head(v) for k, v in dict(sample_weight).items()}
            )
            validate_batch(head(x), targets, weights, self.config.input_size)

    def fit(self, x=None, y=None, *args, sample_weight=None, callbacks=None, **kwargs):
        """`keras.Model.fit`, after `validate_data` on the first batch.

        The returned `History` also holds `training_stats()` per epoch (the
        values at the end of each epoch's training, before validation).
        """
        if not hasattr(self, "loss_weighting"):
            raise RuntimeError("call model.compile(optimizers=...) before fit().")
        self.validate_data(x, y, sample_weight)
        if isinstance(x, tf.data.Dataset):
            # A tf.data pipeline shuffles itself (aesthal.data does, by seed);
            # Keras would only warn that it ignores `shuffle=True`.
            kwargs.setdefault("shuffle", False)
        callbacks = list(callbacks or [])
        if not any(isinstance(c, BatchChecker) for c in callbacks):
            # First, so that a bad batch is named before any other callback
            # (StopOnNonFinite) reacts to its effects.
            callbacks.insert(0, BatchChecker())
        recorders = [c for c in callbacks if isinstance(c, TrainingStatsLogger)]
        if not recorders:
            recorders = [TrainingStatsLogger()]
            callbacks.insert(0, recorders[0])
        if self.loss_weighting.uses_epoch_losses and not any(
            isinstance(c, EpochLossesToWeighting) for c in callbacks
        ):
            # Before any checkpointing callback, which then saves the new state.
            callbacks.insert(0, EpochLossesToWeighting())
        history = super().fit(
            x, y, *args, sample_weight=sample_weight, callbacks=callbacks, **kwargs
        )
        history.history.update(recorders[0].history)
        return history

    def evaluate(
        self, x=None, y=None, *args, sample_weight=None, callbacks=None, **kwargs
    ):
        """`keras.Model.evaluate`, after `validate_data` on the first batch;
        every later batch is checked by a `BatchChecker`."""
        if not hasattr(self, "loss_weighting"):
            raise RuntimeError("call model.compile(...) before evaluate().")
        self.validate_data(x, y, sample_weight)
        # fit's validation passes its own CallbackList (BatchChecker included).
        if not isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks = list(callbacks or [])
            if not any(isinstance(c, BatchChecker) for c in callbacks):
                callbacks.insert(0, BatchChecker())
        return super().evaluate(
            x, y, *args, sample_weight=sample_weight, callbacks=callbacks, **kwargs
        )

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


class TrainingStatsLogger(keras.callbacks.Callback):
    """Records `AesthalModel.training_stats()` per epoch; optionally to TensorBoard.

    The statistics are read after every training batch (so each epoch's value
    is the one at the end of its training, before validation resets the
    trackers) and appended per epoch to `history` (`{name: [value, ...]}`),
    which `AesthalModel.fit` merges into its `History`. With `log_dir`, each is
    also written as the scalar `epoch_{name}` at step = epoch, as the
    `keras.callbacks.TensorBoard` callback names its own (use its `train/`
    folder).

    Args:
        log_dir: TensorBoard folder, or None.
    """

    def __init__(self, log_dir: str | None = None):
        super().__init__()
        self.log_dir = log_dir
        self.history: dict[str, list[float]] = {}
        self._last: dict[str, tf.Tensor] = {}
        self._writer = None

    def on_train_batch_end(self, batch, logs=None):
        self._last = self.model.training_stats()

    def on_epoch_end(self, epoch, logs=None):
        values = {name: float(value) for name, value in self._last.items()}
        for name, value in values.items():
            self.history.setdefault(name, []).append(value)
        if self.log_dir is None or not values:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(step=epoch):
            for name, value in values.items():
                tf.summary.scalar(f"epoch_{name}", value)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class EpochLossesToWeighting(keras.callbacks.Callback):
    """Passes each epoch's mean training task losses to `loss_weighting.end_epoch`.

    `AesthalModel.fit` adds it when the strategy `uses_epoch_losses` (DWA).
    A task's epoch loss is what `combine` receives, at the global scale: its
    logged loss plus `loss_weight * loss` of each of its side heads (the
    epoch means `fit` logs before validation); a task that is not trained
    (not in the logs) gets 0.
    """

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        model = self.model
        losses = {t: float(logs.get(f"{t}_loss", 0.0)) for t in TASKS}
        for i, (task, _, weight) in enumerate(model.config.side_heads):
            losses[task] += weight * float(logs.get(f"side{i}_{task}_loss", 0.0))
        model.loss_weighting.end_epoch(losses)


def _task_of(tracker_name: str) -> str:
    """The task a loss tracker belongs to: "saliency_loss", "side0_saliency_loss"."""
    return tracker_name.removesuffix("_loss").split("_")[-1]


def _numpy(value):
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: _numpy(v) for k, v in value.items()}
    return np.asarray(value)


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
