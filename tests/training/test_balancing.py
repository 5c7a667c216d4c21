"""Task balancing (DWA, GradNorm, PCGrad, CAGrad): hand-worked cases, fit, saving.

The formulas are checked on small vectors worked by hand (or against an
independent numpy reference); the `train_step` hook is checked by comparing
one SGD step of the model with the formula applied to per-task gradients
computed here with a separate tape.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import fit_batch

import aesthal
from aesthal.config import LOSS_WEIGHTINGS, TASKS, ModelConfig
from aesthal.training import Trainer, balancing, grouped_update
from aesthal.training.balancing import (
    STRATEGIES,
    DynamicWeightAverage,
    dwa_weights,
    get_loss_weighting,
)
from aesthal.training.balancing import gradient_level as formulas

SIZE = (32, 32)


def _batch(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, *SIZE, 3)).astype("float32")
    targets = {
        "saliency": rng.uniform(0, 1, (batch, *SIZE, 1)).astype("float32") ** 4,
        "aesthetics": rng.integers(0, 50, (batch, 10)).astype("float32") + 1,
    }
    weights = {t: np.ones(batch, "float32") for t in TASKS}
    return images, targets, weights


def _model(seed=0, **config) -> Trainer:
    """A trainer of a new tiny network (not compiled)."""
    keras.utils.set_random_seed(seed)
    return Trainer(aesthal.build_model(ModelConfig(input_size=SIZE, **config)))


_fit = fit_batch


# ------------------------------------------------------------------ names
GRADIENT_METHODS = ("gradnorm", "pcgrad", "cagrad")


def test_every_configured_name_makes_its_strategy():
    assert sorted(STRATEGIES) == sorted(LOSS_WEIGHTINGS)
    for name in LOSS_WEIGHTINGS:
        strategy = get_loss_weighting(name)
        assert isinstance(strategy, STRATEGIES[name])
        assert strategy.acts_on_gradients == (name in GRADIENT_METHODS)
    with pytest.raises(ValueError, match="cannot be used with loss_weighting='dwa'"):
        get_loss_weighting("dwa", {"saliency": 2.0})


# -------------------------------------------------------------------- DWA
def test_dwa_weights_from_given_loss_ratios():
    # r = (1.0 / 1.0, 0.5 / 1.0) = (1, 0.5); T = 2:
    # w = 2 * exp(r / 2) / sum = 2 * (e^0.5, e^0.25) / (e^0.5 + e^0.25)
    #   = 2 * (1.6487213, 1.2840254) / 2.9327467 = (1.1243530, 0.8756470).
    weights = dwa_weights([1.0, 0.5], [1.0, 1.0], temperature=2.0)
    np.testing.assert_allclose(weights, [1.1243530, 0.8756470], rtol=1e-6)
    # A zero loss two epochs back (task not trained) counts as r = 1.
    np.testing.assert_allclose(dwa_weights([0.3, 0.0], [0.3, 0.0]), [1.0, 1.0])


def test_dwa_keeps_weight_one_for_two_epochs_then_uses_the_last_two():
    strategy = DynamicWeightAverage(name="dwa")
    strategy.build_tasks(("saliency", "aesthetics"))
    history = []
    for losses in ([2.0, 4.0], [1.0, 4.0], [0.5, 1.0]):
        strategy.end_epoch(dict(zip(("saliency", "aesthetics"), losses, strict=True)))
        history.append(np.asarray(strategy.task_weights).copy())
    np.testing.assert_array_equal(history[0], [1.0, 1.0])  # weights of epoch 2
    # Epoch 3: r = (1 / 2, 4 / 4) = (0.5, 1) -> (0.8756470, 1.1243530).
    np.testing.assert_allclose(history[1], [0.8756470, 1.1243530], rtol=1e-6)
    # Epoch 4: r = (0.5 / 1, 1 / 4) = (0.5, 0.25): 2 * (e^.25, e^.125) / sum.
    e1, e2 = np.exp(0.25), np.exp(0.125)
    np.testing.assert_allclose(
        history[2], [2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)], rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"no epoch loss for tasks \['aesthetics'\]"):
        strategy.end_epoch({"saliency": 1.0})


def test_dwa_in_fit_uses_the_logged_epoch_losses_with_side_heads():
    model = _model(side_heads=(("saliency", "stage2", 0.5),))
    model.compile(loss_weighting="dwa", jit_compile=False)
    history = _fit(model, _batch(), epochs=3).history
    assert history["saliency_weight"][:2] == [1.0, 1.0]
    # Epoch 3's weights come from epochs 1 and 2's logged losses (side head
    # included with its weight), as the paper's L_k(t-1) / L_k(t-2).
    losses = {
        "saliency": np.add(
            history["saliency_loss"], 0.5 * np.asarray(history["side0_saliency_loss"])
        ),
        "aesthetics": np.asarray(history["aesthetics_loss"]),
    }
    expected = dwa_weights([losses[t][1] for t in TASKS], [losses[t][0] for t in TASKS])
    np.testing.assert_allclose(
        [history["saliency_weight"][2], history["aesthetics_weight"][2]],
        expected,
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        model.loss_weighting.epoch_losses.numpy(),
        [[losses[t][2] for t in TASKS], [losses[t][1] for t in TASKS]],
        rtol=1e-5,
    )


# ----------------------------------------------------------------- PCGrad
def test_pcgrad_projects_two_conflicting_vectors():
    # g1 = (1, 1), g2 = (-1, 0): g1.g2 = -1 < 0, a conflict.
    # g1' = g1 - (-1 / 1) g2 = (0, 1);  g2' = g2 - (-1 / 2) g1 = (-0.5, 0.5).
    # Sum: (-0.5, 1.5); each projected vector is orthogonal to the other task's.
    g = tf.constant([[1.0, 1.0], [-1.0, 0.0]])
    orders = [tf.constant([1]), tf.constant([0])]
    np.testing.assert_allclose(formulas.pcgrad_combine(g, orders), [-0.5, 1.5])
    # No conflict: the plain sum.
    g = tf.constant([[1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(formulas.pcgrad_combine(g, orders), [2.0, 1.0])


def _pcgrad_reference(gradients, orders):
    """Algorithm 1 of Yu et al. (2020), in numpy, float64."""
    out = np.zeros(gradients.shape[1])
    for i, order in enumerate(orders):
        g = gradients[i].astype(np.float64).copy()
        for j in order:
            dot = g @ gradients[j]
            if dot < 0:
                g -= dot / (gradients[j] @ gradients[j]) * gradients[j]
        out += g
    return out


def test_pcgrad_with_three_tasks_follows_the_given_order():
    rng = np.random.default_rng(3)
    found_order_effect = False
    for _ in range(20):
        g = rng.normal(size=(3, 5)).astype("float32")
        results = []
        for flip in (False, True):
            orders = [[1, 2], [0, 2], [0, 1]]
            if flip:
                orders = [o[::-1] for o in orders]
            ours = formulas.pcgrad_combine(
                tf.constant(g), [tf.constant(o) for o in orders]
            ).numpy()
            np.testing.assert_allclose(ours, _pcgrad_reference(g, orders), atol=1e-5)
            results.append(ours)
        found_order_effect |= not np.allclose(results[0], results[1], atol=1e-4)
    assert found_order_effect  # with 3 tasks the order can matter


def test_pcgrad_orders_are_seeded_permutations():
    strategy = balancing.PCGrad(seed=7)
    strategy.build_tasks(("a", "b", "c", "d"))
    first = [o.numpy().tolist() for o in strategy._orders(tf.constant(5, tf.int64))]
    again = [o.numpy().tolist() for o in strategy._orders(tf.constant(5, tf.int64))]
    assert first == again
    for i, order in enumerate(first):
        assert sorted(order) == [j for j in range(4) if j != i]
    two = balancing.PCGrad()
    two.build_tasks(TASKS)
    assert [o.numpy().tolist() for o in two._orders(tf.constant(0, tf.int64))] == [
        [1],
        [0],
    ]


# ------------------------------------------------------------------ CAGrad
def test_cagrad_matches_a_published_example_and_the_dual_by_grid_search():
    # torchjd's CAGrad documentation: c = 0.5, J = [[-4, 1, 1], [6, 1, 1]] ->
    # [0.1835, 1.2041, 1.2041]. By hand: g0 = (1, 1, 1), sqrt(phi) = 0.5 sqrt(3);
    # F is decreasing on [0, 1], so w = 1, g_w = g1 and
    # d = g0 + 0.8660 / sqrt(18) * (-4, 1, 1) = (0.18350, 1.20412, 1.20412).
    d = formulas.cagrad_direction(
        tf.constant([-4.0, 1.0, 1.0]), tf.constant([6.0, 1.0, 1.0]), c=0.5
    )
    np.testing.assert_allclose(d, [0.18350, 1.20412, 1.20412], atol=1e-5)

    rng = np.random.default_rng(0)
    grid = np.linspace(0.0, 1.0, 20001)
    for trial in range(30):
        g1, g2 = rng.normal(size=(2, 6)) * rng.uniform(0.1, 3.0, size=(2, 1))
        if trial % 3 == 0:
            g2 = -0.3 * g1 + 0.1 * rng.normal(size=6)  # strongly conflicting
        c = 0.4
        g0 = (g1 + g2) / 2
        radius = c * np.linalg.norm(g0)
        g_w = grid[:, None] * g1 + (1 - grid[:, None]) * g2
        dual = g_w @ g0 + radius * np.linalg.norm(g_w, axis=1)
        best = g_w[np.argmin(dual)]
        expected = g0 + radius / np.linalg.norm(best) * best
        ours = formulas.cagrad_direction(
            tf.constant(g1, tf.float32), tf.constant(g2, tf.float32), c
        )
        np.testing.assert_allclose(ours, expected, rtol=2e-3, atol=2e-4)
    # c = 0: the average gradient.
    d = formulas.cagrad_direction(
        tf.constant([1.0, 2.0]), tf.constant([3.0, -2.0]), 0.0
    )
    np.testing.assert_allclose(d, [2.0, 0.0])


def test_cagrad_rejects_bad_settings():
    with pytest.raises(ValueError, match=r"c=1.0 must be in \[0, 1\)"):
        balancing.CAGrad(c=1.0)
    with pytest.raises(ValueError, match="closed form for 2 tasks"):
        balancing.CAGrad().build_tasks(("a", "b", "c"))


# ---------------------------------------------------------------- GradNorm
def test_gradnorm_weight_update_for_given_norms():
    # w = (1, 1), ||grad_W L_i|| = (2, 4), L(t) = (0.5, 0.9), L(0) = (1, 1), alpha = 1:
    # G = (2, 4), G_bar = 3; L~ = (0.5, 0.9), r = L~ / 0.7 = (0.714286, 1.285714);
    # targets = (2.142857, 3.857143); G - target = (-0.142857, +0.142857);
    # dL_grad/dw_i = sign(G_i - target_i) * norm_i = (-2, +4); L_grad = 0.285714.
    gradient, loss = formulas.gradnorm_weight_gradient(
        tf.constant([1.0, 1.0]),
        tf.constant([2.0, 4.0]),
        tf.constant([0.5, 0.9]),
        tf.constant([1.0, 1.0]),
        alpha=1.0,
    )
    np.testing.assert_allclose(gradient, [-2.0, 4.0])
    np.testing.assert_allclose(loss, 2 * 0.142857, rtol=1e-5)

    # One applied update with SGD(0.1): w = (1.2, 0.6), renormalised to sum
    # K = 2: (1.2, 0.6) * 2 / 1.8 = (1.333333, 0.666667).
    strategy = balancing.GradNorm(alpha=1.0, optimizer=keras.optimizers.SGD(0.1))
    strategy.build_tasks(TASKS)
    strategy.apply_update(
        {"weight_gradient": gradient, "initial_losses": tf.constant([1.0, 1.0])}
    )
    np.testing.assert_allclose(strategy.task_weights.numpy(), [4 / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_array_equal(strategy.initial_losses.numpy(), [1.0, 1.0])
    assert float(strategy.has_initial_losses.numpy()) == 1.0


# -------------------------------------------------- the train_step hook
def _per_task_gradients(model, batch):
    """Each task's gradient for the shared group and its head, by a separate tape."""
    images, targets, masks = model._unpack(batch)
    groups = model.variable_groups()
    with tf.GradientTape(persistent=True) as tape:
        outputs, side_outputs = model.network.forward(images, training=True)
        task_losses, _ = grouped_update.task_losses(
            model.network, model.saliency_loss, targets, masks, outputs, side_outputs, 1
        )
    shared, heads, losses = {}, {}, {}
    for task in TASKS:
        grads = tape.gradient(
            task_losses[task],
            groups["shared"] + groups[task],
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        shared[task] = [g.numpy() for g in grads[: len(groups["shared"])]]
        heads[task] = [g.numpy() for g in grads[len(groups["shared"]) :]]
        losses[task] = float(task_losses[task])
    return groups, shared, heads, losses


def _flat(arrays):
    return np.concatenate([a.ravel() for a in arrays])


@pytest.mark.parametrize("method", ["pcgrad", "cagrad", "gradnorm"])
def test_one_sgd_step_applies_the_balanced_shared_gradient(method):
    batch = _batch()
    model = _model()
    # BatchNorm layers use batch statistics in training: the per-task
    # gradients computed below are those of the step (moving statistics,
    # which that forward pass updates, are not used).
    weight_optimizer = keras.optimizers.SGD(0.01)
    strategy = {
        "pcgrad": balancing.PCGrad(name="loss_weighting"),
        "cagrad": balancing.CAGrad(c=0.4, name="loss_weighting"),
        "gradnorm": balancing.GradNorm(
            alpha=1.5, optimizer=weight_optimizer, name="loss_weighting"
        ),
    }[method]
    model.compile(
        optimizers={g: keras.optimizers.SGD(1.0) for g in aesthal.GROUPS},
        loss_weighting=strategy,
        jit_compile=False,
    )
    groups, shared, heads, losses = _per_task_gradients(model, batch)
    before = {g: [v.numpy().copy() for v in groups[g]] for g in groups}
    _fit(model, batch)
    moved = {
        g: [b - v.numpy() for v, b in zip(groups[g], before[g], strict=True)]
        for g in groups
    }
    g1, g2 = _flat(shared["saliency"]), _flat(shared["aesthetics"])
    if method == "pcgrad":
        expected = formulas.pcgrad_combine(
            tf.constant(np.stack([g1, g2])), [tf.constant([1]), tf.constant([0])]
        ).numpy()
    elif method == "cagrad":
        expected = formulas.cagrad_direction(tf.constant(g1), tf.constant(g2), 0.4)
        expected = expected.numpy()
    else:
        expected = g1 + g2  # the weights are 1 in the first step
    np.testing.assert_allclose(_flat(moved["shared"]), expected, rtol=2e-4, atol=2e-6)
    for task in TASKS:  # the heads keep their own task's gradient (w = 1)
        np.testing.assert_allclose(
            _flat(moved[task]), _flat(heads[task]), rtol=2e-4, atol=2e-6
        )
    if method == "gradnorm":
        # Norms at tiny_stage4_conv's kernel; L(0) = L(1), so r = 1.
        kernel = [
            i
            for i, v in enumerate(groups["shared"])
            if v is model.network.backbone.get_layer("tiny_stage4_conv").kernel
        ]
        norms = [np.linalg.norm(shared[t][kernel[0]]) for t in TASKS]
        mean = np.mean(norms)
        gradient = np.sign(np.asarray(norms) - mean) * np.asarray(norms)
        weights = 1.0 - 0.01 * gradient
        np.testing.assert_allclose(
            model.loss_weighting.task_weights.numpy(),
            2 * weights / weights.sum(),
            rtol=1e-5,
        )
        np.testing.assert_allclose(
            model.loss_weighting.initial_losses.numpy(),
            [losses[t] for t in TASKS],
            rtol=1e-5,
        )
        assert int(weight_optimizer.iterations.numpy()) == 1


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="'fixed' is registered twice"):
        balancing.register("fixed")(DynamicWeightAverage)


def test_gradient_methods_need_shared_variables():
    model = _model()
    model.network.backbone.trainable = False
    for name in GRADIENT_METHODS:
        with pytest.raises(ValueError, match="this model has none"):
            model.compile(loss_weighting=name)
    model.compile(loss_weighting="dwa")  # a loss-level method is fine


def test_fixed_weights_keep_the_single_gradient_step():
    # Not one of the gradient methods: one tape.gradient of the total, so one
    # SGD step moves every group by exactly the gradient of the weighted sum.
    batch = _batch()
    model = _model()
    model.compile(
        optimizers={g: keras.optimizers.SGD(1.0) for g in aesthal.GROUPS},
        loss_weights={"saliency": 2.0, "aesthetics": 0.5},
        jit_compile=False,
    )
    groups, shared, heads, _ = _per_task_gradients(model, batch)
    assert not model.loss_weighting.acts_on_gradients
    before = [v.numpy().copy() for v in groups["shared"]]
    _fit(model, batch)
    moved = _flat(
        [b - v.numpy() for v, b in zip(groups["shared"], before, strict=True)]
    )
    expected = 2.0 * _flat(shared["saliency"]) + 0.5 * _flat(shared["aesthetics"])
    np.testing.assert_allclose(moved, expected, rtol=2e-4, atol=2e-6)


# ------------------------------------------------------------- round trip
@pytest.mark.parametrize("method", ["dwa", "gradnorm", "pcgrad", "cagrad"])
def test_trainer_weights_keep_the_strategy_and_its_state(tmp_path, method):
    """What a backup holds (`trainer.save_weights`): the strategy's variables
    and, for GradNorm, its own optimizer's state."""

    def make(method):
        return {
            "dwa": DynamicWeightAverage(temperature=3.0, name="loss_weighting"),
            "gradnorm": balancing.GradNorm(
                alpha=0.5,
                optimizer=keras.optimizers.Adam(0.05),
                name="loss_weighting",
            ),
            "pcgrad": balancing.PCGrad(seed=4, name="loss_weighting"),
            "cagrad": balancing.CAGrad(c=0.25, name="loss_weighting"),
        }[method]

    model = _model()
    strategy = make(method)
    model.compile(loss_weighting=strategy, jit_compile=False)
    batch = _batch()
    _fit(model, batch, epochs=3)
    path = str(tmp_path / "trainer.weights.h5")
    model.save_weights(path)
    loaded = _model(seed=1)
    loaded.compile(loss_weighting=make(method), jit_compile=False)
    loaded.load_weights(path)
    assert type(loaded.loss_weighting) is type(strategy)
    ours, theirs = strategy.get_config(), loaded.loss_weighting.get_config()
    if method == "gradnorm":  # optimizers are named in order of creation
        ours["optimizer"]["config"].pop("name")
        theirs["optimizer"]["config"].pop("name")
    assert theirs == ours
    assert int(loaded.step_counter.count.numpy()) == 3
    for a, b in zip(strategy.variables, loaded.loss_weighting.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    if method == "dwa":
        assert not np.allclose(strategy.task_weights.numpy(), 1.0)
    if method == "gradnorm":
        ours, theirs = strategy.weight_optimizer, loaded.loss_weighting.weight_optimizer
        assert int(theirs.iterations.numpy()) == 3
        assert len(ours.variables) == len(theirs.variables) > 1
        for a, b in zip(ours.variables, theirs.variables, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert not np.allclose(strategy.task_weights.numpy(), 1.0)
    # Training goes on identically.
    _fit(model, batch)
    _fit(loaded, batch)
    for u, v in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_allclose(v.numpy(), u.numpy(), rtol=1e-5, atol=1e-7)
    for u, v in zip(strategy.variables, loaded.loss_weighting.variables, strict=True):
        np.testing.assert_allclose(v.numpy(), u.numpy(), rtol=1e-5, atol=1e-7)


def test_a_refused_step_leaves_gradnorm_state_unchanged():
    model = _model()
    model.compile(loss_weighting="gradnorm", jit_compile=False)
    strategy = model.loss_weighting
    model.train_on_batch(*_batch(), return_dict=True)
    state = [v.numpy().copy() for v in strategy.variables]
    state += [v.numpy().copy() for v in strategy.weight_optimizer.variables]
    assert not np.allclose(state[0], 1.0)  # the first step moved the weights
    # A NaN saliency logit kernel (no ReLU after it): NaN loss, step refused.
    kernel = model.network.saliency_head.logits.kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    model.reset_metrics()
    model.train_on_batch(*_batch(seed=1), return_dict=True)
    assert float(model.training_stats()["saliency_nonfinite"]) == 1.0
    after = [v.numpy() for v in strategy.variables]
    after += [v.numpy() for v in strategy.weight_optimizer.variables]
    for a, b in zip(state, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(model.step_counter.count.numpy()) == 2
