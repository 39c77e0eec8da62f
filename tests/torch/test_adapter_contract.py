"""The adapter contract (``tests/adapter_contract.py``): a PyTorch loop, Lightning, HF, skorch."""

import logging

import numpy as np
import pytest
import torch
from adapter_contract import BATCH, EPOCHS, LR, N_FEATURES, SCORING, check_surface, logged_once
from adapter_contract import planted_data as _planted
from quiet_trainers import quiet_training_arguments
from torch import nn

from neural_feature_importance import VarianceImportanceTorch

OPTIONS = {"scoring": SCORING, "record_history": True}


def _model():
    """A 6-16-1 MLP whose input layer is weight-normed: the tracker puts hooks on it."""
    torch.manual_seed(0)
    first = nn.utils.parametrizations.weight_norm(nn.Linear(N_FEATURES, 16))
    return nn.Sequential(first, nn.Tanh(), nn.Linear(16, 1))


def _tensors():
    x, y = _planted()
    return torch.from_numpy(x), torch.from_numpy(y)


def _hooks_left(model):
    """Forward and backward hooks of every module (none may stay after training)."""
    return sum(
        len(module._forward_hooks)
        + len(module._forward_pre_hooks)
        + len(module._backward_hooks)
        + len(getattr(module, "_backward_pre_hooks", {}))
        for module in model.modules()
    )


def _check_end(model, caplog, adapter, tmp_path, fresh):
    assert _hooks_left(model) == 0
    assert logged_once(caplog) == 1
    return check_surface(adapter, tmp_path, fresh)


def _run_loop(tmp_path, caplog):
    model = _model()
    x, y = _tensors()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    tracker = VarianceImportanceTorch(model, **OPTIONS)
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        tracker.on_train_begin()
        for _ in range(EPOCHS):
            for start in range(0, len(x), BATCH):
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(
                    model(x[start : start + BATCH]), y[start : start + BATCH]
                )
                loss.backward()
                optimizer.step()
                tracker.on_step_end()
            tracker.on_epoch_end()
        assert _hooks_left(model) > 0  # the effective weight's gradient capture
        tracker.on_train_end()
    return model, tracker


def test_pytorch_loop(tmp_path, caplog):
    model, tracker = _run_loop(tmp_path, caplog)
    _check_end(model, caplog, tracker, tmp_path, lambda: _loaded_torch(model))


def _run_lightning(tmp_path, caplog, epochs=EPOCHS, options=None):
    pytest.importorskip("lightning")
    from lightning.pytorch import LightningModule
    from quiet_trainers import quiet_trainer

    from neural_feature_importance import VarianceImportanceLightning

    class Module(LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _model()

        def forward(self, inputs):
            return self.net(inputs)

        def training_step(self, batch, batch_idx):
            inputs, targets = batch
            return nn.functional.mse_loss(self(inputs), targets)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LR)

    module = Module()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*_tensors()), BATCH)
    callback = VarianceImportanceLightning(**(options or OPTIONS))
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        quiet_trainer(tmp_path, epochs, [callback]).fit(module, loader)
    return module, callback


def test_lightning(tmp_path, caplog):
    module, callback = _run_lightning(tmp_path, caplog)
    _check_end(module, caplog, callback, tmp_path, lambda: _loaded_torch(module))


def test_lightning_one_epoch_of_taylor_logs_once_and_leaves_no_hook(tmp_path, caplog):
    # One epoch: no weight variance yet, but taylor's gradient reads are readable.
    module, callback = _run_lightning(tmp_path, caplog, epochs=1, options={"scoring": "taylor"})
    assert _hooks_left(module) == 0
    assert logged_once(caplog) == 1
    assert callback.n_updates_ == 1 and callback.n_gradient_steps_ == 2  # 8 steps, 1 in 4
    assert set(np.argsort(-callback.feature_importances_)[:2].tolist()) == {0, 1}


def _loaded_torch(model):
    """An untrained torch tracker, standing in for a fresh callback (loads the same state)."""
    return VarianceImportanceTorch(model, **OPTIONS)


def _run_hugging_face(tmp_path, caplog):
    transformers = pytest.importorskip("transformers")

    from neural_feature_importance import VarianceImportanceTransformers

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _model()

        def forward(self, x, labels=None):
            prediction = self.net(x)
            return {"loss": nn.functional.mse_loss(prediction, labels), "logits": prediction}

    class Rows(torch.utils.data.Dataset):
        def __init__(self):
            self.x, self.y = _tensors()

        def __len__(self):
            return len(self.x)

        def __getitem__(self, index):
            return {"x": self.x[index], "labels": self.y[index]}

    class InOrder(transformers.Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    model = Model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    args = quiet_training_arguments(
        tmp_path / "run",
        per_device_train_batch_size=BATCH,
        num_train_epochs=EPOCHS,
        max_grad_norm=0.0,
    )
    callback = VarianceImportanceTransformers(**OPTIONS)
    trainer = InOrder(
        model=model,
        args=args,
        train_dataset=Rows(),
        optimizers=(optimizer, schedule),
        callbacks=[callback],
    )
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        trainer.train()
    return model, callback


def test_hugging_face_trainer(tmp_path, caplog):
    model, callback = _run_hugging_face(tmp_path, caplog)
    _check_end(model, caplog, callback, tmp_path, lambda: _loaded_torch(model))


def _run_skorch(tmp_path, caplog):
    pytest.importorskip("skorch")
    from skorch import NeuralNetRegressor

    from neural_feature_importance import VarianceImportanceSkorch

    model = _model()
    x, y = _planted()
    callback = VarianceImportanceSkorch(**OPTIONS)
    net = NeuralNetRegressor(
        model,
        criterion=nn.MSELoss,
        optimizer=torch.optim.SGD,
        lr=LR,
        max_epochs=EPOCHS,
        batch_size=BATCH,
        train_split=None,
        verbose=0,
        callbacks=[callback],
    )
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        net.fit(x, y)
    np.testing.assert_array_equal(net.feature_importances_, callback.feature_importances_)
    return model, callback


def test_skorch(tmp_path, caplog):
    model, callback = _run_skorch(tmp_path, caplog)
    _check_end(model, caplog, callback, tmp_path, lambda: _loaded_torch(model))


def test_the_torch_adapters_agree(tmp_path, caplog):
    """Same data in the same order, same SGD steps: the loop and the callbacks agree."""
    scores = [
        run(tmp_path / run.__name__, caplog)[1].raw_importances_
        for run in (_run_loop, _run_lightning, _run_hugging_face, _run_skorch)
    ]
    assert np.ptp(scores[0]) > 0
    for other in scores[1:]:
        np.testing.assert_allclose(other, scores[0], rtol=1e-4)
