"""One measurement in a fresh process: python worker.py FRAMEWORK SETTING MODELS_DIR (started by orchestrate.py).
Env vars (torch/libgomp) are set by the orchestrator before exec, i.e. before import. MODELS_DIR holds the
ONNX models (used by ort only).
Protocol: build + compile all workloads, print READY, wait for a line on stdin (parent starts the
burner in between), then measure each workload (0.5 s warm-up, ~2 s timed, per-call latency),
print one JSON line with medians, own CPU use and foreign CPU use on the host."""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models_def import WORKLOADS, torch_models  # noqa: E402

THREADS = 2
WARM_S, MEAS_S = 0.5, 2.0
CLK = os.sysconf("SC_CLK_TCK")


def build_torch(setting: str, models_dir: Path):
    import torch
    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(1)
    fns = {}
    for name, (m, x) in torch_models().items():
        def f(m=m, x=x):
            with torch.inference_mode():
                return m(x)
        fns[name] = f
    return fns


def build_ort(setting: str, models_dir: Path):
    import onnxruntime as ort
    fns = {}
    import numpy as np
    rng = np.random.default_rng(0)
    shapes = {"mlp_b1": (1, 784), "mlp_b32": (32, 784), "cnn_b1": (1, 3, 64, 64)}
    for name in WORKLOADS:
        so = ort.SessionOptions()
        so.intra_op_num_threads = THREADS
        so.inter_op_num_threads = 1
        for kv in setting.split(","):
            if kv != "default":
                k, v = kv.split("=")
                so.add_session_config_entry(k, v)
        s = ort.InferenceSession(str(models_dir / f"{name}.onnx"), so, providers=["CPUExecutionProvider"])
        x = rng.standard_normal(shapes[name]).astype("float32")
        fns[name] = lambda s=s, x=x: s.run(None, {"x": x})
    return fns


def build_tf(setting: str, models_dir: Path):
    import tensorflow as tf
    if setting == "disable_thread_spinning":
        from tensorflow.python.eager import context
        from tensorflow.core.protobuf import config_pb2
        cfg = config_pb2.ConfigProto()
        cfg.experimental.disable_thread_spinning = True
        context.context()._config = cfg  # private: TF2 has no public setter; must precede context init
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.random.set_seed(0)
    from tensorflow.python.eager import context
    assert context.context().config.experimental.disable_thread_spinning == (setting == "disable_thread_spinning")
    hasattr(tf, "keras")  # unused result, kept from the original study: it loads tf.keras (lazy) in every tf run
    def dense(i, o):
        return tf.Variable(tf.random.normal([i, o]) * 0.05), tf.Variable(tf.zeros([o]))
    W = [dense(784, 256), dense(256, 256), dense(256, 10)]
    def conv(i, o):
        return tf.Variable(tf.random.normal([3, 3, i, o]) * 0.1), tf.Variable(tf.zeros([o]))
    C = [conv(3, 16), conv(16, 32), conv(32, 32)]
    L = dense(32, 10)
    @tf.function
    def mlp(x):
        for k, (w, b) in enumerate(W):
            x = tf.matmul(x, w) + b
            if k < 2:
                x = tf.nn.relu(x)
        return x
    @tf.function
    def cnn(x):
        for (w, b), s in zip(C, (1, 2, 1)):
            x = tf.nn.relu(tf.nn.conv2d(x, w, s, "SAME") + b)
        x = tf.reduce_mean(x, axis=[1, 2])
        return tf.matmul(x, L[0]) + L[1]
    xs = {"mlp_b1": tf.random.normal([1, 784]), "mlp_b32": tf.random.normal([32, 784]),
          "cnn_b1": tf.random.normal([1, 64, 64, 3])}
    f = {"mlp_b1": mlp, "mlp_b32": mlp, "cnn_b1": cnn}
    return {n: (lambda g=f[n], x=xs[n]: g(x).numpy()) for n in WORKLOADS}


def build_jax(setting: str, models_dir: Path):
    import jax
    import jax.numpy as jnp
    k = jax.random.split(jax.random.PRNGKey(0), 16)
    W = [(jax.random.normal(k[0], (784, 256)) * .05, jnp.zeros(256)),
         (jax.random.normal(k[1], (256, 256)) * .05, jnp.zeros(256)),
         (jax.random.normal(k[2], (256, 10)) * .05, jnp.zeros(10))]
    C = [(jax.random.normal(k[3], (3, 3, 3, 16)) * .1, jnp.zeros(16)),
         (jax.random.normal(k[4], (3, 3, 16, 32)) * .1, jnp.zeros(32)),
         (jax.random.normal(k[5], (3, 3, 32, 32)) * .1, jnp.zeros(32))]
    L = (jax.random.normal(k[6], (32, 10)) * .1, jnp.zeros(10))
    @jax.jit
    def mlp(x):
        for i, (w, b) in enumerate(W):
            x = x @ w + b
            if i < 2:
                x = jax.nn.relu(x)
        return x
    @jax.jit
    def cnn(x):
        for (w, b), s in zip(C, (1, 2, 1)):
            x = jax.lax.conv_general_dilated(x, w, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            x = jax.nn.relu(x + b)
        x = x.mean(axis=(1, 2))
        return x @ L[0] + L[1]
    xs = {"mlp_b1": jax.random.normal(k[7], (1, 784)), "mlp_b32": jax.random.normal(k[8], (32, 784)),
          "cnn_b1": jax.random.normal(k[9], (1, 64, 64, 3))}
    f = {"mlp_b1": mlp, "mlp_b32": mlp, "cnn_b1": cnn}
    return {n: (lambda g=f[n], x=xs[n]: g(x).block_until_ready()) for n in WORKLOADS}


BUILDERS = {"torch": build_torch, "ort": build_ort, "tf": build_tf, "jax": build_jax}


def host_busy_jiffies():
    with open("/proc/stat") as fh:
        v = [int(t) for t in fh.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)  # busy (excl idle, iowait), total


def own_jiffies():
    with open("/proc/self/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime, all threads


def measure(fn):
    t_end = time.perf_counter() + WARM_S
    while time.perf_counter() < t_end:
        fn()
    b0, own0, w0 = host_busy_jiffies()[0], own_jiffies(), time.perf_counter()
    lat = []
    t_end = w0 + MEAS_S
    pc = time.perf_counter
    while True:
        t0 = pc(); fn(); t1 = pc()
        lat.append(t1 - t0)
        if t1 >= t_end:
            break
    b1, own1, w1 = host_busy_jiffies()[0], own_jiffies(), time.perf_counter()
    wall = w1 - w0
    own_cores = (own1 - own0) / CLK / wall
    lat.sort()
    return {"median_ms": statistics.median(lat) * 1e3, "p90_ms": lat[int(0.9 * (len(lat) - 1))] * 1e3,
            "mean_ms": sum(lat) / len(lat) * 1e3, "n": len(lat),
            "own_cores": round(own_cores, 3), "other_cores": round((b1 - b0) / CLK / wall - own_cores, 3)}


def main(fw: str, setting: str, models_dir: Path) -> None:
    fns = BUILDERS[fw](setting, models_dir)
    for fn in fns.values():  # compile / first-run costs before the burner starts
        for _ in range(3):
            fn()
    print("READY", flush=True)
    sys.stdin.readline()
    out = {"fw": fw, "setting": setting, "results": {n: measure(fns[n]) for n in WORKLOADS}}
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python worker.py FRAMEWORK SETTING MODELS_DIR")
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
