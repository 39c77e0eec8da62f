"""Choosing the tracked layer among those the input probe saw read the model's inputs.

[`InputLayerProbe`][neural_feature_importance.torch.input_layers.InputLayerProbe]
records what read each model input in the first forward pass; this module
decides what that means for a tracker of one kind: the layer to track
([`choose_input_layers()`][choose_input_layers], with a WARNING for what
needs the user: several readers, an input concatenated first), an error for
an input first read by weights that cannot be mapped to its features
([`check_mappable()`][check_mappable]), and the INFO notes for what is
harmless ([`harmless_notes()`][harmless_notes]).
"""

from __future__ import annotations

from neural_feature_importance.core.errors import LayerSelectionError
from neural_feature_importance.torch.input_layers import (
    TARGET_NAMES,
    InputLayerResult,
    InputReader,
    ModelInput,
)
from neural_feature_importance.torch.input_weights import own_matrices
from neural_feature_importance.torch.layers import MODULE_TYPES, TRACKER_FOR_KIND, module_kind


def _listing(result: InputLayerResult, readers: list[InputReader]) -> str:
    return ", ".join(
        f"{reader.name!r} ({type(reader.module).__name__}, reads "
        f"{result.inputs[reader.input_index].describe()})"
        for reader in readers
    )


def check_mappable(result: InputLayerResult) -> None:
    """Raise if a model input is first read by a module the trackers cannot map.

    Raises
    ------
    LayerSelectionError
        Naming the module, its weights and the `layer=` remedy: tracking a
        later layer instead would return the scores of a wrong layer.
    """
    if not result.unmapped:
        return
    lines = []
    for reader in result.unmapped:
        weights = ", ".join(
            f"{name} {tuple(param.shape)}" for name, param in own_matrices(reader.module)
        )
        lines.append(
            f"{result.inputs[reader.input_index].describe()} is first read by {reader.name!r} "
            f"({type(reader.module).__name__}, weights {weights}), whose weights the trackers "
            "cannot map to the input's features"
        )
    raise LayerSelectionError(
        "; ".join(lines) + ". Scores of a later layer would not be the inputs'. Name the "
        "parameter that multiplies the input features and its feature axis: "
        f"layer=FeatureAxis('{result.unmapped[0].name}.<parameter>', axis=<feature axis>) "
        "(from neural_feature_importance), or track a layer of your own choice with "
        "layer='<module name>'."
    )


def harmless_notes(result: InputLayerResult, chosen: list[str]) -> str | None:
    """INFO lines for what is harmless: steps before the tracked layer, unread targets."""
    notes = [
        f"{result.inputs[reader.input_index].describe()} reaches {reader.name!r} after "
        f"{', '.join(repr(n) for n in reader.via)} (weights per channel or none)"
        for reader in result.readers
        if reader.via and reader.name in chosen
    ]
    notes += [
        f"{result.inputs[index].describe()} is read by no layer (a target)"
        for index in result.unread
        if is_target(result.inputs[index])
    ]
    return "; ".join(notes) if notes else None


def is_target(model_input: ModelInput) -> bool:
    """Whether the input's last key or keyword names a target (`y`, `labels`...)."""
    path = model_input.path
    if not path.endswith("']"):
        return False
    key = path[path.rindex("['") + 2 : -2]
    return key.lower() in TARGET_NAMES


def choose_input_layers(result: InputLayerResult, kind: str) -> tuple[list[str], str | None]:
    """The layers of `kind` that read the model's inputs, and a warning if ambiguous.

    Parameters
    ----------
    result : InputLayerResult
        What `InputLayerProbe` saw.
    kind : {"dense", "conv", "embedding"}
        The tracker's kind.

    Returns
    -------
    names : list of str
        Names of the `kind` modules that read a model input (directly, or
        after harmless modules), in call order (the first is the natural
        choice). If none does, the first `kind` module called in the forward
        pass (a fallback, with a warning); empty if no `kind` module was
        called at all.
    warning : str or None
        None when exactly one `kind` layer reads the inputs and every input
        is read by a layer of `kind` (or is a target). Otherwise one line per
        problem: several readers, an input read by no trackable layer
        (concatenated or transformed first: pass `layer=` and `groups=`), a
        reader of another kind (with the tracker class to use for it), the
        fallback.

    Raises
    ------
    ValueError
        If `kind` is not a tracker kind.
    LayerSelectionError
        If a model input is first read by a module with weights the trackers
        cannot map to its features ([`check_mappable()`][check_mappable]).
    """
    if kind not in MODULE_TYPES:
        raise ValueError(f"kind must be one of {', '.join(MODULE_TYPES)}, got {kind!r}")
    check_mappable(result)
    of_kind = [r for r in result.readers if _reader_kind(r) == kind]
    others = [r for r in result.readers if _reader_kind(r) != kind]
    names = [reader.name for reader in of_kind]
    problems = []
    if len(of_kind) > 1:
        problems.append(
            f"{len(of_kind)} {kind} layers read the model's inputs: {_listing(result, of_kind)}. "
            f"The first, {names[0]!r}, is chosen; pass layer= to choose another, or track "
            "each with its own tracker."
        )
    for reader in others:
        other = _reader_kind(reader)
        problems.append(
            f"layer {reader.name!r} ({type(reader.module).__name__}) reads "
            f"{result.inputs[reader.input_index].describe()} but is a {other} layer: track "
            f"it with {TRACKER_FOR_KIND[other]}(model, layer={reader.name!r})."
        )
    for reader in result.shared:
        problems.append(_shared_problem(result, reader))
    for index in result.unread:
        if is_target(result.inputs[index]):
            continue
        problems.append(
            f"{result.inputs[index].describe()} is read by no trackable layer directly: it "
            "is probably concatenated or transformed before the first layer, so pass layer= "
            "(the layer that receives it) and groups= (which of that layer's input columns "
            "come from it)."
        )
    if not of_kind:
        called = [name for name in result.called if result.kinds.get(name) == kind]
        if called:
            names = [called[0]]
            problems.append(
                f"no {kind} layer reads a model input directly; falling back to {called[0]!r}, "
                f"the first {kind} layer called in the forward pass."
            )
        else:
            seen = ", ".join(repr(name) for name in result.called) or "none"
            problems.append(
                f"no {kind} layer was called in the forward pass (trackable layers called: {seen})."
            )
    warning = "\n".join(f"- {problem}" for problem in problems) if problems else None
    return names, warning


def _shared_problem(result: InputLayerResult, reader: InputReader) -> str:
    """The line for an input read by a layer that already reads another input."""
    first = next(r for r in result.readers if r.module is reader.module)
    this, other = result.inputs[reader.input_index], result.inputs[first.input_index]
    if reader.slots:
        return (
            f"{this.describe()} is read by {reader.name!r} as its "
            f"{'/'.join(reader.slots)}, whose projections are not tracked (the tracked ones "
            f"read {other.describe()}); to score it, name its projection with "
            f"layer=FeatureAxis('{reader.name}.<projection weight>', axis=1)."
        )
    return (
        f"{this.describe()} is read by {reader.name!r}, which also reads "
        f"{other.describe()}: its scores add up both inputs' use of each of its input "
        "features. Track a layer that reads one input only to tell them apart."
    )


def _reader_kind(reader: InputReader) -> str:
    """The tracker kind of a reader: its layer's, or `"dense"` for a per-feature tokenizer."""
    return module_kind(reader.module) or "dense"
