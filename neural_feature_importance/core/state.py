"""The state schema: what a tracker's `state_dict()` holds, its version, and its checks.

One tracked weight's state ([`layer_state()`][layer_state]) is a flat dict of plain
values and arrays of the tracker's array library (numpy, or torch tensors),
so that `torch.save(tracker.state_dict())` loads with
`torch.load(..., weights_only=True)` and [`serialization`][] writes it to
a pickle-free file:

`format_version` (int), `kind`, `layout`, `layer_name` (str),
`weight_shape` (list of int; empty before any weight was tracked),
`moments` (VIANN's running moments: `count`, `shift`, `mean`, `m2`;
an empty set for the other modes), `last` (the last snapshot, for the modes
that read it, else `None`) and `checked_updates` (int). The other modes
add `scoring`, `mode` (the mode's own counts and arrays),
`n_snapshots` and, with `finite_check="deferred"`, `unchecked_sum`; a
sharded weight adds `shard`; `record_history=True` adds `history`.
VIANN's layout is the one version 1.0 wrote, so its checkpoints still load;
a state without `scoring` is therefore VIANN's, whatever the trackers' default
`scoring` (restoring one never takes the default).

Several input layers ([`combined`][]) nest one such state per layer under
`layers`, with `layer_names` and `layer_kinds` (newline-separated).
A tracker that recorded per-epoch importances ([`logs`][]: `log_importances=` or
`record_history=True`) adds `epochs`: `raw`, the raw score of every column at the
end of every epoch, `(n_epochs, n_columns)`, NaN where the statistics could not score
yet, and `logged`, the indices of the columns an int `log_importances` logs (or
`None`). Adapters add their own counters beside these keys (`steps`,
`batches_seen`...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from neural_feature_importance.core.errors import VIANN_DEFAULT_STATE, StateDictError
from neural_feature_importance.core.modes import ScoringMode
from neural_feature_importance.core.sharding import WeightShard
from neural_feature_importance.core.views import WeightView

if TYPE_CHECKING:
    from neural_feature_importance.core.statistics import LayerStatistics

STATE_FORMAT_VERSION = 1
"""Version of the schema below; a state of another version is refused with what to do."""

KINDS = ("conv", "dense", "embedding")
"""The kinds of weight a state can hold (see [`WeightView`][])."""

LAYER_KEYS = ("kind", "layout", "layer_name", "weight_shape", "moments", "last")
"""Keys every one-layer state has."""

_EMPTY_MOMENTS: dict[str, Any] = {"count": 0, "shift": None, "mean": None, "m2": None}


def shard_state(shard: WeightShard | None) -> dict[str, Any] | None:
    """A shard's state, or `None` for a whole weight (comparable across trackers)."""
    return None if shard is None else shard.state_dict()


def check_version(state: Any) -> dict[str, Any]:
    """Return `state` if it is a tracker state of a supported version, else raise."""
    if not isinstance(state, dict):
        raise StateDictError(
            f"a tracker state is a dict from state_dict(), not {type(state).__name__}."
        )
    version = state.get("format_version")
    if version is None:
        raise StateDictError(
            "the state has no 'format_version', so it was not written by a tracker's "
            "state_dict()/save_state(); pass the tracker's own state (in a Lightning or "
            "torch checkpoint it is the entry you saved it under)."
        )
    if int(version) != STATE_FORMAT_VERSION:
        raise StateDictError(
            f"state format version {int(version)} is not supported (expected "
            f"{STATE_FORMAT_VERSION}); save it again with this version of the library."
        )
    return state


def layer_state(stats: LayerStatistics) -> dict[str, Any]:
    """The state of one tracked weight (see the module's description)."""
    mode = stats.mode
    mode_state = {} if mode is None else dict(mode.state_dict())
    state: dict[str, Any] = {
        "format_version": STATE_FORMAT_VERSION,
        "kind": stats.kind,
        "layout": stats.layout,
        "layer_name": stats.name or "",
        "weight_shape": list(stats.view.weight_shape) if stats.view else [],
        "moments": mode_state.pop("moments", dict(_EMPTY_MOMENTS)),
        "last": None if mode is None else mode.last,
        "checked_updates": int(stats.checked_updates),
    }
    if stats.record_history and stats.history:
        like = None if mode is None else mode.last
        state["history"] = stats.ops.from_numpy(np.stack(stats.history), like=like)
    if stats.scoring != "viann":
        # Only the other modes add keys: the paper's state stays as 1.0 wrote it.
        state["scoring"] = stats.scoring
        state["mode"] = mode_state
        state["n_snapshots"] = int(stats.n_snapshots)
        if stats.unchecked_sum is not None:
            state["unchecked_sum"] = stats.unchecked_sum
    if stats.shard is not None:
        state["shard"] = stats.shard.state_dict()
    return state


@dataclass
class LoadedLayer:
    """A one-layer state, checked and rebuilt aside from the statistics it will replace."""

    view: WeightView
    shard: WeightShard | None
    name: str | None
    mode: ScoringMode
    n_snapshots: int
    checked_updates: int
    unchecked_sum: Any = None
    history: list[np.ndarray] = field(default_factory=list)


def read_layer_state(
    stats: LayerStatistics,
    state: dict[str, Any],
    expected_shape: tuple[int, ...] | None,
    expected_shard: WeightShard | None,
    expected_name: str | None = None,
) -> LoadedLayer | None:
    """Check a one-layer state against `stats` and rebuild it (`None`: nothing tracked).

    Raises
    ------
    StateDictError
        If the state is incomplete, or of another kind, layout, scoring mode,
        weight shape or sharding; the message names both sides and what to do.
    """
    check_version(state)
    missing = [key for key in LAYER_KEYS if key not in state]
    if missing:
        raise StateDictError(
            f"the state is missing {missing}; it is incomplete or was edited. Load an "
            "unmodified state from state_dict()/save_state()."
        )
    for key, expected in (("kind", stats.kind), ("layout", stats.layout)):
        if state[key] != expected:
            raise StateDictError(
                f"state was saved by a tracker with {key}={state[key]!r}, but "
                f"{stats.owner} has {key}={expected!r}; load it into a tracker "
                f"of the same {key}."
            )
    # No "scoring" key: VIANN's state (see layer_state), never the trackers' default mode.
    scoring = str(state.get("scoring", "viann"))
    if scoring != stats.scoring:
        default = f" ({VIANN_DEFAULT_STATE})" if scoring == "viann" else ""
        raise StateDictError(
            f"state was saved by a tracker with scoring={scoring!r}{default}, but this one "
            f"has scoring={stats.scoring!r}; construct the tracker with scoring={scoring!r}."
        )
    shape = tuple(int(s) for s in state["weight_shape"])
    saved_name = str(state["layer_name"])
    tracked = stats.view.weight_shape if stats.view is not None else expected_shape
    if shape and tracked is not None and shape != tracked:
        raise StateDictError(
            f"the state tracks a weight of shape {shape} (layer {saved_name!r}), but this "
            f"tracker's layer {stats.name or expected_name!r} has a weight of shape "
            f"{tracked}. Load the state into a tracker of the model it was saved from "
            "(pass layer= naming the same layer), or start afresh without loading it."
        )
    if not shape:
        return None
    shard = stats.shard if stats.view is not None else expected_shard
    if shard is not None:
        shard.check_state(state.get("shard"), saved_name)
    elif state.get("shard") is not None:
        raise StateDictError(
            f"the state of layer {saved_name!r} is one process's slice of a "
            "sharded weight, but this tracker tracks a whole weight. Load it in the process "
            "that saved it, under the same sharding."
        )
    view = WeightView(stats.kind, stats.layout, shape)
    mode = stats.mode_class(view, stats.ops, stats.dtype)
    # 1.0 kept VIANN's moments beside every mode's own statistics; the n_snapshots of
    # VIANN's states is the moments' count.
    n_snapshots = int(state.get("n_snapshots", state["moments"]["count"]))
    if scoring == "viann":
        mode_state = {"n_snapshots": n_snapshots, "n_steps": 0, "moments": state["moments"]}
    elif "mode" not in state:
        raise StateDictError(f"state of scoring={scoring!r} has no 'mode' statistics.")
    else:
        mode_state = state["mode"]
    mode.load_state_dict(mode_state)
    if mode.keeps_last and state["last"] is not None:
        mode.last = stats.ops.copy_as(state["last"], stats.dtype)
    arrays = {"last": mode.last, "weights_before": mode.before}
    if scoring == "viann":
        arrays["moments"] = mode.moments.state_dict()["shift"]  # type: ignore[attr-defined]
    for name, array in arrays.items():
        if array is not None and tuple(array.shape) != shape:
            raise StateDictError(
                f"the state's {name!r} array has shape {tuple(array.shape)}, not the "
                f"weight shape {shape} it declares; the state is corrupted."
            )
    history = list(stats.ops.to_numpy(state["history"])) if "history" in state else []
    return LoadedLayer(
        view=view,
        shard=shard,
        name=saved_name or None,
        mode=mode,
        n_snapshots=n_snapshots,
        checked_updates=int(state.get("checked_updates", n_snapshots)),
        unchecked_sum=state.get("unchecked_sum"),
        history=history,
    )


def layers_state(
    kind: str, layout: str, members: dict[str, tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    """The state of several input layers: `members` maps a name to (kind, one-layer state)."""
    return {
        "format_version": STATE_FORMAT_VERSION,
        "kind": kind,
        "layout": layout,
        "layer_names": "\n".join(members),
        "layer_kinds": "\n".join(kind for kind, _ in members.values()),
        "layers": {name: member for name, (_, member) in members.items()},
    }


def read_layers_header(state: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, kind) of every layer of a several-input-layer state, checked for completeness."""
    check_version(state)
    names = str(state["layer_names"]).split("\n")
    kinds = str(state.get("layer_kinds", "")).split("\n")
    if len(kinds) != len(names):
        raise StateDictError(
            f"the state of the layers {names} does not say their kinds; it is incomplete. "
            "Load an unmodified state from state_dict()/save_state()."
        )
    return list(zip(names, kinds, strict=True))
