"""The network's compiled steps under Keras's JAX backend: JAX has no GradientTape or
tf.function, so a step is a pure function of the variables' values (``stateless_call``,
``stateless_apply``) compiled by ``jax.jit``, and the new values are written back into the
Keras variables after each call (the rest of the engine reads and checkpoints those).

The maths is that of the TensorFlow steps in ``model.py``: loss summed over the batch and
divided by the global batch size, the optimizer's loss scaling (float16), BatchNorm's
moving statistics and the dropout generator's state updated in training mode.
"""
import numpy as np


def _values(variables):
    return [v.value for v in variables]


def _assign(variables, values):
    for v, value in zip(variables, values):
        v.assign(value)


def train_step(model, optimizer, loss_fn):
    """``(x, y, global_batch) -> loss``: one optimizer step of ``model`` on a batch."""
    import jax
    from keras import StatelessScope

    def loss_and_state(trainable, non_trainable, opt_values, x, y, global_batch):
        probs, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        loss = loss_fn(y, probs) / global_batch
        # scale_loss reads the loss scale (float16) from the optimizer's own variables
        with StatelessScope(state_mapping=list(zip(optimizer.variables, opt_values))):
            scaled = optimizer.scale_loss(loss)
        return scaled, (loss, non_trainable)

    grad = jax.value_and_grad(loss_and_state, has_aux=True)

    @jax.jit
    def step(trainable, non_trainable, opt_values, x, y, global_batch):
        (_, (loss, non_trainable)), grads = grad(trainable, non_trainable, opt_values, x, y,
                                                 global_batch)
        trainable, opt_values = optimizer.stateless_apply(opt_values, grads, trainable)
        return loss, trainable, non_trainable, opt_values

    def call(x, y, global_batch):
        loss, trainable, non_trainable, opt_values = step(
            _values(model.trainable_variables), _values(model.non_trainable_variables),
            _values(optimizer.variables), x, y, global_batch)
        _assign(model.trainable_variables, trainable)
        _assign(model.non_trainable_variables, non_trainable)
        _assign(optimizer.variables, opt_values)
        return loss
    return call


def inference(model):
    """Compiled ``x -> model(x, training=False)`` as float32 numpy, reading the current
    weights at every call (training changes them between calls)."""
    import jax

    @jax.jit
    def forward(trainable, non_trainable, x):
        out, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return out

    def call(x):
        return np.asarray(forward(_values(model.trainable_variables),
                                  _values(model.non_trainable_variables),
                                  np.asarray(x, np.float32)), np.float32)
    return call
