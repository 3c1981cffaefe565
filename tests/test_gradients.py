"""suite.gradients (the hand-written float64 backward passes) against central finite differences.

The loss is L = sum over outputs of sum(output * R) with fixed random R, so dL/doutput = R is the seed.
Every op case of tests/opcases.py is checked element by element (and along a random direction) for every
trainable parameter and every float input, in training and inference mode where they differ (batch norm);
every shipped workload is checked at batch 2 along one random direction per parameter and input, plus a
few single elements. No autodiff library is involved anywhere.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO
from opcases import CASES, ops_covered
from suite.gradients import NON_TRAINABLE, VJP_FUNCS, backprop, backward, batch_norm_train, train_forward, vjp
from suite.reference import OP_FUNCS, reference
from suite.spec import load_workload, parse_workload
from suite.weights import init_weights, make_inputs

EPS = 1e-6  # finite-difference step for the op cases
# The shipped workloads have ~1e5 ReLU inputs: a step of 1e-6 along a random direction of a whole weight
# tensor moves one of them across 0 often enough to shift the difference by ~1e-5 relative (kink, not
# curvature). A smaller step makes that unlikely; the round-off it adds stays below FLOOR.
EPS_SHIPPED = 1e-7
RTOL = 1e-6
# Round-off in L is ~1e-16 * sum|output * R| per evaluation; a difference quotient divides it by the step.
# A derivative far below L's scale (a single element, or through train-mode batch norm over a batch of 2)
# is judged against FLOOR * sum|output * R| / step instead of RTOL alone.
FLOOR = 1e-15
MAX_ELEMENTS = 400  # per array, in the op cases (a random subset beyond this)
SHIPPED = sorted(p.stem for p in (REPO / "workloads").glob("*.yaml"))


def _modes(wl):
    """Training and inference mode differ only for batch_norm."""
    return (True, False) if any(n.op == "batch_norm" for n in wl.nodes) else (True,)


def _cases():
    out = []
    for c in CASES:
        wl = parse_workload(c, f"<case {c['name']}>")
        out += [pytest.param(wl, t, id=f"{c['name']}-{'train' if t else 'infer'}") for t in _modes(wl)]
    return out


def _shipped():
    out = []
    for name in SHIPPED:
        wl = load_workload(REPO / "workloads" / f"{name}.yaml")
        out += [pytest.param(wl, t, id=f"{name}-{'train' if t else 'infer'}") for t in _modes(wl)]
    return out


class Problem:
    """A workload at one sweep point with fixed weights, float64 inputs and loss weights R."""

    def __init__(self, wl, params, training, eps=EPS, seed=0):
        self.wl, self.training, self.eps = wl, training, eps
        self.weights = init_weights(wl, params)
        self.inputs = {k: v if v.dtype.kind in "iu" else v.astype(np.float64)
                       for k, v in make_inputs(wl, params).items()}
        values = train_forward(wl, self.weights, self.inputs, training)
        rng = np.random.default_rng(seed)
        self.r = {o: rng.normal(size=np.shape(values[o])) for o in wl.outputs}
        self.scale = sum(np.abs(values[o] * r).sum() for o, r in self.r.items())
        dvals, self.grads = backprop(wl, self.weights, values, self.r, training)
        # What gets checked: (label, array in weights/inputs, its analytic gradient).
        self.targets = [(f"{n}/{k}", self.weights[n][k], g) for n, ps in self.grads.items() for k, g in ps.items()]
        self.targets += [(f"input {k}", v, dvals[k]) for k, v in self.inputs.items()
                         if v.dtype.kind == "f" and k in dvals]

    def loss(self):
        values = train_forward(self.wl, self.weights, self.inputs, self.training)
        return sum((values[o] * r).sum() for o, r in self.r.items())

    def central_difference(self, array, direction):
        """dL/dt of L(a + t d) at t = 0: central differences at steps eps and eps/2, Richardson-extrapolated
        (error O(eps^4), not O(eps^2): train-mode batch norm over a batch of 2 has channels whose variance is
        below epsilon, so L is strongly curved there). Perturbs the array in place and restores it."""
        saved = array.copy()

        def diff(h):
            array[...] = saved + h * direction
            up = self.loss()
            array[...] = saved - h * direction
            down = self.loss()
            return (up - down) / (2 * h)

        try:
            return (4 * diff(self.eps / 2) - diff(self.eps)) / 3
        finally:
            array[...] = saved

    def check(self, label, fd, analytic):
        err = abs(fd - analytic)
        assert err <= RTOL * max(abs(fd), abs(analytic)) + FLOOR * self.scale / self.eps, (
            f"{label}: finite difference {fd!r}, backward {analytic!r} (difference {err:.3g})")


def _check_direction(prob, rng, label, array, grad):
    d = rng.normal(size=array.shape)
    prob.check(f"{label} along a random direction", prob.central_difference(array, d), float((grad * d).sum()))


def _check_elements(prob, rng, label, array, grad, count):
    flat = range(array.size) if array.size <= count else rng.choice(array.size, count, replace=False)
    for i in flat:
        idx = np.unravel_index(i, array.shape)
        d = np.zeros(array.shape)
        d[idx] = 1.0
        prob.check(f"{label}{[int(j) for j in idx]}", prob.central_difference(array, d), float(grad[idx]))


# ---------------------------------------------------------------- op cases

@pytest.mark.parametrize("wl,training", _cases())
def test_op_case_gradients_match_finite_differences(wl, training):
    prob = Problem(wl, wl.param_grid()[0], training)
    assert prob.targets, "nothing to check"
    rng = np.random.default_rng(1)
    for label, array, grad in prob.targets:
        assert grad.shape == array.shape and grad.dtype == np.float64, label
        assert np.any(grad != 0), f"{label}: gradient is all zeros"
        _check_direction(prob, rng, label, array, grad)
        _check_elements(prob, rng, label, array, grad, MAX_ELEMENTS)


def test_every_reference_op_has_a_backward_and_an_op_case():
    assert set(VJP_FUNCS) == set(OP_FUNCS)
    assert ops_covered() == set(OP_FUNCS)


# ---------------------------------------------------------------- shipped workloads

@pytest.mark.parametrize("wl,training", _shipped())
def test_shipped_workload_gradients_match_finite_differences(wl, training):
    params = {k: 2 if k == "batch" else min(v) for k, v in wl.sweep.items()}
    prob = Problem(wl, params, training, eps=EPS_SHIPPED)
    rng = np.random.default_rng(2)
    for label, array, grad in prob.targets:
        assert np.any(grad != 0), f"{label}: gradient is all zeros"
        _check_direction(prob, rng, label, array, grad)
    for t in rng.choice(len(prob.targets), 3, replace=False):
        _check_elements(prob, rng, *prob.targets[t], count=2)


@pytest.mark.parametrize("name", SHIPPED)
def test_backward_returns_exactly_the_trainable_params(name):
    wl = load_workload(REPO / "workloads" / f"{name}.yaml")
    params = {k: 2 if k == "batch" else min(v) for k, v in wl.sweep.items()}
    weights = init_weights(wl, params)
    values = train_forward(wl, weights, make_inputs(wl, params))
    grads = backward(wl, weights, values, {wl.outputs[0]: np.ones_like(values[wl.outputs[0]])})
    want = {n.name: {k for k in weights[n.name] if k not in NON_TRAINABLE.get(n.op, ())}
            for n in wl.nodes if n.name in weights}
    assert {n: set(ps) for n, ps in grads.items()} == want
    for n, ps in grads.items():
        for k, g in ps.items():
            assert g.shape == weights[n][k].shape and g.dtype == np.float64, f"{n}/{k}"


# ---------------------------------------------------------------- forward semantics and API details

@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_inference_forward_is_the_reference(case):
    wl = parse_workload(case, "<case>")
    params = wl.param_grid()[0]
    weights, inputs = init_weights(wl, params), make_inputs(wl, params)
    values = train_forward(wl, weights, inputs, training=False)
    for o, want in zip(wl.outputs, reference(wl, weights, inputs)):
        np.testing.assert_array_equal(values[o], want)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 2)], ids=["2d", "4d"])
def test_train_batch_norm_uses_batch_statistics(shape):
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, size=shape)
    p = {"gamma": rng.uniform(0.5, 1.5, 3), "beta": rng.normal(size=3),
         "moving_mean": rng.normal(size=3), "moving_var": rng.uniform(0.5, 1.5, 3)}
    y = batch_norm_train(x, p, epsilon=1e-5)
    axes = (0,) + tuple(range(2, len(shape)))
    var = x.var(axis=axes)  # biased
    np.testing.assert_allclose(y.mean(axis=axes), p["beta"], atol=1e-12)
    np.testing.assert_allclose(y.std(axis=axes), p["gamma"] * np.sqrt(var / (var + 1e-5)), rtol=1e-12)
    # The moving statistics are buffers: no gradient in either mode.
    for training in (True, False):
        _, grads = vjp("batch_norm", [x], p, {"epsilon": 1e-5}, y, np.ones_like(y), training)
        assert set(grads) == {"gamma", "beta"}


def test_embedding_ids_get_no_gradient_and_repeated_ids_accumulate():
    table = np.arange(12.0).reshape(4, 3)
    ids = np.array([[1, 1, 3]], dtype=np.int32)
    out = table[ids]
    gout = np.ones_like(out)
    dxs, grads = vjp("embedding", [ids], {"table": table}, {"vocab_size": 4, "dim": 3}, out, gout)
    assert dxs == [None]
    np.testing.assert_array_equal(grads["table"], [[0, 0, 0], [2, 2, 2], [0, 0, 0], [1, 1, 1]])


def test_max_pool_routes_a_tie_to_the_first_maximum():
    x = np.array([[[[1.0, 5.0], [5.0, 0.0]]]])
    dxs, _ = vjp("max_pool2d", [x], {}, {"pool_size": (2, 2), "strides": (2, 2), "padding": "valid"},
                 np.array([[[[5.0]]]]), np.array([[[[1.0]]]]))
    np.testing.assert_array_equal(dxs[0], [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_unreached_params_get_zeros_and_seeds_are_not_modified():
    case = next(c for c in CASES if c["name"] == "residual_dag")  # x -> h -> r -> s = x + r -> y, outputs y, h
    wl = parse_workload(case, "<case>")
    params = wl.param_grid()[0]
    weights, inputs = init_weights(wl, params), make_inputs(wl, params)
    values = train_forward(wl, weights, inputs)
    seed = np.ones_like(values["h"])
    dvals, grads = backprop(wl, weights, values, {"h": seed})
    np.testing.assert_array_equal(seed, 1.0)
    assert not np.any(grads["y"]["gamma"]) and not np.any(grads["y"]["beta"])
    assert np.any(grads["h"]["kernel"]) and np.any(dvals["x"])
    # Seeding h and y together accumulates into h (h feeds r and is an output itself).
    both = backward(wl, weights, values, {"h": seed, "y": np.ones_like(values["y"])})
    only_y = backward(wl, weights, values, {"y": np.ones_like(values["y"])})
    np.testing.assert_allclose(both["h"]["kernel"], only_y["h"]["kernel"] + grads["h"]["kernel"], rtol=1e-12)
