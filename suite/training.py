"""Training steps: labels, losses, optimisers and the float64 reference step. NumPy only.

One training step = forward (batch norm on batch statistics), loss, backward, optimiser update.
The reference step uses the hand-written backward passes of :mod:`suite.gradients` (never a framework
under test) and the optimiser rules written out below; every target's step is verified against it:
the loss of every step, the gradients of the first step (from the identical starting weights) and
the parameters after the last step, each mapped back to the canonical layout by the target.

Semantics (workloads/README.md, "Training"):

* ``softmax_cross_entropy``: ``mean over positions of -log softmax(logits)[label]``; the class axis is
  the workload's ``classes_axis`` (default -1), labels are integer class ids of the output's shape
  without that axis.
* ``mean_squared_error``: ``mean over every element of (output - label)**2``.
* ``sgd`` (PyTorch's and optax' form): ``buf = momentum * buf + g`` (buf starts at 0), then
  ``p -= lr * (g + momentum * buf)`` with nesterov, else ``p -= lr * buf``.
* ``adam`` (Kingma & Ba, Algorithm 1): ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g**2``,
  ``p -= lr * m_hat / (sqrt(v_hat) + epsilon)`` with ``m_hat = m / (1 - b1**t)``, ``v_hat = v / (1 - b2**t)``.
  TensorFlow's and Keras' Adam add epsilon to ``sqrt(v)`` before bias correction ("epsilon hat"); the
  difference only shows where ``|g|`` is near epsilon and is covered by the tolerance below.
* Trainable parameters: every parameter except batch norm's ``moving_mean`` / ``moving_var``
  (buffers; each framework updates them with its own momentum convention, which is not compared).
* No op in the catalogue is random (there is no dropout), so a step is deterministic everywhere.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from suite.gradients import NON_TRAINABLE

# Tolerances of train-mode verification (float32 targets), documented in workloads/README.md.
# Loss: as inference outputs. Gradients (first step, identical starting weights) are judged per tensor
# on the relative L2 error ||g - ref|| / max(||ref||, floor * ||all gradients||) <= rel_l2, widened by the
# kink allowance: a ReLU network's gradient is discontinuous where an activation input crosses zero,
# float32 legitimately puts an input within rounding distance of zero on either side, and batch norm
# spreads that one decision over whole channels and every earlier layer (kink_allowance bounds it). The
# element-wise rule rtol * |ref| + scale_atol * max|ref| (+ allowance) is reported as mismatch_fraction.
# Parameters after the last step are compared with the reference optimiser replayed on the target's own
# gradients (see suite.verify.verify_train): |p - expected| <= atol + rtol * |expected| (+ for Adam up to
# lr per step where |g| is near TensorFlow's / Keras' larger effective epsilon).
TRAIN_TOLERANCES = {
    "loss": {"rtol": 1e-4, "atol": 1e-5},
    "grad": {"rel_l2": 1e-3, "floor": 1e-4, "rtol": 1e-3, "scale_atol": 1e-4},
    "param": {"rtol": 1e-4, "atol": 1e-6},
}


def is_trainable(op: str, pname: str) -> bool:
    return pname not in NON_TRAINABLE.get(op, ())


def trainable(workload, weights) -> dict[str, dict[str, np.ndarray]]:
    """The trainable subset of canonical weights: node -> param -> array."""
    out = {}
    for node in workload.nodes:
        p = {k: v for k, v in weights.get(node.name, {}).items() if is_trainable(node.op, k)}
        if p:
            out[node.name] = p
    return out


def classes_axis(workload) -> int:
    return workload.classes_axis if workload.classes_axis is not None else -1


def label_shape(workload, params) -> tuple[int, ...]:
    spec = workload.train
    shape = workload.shapes(params)[spec.output]
    if spec.loss == "softmax_cross_entropy":
        ax = classes_axis(workload) % len(shape)
        return shape[:ax] + shape[ax + 1:]
    return shape


def unsupported_point(workload, params) -> str | None:
    """Why this workload cannot take a training step at this sweep point, or None."""
    spec = workload.train
    if spec is None:
        return f"workload {workload.name} declares no train: section"
    shapes = workload.shapes(params)
    if spec.loss == "softmax_cross_entropy" and len(shapes[spec.output]) < 2:
        return f"softmax_cross_entropy needs a rank >= 2 output, {spec.output} has shape {list(shapes[spec.output])}"
    for node in workload.nodes:
        if node.op == "batch_norm":
            shape = shapes[node.inputs[0]]
            if math.prod(shape) // shape[1] < 2:
                return (f"node {node.name}: train-mode batch_norm normalises with batch statistics and has one "
                        f"value per channel at {_point(params)}")
    return None


def _point(params) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def make_labels(workload, params) -> np.ndarray:
    """Seeded labels: int64 class ids (cross-entropy) or float32 targets (mean squared error)."""
    spec = workload.train
    rng = np.random.default_rng([workload.seed, spec.labels["seed"], zlib.crc32(f"labels/{spec.output}".encode())])
    shape = label_shape(workload, params)
    if spec.loss == "softmax_cross_entropy":
        n = workload.shapes(params)[spec.output][classes_axis(workload)]
        return rng.integers(0, n, size=shape).astype(np.int64)
    d = spec.labels["distribution"]
    if d["kind"] == "file":  # fixed labels (suite.spec checked the array's shape at every sweep point)
        with np.load(d["path"], allow_pickle=False) as z:
            y = z["labels"]
        if tuple(y.shape) != tuple(shape):
            raise ValueError(f"{d['path']}: array 'labels' has shape {list(y.shape)}, expected {list(shape)}")
        return y.astype(np.float32)
    if d["kind"] == "normal":
        return rng.normal(d["mean"], d["std"], size=shape).astype(np.float32)
    return rng.uniform(d["low"], d["high"], size=shape).astype(np.float32)


def loss_and_grad(kind: str, y: np.ndarray, labels: np.ndarray, axis: int = -1) -> tuple[float, np.ndarray]:
    """The loss (float64) and dLoss/dy."""
    y = np.asarray(y, dtype=np.float64)
    if kind == "softmax_cross_entropy":
        ax = axis % y.ndim
        z = y - y.max(axis=ax, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=ax, keepdims=True))
        onehot = np.moveaxis(np.eye(y.shape[ax])[labels], -1, ax)
        count = labels.size
        return float(-(logp * onehot).sum() / count), (np.exp(logp) - onehot) / count
    diff = y - labels.astype(np.float64)
    return float((diff ** 2).mean()), 2.0 * diff / diff.size


@dataclass
class Optimizer:
    """The reference optimiser over canonical trainable params (float64), state kept per element."""

    config: Mapping
    t: int = 0
    state: dict = field(default_factory=dict)

    def step(self, params: dict, grads: dict) -> dict:
        c, out = self.config, {}
        self.t += 1
        for node, ps in params.items():
            out[node] = {}
            for k, p in ps.items():
                g = grads[node][k]
                key = (node, k)
                if c["kind"] == "sgd":
                    buf = c["momentum"] * self.state.get(key, 0.0) + g
                    self.state[key] = buf
                    upd = g + c["momentum"] * buf if c["nesterov"] else buf
                    out[node][k] = p - c["learning_rate"] * upd
                else:
                    m, v = self.state.get(key, (0.0, 0.0))
                    m = c["beta_1"] * m + (1 - c["beta_1"]) * g
                    v = c["beta_2"] * v + (1 - c["beta_2"]) * g * g
                    self.state[key] = (m, v)
                    mhat = m / (1 - c["beta_1"] ** self.t)
                    vhat = v / (1 - c["beta_2"] ** self.t)
                    out[node][k] = p - c["learning_rate"] * mhat / (np.sqrt(vhat) + c["epsilon"])
        return out


@dataclass
class TrainReference:
    losses: list[float]  # loss before the update of each step
    grads: dict  # gradients of step 1 (node -> param -> array)
    params: dict  # trainable params after the last step
    grad_floor: dict  # per element, min over steps of |g|: where Adam's update is ill-conditioned
    initial: dict  # trainable params before the first step
    kink: dict  # per element, how far ReLU decisions within float32 noise of zero can move a gradient
    step_grads: list | None = None  # gradients before each step (not cached: tests use them)


# A ReLU input within KINK_REL of zero (relative to its tensor's largest magnitude) is within float32
# forward-pass noise of the kink, so a float32 framework may take either branch; the KINK_MAX closest
# to zero are followed (one backward pass each, once per cell: the reference is cached).
KINK_REL = 3e-5
KINK_MAX = 8


def kink_allowance(workload, weights, values, seeds) -> dict:
    """Per trainable element, sum over ambiguous ReLU decisions of |change of the gradient| if it flips.

    Flipping the decision of ReLU input z_e (0 < |z_e| < KINK_REL * max|z|) adds or removes the
    gradient arriving at that element; its effect on every parameter gradient is one backward pass
    seeded at z_e. Batch norm spreads it over the whole channel and every layer before, so one flip
    can move whole tensors by more than float32 rounding (measured: mobilenet_cnn at batch 32).
    """
    from suite.gradients import backprop, backward

    vgrads, grads = backprop(workload, weights, values, seeds, training=True)
    found = []
    for node in workload.nodes:
        if node.op != "relu" or node.name not in vgrads:
            continue
        z = values[node.inputs[0]]
        scale = float(np.abs(z).max(initial=0.0))
        if scale == 0:
            continue
        ratio = np.abs(z).ravel() / scale
        for i in np.nonzero(ratio < KINK_REL)[0]:
            found.append((float(ratio[i]), node.inputs[0], int(i), float(vgrads[node.name].ravel()[i])))
    allowance = {n: {k: np.zeros_like(g) for k, g in ps.items()} for n, ps in grads.items()}
    for _, src, i, g in sorted(found)[:KINK_MAX]:
        seed = np.zeros_like(values[src])
        seed.ravel()[i] = g
        for n, ps in backward(workload, weights, values, {src: seed}, training=True).items():
            for k, d in ps.items():
                allowance[n][k] += np.abs(d)
    return allowance


def reference_train(workload, weights, inputs, labels, steps: int | None = None) -> TrainReference:
    """``steps`` float64 training steps on the same batch from the canonical weights."""
    from suite.gradients import backward, train_forward

    spec = workload.train
    steps = steps or spec.steps
    # Start from the float32 values every target is given: a ReLU or max-pool input within float32 rounding
    # of a kink otherwise takes the other branch here, and the gradient jumps by a finite amount (resnet_cnn
    # batch 32: 8e-4 of stem_bn/beta's largest gradient in every framework alike, 3e-6 from rounded weights).
    weights = {n: {k: np.asarray(v, np.float32).astype(np.float64) for k, v in p.items()}
               for n, p in weights.items()}
    initial = trainable(workload, weights)
    opt = Optimizer(spec.optimizer)
    losses, first, floor, kink, all_grads = [], None, None, None, []
    for _ in range(steps):
        values = train_forward(workload, weights, inputs, training=True)
        loss, seed = loss_and_grad(spec.loss, values[spec.output], labels, classes_axis(workload))
        grads = backward(workload, weights, values, {spec.output: seed}, training=True)
        losses.append(loss)
        all_grads.append(grads)
        if first is None:
            first, kink = grads, kink_allowance(workload, weights, values, {spec.output: seed})
        mag = {n: {k: np.abs(g) for k, g in ps.items()} for n, ps in grads.items()}
        floor = mag if floor is None else {n: {k: np.minimum(floor[n][k], g) for k, g in ps.items()}
                                            for n, ps in mag.items()}
        new = opt.step(trainable(workload, weights), grads)
        for n, ps in new.items():
            weights[n].update(ps)
    return TrainReference(losses, first, trainable(workload, weights), floor, initial, kink, all_grads)


def flatten(tree: Mapping) -> dict[str, np.ndarray]:
    """node -> param -> array  as  "node/param" -> array."""
    return {f"{n}/{k}": v for n, ps in tree.items() for k, v in ps.items()}
