"""Gradient reads held where the gradient lives, and folded into a mode's sums in blocks.

A gradient mode's per-step formula has a linear part, a reduction of
`gradient * weights` to one value per feature (and per filter), and a
non-linear part: the absolute value, the square, the test that the read is
finite. Done at every read, the non-linear part and the finiteness test are
most of the cost: each is a separate small operation (a kernel launch on a
GPU, a dispatch of some microseconds on a CPU), and the test has to bring a
value to the host, which makes the host wait for the device.

[`HeldReads`][] does the linear part at each read and keeps its result (one
small array per feature, on the gradient's device). Every [`FOLD_EVERY`][]
reads, and whenever the sums are needed, the held reads are folded at once:
stacked into one block, the non-linear terms of every row, a mask that drops
the rows that hold NaN or Inf, the masked sums, and a count of the rows kept.
The count stays on the device too; it reaches the host only when the counts
are read ([`HeldReads.settle()`][HeldReads.settle]), once per epoch in the
trackers. A read is therefore one reduction, and never waits for the device.

Each fold's sums are added to the mode's float64 accumulators.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from neural_feature_importance.core.arrays import Array, ArrayOps

FOLD_EVERY = 128
"""Reads held before they are folded into the float64 sums.

A fold costs about a dozen small operations whatever the number of reads (some
200 microseconds on a CPU right after a training step), so folding 128 reads
at once makes it a fraction of an operation per read. Each fold sums its reads
in the gradient's precision (float32: a relative rounding error below
`128 * 2**-24`, about 8e-6) before the float64 accumulator takes over. At most
128 reads' values per feature (and per filter) are held: 256 KiB for 500
features in float32.
"""

MAX_HELD_VALUES = 1 << 22
"""Most values of one term held before a fold (16 MiB in float32).

A term with many values per read (a 1-million-token embedding table) holds
fewer reads, down to one.
"""


class HeldReads:
    """The reads of one gradient mode not yet in its float64 sums.

    Parameters
    ----------
    ops : ArrayOps
        The array library of the gradient (and of the buffers).
    check_key : str
        The term whose finiteness decides whether a read is kept.
    terms : callable
        The mode's non-linear part: maps `{key: raw}` (one read, or a block
        of reads along a first axis) to `{key: term}`.
    add : callable
        `add(key, sum)` adds the summed terms of a fold to the mode's
        accumulator (in the mode's precision, float64 by default).
    """

    def __init__(
        self,
        ops: ArrayOps,
        check_key: str,
        terms: Callable[[dict[str, Array]], dict[str, Array]],
        add: Callable[[str, Array], None],
    ) -> None:
        self.ops = ops
        self.check_key = check_key
        self._terms = terms
        self._add = add
        self._held: list[dict[str, Array]] = []
        self._capacity = 0
        self._kept: Array | None = None
        self._unsettled = 0

    @property
    def reads(self) -> int:
        """Reads not yet settled into the host-side counts (known without a sync)."""
        return self._unsettled

    def hold(self, raw: dict[str, Array]) -> None:
        """Keep one read's linear terms (`{key: array}`); fold when enough are held.

        The arrays are kept as they are, not copied, until the fold: they must
        be new arrays, never views of the live gradient or weights (the modes'
        reductions always are).
        """
        if not self._capacity:
            widest = max(int(np.prod(value.shape)) for value in raw.values())
            self._capacity = max(1, min(FOLD_EVERY, MAX_HELD_VALUES // max(widest, 1)))
        self._held.append(raw)
        self._unsettled += 1
        if len(self._held) >= self._capacity:
            self.fold()

    def fold(self) -> None:
        """Add the held reads' terms to the running sums, dropping reads with NaN or Inf."""
        held = self._held
        if not held:
            return
        self._held = []
        ops = self.ops
        blocks = {key: self._block([raw[key] for raw in held]) for key in held[0]}
        terms = self._terms(blocks)
        kept = ops.finite_rows(terms[self.check_key])
        for key, term in terms.items():
            self._add(key, ops.masked_row_sum(term, kept))
        count = ops.count(kept)
        self._kept = count if self._kept is None else self._kept + count

    def _block(self, arrays: list[Array]) -> Array:
        """The held arrays of one key as one block, in float32 at least.

        Half-precision reads are widened before their terms are formed: a
        square of a finite half-precision term may overflow, and sums of them
        lose the ranking.
        """
        block = self.ops.stack(arrays)
        exact = str(block.dtype).endswith(("float32", "float64"))
        return block if exact else self.ops.copy_as(block, "float32")

    def settle(self) -> tuple[int, int]:
        """Fold, and return `(kept, skipped)` reads since the last settle (one host sync)."""
        self.fold()
        if not self._unsettled:
            return 0, 0
        assert self._kept is not None
        kept = int(self.ops.to_numpy(self._kept))
        skipped = self._unsettled - kept
        self._kept = None
        self._unsettled = 0
        return kept, skipped

    def clear(self) -> None:
        """Forget every held read."""
        self._held = []
        self._kept = None
        self._unsettled = 0
