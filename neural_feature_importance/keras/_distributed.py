"""The gradient tap under `tf.distribute`: where its variables live, and the global gradient.

Under Keras distribution the tap reads the gradient of the global batch, the
one the wrapped optimizer applies:

- JAX (`keras.distribution.DataParallel`): the trainer compiles one train
  step over the whole mesh, so `stateless_apply` already receives the
  global batch's gradient, and the tap's variables are replicated like the
  optimizer's own;
- TensorFlow (`tf.distribute.MirroredStrategy`): Keras calls
  `optimizer.apply` once per replica, in replica context, with that
  replica's gradient of its loss divided by the number of replicas; the
  wrapped optimizer all-reduces them (a sum) before its update. The tap sums
  them in the same way, before its `cond`: `tf.distribute` allows no
  cross-replica communication (`merge_call`) inside a branch of a `cond`
  in replica context, which is why this reduction runs at every step, not
  only at read steps. Its variables are mirrored variables created in the
  strategy that owns the tracked weight, with `aggregation="none"`: every
  replica computes the same new values from the all-reduced gradient and
  the mirrored weights, and writes its own copy (no cross-replica write in
  the branch either); the tap's
  [`drain()`][neural_feature_importance.keras.gradients.GradientTapOptimizer.drain]
  reads them in cross-replica context and zeroes every copy.

Both helpers do nothing on the backends other than TensorFlow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import keras

__all__ = ["distribution_scope", "sum_over_replicas"]


def distribution_scope(variables: Sequence[Any]) -> contextlib.AbstractContextManager[Any]:
    """The `tf.distribute` strategy scope of the tracked weights, where the tap is created.

    On TensorFlow, a variable of the tap that a replica writes in the train
    step must be a mirrored variable of the strategy that runs the step, and
    Keras's TensorFlow optimizer takes its strategy from the scope it is
    constructed in. The callbacks construct the tap in `on_train_begin`,
    outside the user's `strategy.scope()`, so the tap enters the strategy
    that owns the tracked weights itself. A null context on other backends,
    for weights of no strategy, and inside a strategy scope already.
    """
    if keras.backend.backend() != "tensorflow":
        return contextlib.nullcontext()
    import tensorflow as tf  # only on the TensorFlow backend, where Keras has imported it

    if tf.distribute.has_strategy():
        return contextlib.nullcontext()
    for variable in variables:
        value = getattr(variable, "value", variable)
        if isinstance(value, tf.distribute.DistributedValues):
            return value.distribute_strategy.scope()
    return contextlib.nullcontext()


def sum_over_replicas(gradients: list[Any]) -> list[Any]:
    """The tracked gradients summed over `tf.distribute` replicas, as Keras's optimizer sums them.

    Keras's TensorFlow optimizer (`TFOptimizer._all_reduce_sum_gradients`)
    all-reduces each replica's gradient with `ReduceOp.SUM` before its
    update; each replica's loss is already divided by the number of replicas,
    so the sum is the gradient of the global batch. Unchanged on other
    backends, outside a replica context, and with a single replica.
    """
    if keras.backend.backend() != "tensorflow":
        return gradients
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return gradients
    return list(context.all_reduce(tf.distribute.ReduceOp.SUM, gradients))
