"""TensorFlow's sparse `Embedding` gradients are read by the batch's rows.

On the TensorFlow backend the gradient of an `Embedding` table is a
`tf.IndexedSlices`; the tap computes the gradient modes' terms of the rows
looked up only, summing the slices of a token that a batch holds twice, and
must give the terms of the dense gradient (zero for the other rows).
"""

import keras
import numpy as np
import pytest

callbacks = pytest.importorskip("neural_feature_importance.keras")

from neural_feature_importance.keras import _sparse, gradients  # noqa: E402

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="only TensorFlow hands an Embedding's gradient to the optimizer as IndexedSlices",
)

VOCABULARY, LENGTH, DIM = 40, 6, 4


def _tokens(n=96, seed=0):
    """Token ids with repeats inside rows and batches; y rises with tokens 0 and 1."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, VOCABULARY // 2, size=(n, LENGTH)).astype("int32")
    tokens[::3, 1] = tokens[::3, 0]  # the same token twice in one sequence
    tokens[::5, :] = 7  # a sequence of one token only
    y = ((tokens == 0).sum(axis=1) - (tokens == 1).sum(axis=1)).astype("float32")[:, None]
    return tokens, y


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((LENGTH,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, DIM, name="tokens"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def _fit(scoring):
    tokens, y = _tokens()
    tracker = callbacks.EmbeddingVarianceImportanceKeras(scoring=scoring, gradient_every=1)
    _model().fit(tokens, y, epochs=3, batch_size=16, shuffle=False, verbose=0, callbacks=[tracker])
    return tracker


SUMS = {
    "taylor": ("features",),
    "steady_taylor": ("features", "feature_squares"),
    # With the table's rows before the update, gathered before it.
    "descent_taylor": ("features", "descents", "gradient_norms"),
}


@pytest.mark.parametrize("scoring", list(SUMS))
def test_rows_read_sparsely_equal_the_dense_gradient_read(monkeypatch, scoring):
    calls = []

    def counting_row_terms(*args):
        calls.append(1)
        return _sparse.row_terms(*args)

    with monkeypatch.context() as patch:
        patch.setattr(gradients, "row_terms", counting_row_terms)
        sparse = _fit(scoring)
    assert calls, "the sparse path was not taken"
    with monkeypatch.context() as patch:
        # Every gradient densified, as the tap read it before.
        patch.setattr(gradients, "rows_are_features", lambda mode, shape: False)
        dense = _fit(scoring)
    mode = sparse.core.statistics.mode
    assert mode.n_steps == dense.core.statistics.mode.n_steps == 18
    for key in SUMS[scoring]:
        np.testing.assert_allclose(
            np.asarray(mode.arrays[key]),
            np.asarray(dense.core.statistics.mode.arrays[key]),
            rtol=1e-5,
            atol=1e-9,
        )
    np.testing.assert_allclose(sparse.raw_importances_, dense.raw_importances_, rtol=1e-5)
    # Tokens of the upper half never occur: their terms are exactly zero.
    assert np.all(sparse.raw_importances_[VOCABULARY // 2 :] == 0)
    assert np.all(sparse.raw_importances_[: VOCABULARY // 2] > 0)


def test_rows_read_sparsely_equal_numpy_on_the_recorded_gradients():
    # A custom loop, so the gradient (with duplicate token ids) and the weight
    # after each step can be recorded; taylor's term is |sum_j g_ij w_ij| per row.
    import tensorflow as tf

    tokens, y = _tokens(n=48)
    model = _model()
    tracker = callbacks.EmbeddingVarianceImportanceKeras(scoring="taylor", gradient_every=1)
    tracker.set_model(model)
    tracker.on_train_begin()
    optimizer = tracker.wrap_optimizer(keras.optimizers.SGD(0.5))
    table = model.get_layer("tokens").embeddings
    expected = np.zeros(VOCABULARY)
    for start in range(0, len(tokens), 8):
        with tf.GradientTape() as tape:
            loss = keras.ops.mean((model(tokens[start : start + 8]) - y[start : start + 8]) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        assert isinstance(grads[0], tf.IndexedSlices)
        # Duplicate ids: more slices than distinct rows.
        assert len(np.unique(grads[0].indices.numpy())) < grads[0].indices.shape[0]
        dense = tf.convert_to_tensor(grads[0]).numpy().astype(np.float64)
        optimizer.apply(grads, model.trainable_variables)
        weights = np.asarray(table.numpy(), dtype=np.float64)
        expected += np.abs((dense * weights).sum(axis=1))
    tracker.on_epoch_end(0)
    mode = tracker.core.statistics.mode
    assert mode.n_steps == 6
    np.testing.assert_allclose(tracker.raw_importances_, expected / 6, rtol=1e-5, atol=1e-9)


def _step_op_types(model):
    """Every op type of the model's traced train step, its branches included."""
    import tensorflow as tf

    tokens, y = _tokens(n=16)
    batch = (tf.constant(tokens), tf.constant(y))
    step = tf.function(model.train_step).get_concrete_function(batch)
    graph = step.graph.as_graph_def()
    return {node.op for node in graph.node} | {
        node.op for function in graph.library.function for node in function.node_def
    }


def test_the_tapped_step_reads_the_table_densely():
    # A sparse read of a variable (ResourceGather) switches it to copy-on-read
    # for good: every later read and update copies the whole table. Keras's
    # own Embedding and Adam read it densely; the tap must too.
    def sparse_reads(ops):
        return {op for op in ops if op.startswith(("ResourceGather", "ResourceScatter"))}

    plain = _model()
    plain.optimizer.build(plain.trainable_variables)
    assert sparse_reads(_step_op_types(plain)) == set()
    tapped = _model()
    tracker = callbacks.EmbeddingVarianceImportanceKeras(scoring="taylor")
    tracker.set_model(tapped)
    tracker.on_train_begin()
    ops = _step_op_types(tapped)
    assert "If" in ops or "StatelessIf" in ops  # the rows are read behind the cond
    assert "Unique" in ops  # by the sparse path
    assert sparse_reads(ops) == set()


def test_modes_whose_terms_are_not_per_row_are_read_densely():
    from neural_feature_importance.core.modes import get_mode
    from neural_feature_importance.core.modes._gradient import TaylorMode
    from neural_feature_importance.core.views import WeightView

    view = WeightView("embedding", "keras", (VOCABULARY, DIM))
    for scoring in ("taylor", "steady_taylor", "descent_taylor"):
        mode = get_mode(scoring)(view, None, "float64")
        assert _sparse.rows_are_features(mode, view.weight_shape)

    class PerUnit(TaylorMode):
        """A term per unit (column), not per row."""

        def step_terms(self, gradient, weights, before, ops):
            return {"features": abs(ops.dot(gradient, weights, 0))}

    class WholeBefore(TaylorMode):
        """Reads the whole weight before the step (its sum), not each row's."""

        needs_weights_before = True

        def step_terms(self, gradient, weights, before, ops):
            return {"features": abs(ops.dot(gradient, weights, 1)) * ops.sum(before, (0, 1))}

    for mode_class in (PerUnit, WholeBefore):
        assert not _sparse.rows_are_features(mode_class(view, None, "float64"), (VOCABULARY, DIM))
    conv = WeightView("conv", "keras", (3, VOCABULARY, DIM))
    assert not _sparse.rows_are_features(get_mode("taylor")(conv, None, "float64"), (3, 40, 4))
