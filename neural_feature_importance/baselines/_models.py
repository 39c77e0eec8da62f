"""What the baselines need from a model, for Keras, PyTorch and plain callables.

Three things, each read the same way whatever the framework:

- [`dense_weight_chain()`][dense_weight_chain]: the kernels of the model's dense layers, in
  forward order, as numpy `(in, out)` matrices (Keras' layout; PyTorch's
  `nn.Linear` weights are `(out, in)` and are transposed here, once).
- [`predict_function()`][predict_function]: a function `X -> outputs` on numpy arrays, in
  inference mode (dropout off, batch norm on running statistics).
- [`loss_function()`][loss_function]: a function `(X, y) -> float` giving the model's loss.

Frameworks are imported inside the functions and only when the model belongs
to them, so importing [`neural_feature_importance.baselines`][] imports
neither TensorFlow, Keras nor torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

Framework = Literal["keras", "torch", "sklearn", "callable", "weights"]
PredictFn = Callable[[np.ndarray], np.ndarray]
LossFn = Callable[[np.ndarray, np.ndarray], float]

DEFAULT_BATCH_SIZE = 4096


def _root_modules(obj: object) -> set[str]:
    return {cls.__module__.split(".")[0] for cls in type(obj).__mro__}


def framework_of(model: Any) -> Framework:
    """Name the kind of model (`"keras"`, `"torch"`, `"sklearn"`, ...).

    One of `"keras"`, `"torch"`, `"sklearn"`, `"callable"` or
    `"weights"` (a sequence of weight matrices). Decided from the classes'
    modules, so no framework is imported to ask.

    Raises
    ------
    TypeError
        If `model` is none of these.
    """
    roots = _root_modules(model)
    if roots & {"keras", "tf_keras"}:
        return "keras"
    if "torch" in roots:
        import torch

        if isinstance(model, torch.nn.Module):
            return "torch"
    if isinstance(model, (list, tuple)):
        return "weights"
    if hasattr(model, "fit") and hasattr(model, "predict"):
        return "sklearn"
    if callable(model):
        return "callable"
    raise TypeError(
        f"cannot use a {type(model).__name__} as a model: pass a Keras model, a "
        "torch.nn.Module, a fitted scikit-learn estimator, or a function X -> outputs."
    )


# ------------------------------------------------------------------ weights
def _keras_layers(layer: Any) -> list[Any]:
    """Leaf layers of a (possibly nested) Keras model, in order."""
    sublayers = getattr(layer, "layers", None)
    if sublayers is None:
        return [layer]
    out: list[Any] = []
    for sub in sublayers:
        out.extend(_keras_layers(sub))
    return out


def _keras_chain(model: Any) -> list[np.ndarray]:
    import keras

    chain: list[np.ndarray] = []
    for layer in _keras_layers(model):
        if isinstance(layer, keras.layers.Dense):
            chain.append(np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float64))
            continue
        for weight in layer.weights:
            if len(weight.shape) >= 2:
                raise ValueError(
                    f"layer {layer.name!r} ({type(layer).__name__}) has a {len(weight.shape)}-D "
                    "weight that is not a Dense kernel; weight-based importances "
                    "(Garson, Olden) need a stack of Dense layers. Use lofo_importance "
                    "or permutation_importance for other architectures."
                )
    return chain


def _torch_chain(model: Any) -> list[np.ndarray]:
    from torch import nn

    chain: list[np.ndarray] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            chain.append(module.weight.detach().cpu().double().numpy().T.copy())
            continue
        for pname, param in module.named_parameters(recurse=False):
            if param.ndim >= 2:
                raise ValueError(
                    f"module {name!r} ({type(module).__name__}) has a {param.ndim}-D "
                    f"parameter {pname!r} and is not nn.Linear; weight-based importances "
                    "(Garson, Olden) need a stack of nn.Linear layers. Use lofo_importance "
                    "or permutation_importance for other architectures."
                )
    return chain


def dense_weight_chain(model_or_weights: Any) -> list[np.ndarray]:
    """Kernels of the dense layers, first to last, as float64 `(in, out)` matrices.

    Parameters
    ----------
    model_or_weights : Keras model, torch.nn.Module or sequence of arrays
        A model made of dense layers (activations, dropout, batch/layer
        normalisation and PReLU are allowed between them: they act per unit),
        or the kernels themselves, already `(in, out)`. PyTorch modules are
        read in registration order, which is forward order for
        `nn.Sequential`.

    Returns
    -------
    list of ndarray
        One `(in, out)` matrix per dense layer; biases are not included.

    Raises
    ------
    ValueError
        If the model has no dense layer, or a layer with a 2-D+ weight that is
        not dense (a convolution, an embedding, a recurrent cell).

    Examples
    --------
    >>> w = dense_weight_chain([np.ones((3, 2)), np.ones((2, 1))])
    >>> [m.shape for m in w]
    [(3, 2), (2, 1)]
    """
    framework = framework_of(model_or_weights)
    if framework == "keras":
        chain = _keras_chain(model_or_weights)
    elif framework == "torch":
        chain = _torch_chain(model_or_weights)
    elif framework == "weights":
        chain = [np.asarray(w, dtype=np.float64) for w in model_or_weights]
        for i, w in enumerate(chain):
            if w.ndim != 2:
                raise ValueError(
                    f"weight {i} has shape {w.shape}; pass 2-D kernels in (in, out) "
                    "layout (transpose PyTorch nn.Linear weights, which are (out, in))."
                )
    else:
        raise TypeError(
            f"cannot read dense weights from a {type(model_or_weights).__name__}; pass "
            "a Keras model, a torch.nn.Module, or a list of (in, out) weight matrices."
        )
    if not chain:
        raise ValueError("the model has no dense (Dense / nn.Linear) layer.")
    return chain


def check_chain(chain: Sequence[np.ndarray]) -> None:
    """Raise if consecutive kernels do not connect (`out` of one != `in` of the next)."""
    for i in range(len(chain) - 1):
        if chain[i].shape[1] != chain[i + 1].shape[0]:
            raise ValueError(
                f"dense layer {i} has {chain[i].shape[1]} outputs but layer {i + 1} takes "
                f"{chain[i + 1].shape[0]} inputs; the kernels must be given in forward "
                "order, each (in, out)."
            )


# --------------------------------------------------------------- predicting
def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def _check_batch_size(batch_size: int | None) -> int:
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    return int(batch_size)


def predict_function(model: Any, batch_size: int | None = None) -> PredictFn:
    """Return `X -> outputs` (numpy in, float64 numpy out) in inference mode.

    Keras models are called with `training=False`; torch modules run under
    `torch.no_grad()` in `eval()` mode (their training flag is restored
    afterwards), on the device and dtype of their parameters; scikit-learn
    estimators use `predict`; a plain callable is called as is.
    """
    framework = framework_of(model)
    size = _check_batch_size(batch_size)
    if framework == "keras":
        import keras

        def predict_keras(X: np.ndarray) -> np.ndarray:
            X = np.asarray(X, dtype=np.float32)
            parts = [
                keras.ops.convert_to_numpy(model(X[part], training=False))
                for part in _batches(len(X), size)
            ]
            return np.concatenate(parts).astype(np.float64)

        return predict_keras
    if framework == "torch":
        import torch

        def predict_torch(X: np.ndarray) -> np.ndarray:
            param = next(model.parameters(), None)
            dtype = param.dtype if param is not None else torch.float32
            device = param.device if param is not None else torch.device("cpu")
            was_training = model.training
            model.eval()
            try:
                with torch.no_grad():
                    parts = [
                        model(torch.as_tensor(np.asarray(X[part]), dtype=dtype, device=device))
                        .detach()
                        .cpu()
                        .double()
                        .numpy()
                        for part in _batches(len(X), size)
                    ]
            finally:
                model.train(was_training)
            return np.concatenate(parts)

        return predict_torch
    if framework == "sklearn":
        return lambda X: np.asarray(model.predict(X), dtype=np.float64)
    if framework == "callable":
        return lambda X: np.asarray(model(X), dtype=np.float64)
    raise TypeError("a list of weights cannot predict; pass the model itself.")


def _match_shapes(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Drop the output axis of a single-output model when `y` is 1-D."""
    if y.ndim == 1 and pred.ndim == 2 and pred.shape[1] == 1:
        return pred[:, 0]
    return pred


def loss_function(model: Any, loss: Any = None, batch_size: int | None = None) -> LossFn:
    """Return `(X, y) -> loss` for a model (lower is better).

    Parameters
    ----------
    model : Keras model, torch.nn.Module, scikit-learn estimator or callable
        The trained model.
    loss : None, callable or torch loss module
        - `None`: a compiled Keras model's own loss from `model.evaluate`
          (what the paper recorded; it includes regularisation penalties);
          for a scikit-learn estimator `-estimator.score(X, y)`.
        - a `torch.nn.Module` loss such as `nn.CrossEntropyLoss()`: called
          as in training, `loss(model(X), y)`, on tensors (integer `y`
          becomes `long` class indices, anything else the model's dtype).
        - any other callable `loss(y_true, y_pred) -> float` on numpy arrays,
          such as `sklearn.metrics.mean_squared_error`.
    batch_size : int, optional
        Rows per forward pass.

    Raises
    ------
    ValueError
        If no loss can be inferred (a torch model or a plain function with
        `loss=None`, or an uncompiled Keras model).
    """
    framework = framework_of(model)
    size = _check_batch_size(batch_size)
    if loss is None:
        if framework == "keras":
            if getattr(model, "loss", None) is None:
                raise ValueError(
                    "the Keras model is not compiled, so it has no loss; compile it, or "
                    "pass loss=callable(y_true, y_pred)."
                )

            def keras_loss(X: np.ndarray, y: np.ndarray) -> float:
                result = model.evaluate(X, y, batch_size=size, verbose=0, return_dict=True)
                return float(result["loss"])

            return keras_loss
        if framework == "sklearn":
            return lambda X, y: -float(model.score(X, y))
        raise ValueError(
            f"a {framework} model has no loss of its own: pass loss=, e.g. "
            "torch.nn.CrossEntropyLoss() or torch.nn.MSELoss() for a torch model, or a "
            "callable loss(y_true, y_pred) such as sklearn.metrics.mean_squared_error."
        )
    if framework == "torch":
        import torch

        if isinstance(loss, torch.nn.Module):

            def torch_loss(X: np.ndarray, y: np.ndarray) -> float:
                param = next(model.parameters(), None)
                dtype = param.dtype if param is not None else torch.float32
                device = param.device if param is not None else torch.device("cpu")
                y = np.asarray(y)
                y_dtype = torch.long if np.issubdtype(y.dtype, np.integer) else dtype
                was_training = model.training
                model.eval()
                try:
                    with torch.no_grad():
                        out = model(torch.as_tensor(np.asarray(X), dtype=dtype, device=device))
                        target = torch.as_tensor(y, dtype=y_dtype, device=device)
                        if target.ndim == 1 and out.ndim == 2 and out.shape[1] == 1:
                            out = out[:, 0]
                        return float(loss(out, target))
                finally:
                    model.train(was_training)

            return torch_loss
    if not callable(loss):
        raise TypeError(
            f"loss must be None, a callable loss(y_true, y_pred) or a torch loss module, "
            f"got {type(loss).__name__}"
        )
    predict = predict_function(model, size)

    def numpy_loss(X: np.ndarray, y: np.ndarray) -> float:
        y = np.asarray(y)
        return float(loss(y, _match_shapes(y, predict(X))))

    return numpy_loss
