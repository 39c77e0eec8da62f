"""The step path never waits on the device: no tensor is read on the host in `on_step_end()`.

A host read (`.item()`, `float()`/`bool()` of a tensor, `.cpu()`, `.numpy()`,
`.tolist()`) makes the host wait for every queued kernel; on a GPU that stalls
the training pipeline at each call. Every such call goes through
`__torch_function__`, so a `TorchFunctionMode` sees it, on the CPU as on a
GPU. After the first step (where the input probe's layer choice is acted on),
`on_step_end()` must make none, on read steps, on fold steps, on steps with a
non-finite gradient and on snapshot steps; the counts reach the host once per
epoch, in `on_epoch_end()`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402

from neural_feature_importance.core.modes import FOLD_EVERY  # noqa: E402
from neural_feature_importance.torch import (  # noqa: E402
    ConvVarianceImportanceTorch,
    EmbeddingVarianceImportanceTorch,
    VarianceImportanceTorch,
)

HOST_READS = frozenset(
    {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu"}
)
"""Tensor methods that bring values to the host (and wait for the device)."""


class HostReads(TorchFunctionMode):
    """Records the torch functions called inside it that read a tensor on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            self.found.append(name)
        elif name == "to" and args[0].device.type != "cpu":
            if any(str(a) == "cpu" for a in (*args[1:], kwargs.get("device"))):
                self.found.append("to(cpu)")  # a copy from the device to the host
        return func(*args, **kwargs)


def _steps_in_epoch(read_every: int) -> int:
    # Enough reads for two folds, and a non-multiple so that reads stay held at the epoch's end.
    return 2 * FOLD_EVERY * read_every + 3


def _train(
    model: nn.Module,
    tracker: Any,
    batches: list[tuple[Any, Any]],
    loss_fn: Any,
    epochs: int = 2,
    nan_at: int | None = None,
) -> list[str]:
    """Train with the tracker; return the host reads made inside on_step_end() after step 1."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    tracker.on_train_begin()
    found: list[str] = []
    step = 0
    for _ in range(epochs):
        for x, y in batches:
            step += 1
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            if step == nan_at:
                # A non-finite gradient the optimizer does not skip (the tracker must).
                first = next(p for p in model.parameters() if p.grad is not None)
                first.grad.view(-1)[0] = float("nan")
                optimizer.step()
                with torch.no_grad():
                    first.view(-1)[0] = 0.0  # keep training finite after that step
            else:
                optimizer.step()
            if step == 1:
                tracker.on_step_end()  # the input probe's layer choice is acted on here
                continue
            with HostReads() as reads:
                tracker.on_step_end()
            found += reads.found
        tracker.on_epoch_end()
    tracker.on_train_end()
    return found


def _dense_problem(n_steps: int) -> tuple[nn.Module, list[tuple[Any, Any]]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 1))
    x = torch.randn(n_steps, 16, 6)
    y = x[..., :1] * 2.0 + 0.1 * torch.randn(n_steps, 16, 1)
    return model, list(zip(x, y, strict=True))


@pytest.mark.parametrize("scoring", ["steady_taylor", "taylor"])
@pytest.mark.parametrize("layer", ["0", None])
def test_dense_tracker_reads_nothing_on_the_host_in_on_step_end(scoring, layer):
    model, batches = _dense_problem(_steps_in_epoch(4))
    tracker = VarianceImportanceTorch(model, layer=layer, scoring=scoring)
    assert _train(model, tracker, batches, nn.functional.mse_loss) == []
    # The reads were all counted once the epochs ended: 2 epochs of 131 steps, 1 read in 4.
    assert tracker.n_gradient_steps_ == 2 * len(range(0, len(batches), 4))
    assert tracker.skipped_gradient_steps_ == 0
    assert np.all(np.isfinite(tracker.raw_importances_))


def test_a_non_finite_read_is_dropped_on_the_device_and_counted_at_the_epoch_end():
    model, batches = _dense_problem(_steps_in_epoch(4))
    tracker = VarianceImportanceTorch(model, layer="0", scoring="steady_taylor")
    # Step 9 is read (steps 1, 5, 9...): its gradient holds a NaN.
    assert _train(model, tracker, batches, nn.functional.mse_loss, nan_at=9) == []
    assert tracker.skipped_gradient_steps_ == 1
    assert tracker.n_gradient_steps_ == 2 * len(range(0, len(batches), 4)) - 1
    assert np.all(np.isfinite(tracker.raw_importances_))


def test_snapshots_every_few_steps_read_nothing_on_the_host():
    # Per-step snapshots, NaN/Inf check deferred to the epoch's end (the default with update_every).
    model, batches = _dense_problem(20)
    tracker = VarianceImportanceTorch(model, layer="0", update_every=5)
    assert _train(model, tracker, batches, nn.functional.mse_loss) == []
    assert tracker.n_updates_ == 2 * 20 // 5


def test_conv_tracker_reads_nothing_on_the_host_in_on_step_end():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 1))
    n_steps = _steps_in_epoch(4)
    x = torch.randn(n_steps, 8, 2, 6, 6)
    y = x[:, :, :1].mean(dim=(2, 3, 4)).unsqueeze(-1)
    tracker = ConvVarianceImportanceTorch(model, scoring="steady_taylor")
    found = _train(model, tracker, list(zip(x, y, strict=True)), nn.functional.mse_loss)
    assert found == []
    assert tracker.filter_importances_.shape == (4,)


@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_tracker_reads_nothing_on_the_host_in_on_step_end(sparse):
    torch.manual_seed(0)

    class Bag(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(30, 4, sparse=sparse)
            self.head = nn.Linear(4, 1)

        def forward(self, tokens: Any) -> Any:
            return self.head(self.embedding(tokens).mean(dim=1))

    model = Bag()
    n_steps = _steps_in_epoch(4)
    tokens = torch.randint(0, 30, (n_steps, 8, 5))
    y = (tokens == 3).float().sum(dim=2, keepdim=True)
    tracker = EmbeddingVarianceImportanceTorch(model, scoring="taylor")
    found = _train(model, tracker, list(zip(tokens, y, strict=True)), nn.functional.mse_loss)
    assert found == []
    assert int(np.argmax(tracker.raw_importances_)) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("scoring", ["steady_taylor", "taylor"])
def test_on_a_gpu_on_step_end_never_synchronises(scoring):
    # CUDA's own check: any synchronising call in on_step_end() raises.
    model, batches = _dense_problem(_steps_in_epoch(4))
    model = model.cuda()
    batches = [(x.cuda(), y.cuda()) for x, y in batches]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    tracker = VarianceImportanceTorch(model, scoring=scoring)
    tracker.on_train_begin()
    for step, (x, y) in enumerate(batches, start=1):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        if step > 1:
            torch.cuda.set_sync_debug_mode("error")
        try:
            tracker.on_step_end()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    tracker.on_epoch_end()
    tracker.on_train_end()
    assert int(np.argmax(tracker.raw_importances_)) == 0


def _record_after_first_call(owner: Any, hook: str, found: list[str]) -> None:
    """Wrap `owner.hook` (on the instance) to record host reads in every call but the first."""
    method = getattr(owner, hook)
    calls = [0]

    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            return method(*args, **kwargs)
        with HostReads() as reads:
            result = method(*args, **kwargs)
        found.extend(reads.found)
        return result

    setattr(owner, hook, recorded)


def test_lightning_callback_reads_nothing_on_the_host_in_its_batch_hook(tmp_path):
    pytest.importorskip("lightning")
    from lightning_helpers import Regressor
    from quiet_trainers import quiet_trainer

    from neural_feature_importance import VarianceImportanceLightning

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32 * (FOLD_EVERY + 5), 8, generator=generator)
    y = (3 * x[:, 0] - 2 * x[:, 1]).unsqueeze(1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    callback = VarianceImportanceLightning(scoring="steady_taylor", gradient_every=1)
    found: list[str] = []
    _record_after_first_call(callback, "on_train_batch_end", found)
    quiet_trainer(tmp_path, 2, [callback]).fit(Regressor(), loader)
    assert found == []
    assert callback.tracker.n_gradient_steps_ == 2 * (FOLD_EVERY + 5)  # a fold every 128 reads
    assert set(np.argsort(callback.feature_importances_)[-2:]) == {0, 1}


def test_hugging_face_callback_reads_nothing_on_the_host_in_its_step_hook(tmp_path):
    transformers = pytest.importorskip("transformers")
    from quiet_trainers import quiet_training_arguments

    from neural_feature_importance.torch.huggingface import VarianceImportanceTransformers

    class Regression(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, x: Any, labels: Any = None) -> dict[str, Any]:
            prediction = self.net(x)
            return {"loss": nn.functional.mse_loss(prediction, labels)}

    class Rows(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.x = torch.randn(
                16 * (FOLD_EVERY + 5), 6, generator=torch.Generator().manual_seed(0)
            )
            self.y = 3 * self.x[:, :1] - 2 * self.x[:, 1:2]

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, index: int) -> dict[str, Any]:
            return {"x": self.x[index], "labels": self.y[index]}

    torch.manual_seed(0)
    model = Regression()
    callback = VarianceImportanceTransformers("net.0", scoring="steady_taylor", gradient_every=1)
    found: list[str] = []
    _record_after_first_call(callback, "on_optimizer_step", found)
    args = quiet_training_arguments(
        tmp_path, per_device_train_batch_size=16, num_train_epochs=1, learning_rate=1e-2
    )
    transformers.Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[callback]).train()
    assert found == []
    assert callback.tracker.n_gradient_steps_ == FOLD_EVERY + 5
    assert set(np.argsort(callback.feature_importances_)[-2:]) == {0, 1}
