"""YOPO ("You Only Pool Once") 3D CNN of DISCA (method section 3), Keras 3.

The feature network: GaussianDropout on the input, then blocks of
Conv3D(3x3x3, stride 1, 'valid', orthogonal kernel, zero bias) -> ELU -> BatchNormalization,
no pooling between blocks; a GlobalMaxPooling3D taps every block output; the taps are
concatenated -> BatchNormalization -> Dense(feature_dim) = the features.

The classification head is Dense(K, softmax). To keep one compiled training graph for the
whole run while K changes, the head is a Dense(k_max) whose logits beyond the current K are
masked out before the softmax; this is exactly a Dense(K) softmax layer (the masked units get
probability 0 and no gradient), and "replacing the head" re-initialises its weights.

TensorFlow/Keras are imported here at module level: only TF-using commands import this module.
"""
import numpy as np

import keras
from keras import layers

PAPER_WIDTHS = tuple(64 + 16 * i for i in range(10))  # 64, 80, ..., 208 -> 1360 concatenated
PAPER_FEATURE_DIM = 1024
DROPOUT_RATE = 0.5


def min_box(n_blocks):
    """Smallest box a stack of ``n_blocks`` valid 3x3x3 convolutions accepts (1 voxel left)."""
    return 2 * n_blocks + 1


def build_feature_model(box, widths=PAPER_WIDTHS, feature_dim=PAPER_FEATURE_DIM,
                        dropout=DROPOUT_RATE, name="yopo_features"):
    """Feature network for ``box``^3 x 1 inputs -> ``feature_dim`` features."""
    if box < min_box(len(widths)):
        raise ValueError(f"box {box} is too small for {len(widths)} valid 3x3x3 convolutions "
                         f"(needs >= {min_box(len(widths))})")
    inp = keras.Input((box, box, box, 1), name="subtomogram")
    x = layers.GaussianDropout(dropout, name="input_dropout")(inp)
    taps = []
    for i, width in enumerate(widths, 1):
        x = layers.Conv3D(width, 3, strides=1, padding="valid",
                          kernel_initializer="orthogonal", bias_initializer="zeros",
                          name=f"conv{i}")(x)
        x = layers.ELU(name=f"elu{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        taps.append(layers.GlobalMaxPooling3D(name=f"tap{i}")(x))
    x = layers.Concatenate(name="concat")(taps) if len(taps) > 1 else taps[0]
    x = layers.BatchNormalization(name="concat_bn")(x)
    # float32 output so PCA/mixtures never see bfloat16 values
    features = layers.Dense(feature_dim, name="features", dtype="float32")(x)
    return keras.Model(inp, features, name=name)


class MaskedSoftmax(layers.Layer):
    """Softmax over the first ``k`` logits only (the others get probability 0)."""

    def __init__(self, k_max, **kwargs):
        super().__init__(**kwargs)
        self.k_max = int(k_max)
        self.k = self.add_weight(name="k", shape=(), dtype="int32", trainable=False,
                                 initializer=keras.initializers.Constant(self.k_max))

    def call(self, logits):
        from keras import ops
        mask = ops.arange(self.k_max) < self.k
        logits = ops.where(mask[None, :], ops.cast(logits, "float32"), -1e9)
        return ops.softmax(logits, axis=-1)

    def get_config(self):
        return {**super().get_config(), "k_max": self.k_max}


def build_classifier(feature_model, k_max, name="yopo"):
    """Feature network + Dense(k_max) head with a masked softmax (see module docstring)."""
    head_dense = layers.Dense(k_max, name="head", kernel_initializer="orthogonal",
                              bias_initializer="zeros", dtype="float32")
    softmax = MaskedSoftmax(k_max, name="head_softmax", dtype="float32")
    probs = softmax(head_dense(feature_model.output))
    return keras.Model(feature_model.input, probs, name=name)


def head_layers(model):
    return model.get_layer("head"), model.get_layer("head_softmax")


def reset_head(model, k, seed):
    """Replace the head by a freshly initialised Dense(k) (orthogonal kernel, zero bias)."""
    dense, softmax = head_layers(model)
    kernel_shape = tuple(dense.kernel.shape)
    init = keras.initializers.Orthogonal(seed=int(seed))
    dense.kernel.assign(np.asarray(init(kernel_shape), dtype=np.float32))
    dense.bias.assign(np.zeros(kernel_shape[1], np.float32))
    set_k(model, k)


def set_k(model, k):
    _, softmax = head_layers(model)
    if not 1 <= k <= softmax.k_max:
        raise ValueError(f"K={k} outside 1..{softmax.k_max}")
    softmax.k.assign(int(k))


def get_k(model):
    return int(head_layers(model)[1].k.numpy())


def forward_gflop(box, widths, feature_dim):
    """Multiply-adds x2 of one forward pass (convolutions + dense), in GFLOP."""
    flop, c_in, s = 0.0, 1, box
    for width in widths:
        s -= 2
        flop += 2.0 * s ** 3 * 27 * c_in * width
        c_in = width
    flop += 2.0 * sum(widths) * feature_dim
    return flop / 1e9


CUSTOM_OBJECTS = {"MaskedSoftmax": MaskedSoftmax}
