"""Writes cnn_keras.keras (the model of cnn_keras.yaml): a small Keras 3 functional CNN with seeded weights.

    KERAS_BACKEND=jax python workloads/models/make_cnn_keras.py      # any Keras backend writes the same file

Input 32x32x3 (channels last) -> Conv 3x3 (16) -> BatchNorm -> ReLU -> MaxPool 2x2 -> Conv 3x3 (32) -> ReLU
-> GlobalAveragePool -> Dense (10). The weights come from a seeded NumPy generator (Keras' own initialisers
draw from the backend's generator, which differs between backends); the BatchNorm moving statistics are not
the identity, so a route that drops or mis-folds them shows. The file is about 70 kB.
"""
from pathlib import Path

import numpy as np


def build():
    import keras

    inp = keras.Input(shape=(32, 32, 3), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(inp, out, name="cnn_keras")
    rng = np.random.default_rng(11)
    weights = []
    for w in model.get_weights():
        if w.ndim > 1:  # kernels: Glorot-scaled
            fan_in, fan_out = int(np.prod(w.shape[:-1])), w.shape[-1]
            weights.append(rng.uniform(-1, 1, w.shape).astype(np.float32) * np.sqrt(6.0 / (fan_in + fan_out)))
        else:  # biases, gamma/beta and the moving mean/variance (kept positive)
            weights.append((0.5 + rng.uniform(0, 1, w.shape)).astype(np.float32))
    model.set_weights(weights)
    return model


if __name__ == "__main__":
    out = Path(__file__).with_name("cnn_keras.keras")
    build().save(out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
