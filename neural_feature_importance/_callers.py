"""The object whose method called a callback hook (its trainer, or its callback list).

A callback is handed no reference to what calls it: a Keras callback never sees the
`CallbackList` holding it (and so neither the callbacks listed before it nor an
`EarlyStopping` beside it), and a Hugging Face `TrainerCallback` never sees its
`Trainer` (whose `log()` is the one way to reach every `report_to` integration and
`state.log_history`). Both frameworks call the hooks directly from a method of that
object, so it is the `self` of a frame a few calls up the stack. Only used where the
hook cannot do its job otherwise, once per training run, and always with a fallback
when nothing is found (a hook called by hand, or by another loop).
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import TypeVar

T = TypeVar("T")


def calling_instance(kind: type[T], depth: int = 6) -> T | None:
    """The nearest `self` of type `kind` among the `depth` frames above the caller, or `None`.

    Parameters
    ----------
    kind : type
        The class of the object looked for (`keras.callbacks.CallbackList`,
        `transformers.Trainer`).
    depth : int, default=6
        How many frames above the caller to look at.
    """
    frame: FrameType | None = sys._getframe(2)  # the caller's caller: the dispatching method
    for _ in range(depth):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, kind):
            return candidate
        frame = frame.f_back
    return None
