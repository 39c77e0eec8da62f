"""A tracker built without ``scoring=`` uses the recommended mode, in every adapter.

``RECOMMENDED_MODE`` is every constructor's default (and follows the constant if it
changes). Each adapter built without ``scoring=`` trains on planted data and ranks the
informative columns on top. Where a loop gives the default gradient mode no gradient
(the bare core fed snapshots, a PyTorch loop without ``on_step_end()``), the error
comes at the first misuse and names ``scoring="viann"`` / ``"growth"``; a state saved
by VIANN restores as VIANN, never as the default. Keras has its own file
(``tests/keras/test_keras_default_scoring.py``), run on every backend.
"""

import inspect
import logging

import numpy as np
import pytest

from neural_feature_importance import StateDictError, VarianceImportanceBase
from neural_feature_importance.core import (
    RECOMMENDED_MODE,
    ConvVarianceImportanceBase,
    EmbeddingVarianceImportanceBase,
    NotFittedError,
    load_state,
)
from neural_feature_importance.core.modes import get_mode

torch = pytest.importorskip("torch")
from quiet_trainers import quiet_trainer, quiet_training_arguments  # noqa: E402
from torch import nn  # noqa: E402
from training_loops import train  # noqa: E402

from neural_feature_importance import VarianceImportanceTorch  # noqa: E402
from neural_feature_importance.torch import (  # noqa: E402
    ConvVarianceImportanceTorch,
    EmbeddingVarianceImportanceTorch,
)

N_ROWS, N_FEATURES, INFORMATIVE = 512, 8, {0, 1, 2}


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)


def planted(seed=0):
    """Eight standardised columns; the target is a function of the first three only."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(N_ROWS, N_FEATURES, generator=generator)
    y = 2.0 * x[:, 0] - 1.5 * x[:, 1] + torch.sin(2.0 * x[:, 2])
    return x, (y + 0.05 * torch.randn(N_ROWS, generator=generator)).unsqueeze(1)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(N_FEATURES, 32), nn.Tanh(), nn.Linear(32, 1))


def lightning_regressor(make_optimizer):
    """The planted MLP as a ``LightningModule`` with ``make_optimizer(parameters)``."""
    import lightning

    class Regressor(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def training_step(self, batch, batch_idx):
            inputs, targets = batch
            return nn.functional.mse_loss(self.net(inputs), targets)

        def configure_optimizers(self):
            return make_optimizer(self.parameters())

    return Regressor()


class HuggingFaceRegressor(nn.Module):
    """The planted MLP as a Hugging Face ``Trainer`` model: a dict with the loss."""

    def __init__(self):
        super().__init__()
        self.net = mlp()

    def forward(self, x, labels=None):
        prediction = self.net(x)
        return {"loss": nn.functional.mse_loss(prediction, labels), "logits": prediction}


def hugging_face_rows():
    """The planted rows as the ``Trainer``'s dataset of dicts."""
    x, y = planted()
    return [{"x": features, "labels": target} for features, target in zip(x, y, strict=True)]


def assert_informative_on_top(importances):
    """Finite, not constant, and the three informative columns are the top 3."""
    scores = np.asarray(importances, dtype=np.float64)
    assert scores.shape == (N_FEATURES,)
    assert np.isfinite(scores).all() and np.ptp(scores) > 0, scores
    assert set(np.argsort(scores)[::-1][:3].tolist()) == INFORMATIVE, scores


# ------------------------------------------------------------------ the default itself
def test_the_recommended_mode_is_a_gradient_mode_and_every_constructor_defaults_to_it():
    assert get_mode(RECOMMENDED_MODE).needs_gradients
    for cls in (
        VarianceImportanceBase,
        ConvVarianceImportanceBase,
        EmbeddingVarianceImportanceBase,
    ):
        # None is the core's default: the recommended mode, and the snapshot check below.
        assert inspect.signature(cls).parameters["scoring"].default is None
        assert cls().scoring == RECOMMENDED_MODE
    for cls in (
        VarianceImportanceTorch,
        ConvVarianceImportanceTorch,
        EmbeddingVarianceImportanceTorch,
    ):
        assert inspect.signature(cls).parameters["scoring"].default == RECOMMENDED_MODE
    assert VarianceImportanceTorch(mlp()).scoring == RECOMMENDED_MODE


# ---------------------------------------------------------------------- every adapter
def test_bare_core_without_scoring_fed_gradients_ranks_the_planted_columns():
    x, y = planted()
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    core = VarianceImportanceBase(layout="torch")  # numpy statistics, torch's (out, in)
    assert core.scoring == RECOMMENDED_MODE
    core.start(model[0].weight.detach().numpy())
    for _ in range(10):
        for rows in torch.randperm(N_ROWS).split(32):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
            optimizer.step()
            core.update_gradients(model[0].weight.grad.numpy(), model[0].weight.detach().numpy())
        core.update(model[0].weight.detach().numpy())  # after gradients: accepted
        core.end_epoch()
    assert core.n_gradient_steps_ == 10 * N_ROWS // 32
    assert_informative_on_top(core.feature_importances_)


def test_torch_tracker_without_scoring_ranks_the_planted_columns():
    x, y = planted()
    model = mlp()
    tracker = VarianceImportanceTorch(model)
    train(
        model,
        tracker,
        x,
        y,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        epochs=10,
        batch_size=32,
        shuffle=0,
    )
    assert tracker.scoring == RECOMMENDED_MODE and tracker.n_gradient_steps_ > 0
    assert_informative_on_top(tracker.on_train_end())


def test_lightning_callback_without_scoring_ranks_the_planted_columns(tmp_path):
    pytest.importorskip("lightning")
    from neural_feature_importance import VarianceImportanceLightning

    def regressor():
        return lightning_regressor(lambda params: torch.optim.Adam(params, lr=1e-2))

    x, y = planted()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True
    )
    callback = VarianceImportanceLightning()
    assert callback.scoring == RECOMMENDED_MODE
    assert VarianceImportanceLightning(scoring="viann").scoring == "viann"
    assert callback.state_key == callback._state_key_for(RECOMMENDED_MODE)
    quiet_trainer(tmp_path, 10, [callback]).fit(regressor(), loader)
    assert callback.tracker.scoring == RECOMMENDED_MODE
    assert_informative_on_top(callback.feature_importances_)


def test_hugging_face_callback_without_scoring_ranks_the_planted_columns(tmp_path):
    transformers = pytest.importorskip("transformers")
    from neural_feature_importance.torch.huggingface import VarianceImportanceTransformers

    rows = hugging_face_rows()
    callback = VarianceImportanceTransformers("net.0")
    assert callback.scoring == RECOMMENDED_MODE
    assert callback.state_key.endswith(RECOMMENDED_MODE)
    args = quiet_training_arguments(
        tmp_path, per_device_train_batch_size=32, num_train_epochs=10, learning_rate=1e-2
    )
    transformers.Trainer(
        model=HuggingFaceRegressor(), args=args, train_dataset=rows, callbacks=[callback]
    ).train()
    assert callback.tracker.scoring == RECOMMENDED_MODE
    assert_informative_on_top(callback.feature_importances_)


def test_skorch_callback_without_scoring_ranks_the_planted_columns():
    skorch = pytest.importorskip("skorch")
    from neural_feature_importance import VarianceImportanceSkorch

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def forward(self, X):
            return self.net(X)

    x, y = planted()
    callback = VarianceImportanceSkorch()
    assert callback.scoring == RECOMMENDED_MODE
    net = skorch.NeuralNetRegressor(
        Net,
        max_epochs=10,
        lr=1e-2,
        optimizer=torch.optim.Adam,
        batch_size=32,
        train_split=None,
        verbose=0,
        callbacks=[callback],
    ).fit(x.numpy(), y.numpy())
    assert dict(net.callbacks_)["VarianceImportanceSkorch"].tracker_.scoring == RECOMMENDED_MODE
    assert_informative_on_top(net.feature_importances_)


# ------------------------------------------------- a loop written for VIANN: clear errors
def test_bare_core_without_scoring_fed_snapshots_only_raises_at_the_first_snapshot():
    weights = np.random.default_rng(0).normal(size=(3, 2))
    tracker = VarianceImportanceBase()
    tracker.start(weights)
    with pytest.raises(ValueError, match=r"built without scoring=") as info:
        tracker.update(weights + 1.0)
    message = str(info.value)
    assert f"scoring={RECOMMENDED_MODE!r}" in message
    assert "scoring='viann'" in message and "scoring='growth'" in message
    assert "update_gradients" in message
    assert tracker.n_updates_ == 0  # the snapshot was not taken
    # Without start(): the first update() would start tracking; it raises before.
    with pytest.raises(ValueError, match=r"scoring='viann'"):
        VarianceImportanceBase().update(weights)
    # The fix the message names: the same loop with scoring="viann" scores.
    viann = VarianceImportanceBase(scoring="viann")
    viann.start(weights)
    for step in range(3):
        viann.update(weights + step * np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))
    assert int(np.argmax(viann.feature_importances_)) == 0


def test_an_explicit_gradient_mode_fed_snapshots_only_says_how_to_score_from_snapshots():
    """Asked for by name, snapshots first are allowed; reading then names both ways out."""
    weights = np.zeros((3, 2))
    tracker = VarianceImportanceBase(scoring=RECOMMENDED_MODE)
    tracker.start(weights)
    tracker.update(weights)
    tracker.update(weights)
    with pytest.raises(NotFittedError) as info:
        _ = tracker.feature_importances_
    message = str(info.value)
    assert "none was recorded (2 weight snapshot(s) were)" in message
    assert "update_gradients(grad, weights)" in message
    assert "scoring='viann'" in message and "scoring='growth'" in message


def test_torch_loop_without_on_step_end_raises_at_the_first_epochs_end():
    x, y = planted()
    model = mlp()

    def snapshots_only(tracker):
        """A loop written for VIANN: epochs of steps, never on_step_end()."""
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        train(model, tracker, x, y, optimizer=optimizer, epochs=3, batch_size=64, step_hook=False)

    with pytest.raises(ValueError) as info:
        snapshots_only(VarianceImportanceTorch(model))
    message = str(info.value)
    assert "on_step_end()" in message and f"scoring={RECOMMENDED_MODE!r}, the default" in message
    assert "scoring='viann'" in message and "scoring='growth'" in message
    # The same loop with scoring="viann" (snapshots only) scores, as VIANN did by default.
    viann = VarianceImportanceTorch(model, scoring="viann")
    snapshots_only(viann)
    assert viann.n_updates_ == 3 and np.isfinite(viann.feature_importances_).all()


# ------------------------------------------------------- a VIANN state restores as VIANN
def _viann_run():
    x, y = planted()
    model = mlp()
    tracker = VarianceImportanceTorch(model, scoring="viann")
    train(
        model,
        tracker,
        x,
        y,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
        epochs=4,
        batch_size=64,
    )
    return model, tracker


def test_a_saved_viann_state_restores_as_viann_never_as_the_default(tmp_path):
    model, tracker = _viann_run()
    state = tracker.state_dict()
    assert "scoring" not in state  # VIANN's state keeps the layout 1.0 wrote
    tracker.save_state(tmp_path / "viann.safetensors")

    restored = VarianceImportanceBase.from_state(state)
    assert restored.scoring == "viann"
    np.testing.assert_array_equal(restored.raw_importances_, tracker.raw_importances_)
    from_file = VarianceImportanceBase.from_state(load_state(tmp_path / "viann.safetensors"))
    assert from_file.scoring == "viann"
    np.testing.assert_allclose(from_file.raw_importances_, tracker.raw_importances_, rtol=1e-12)

    resumed = VarianceImportanceTorch(model, scoring="viann")
    resumed.load_state(tmp_path / "viann.safetensors")
    np.testing.assert_array_equal(resumed.raw_importances_, tracker.raw_importances_)

    # A tracker left to the default refuses it, naming the fix, and is left as it was.
    default = VarianceImportanceTorch(model)
    with pytest.raises(StateDictError) as info:
        default.load_state_dict(state)
    assert "construct the tracker with scoring='viann'" in str(info.value)
    assert "built without scoring=" in str(info.value)
    assert default.scoring == RECOMMENDED_MODE
    with pytest.raises(StateDictError, match="scoring='viann'"):
        VarianceImportanceBase(layout="torch").load_state_dict(state)


def test_a_lightning_checkpoint_of_viann_resumed_by_the_default_says_so(tmp_path, caplog):
    pytest.importorskip("lightning")
    from neural_feature_importance import VarianceImportanceLightning

    def regressor():
        return lightning_regressor(lambda params: torch.optim.SGD(params, lr=0.05))

    def trainer(epochs, callback):
        return quiet_trainer(tmp_path, epochs, [callback])

    x, y = planted()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    first = trainer(2, VarianceImportanceLightning(scoring="viann"))
    first.fit(regressor(), loader)
    checkpoint = tmp_path / "viann.ckpt"
    first.save_checkpoint(checkpoint)

    default = VarianceImportanceLightning()
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        trainer(4, default).fit(regressor(), loader, ckpt_path=checkpoint)
    assert "holds the state of scoring='viann'" in caplog.text
    assert "Construct the callback with scoring='viann'" in caplog.text
    assert default.tracker.scoring == RECOMMENDED_MODE

    caplog.clear()
    viann = VarianceImportanceLightning(scoring="viann")
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        trainer(4, viann).fit(regressor(), loader, ckpt_path=checkpoint)
    assert "holds the state of scoring='viann'" not in caplog.text
    assert viann.tracker.n_updates_ == 4  # 2 epochs resumed, 2 trained


def test_a_hugging_face_checkpoint_of_viann_resumed_by_the_default_says_so(tmp_path, caplog):
    transformers = pytest.importorskip("transformers")
    from neural_feature_importance.torch.huggingface import VarianceImportanceTransformers

    rows = hugging_face_rows()

    def run(callback, epochs, resume_from=None):
        args = quiet_training_arguments(
            tmp_path,
            save_strategy="epoch",
            per_device_train_batch_size=128,
            num_train_epochs=epochs,
        )
        trainer = transformers.Trainer(
            model=HuggingFaceRegressor(), args=args, train_dataset=rows, callbacks=[callback]
        )
        trainer.train(resume_from_checkpoint=resume_from)

    run(VarianceImportanceTransformers("net.0", scoring="viann"), epochs=1)
    checkpoint = tmp_path / "checkpoint-4"
    assert (checkpoint / "neural_feature_importance_dense-net.0-viann.safetensors").is_file()
    default = VarianceImportanceTransformers("net.0")
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        run(default, epochs=3, resume_from=str(checkpoint))
    assert "no tracker state" in caplog.text
    assert "the state of scoring='viann'" in caplog.text
    assert "construct the callback with scoring='viann'" in caplog.text
    assert default.tracker.scoring == RECOMMENDED_MODE
