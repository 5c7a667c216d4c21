"""The strategies that act on the task losses: fixed, uncertainty, DWA.

`total = sum_t w_t * L_t + regularizer` (`aesthal.training.balancing.base`):
`"fixed"` (constant user weights), `"uncertainty"` (Kendall et al.'s learned
log-variances) and `"dwa"` (Dynamic Weight Average, whose weights change once
per epoch through `end_epoch`). See docs/balancing.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from aesthal.config import TASKS
from aesthal.training.balancing.base import LossWeighting, register


@register("fixed")
@keras.saving.register_keras_serializable(package="aesthal")
class FixedWeighting(LossWeighting):
    """`total = sum_t w_t * L_t` with constant user weights (default 1).

    Args:
        weights: `{task: weight}`, weights >= 0; missing tasks get 1.0.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, **kwargs):
        super().__init__(**kwargs)
        weights = dict(weights or {})
        unknown = set(weights) - set(TASKS)
        if unknown:
            raise ValueError(
                f"loss_weights: unknown tasks {sorted(unknown)}; expected a subset "
                f"of {TASKS}."
            )
        for task, value in weights.items():
            if not float(value) >= 0:
                raise ValueError(f"loss_weights[{task!r}]={value} must be >= 0.")
        self.task_weight_values = {t: float(weights.get(t, 1.0)) for t in TASKS}

    def weights_by_task(self):
        return {t: tf.constant(self.task_weight_values[t]) for t in self.tasks}

    def get_config(self):
        config = super().get_config()
        config.update({"weights": dict(self.task_weight_values)})
        return config


@register("uncertainty")
@keras.saving.register_keras_serializable(package="aesthal")
class UncertaintyWeighting(LossWeighting):
    """Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    One learned log-variance `s_t = log(sigma_t**2)` per task, and

        total = sum_t exp(-s_t) * L_t + s_t

    i.e. `L_t / sigma_t**2 + log(sigma_t**2)`: twice the paper's regression form
    (its eq. 7, `L_t / (2 sigma_t**2) + log sigma_t`), the variant most
    re-implementations use. Learning `s_t` rather than `sigma_t` keeps the
    weights positive and the optimisation stable. The logged weight of a task is
    `exp(-s_t)`. Each `s_t` is a scalar float32 variable owned by task `t`.

    Args:
        initial_log_variance: starting value of every `s_t` (0 = weight 1).
    """

    def __init__(self, initial_log_variance: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_log_variance = float(initial_log_variance)
        self.log_variances: dict[str, keras.Variable] = {}

    def build_tasks(self, tasks):
        self.tasks = tuple(tasks)
        self.log_variances = {
            task: self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(self.initial_log_variance),
                trainable=True,
                dtype="float32",
                name=f"{task}_log_variance",
            )
            for task in self.tasks
        }
        self.built = True

    def weights_by_task(self):
        return {
            t: tf.exp(-tf.convert_to_tensor(self.log_variances[t])) for t in self.tasks
        }

    def regularizer(self):
        return tf.add_n(
            [tf.convert_to_tensor(self.log_variances[t]) for t in self.tasks]
        )

    def variables_for_task(self, task):
        return [self.log_variances[task]] if task in self.log_variances else []

    def get_config(self):
        config = super().get_config()
        config.update({"initial_log_variance": self.initial_log_variance})
        return config


@register("dwa")
@keras.saving.register_keras_serializable(package="aesthal")
class DynamicWeightAverage(LossWeighting):
    """Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019, Sec. 3.3, eq. 7).

    The weight of task k in epoch t (0-based here; the paper counts from 1) is

        w_k(t) = K exp(r_k(t-1) / T) / sum_i exp(r_i(t-1) / T),
        r_k(t-1) = L_k(t-1) / L_k(t-2),

    where `L_k(e)` is task k's *mean training loss over epoch e* (the mean of
    its per-step losses, as fit logs it) and K the number of tasks; the
    weights sum to K. In the first two epochs (no two previous epochs yet)
    every `w_k = 1`. `T = 2` is the paper's temperature. A task whose loss in
    epoch t-2 was 0 (e.g. a task not trained, all its labels masked out) gets
    `r_k = 1`, instead of a 0/0.

    The weights are updated by `end_epoch`, which `aesthal.training.Trainer.fit` calls
    after every epoch (a callback it adds) with the epoch's task losses; a
    custom training loop must call it itself. State (saved with the model,
    non-trainable float32 variables): `task_weights` `[K]`, `epoch_losses`
    `[2, K]` (row 0: epoch t-1, row 1: epoch t-2) and `epochs_seen` (a count).

    Args:
        temperature: `T` > 0; larger values make the weights more uniform.
    """

    uses_epoch_losses = True

    def __init__(self, temperature: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        if not float(temperature) > 0:
            raise ValueError(
                f"DynamicWeightAverage: temperature={temperature} must be > 0."
            )
        self.temperature = float(temperature)

    def build_tasks(self, tasks):
        self.tasks = tuple(tasks)
        count = len(self.tasks)
        self.task_weights = self.add_weight(
            shape=(count,), initializer="ones", trainable=False, name="task_weights"
        )
        self.epoch_losses = self.add_weight(
            shape=(2, count), initializer="zeros", trainable=False, name="epoch_losses"
        )
        self.epochs_seen = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="epochs_seen"
        )
        self.built = True

    def weights_by_task(self):
        weights = tf.convert_to_tensor(self.task_weights)
        return {task: weights[i] for i, task in enumerate(self.tasks)}

    def end_epoch(self, epoch_losses):
        missing = set(self.tasks) - set(epoch_losses)
        if missing:
            raise ValueError(
                f"DynamicWeightAverage.end_epoch: no epoch loss for tasks "
                f"{sorted(missing)}; got {sorted(epoch_losses)}."
            )
        latest = np.array([float(epoch_losses[t]) for t in self.tasks], np.float32)
        previous = np.asarray(self.epoch_losses)[0]
        seen = int(np.asarray(self.epochs_seen)) + 1
        self.epoch_losses.assign(np.stack([latest, previous]))
        self.epochs_seen.assign(float(seen))
        self.task_weights.assign(
            dwa_weights(latest, previous, self.temperature)
            if seen >= 2
            else np.ones(len(self.tasks), np.float32)
        )

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature})
        return config


def dwa_weights(
    last: np.ndarray, before_last: np.ndarray, temperature: float = 2.0
) -> np.ndarray:
    """DWA's weights from two epochs' task losses (Liu et al. 2019, eq. 7).

    Args:
        last: float `[K]`, each task's mean loss in epoch t-1.
        before_last: float `[K]`, the same in epoch t-2.
        temperature: `T` > 0.

    Returns:
        float32 `[K]`, `K softmax(r / T)` with `r = last / before_last`
        (`r = 1` where `before_last` is 0); sums to K.
    """
    last = np.asarray(last, np.float64)
    before_last = np.asarray(before_last, np.float64)
    ratios = np.divide(
        last, before_last, out=np.ones_like(last), where=before_last != 0
    )
    logits = ratios / temperature
    exps = np.exp(logits - logits.max())
    return (len(last) * exps / exps.sum()).astype(np.float32)
