"""The plain PyTorch training loop that the tests drive trackers with.

Every step is ``zero_grad()``, forward, loss, ``backward()``, ``step()``,
then ``on_step_end()`` of every tracker; every epoch ends with
``on_epoch_end()`` of every tracker. Loops that test something else (skipped
steps, a ``GradScaler``, gradient accumulation, a call between ``step()`` and
``on_step_end()``, trackers swapped mid-run) stay written out in their tests.

``from training_loops import train`` works from any test: ``tests/conftest.py``
puts this directory on ``sys.path``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn


def train(
    model: nn.Module,
    trackers: object | Iterable[object],
    inputs: torch.Tensor | tuple[torch.Tensor, ...],
    targets: torch.Tensor | None,
    *,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] = nn.functional.mse_loss,
    shuffle: int | torch.Generator | Callable[[int], int] | None = None,
    initial_epoch: int = 0,
    begin: bool = True,
    step_hook: bool = True,
) -> float:
    """Train ``model`` on ``inputs``, driving ``trackers``; return the last step's loss.

    Parameters
    ----------
    model, optimizer
        Called as ``model(*inputs[rows])``; ``optimizer`` steps its parameters.
    trackers
        One tracker or several (a list, a tuple, or a dict's ``values()``), called
        in that order. ``[]`` trains with no tracker.
    inputs, targets
        A tensor or a tuple of tensors (the model's positional inputs), indexed
        by the same rows; ``targets`` may be ``None`` if ``loss`` ignores it.
    epochs, initial_epoch
        As in Keras's ``fit``: the epochs ``initial_epoch, ..., epochs - 1`` run.
    batch_size
        Rows per step; ``None`` makes every step one batch of all rows.
    loss
        ``loss(output, targets[rows])``.
    shuffle
        The order of the rows in each epoch. ``None``: in order, in slices.
        An ``int`` or a ``torch.Generator``: ``torch.randperm(n, generator=g)``
        every epoch from one generator (seeded once with the ``int``).
        A callable: ``torch.randperm`` from a new generator seeded with
        ``shuffle(epoch)`` every epoch, so a resumed run sees the same orders.
    begin
        Call ``on_train_begin()`` of every tracker first (``False`` for a tracker
        the caller has started, e.g. one resumed from a state).
    step_hook
        Call ``on_step_end()`` after every step (``False``: epoch ends only).

    Examples
    --------
    >>> train(model, tracker, x, y, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
    ...       epochs=3, batch_size=16, shuffle=lambda epoch: 100 + epoch)
    """
    followed = [trackers] if hasattr(trackers, "on_epoch_end") else list(trackers)
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    n_rows = len(inputs[0])
    if isinstance(shuffle, int):
        shuffle = torch.Generator().manual_seed(shuffle)
    if begin:
        for tracker in followed:
            tracker.on_train_begin()
    last = torch.tensor(float("nan"))
    for epoch in range(initial_epoch, epochs):
        for rows in _batches(n_rows, batch_size, shuffle, epoch):
            optimizer.zero_grad()
            output = model(*(tensor[rows] for tensor in inputs))
            step_loss = loss(output, None if targets is None else targets[rows])
            step_loss.backward()
            optimizer.step()
            if step_hook:
                for tracker in followed:
                    tracker.on_step_end()
            last = step_loss.detach()
        for tracker in followed:
            tracker.on_epoch_end()
    return last.item()


def _batches(
    n_rows: int,
    batch_size: int | None,
    shuffle: torch.Generator | Callable[[int], int] | None,
    epoch: int,
) -> Iterator[slice | torch.Tensor]:
    """One epoch's rows: slices in order, or the parts of a random permutation."""
    size = n_rows if batch_size is None else batch_size
    if shuffle is None:
        for start in range(0, n_rows, size):
            yield slice(start, start + size)
        return
    generator = shuffle if isinstance(shuffle, torch.Generator) else None
    if generator is None:
        generator = torch.Generator().manual_seed(shuffle(epoch))
    yield from torch.randperm(n_rows, generator=generator).split(size)
