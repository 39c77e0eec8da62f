"""States as version 1.0 saved them (``.npz`` archives), for the tests that load them."""

import numpy as np


def legacy_npz(state, prefix=""):
    """A state flattened as version 1.0 wrote it to .npz: type tags in the entry names."""
    flat = {}
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(legacy_npz(value, f"{name}/"))
        elif value is None:
            flat[f"{name}::none"] = np.array("__none__")
        elif isinstance(value, bool | int):
            flat[f"{name}::int"] = np.array(int(value), dtype=np.int64)
        elif isinstance(value, str):
            flat[f"{name}::str"] = np.array(value)
        elif isinstance(value, list):
            flat[f"{name}::list"] = np.array(value, dtype=np.int64)
        else:
            flat[name] = np.asarray(value)
    return flat
