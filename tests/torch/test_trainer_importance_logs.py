"""The trainer callbacks put the importances into the trainer's logs: Lightning and Hugging Face.

Lightning: its ``CSVLogger`` file holds ``importance/<column>`` at every epoch, equal to
the tracker's per-epoch importances. Hugging Face: ``Trainer.log`` carries them into
``state.log_history`` and to every callback's ``on_log`` (the ``report_to`` integrations
come before the user's callbacks), and the TensorBoard integration writes them.
Models are built here and data generated, so nothing is downloaded.
"""

import csv
import logging

import numpy as np
import pytest
import torch
from quiet_trainers import quiet_training_arguments
from torch import nn

EPOCHS = 4


def _columns(n):
    return [f"importance/x{i}" for i in range(n)]


# ---------------------------------------------------------------------------- Lightning
def _lightning_loader():
    x = torch.randn(128, 8, generator=torch.Generator().manual_seed(0))
    y = (3 * x[:, 0] - 2 * x[:, 1]).unsqueeze(1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


@pytest.mark.parametrize("scoring", ["viann", "steady_taylor"])
def test_lightning_csv_logger_holds_every_epochs_importances(tmp_path, scoring):
    pytest.importorskip("lightning")
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import CSVLogger
    from lightning_helpers import Regressor

    from neural_feature_importance import VarianceImportanceLightning

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    options = {"gradient_every": 1} if scoring == "steady_taylor" else {}
    callback = VarianceImportanceLightning(scoring=scoring, log_importances=True, **options)
    logger = CSVLogger(tmp_path, name="run")
    trainer = Trainer(
        max_epochs=EPOCHS,
        callbacks=[callback],
        logger=logger,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Regressor(), _lightning_loader())
    with open(f"{logger.log_dir}/metrics.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("importance/x0")]
    assert [int(row["epoch"]) for row in rows] == list(range(EPOCHS))
    logged = np.array([[float(row[key]) for key in _columns(8)] for row in rows])
    expected = callback.epoch_importances_
    assert expected.shape == (EPOCHS, 8)
    # Lightning logs float32 values.
    np.testing.assert_allclose(logged, expected, rtol=1e-6, atol=1e-7, equal_nan=True)
    assert np.isnan(logged[0]).all() == (scoring == "viann")
    assert float(trainer.callback_metrics["importance/x0"]) == pytest.approx(expected[-1, 0])
    assert set(np.argsort(-callback.feature_importances_)[:2].tolist()) == {0, 1}


def test_lightning_option_is_checked_in_the_constructor():
    pytest.importorskip("lightning")
    from neural_feature_importance import VarianceImportanceLightning

    with pytest.raises(ValueError, match=r"log_importances='all' is not supported"):
        VarianceImportanceLightning(log_importances="all")


# ---------------------------------------------------------------------- Hugging Face
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x, labels=None):
        prediction = self.net(x)
        return {"loss": nn.functional.mse_loss(prediction, labels), "logits": prediction}


class Rows(torch.utils.data.Dataset):
    def __init__(self):
        self.x = torch.randn(64, 6, generator=torch.Generator().manual_seed(0))
        self.y = 3 * self.x[:, :1] - 2 * self.x[:, 1:2]

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return {"x": self.x[index], "labels": self.y[index]}


def _trainer(tmp_path, callbacks, report_to=()):
    transformers = pytest.importorskip("transformers")
    model = MLP()
    args = quiet_training_arguments(
        tmp_path,
        report_to=list(report_to),
        per_device_train_batch_size=16,
        num_train_epochs=EPOCHS,
        learning_rate=0.05,
    )
    return transformers.Trainer(model=model, args=args, train_dataset=Rows(), callbacks=callbacks)


def _on_log_recorder():
    transformers = pytest.importorskip("transformers")

    class OnLogRecorder(transformers.TrainerCallback):
        def __init__(self):
            self.logs = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "importance/x0" in logs:
                self.logs.append(dict(logs))

    return OnLogRecorder()


@pytest.mark.parametrize("scoring", ["viann", "steady_taylor"])
def test_hugging_face_log_history_and_every_on_log_get_the_importances(tmp_path, scoring):
    pytest.importorskip("transformers")
    from neural_feature_importance.torch.huggingface import VarianceImportanceTransformers

    options = {"gradient_every": 1} if scoring == "steady_taylor" else {}
    callback = VarianceImportanceTransformers(scoring=scoring, log_importances=True, **options)
    before, after = _on_log_recorder(), _on_log_recorder()  # integrations come first
    trainer = _trainer(tmp_path, [before, callback, after])
    trainer.train()
    entries = [entry for entry in trainer.state.log_history if "importance/x0" in entry]
    assert [entry["epoch"] for entry in entries] == [1.0, 2.0, 3.0, 4.0]
    assert [entry["step"] for entry in entries] == [4, 8, 12, 16]
    logged = np.array([[entry[key] for key in _columns(6)] for entry in entries])
    np.testing.assert_array_equal(logged, callback.epoch_importances_)
    assert np.isnan(logged[0]).all() == (scoring == "viann")
    for recorder in (before, after):
        assert len(recorder.logs) == EPOCHS
        got = np.array([[logs[key] for key in _columns(6)] for logs in recorder.logs])
        np.testing.assert_array_equal(got, logged)
    assert set(np.argsort(-callback.feature_importances_)[:2].tolist()) == {0, 1}


def test_hugging_face_tensorboard_integration_writes_the_importances(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from neural_feature_importance.torch.huggingface import VarianceImportanceTransformers

    callback = VarianceImportanceTransformers(
        scoring="steady_taylor", gradient_every=1, log_importances=2
    )
    _trainer(tmp_path, [callback], report_to=["tensorboard"]).train()
    (event_file,) = tmp_path.glob("runs/*/events.out.tfevents.*")
    events = EventAccumulator(str(event_file.parent))
    events.Reload()
    tags = [tag for tag in events.Tags()["scalars"] if "importance/" in tag]
    chosen = np.sort(np.argsort(-callback.epoch_importances_[0])[:2])
    assert sorted(tags) == [f"train/importance/x{i}" for i in chosen]
    for i in chosen:
        values = [event.value for event in events.Scalars(f"train/importance/x{i}")]
        np.testing.assert_allclose(values, callback.epoch_importances_[:, i], rtol=1e-6)


def test_hugging_face_option_is_checked_in_the_constructor():
    pytest.importorskip("transformers")
    from neural_feature_importance.torch.huggingface import VarianceImportanceTransformers

    with pytest.raises(ValueError, match=r"log_importances=0 is not supported; use False"):
        VarianceImportanceTransformers(log_importances=0)


def test_hugging_face_without_a_trainer_appends_to_log_history(caplog):
    transformers = pytest.importorskip("transformers")
    from neural_feature_importance.torch.huggingface import VarianceImportanceTransformers

    model = MLP()
    callback = VarianceImportanceTransformers(scoring="viann", log_importances=True)
    args = transformers.TrainingArguments(output_dir="unused", report_to=[], use_cpu=True)
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    with caplog.at_level(logging.WARNING, logger="neural_feature_importance"):
        callback.on_train_begin(args, state, control, model=model)
    assert "not called by a Trainer" in caplog.text
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    rows = Rows()
    for epoch in range(2):
        loss = model(rows.x, rows.y)["loss"]
        loss.backward()
        optimizer.step()
        callback.on_optimizer_step(args, state, control)
        optimizer.zero_grad()
        state.epoch, state.global_step = float(epoch + 1), epoch + 1
        callback.on_epoch_end(args, state, control)
    assert [entry["epoch"] for entry in state.log_history] == [1.0, 2.0]
    np.testing.assert_array_equal(
        [state.log_history[-1][key] for key in _columns(6)], callback.feature_importances_
    )
