"""Which layer of a Keras model a VIANN callback tracks.

VIANN scores the *input features* of a network, so by default the callbacks
track the first layer that learns from the inputs: the first trainable
`Dense`, `Conv1D/2D/3D` or `Embedding` layer, or a recurrent or attention
layer that reads the inputs (`LSTM`, `GRU`, `SimpleRNN`, `Bidirectional`,
`MultiHeadAttention`, whose input kernels are read as one Dense kernel
`(in_features, units)`, see `_weights`). Layers in front of it that
only transform the inputs are skipped:

* input layers, normalisation (`Normalization`, `BatchNormalization`, ...),
  `Rescaling` and dropout / noise layers,
* frozen layers (`layer.trainable = False`), whose weights never change,
* layers without weights (`Flatten`, `Reshape`, pooling, ...), and layers
  whose trainable weights are all 1-D (a per-feature scale or shift).

The original package tracked "the first layer that has weights", which picked
a `BatchNormalization` (1-D weights: `AxisError` at the end of training) or
a frozen `Dense` (all-zero importances).

If the first learning layer is of a type the callbacks cannot read (a
transposed convolution, a custom layer, ...), scores of a later layer would
not be input-feature importances, so selection stops there with an error that
says how to choose a layer, or a
[`FeatureAxis`][neural_feature_importance.core.FeatureAxis] of that layer,
explicitly.

Where the layers are searched depends on the model:

* **Sequential** models (nested ones too) are searched in `model.layers`
  order, which is their call order.
* **Functional** models are searched in *graph order* from their inputs:
  `find_input_layers()` walks the graph forward from every `Input`, in
  `model.inputs` order, through the layers above and merge layers
  (`Concatenate`, `Add`, ...), and stops at the first learning layer on
  every path (`model.layers` is ordered by distance to the *outputs*, which
  need not be the order in which the inputs are read). With one Input, the
  first of these readers is tracked, or refused as above. With several, the
  first reader of the tracker's kind is tracked (an `Embedding` or `LSTM`
  branch on another Input does not stop the search), and where its scores do
  not cover every Input one by one (another layer reads some Input first, or
  the layer reads Inputs through a concatenation) the choice is logged as a
  warning (`LayerChoice.caveat`) that names the Inputs tracked and not,
  and says to pass `layer=` and `groups=`.
* **Subclassed** models have no graph (their `call` is Python code), so
  they are searched in *call order*: the model is called once on a symbolic
  batch (`_trace`), and the first learning layer that receives its input
  is taken. The chosen layer's number of inputs is then checked against the
  model input's last dimension (or its flattened size), and a mismatch is an
  error that says to pass `layer=`: a head assigned first in `__init__` is
  never scored as if it read the inputs. If the call cannot be traced, the
  layers are taken in the order `__init__` assigned them, with the same
  check. Nested models inside a functional graph are searched in their
  `model.layers` order.
"""

# The parts: _kinds (layer classes per tracker kind, skipped layers, describe),
# _graph (the walk of a functional graph from its Inputs), _selection (the choice
# of the tracked layer, default or explicit, and its errors), _trace (the call order of a
# subclassed model), _subclassed (its default choice and width check), _weights (the
# variables read from a layer: one kernel, or a group read as one).
from neural_feature_importance.keras.layers._graph import (
    InputLayers,
    InputReader,
    find_input_layers,
    input_name,
)
from neural_feature_importance.keras.layers._kinds import (
    ATTENTION,
    BIDIRECTIONAL,
    MERGES,
    RECURRENT,
    SKIPPED,
    TRACKABLE,
    TRACKER_FOR_KIND,
    WEIGHT_ATTRIBUTE,
    all_built,
    describe,
    iter_layers,
    kind_of,
)
from neural_feature_importance.keras.layers._selection import (
    LayerChoice,
    LayerSpec,
    check_layer_spec,
    explicit_kind,
    explicit_layers,
    independent_input_layers,
    select_layer,
)
from neural_feature_importance.keras.layers._subclassed import weight_for
from neural_feature_importance.keras.layers._trace import CallTrace, trace_calls
from neural_feature_importance.keras.layers._weights import (
    TrackedWeight,
    WeightPart,
    weight_of,
)

__all__ = [
    "ATTENTION",
    "BIDIRECTIONAL",
    "MERGES",
    "RECURRENT",
    "SKIPPED",
    "TRACKABLE",
    "TRACKER_FOR_KIND",
    "WEIGHT_ATTRIBUTE",
    "CallTrace",
    "InputLayers",
    "InputReader",
    "LayerChoice",
    "LayerSpec",
    "TrackedWeight",
    "WeightPart",
    "all_built",
    "check_layer_spec",
    "describe",
    "explicit_kind",
    "explicit_layers",
    "find_input_layers",
    "independent_input_layers",
    "input_name",
    "iter_layers",
    "kind_of",
    "select_layer",
    "trace_calls",
    "weight_for",
    "weight_of",
]
