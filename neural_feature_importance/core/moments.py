"""Running mean and variance of arrays (shifted Welford, Chan et al. merge).

This is the statistical heart of VIANN: one [`RunningMoments`][] holds, for
every element of a weight array, the number of snapshots seen, their mean and
their sum of squared deviations (M2). Everything is elementwise, so the
statistics do not care which axis of a weight is a feature; the view is applied
when scores are computed ([`neural_feature_importance.core.views`][]).

Numerics: the classic Welford recurrence loses about `kappa * eps` of relative
accuracy, where `kappa = |mean| / std`. Weights change slowly (mean 0.1,
spread 1e-4 is common), so we run Welford on `x - shift` with the first
snapshot as the shift. The subtraction is exact for nearby floats (Sterbenz) and
the recurrence then works on small, well-conditioned numbers: 10,000 updates of
values near 1e4 with spread 1e-3 match `numpy.var(ddof=1)` to about 1e-14
relative, against 1e-9 without the shift.

Only arithmetic operators touch the arrays, so the same code updates numpy
arrays and torch tensors in place, on their own device; see
[`neural_feature_importance.core.arrays`][].
"""

from __future__ import annotations

from typing import Any

from neural_feature_importance.core.arrays import NUMPY_OPS, Array, ArrayOps, check_dtype
from neural_feature_importance.core.errors import NotFittedError, StateDictError

_STATE_KEYS = ("count", "shift", "mean", "m2")


class RunningMoments:
    """Elementwise running mean and variance of a stream of same-shaped arrays.

    Parameters
    ----------
    dtype : {"float64", "float32"}, default="float64"
        Precision of the accumulators.
    ops : ArrayOps, default=NUMPY_OPS
        Array library of the accumulators. Arrays passed to [`update()`][update] must
        belong to it; the accumulators stay on their device.

    Examples
    --------
    >>> import numpy as np
    >>> moments = RunningMoments()
    >>> for x in ([1.0, 2.0], [3.0, 2.0], [5.0, 2.0]):
    ...     moments.update(np.array(x))
    >>> moments.count, moments.variance().tolist()
    (3, [4.0, 0.0])
    """

    def __init__(self, dtype: str = "float64", ops: ArrayOps = NUMPY_OPS) -> None:
        self.dtype = check_dtype(dtype)
        self.ops = ops
        self.reset()

    def reset(self) -> None:
        """Forget every update."""
        self.count = 0
        self._shift: Array | None = None
        self._mean_shifted: Array | None = None
        self._m2: Array | None = None

    @property
    def shape(self) -> tuple[int, ...] | None:
        """Shape of the tracked arrays, or `None` before the first update."""
        return None if self._shift is None else tuple(self._shift.shape)

    def update(self, x: Array) -> None:
        """Add one snapshot `x` (copied; `x` may keep changing afterwards)."""
        if self._shift is None:
            self._shift = self.ops.copy_as(x, self.dtype)
            self._mean_shifted = self.ops.zeros_like(self._shift)
            self._m2 = self.ops.zeros_like(self._shift)
            self.count = 1
            return
        if tuple(x.shape) != self.shape:
            raise ValueError(
                f"update of shape {tuple(x.shape)} does not match the tracked shape "
                f"{self.shape}; call reset() before tracking another array."
            )
        # A temporary, not a kept scratch array: the tracker's memory is then the
        # shift, mean and M2 (plus the last weights), 8x a float32 weight in float64.
        delta = self.ops.copy_as(x, self.dtype)
        delta -= self._shift  # exact for nearby floats (Sterbenz)
        delta -= self._mean_shifted
        self.count += 1
        # Welford: mean += delta / n;  M2 += delta * (x - new_mean) = delta^2 * (n - 1) / n
        self.ops.add_scaled(self._mean_shifted, delta, 1.0 / self.count)
        self.ops.add_scaled_product(self._m2, delta, delta, (self.count - 1) / self.count)

    def merge(self, other: RunningMoments) -> None:
        """Absorb `other`'s snapshots, as if they had been passed to `update`.

        Uses Chan, Golub and LeVeque's parallel formula, so the result equals
        the statistics of the concatenated streams (up to rounding). `other`
        must use the same array library; it is left unchanged.
        """
        if other.count == 0:
            return
        if self.count == 0:
            self.load_state_dict(other.state_dict())
            return
        if other.shape != self.shape:
            raise ValueError(f"cannot merge moments of shape {other.shape} into {self.shape}")
        # Both have snapshots, so their accumulators exist.
        assert self._shift is not None and self._mean_shifted is not None
        assert other._shift is not None and other._mean_shifted is not None
        n_a, n_b = self.count, other.count
        total = n_a + n_b
        other_mean_here = other._mean_shifted + (other._shift - self._shift)
        delta = other_mean_here - self._mean_shifted
        self._mean_shifted += delta * (n_b / total)
        self._m2 += other._m2 + delta * delta * (n_a * n_b / total)
        self.count = total

    @property
    def mean(self) -> Array:
        """Elementwise mean of the snapshots seen so far."""
        self._require(1, "the mean")
        assert self._shift is not None
        return self._shift + self._mean_shifted

    @property
    def m2(self) -> Array:
        """Elementwise sum of squared deviations from the mean (Welford's M2)."""
        self._require(1, "M2")
        return self._m2

    def variance(self, ddof: int = 1) -> Array:
        """Elementwise variance `M2 / (count - ddof)`.

        Parameters
        ----------
        ddof : int, default=1
            Delta degrees of freedom; 1 gives the unbiased sample variance that
            VIANN uses (`numpy.var(..., ddof=1)`).
        """
        self._require(ddof + 1, f"a variance with ddof={ddof}")
        assert self._m2 is not None
        return self._m2 / (self.count - ddof)

    def _require(self, needed: int, what: str) -> None:
        if self.count < needed:
            raise NotFittedError(
                f"{what} needs at least {needed} update(s), but only {self.count} were recorded."
            )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: `count` (int) and three arrays.

        The arrays are the accumulators themselves (not copies) in the
        accumulators' library, so a torch state saves with `torch.save` and
        loads with `weights_only=True`.
        """
        return {
            "count": int(self.count),
            "shift": self._shift,
            "mean": self._mean_shifted,
            "m2": self._m2,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from [`state_dict()`][state_dict] (arrays are copied)."""
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise StateDictError(f"moments state is missing {missing}; expected {_STATE_KEYS}")
        count = int(state["count"])
        if count == 0:
            self.reset()
            return
        self._shift = self.ops.copy_as(state["shift"], self.dtype)
        self._mean_shifted = self.ops.copy_as(state["mean"], self.dtype)
        self._m2 = self.ops.copy_as(state["m2"], self.dtype)
        self.count = count
