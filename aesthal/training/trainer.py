"""Multi-task training with three grouped optimizers, driven by `model.fit`.

`MultiTaskTrainer` is a mixin for `keras.Model` (used by `AesthalModel`). The
model provides `_forward(images, training) -> (outputs, side_outputs)`,
`variable_groups()` and `config` (a `ModelConfig`); the mixin provides
`compile`, `train_step`, `test_step`, `fit` (with a first-batch check) and the
compile config that lets `.keras` files restore all three optimizers.

One training step (the TF1 recipe `tf.gradients(loss, shared + a + b)`, split by
position, three `AdamOptimizer`s, one grouped op, in Keras 3):

1. one `tf.GradientTape` around the forward pass and the loss;
2. per task `t`, `L_t = masked mean of the head's loss + sum_side w_i * side_i`,
   where the mean is over the examples of the *global* batch whose
   `sample_weights[t]` is 1 (0 if there are none);
3. `total = loss_weighting.combine({t: L_t})`;
4. one `tape.gradient(total, shared + aesthetics + saliency)`, split by group,
   each part applied by that group's optimizer (`_apply_grouped_gradients`);
5. the NaN/Inf guard: if any task loss or any gradient is NaN or Inf (on any
   replica), *no* group's update is applied: weights, Adam moments and the
   optimizers' `iterations` (hence learning-rate schedules) stay as they were,
   and the state the forward pass changed (BatchNorm moving statistics; float
   non-trainable variables) is put back.
   The step is counted in the `{group}_nonfinite` logs ("saliency" and
   "aesthetics": that task's loss or its head's gradients; "shared": the
   trunk's gradients), which `aesthal.callbacks.StopOnNonFinite` turns into an
   error naming the step and the task.

Under `tf.distribute`, each replica's `L_t` is its local masked sum divided by
the global count of labelled examples (an all-reduce), and the regularizer of
the loss weighting is divided by the number of replicas; the optimizers'
gradient all-reduce (a sum) then yields exactly the single-device gradient of
the global batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from aesthal import losses as losses_lib
from aesthal.config import TASKS
from aesthal.training.loss_weighting import LossWeighting, get_loss_weighting
from aesthal.training.validation import validate_batch
from aesthal.training.variable_groups import GROUPS, check_partition

NUM_SCORES = 10


def _set_untracked(obj, name, value):
    # Keras' own `compile` keeps its optimizer and compile-time objects out of
    # layer tracking (they are saved by attribute name, not as sub-layers).
    object.__setattr__(obj, name, value)


class MultiTaskTrainer:
    """Grouped-optimizer training for a two-task model (mixin for keras.Model)."""

    def _create_trackers(self) -> None:
        """Creates the `keras.metrics.Mean` trackers logged by `fit`/`evaluate`."""
        names = ["loss"] + [f"{t}_loss" for t in TASKS]
        names += [
            f"side{i}_{task}_loss"
            for i, (task, _, _) in enumerate(self.config.side_heads)
        ]
        names += [f"{t}_weight" for t in TASKS]
        self._train_only_trackers = {f"{g}_lr" for g in GROUPS}
        names += [f"{g}_lr" for g in GROUPS]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        # Steps skipped by the NaN/Inf guard this epoch (a count, not a mean).
        for group in GROUPS:
            name = f"{group}_nonfinite"
            self.trackers[name] = keras.metrics.Sum(name=name)
            self._train_only_trackers.add(name)

    # ----------------------------------------------------------------- compile
    def compile(
        self,
        optimizers: Mapping[str, keras.optimizers.Optimizer | str | dict] | None = None,
        loss_weighting: str | LossWeighting = "fixed",
        loss_weights: Mapping[str, float] | None = None,
        saliency_loss: losses_lib.SaliencyLoss | Mapping[str, float] | None = None,
        metrics: Mapping[str, list] | None = None,
        jit_compile: bool | str = "auto",
        steps_per_execution: int = 1,
        run_eagerly: bool = False,
    ) -> None:
        """Configures training.

        Args:
            optimizers: `{"shared"|"aesthetics"|"saliency": optimizer}` (instances,
                names or serialized configs); a missing group gets
                `keras.optimizers.Adam()`. One instance per group.
            loss_weighting: `"fixed"`, `"uncertainty"` or a `LossWeighting`.
            loss_weights: `{task: weight}` for `"fixed"` (missing tasks: 1.0).
            saliency_loss: a `SaliencyLoss` or its kwargs
                (`{"kld_weight", "cc_weight", "nss_weight"}`); default KLD only.
            metrics: `{task: [keras.metrics.Metric, ...]}`; each is updated with
                `update_state(target, prediction, sample_weight=mask)` where, for
                saliency, `prediction` is the density `[B, H, W, 1]` and
                `target` the raw map; for aesthetics `[B, 10]` both.
            jit_compile, steps_per_execution, run_eagerly: as in `keras.Model`.

        Raises:
            ValueError: unknown group or task names, an optimizer shared between
                groups, or bad loss settings.
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
                keras.optimizers.Adam()
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
        unknown = set(metrics) - set(TASKS)
        if unknown:
            raise ValueError(
                f"metrics: unknown tasks {sorted(unknown)}; expected keys in {TASKS}."
            )
        task_metrics = {
            task: [keras.metrics.get(m) for m in metrics.get(task, [])]
            for task in TASKS
        }
        with self.distribute_strategy.scope():
            if not strategy.built:
                strategy.build_tasks(TASKS)
            _set_untracked(self, "loss_weighting", strategy)
            groups = self.variable_groups()
            for group in GROUPS:
                if not resolved[group].built:
                    resolved[group].build(groups[group])
                _set_untracked(self, f"{group}_optimizer", resolved[group])
        _set_untracked(self, "saliency_loss", saliency_loss)
        _set_untracked(self, "task_metrics", task_metrics)
        _set_untracked(
            self,
            "_aesthal_compile_args",
            {"jit_compile": jit_compile, "steps_per_execution": steps_per_execution},
        )
        check_partition(groups, self._all_trainable_variables())

    @property
    def group_optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        """`{group: optimizer}` after `compile`."""
        return {g: getattr(self, f"{g}_optimizer") for g in GROUPS}

    def _all_trainable_variables(self) -> list:
        strategy = getattr(self, "loss_weighting", None)
        extra = list(strategy.trainable_variables) if strategy is not None else []
        return list(self.trainable_variables) + extra

    def get_compile_config(self) -> dict | None:
        if not getattr(self, "compiled", False) or not hasattr(self, "loss_weighting"):
            return None
        serialize = keras.saving.serialize_keras_object
        return {
            "optimizers": {g: serialize(o) for g, o in self.group_optimizers.items()},
            "loss_weighting": serialize(self.loss_weighting),
            "saliency_loss": self.saliency_loss.get_config(),
            "metrics": {
                t: [serialize(m) for m in ms] for t, ms in self.task_metrics.items()
            },
            **self._aesthal_compile_args,
        }

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
        """Loss/weight/learning-rate trackers, then each task's metrics."""
        out = list(self.trackers.values())
        for task in TASKS:
            out.extend(getattr(self, "task_metrics", {}).get(task, []))
        return out

    # ------------------------------------------------------------------ steps
    def _unpack(self, data):
        images, targets, sample_weights = keras.utils.unpack_x_y_sample_weight(data)
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
        batch = tf.shape(images)[0]
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
        checks = self._value_checks(full_targets, masks)
        with tf.control_dependencies(checks):
            full_targets = {t: tf.identity(v) for t, v in full_targets.items()}
        return images, full_targets, masks

    @staticmethod
    def _value_checks(targets, masks) -> list:
        """Cheap in-graph asserts on one batch's labels (no-ops under XLA)."""
        checks = []
        for task in TASKS:
            target, mask = targets[task], masks[task]
            checks.append(
                tf.debugging.assert_all_finite(
                    target, f"targets[{task!r}] contains NaN or Inf"
                )
            )
            checks.append(
                tf.debugging.assert_non_negative(
                    target, f"targets[{task!r}] has negative values"
                )
            )
            checks.append(
                tf.debugging.Assert(
                    tf.reduce_all((mask == 0.0) | (mask == 1.0)),
                    [f"sample_weights[{task!r}] must be 0 or 1; got", mask],
                )
            )
            sums = tf.reduce_sum(tf.reshape(target, [tf.shape(target)[0], -1]), 1)
            checks.append(
                tf.debugging.Assert(
                    tf.reduce_all((mask == 0.0) | (sums > 0.0)),
                    [
                        f"targets[{task!r}] is all zeros for a labelled example; mask:",
                        mask,
                    ],
                )
            )
        return checks

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

    def _step_logs(self, task_losses, loss_logs, total_global):
        weights = self.loss_weighting.weights_by_task()
        values = dict(loss_logs)
        values["loss"] = total_global
        for task in TASKS:
            values[f"{task}_weight"] = weights[task]
        return values

    def _update_trackers(self, values: Mapping[str, tf.Tensor]):
        for name, value in values.items():
            self.trackers[name].update_state(value)

    def _update_task_metrics(self, targets, masks, outputs):
        for task in TASKS:
            for metric in self.task_metrics.get(task, []):
                metric.update_state(
                    targets[task], outputs[task], sample_weight=masks[task]
                )

    def _logs(self, training: bool) -> dict:
        logs = {
            name: tracker.result()
            for name, tracker in self.trackers.items()
            if training or name not in self._train_only_trackers
        }
        for task in TASKS:
            for metric in self.task_metrics.get(task, []):
                result = metric.result()
                if isinstance(result, Mapping):
                    logs.update({f"{task}_{k}": v for k, v in result.items()})
                else:
                    logs[f"{task}_{metric.name}"] = result
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

    def _apply_grouped_gradients(self, groups, grads_by_group, finite=None) -> None:
        """Applies each group's gradients with its own optimizer, if `finite`.

        The single place where updates happen. When `finite` (a bool scalar,
        equal on every replica) is False, no optimizer is called at all, so no
        variable, moment or iteration count changes (a `tf.cond`; under a
        strategy that needs `merge_call`, the cond runs in cross-replica
        context, as `keras.optimizers.LossScaleOptimizer` does).
        """

        def apply_all(grads_by_group):
            for group in GROUPS:
                variables = groups[group]
                if variables:
                    self.group_optimizers[group].apply_gradients(
                        zip(grads_by_group[group], variables, strict=True)
                    )

        if finite is None:
            apply_all(grads_by_group)
            return
        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.cond(finite, lambda: apply_all(grads_by_group), lambda: None)
            return

        def cross_replica(distribution, grads_by_group, finite):
            finite = distribution.experimental_local_results(finite)[0]

            def apply_fn():
                distribution.extended.call_for_each_replica(
                    apply_all, args=(grads_by_group,)
                )

            tf.cond(finite, apply_fn, lambda: None)

        tf.distribute.get_replica_context().merge_call(
            cross_replica, args=(grads_by_group, finite)
        )

    def train_step(self, data):
        images, targets, masks = self._unpack(data)
        num_replicas = self.distribute_strategy.num_replicas_in_sync
        groups = self.variable_groups()
        flat = [v for g in GROUPS for v in groups[g]]
        # The forward pass itself updates state (BatchNorm moving statistics):
        # kept here so that the guard can undo it for a refused step.
        state = [
            (v, tf.identity(v.value))
            for v in self.non_trainable_variables
            if v.dtype.startswith("float")
        ]
        with tf.GradientTape() as tape:
            outputs, side_outputs = self._forward(images, training=True)
            task_losses, loss_logs = self._compute_losses(
                targets, masks, outputs, side_outputs
            )
            total = self.loss_weighting.combine(task_losses, num_replicas)
        grads = tape.gradient(
            total, flat, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        grads_by_group, start = {}, 0
        for group in GROUPS:
            grads_by_group[group] = grads[start : start + len(groups[group])]
            start += len(groups[group])
        values = self._step_logs(task_losses, loss_logs, total * num_replicas)
        for group in GROUPS:
            values[f"{group}_lr"] = tf.cast(
                self.group_optimizers[group].learning_rate, tf.float32
            )
        flags = self._nonfinite_flags(task_losses, grads_by_group)
        for group in GROUPS:
            values[f"{group}_nonfinite"] = flags[group]
        finite = tf.equal(tf.add_n(list(flags.values())), 0.0)
        self._apply_grouped_gradients(groups, grads_by_group, finite)
        for variable, before in state:
            variable.assign(tf.where(finite, variable.value, before))
        self._update_trackers(values)
        self._update_task_metrics(targets, masks, outputs)
        return self._logs(training=True)

    def test_step(self, data):
        images, targets, masks = self._unpack(data)
        num_replicas = self.distribute_strategy.num_replicas_in_sync
        outputs, side_outputs = self._forward(images, training=False)
        task_losses, loss_logs = self._compute_losses(
            targets, masks, outputs, side_outputs
        )
        total = self.loss_weighting.combine(task_losses, num_replicas)
        self._update_trackers(
            self._step_logs(task_losses, loss_logs, total * num_replicas)
        )
        self._update_task_metrics(targets, masks, outputs)
        return self._logs(training=False)

    # -------------------------------------------------------------- checks
    def validate_data(self, x, y=None, sample_weight=None) -> None:
        """Runs `validate_batch` on the first batch of `fit`/`evaluate` data.

        Handles `tf.data.Dataset`s (reads one batch) and in-memory arrays (checks
        the first 64 examples); other inputs (generators, distributed datasets)
        are left to the in-graph checks.

        Raises:
            ValueError: see `aesthal.training.validation.validate_batch`.
        """
        if isinstance(x, tf.data.Dataset):
            for batch in x.take(1):
                images, targets, weights = keras.utils.unpack_x_y_sample_weight(batch)
                validate_batch(
                    _numpy(images),
                    _numpy(targets),
                    _numpy(weights),
                    self.config.input_size,
                )
            return
        if isinstance(x, (np.ndarray, tf.Tensor)):
            head = lambda v: None if v is None else _numpy(v)[:64]  # noqa: E731
            targets = None if y is None else {k: head(v) for k, v in dict(y).items()}
            weights = (
                None
                if sample_weight is None
                else {k: head(v) for k, v in dict(sample_weight).items()}
            )
            validate_batch(head(x), targets, weights, self.config.input_size)

    def fit(self, x=None, y=None, *args, sample_weight=None, **kwargs):
        """`keras.Model.fit`, after `validate_data` on the first batch."""
        if not hasattr(self, "loss_weighting"):
            raise RuntimeError("call model.compile(optimizers=...) before fit().")
        self.validate_data(x, y, sample_weight)
        if isinstance(x, tf.data.Dataset):
            # A tf.data pipeline shuffles itself (aesthal.data does, by seed);
            # Keras would only warn that it ignores `shuffle=True`.
            kwargs.setdefault("shuffle", False)
        return super().fit(x, y, *args, sample_weight=sample_weight, **kwargs)

    def evaluate(self, x=None, y=None, *args, sample_weight=None, **kwargs):
        """`keras.Model.evaluate`, after `validate_data` on the first batch."""
        if not hasattr(self, "loss_weighting"):
            raise RuntimeError("call model.compile(...) before evaluate().")
        self.validate_data(x, y, sample_weight)
        return super().evaluate(x, y, *args, sample_weight=sample_weight, **kwargs)


def _numpy(value):
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: _numpy(v) for k, v in value.items()}
    return np.asarray(value)
