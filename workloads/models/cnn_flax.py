"""A small CNN written as a user's own Flax NNX module: the factory of cnn_flax.yaml.

Conv 3x3 (16) -> ReLU -> AvgPool 2x2 -> Conv 3x3 (32) -> ReLU -> global mean -> Linear (10), on NHWC images
(Flax's own layout). The suite calls ``small_cnn(num_classes=10, rngs=nnx.Rngs(seed))``: the weights are Flax's
seeded initialisation.

Average pooling, not max: jax2onnx 0.17 turns ``nnx.max_pool`` (``lax.reduce_window`` max over NHWC) into a
4-D ONNX MaxPool that ONNX Runtime refuses at run time ("Unsupported pooling size").
"""
from flax import nnx


class SmallCNN(nnx.Module):
    def __init__(self, num_classes: int = 10, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(3, 16, kernel_size=(3, 3), padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, kernel_size=(3, 3), padding="SAME", rngs=rngs)
        self.head = nnx.Linear(32, num_classes, rngs=rngs)

    def __call__(self, x):
        x = nnx.avg_pool(nnx.relu(self.conv1(x)), window_shape=(2, 2), strides=(2, 2))
        x = nnx.relu(self.conv2(x))
        return self.head(x.mean(axis=(1, 2)))


def small_cnn(num_classes: int = 10, *, rngs: nnx.Rngs) -> SmallCNN:
    return SmallCNN(num_classes, rngs=rngs)
