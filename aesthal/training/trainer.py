"""`Trainer`: the training recipe of an `AesthalModel`, driven by plain `fit`.

The network (`aesthal.models.AesthalModel`) is an attribute of the trainer,
as in keras-io's "customizing what happens in fit" GAN example: `compile`
takes one optimizer per variable group and holds them as `shared_optimizer`,
`aesthetics_optimizer` and `saliency_optimizer`; `train_step` is the whole
update. Saving a trained model writes the network alone
(`trainer.network.save(...)`); the trainer's own state (optimizers, the loss
weighting's variables, the step counter) goes into its weights file
(`trainer.save_weights`, which `BackupAndRestore` writes).

Batches are checked twice: at the edge (`batch_checks.validate_data` on the
first batch of `fit`/`evaluate`, which also refuse empty data) and in the
step (`batch_checks.unpack_batch`: shapes at trace time; `_check_batch`:
pixel and label values of every batch, recorded without asserts so that it
holds under XLA too, and raised by the `BatchChecker` callback that
`fit`/`evaluate` add, with the same message).

One training step (the TF1 recipe `tf.gradients(loss, shared + a + b)`, split by
position, three `AdamOptimizer`s, one grouped op, in Keras 3):

1. one `tf.GradientTape` around the forward pass and the loss;
2. per task `t`, `L_t = masked mean of the head's loss + sum_side w_i * side_i`,
   where the mean is over the examples of the *global* batch whose
   `sample_weights[t]` is 1 (0 if there are none) (`grouped_update.task_losses`);
3. `total = loss_weighting.combine({t: L_t})` (a strategy of
   `aesthal.training.balancing`, made by name);
4. one `tape.gradient(total, shared + aesthetics + saliency)`, split by group,
   each part applied by that group's optimizer
   (`grouped_update.apply_grouped_gradients`); with a gradient-level
   strategy (GradNorm, PCGrad, CAGrad) instead one backward pass per task,
   whose shared-group gradients are all-reduced and combined by the strategy
   (`grouped_update.balanced_gradients`), while each head group keeps its
   task's gradient;
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

import keras
import tensorflow as tf

from aesthal import losses as losses_lib
from aesthal.config import DEFAULT_LEARNING_RATE, GROUPS, TASKS, ModelConfig
from aesthal.models import AesthalModel
from aesthal.training import grouped_update
from aesthal.training.balancing import LossWeighting, get_loss_weighting
from aesthal.training.batch_checks import (
    CHECKS,
    REPORT_SIZE,
    BatchChecker,
    batch_report,
    unpack_batch,
    validate_data,
)
from aesthal.training.callbacks import EpochLossesToWeighting, TrainingStatsLogger
from aesthal.training.step_counter import StepCounter
from aesthal.training.variable_groups import check_partition


class Trainer(keras.Model):
    """Trains an `AesthalModel` with grouped optimizers, under plain `fit`.

    `trainer(images)` is `network(images)`. Training:
    `compile(optimizers={group: optimizer})`, then `fit`. The logs `fit`
    prints hold the total loss, each trained task's loss (and its side
    heads') and the task metrics; the learning rates, task weights and the
    steps the NaN/Inf guard refused are `training_stats()`, which `fit` adds
    to its `History` (and `TrainingStatsLogger` writes to TensorBoard).

    Args:
        network: the `AesthalModel` to train (built; its weights change).
    """

    def __init__(self, network: AesthalModel, **kwargs):
        if not isinstance(network, AesthalModel):
            raise TypeError(
                f"Trainer trains an aesthal.models.AesthalModel; got "
                f"{type(network).__name__}."
            )
        kwargs.setdefault("name", "trainer")
        super().__init__(**kwargs)
        # === Network ===
        self.network = network
        # === Trackers ===
        # Losses: logged by fit/evaluate (the progress bar).
        config = network.config
        loss_names = ["loss"] + [f"{t}_loss" for t in TASKS]
        loss_names += [
            f"side{i}_{task}_loss" for i, (task, _, _) in enumerate(config.side_heads)
        ]
        if config.task_sharing.mode == "soft":
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
        # Training steps run, saved with the trainer's state but not one of
        # its weights (`object.__setattr__` bypasses the layer tracker, as in
        # `compile`).
        object.__setattr__(self, "step_counter", StepCounter(name="step_counter"))
        self.built = True

    @property
    def config(self) -> ModelConfig:
        """The network's `ModelConfig`."""
        return self.network.config

    def call(self, inputs, training=None):
        """The network's outputs (see `AesthalModel.call`)."""
        return self.network(inputs, training=training)

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
                network without shared trainable variables.
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
        if strategy.acts_on_gradients and self.config.task_sharing.mode == "soft":
            raise ValueError(
                f"loss_weighting={type(strategy).__name__} balances the tasks' "
                "gradients of the shared variables, but sharing='soft' has none "
                "(each task trains its own trunk); use 'fixed', 'uncertainty' or "
                "'dwa', or sharing='hard' or 'cross_stitch'."
            )
        if strategy.acts_on_gradients and not self.network.variable_groups()["shared"]:
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
        # optimizer: they are saved with the trainer's weights (the weights
        # file walks every attribute), not as sub-layers (`object.__setattr__`
        # bypasses the tracker).
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
            # zeros = none), read by `BatchChecker`; not a weight.
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

    def variable_groups(self) -> dict[str, list]:
        """The network's variable groups (`AesthalModel.variable_groups`), each
        task's also holding its variables in the loss weighting (after
        `compile`): what each group's optimizer updates."""
        groups = self.network.variable_groups()
        strategy = getattr(self, "loss_weighting", None)
        if strategy is not None:
            for task in TASKS:
                groups[task].extend(strategy.variables_for_task(task))
        return groups

    def _all_trainable_variables(self) -> list:
        strategy = getattr(self, "loss_weighting", None)
        extra = list(strategy.trainable_variables) if strategy is not None else []
        return list(self.network.trainable_variables) + extra

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

    # ================================================================= logs
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

    # ================================================================ steps
    def _unpack(self, data):
        """`(images, targets, masks)` of a step (`batch_checks.unpack_batch`),
        the images' shape checked by the network."""
        images, targets, masks = unpack_batch(data, self.config.input_size)
        if not isinstance(images, Mapping):
            self.network.check_images(images)
        return images, targets, masks

    def _check_batch(self, images, targets, masks) -> tf.Tensor:
        """Every batch's value check (`batch_checks.batch_report`), XLA-safe.

        Records the first failed report in `batch_check` (for `BatchChecker`,
        which raises with `validate_batch`'s message) and returns a bool
        scalar: True when this batch passed (the step applies no update
        otherwise).
        """
        if isinstance(images, Mapping):
            # Cached features were computed from images checked when the cache
            # was built (`aesthal.training.feature_cache`); the labels are
            # checked here.
            first = next(iter(images.values()))
            images = tf.zeros([tf.shape(first)[0], 1, 1, 3])
        report = batch_report(images, targets, masks)
        passed = tf.equal(tf.reduce_sum(report[: len(CHECKS)]), 0.0)
        record = getattr(self, "batch_check", None)
        if record is not None:
            failed_before = tf.reduce_sum(record[: len(CHECKS)]) > 0.0
            record.assign(tf.where(failed_before, record, report))
        return passed

    def _forward_and_losses(self, images, targets, masks, training: bool):
        """The forward pass and the losses: `(outputs, task_losses, total,
        loss_logs)`, `total` this replica's share of the weighted total."""
        num_replicas = self.distribute_strategy.num_replicas_in_sync
        outputs, side_outputs = self.network.forward(images, training=training)
        task_losses, loss_logs = grouped_update.task_losses(
            self.network,
            self.saliency_loss,
            targets,
            masks,
            outputs,
            side_outputs,
            num_replicas,
        )
        total = self.loss_weighting.combine(task_losses, num_replicas)
        coupling = self.network.soft_sharing_loss()
        if coupling is not None:
            # The optimizers sum the replicas' gradients: each adds its share.
            loss_logs["coupling_loss"] = coupling
            total = total + coupling / num_replicas
        return outputs, task_losses, total, loss_logs

    def _update_trackers(self, loss_logs, total_global, targets, masks, outputs):
        self.loss_trackers["loss"].update_state(total_global)
        for name, value in loss_logs.items():
            self.loss_trackers[name].update_state(value)
        for task in TASKS:
            for metric in self.task_metrics.get(task, []):
                metric.update_state(
                    targets[task], outputs[task], sample_weight=masks[task]
                )

    def train_step(self, data):
        images, targets, masks = self._unpack(data)
        batch_passed = self._check_batch(images, targets, masks)
        num_replicas = self.distribute_strategy.num_replicas_in_sync
        groups = self.variable_groups()
        flat = [v for g in GROUPS for v in groups[g]]
        # The forward pass itself updates state (BatchNorm moving statistics):
        # kept here so that the guard can undo it for a refused step.
        state = [
            (v, tf.identity(v.value)) for v in self.network.forward_state_variables()
        ]
        # Gradient-level strategies take one backward pass per task.
        balancing = self.loss_weighting.acts_on_gradients
        with tf.GradientTape(persistent=balancing) as tape:
            outputs, task_losses, total, loss_logs = self._forward_and_losses(
                images, targets, masks, training=True
            )
        balancing_update = {}
        if balancing:
            grads_by_group, balancing_update = grouped_update.balanced_gradients(
                tape,
                task_losses,
                groups,
                self.loss_weighting,
                self.network,
                self.step_counter.count.value,
                num_replicas,
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
        flags = grouped_update.nonfinite_flags(
            task_losses, grads_by_group, num_replicas
        )
        for group in GROUPS:
            # Every replica holds the same (all-reduced) flag, and reading a
            # metric outside the step sums its replicas: count 1/N per replica.
            stats[f"{group}_nonfinite"] = flags[group] / num_replicas
        finite = tf.equal(tf.add_n(list(flags.values())), 0.0)
        finite = tf.logical_and(finite, batch_passed)  # a bad batch: no update
        grouped_update.apply_grouped_gradients(
            self.group_optimizers,
            groups,
            grads_by_group,
            finite,
            self.loss_weighting,
            balancing_update,
        )
        for variable, before in state:
            variable.assign(tf.where(finite, variable.value, before))
        self.step_counter.increment()
        self._update_trackers(loss_logs, total * num_replicas, targets, masks, outputs)
        for name, value in stats.items():
            self.stat_trackers[name].update_state(value)
        return self._step_logs()

    def test_step(self, data):
        images, targets, masks = self._unpack(data)
        self._check_batch(images, targets, masks)
        num_replicas = self.distribute_strategy.num_replicas_in_sync
        outputs, _, total, loss_logs = self._forward_and_losses(
            images, targets, masks, training=False
        )
        self._update_trackers(loss_logs, total * num_replicas, targets, masks, outputs)
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

        A built trainer (the network is built) reads no batch at all: Keras'
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
        """`batch_checks.validate_data` at the network's input size: the first
        batch of `fit`/`evaluate` data, and data that holds no batch."""
        validate_data(x, y, sample_weight, self.config.input_size)

    def fit(self, x=None, y=None, *args, sample_weight=None, callbacks=None, **kwargs):
        """`keras.Model.fit`, after `validate_data` on the first batch.

        The returned `History` also holds `training_stats()` per epoch (the
        values at the end of each epoch's training, before validation).
        """
        if not hasattr(self, "loss_weighting"):
            raise RuntimeError("call trainer.compile(optimizers=...) before fit().")
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
            raise RuntimeError("call trainer.compile(...) before evaluate().")
        self.validate_data(x, y, sample_weight)
        # fit's validation passes its own CallbackList (BatchChecker included).
        if not isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks = list(callbacks or [])
            if not any(isinstance(c, BatchChecker) for c in callbacks):
                callbacks.insert(0, BatchChecker())
        return super().evaluate(
            x, y, *args, sample_weight=sample_weight, callbacks=callbacks, **kwargs
        )


def _task_of(tracker_name: str) -> str:
    """The task a loss tracker belongs to: "saliency_loss", "side0_saliency_loss"."""
    return tracker_name.removesuffix("_loss").split("_")[-1]
