import numpy as np
import torch
from torch import nn
from training_loops import train

from neural_feature_importance import VarianceImportanceTorch


def _train(model, tracker, epochs, data_seed=0, start_epoch=0, begin=True):
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(data_seed))
    y = x[:, :2].sum(dim=1, keepdim=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train(
        model,
        tracker,
        x,
        y,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=16,
        shuffle=lambda epoch: 100 + epoch,
        initial_epoch=start_epoch,
        begin=begin,
    )
    return tracker


def _model():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))


def test_resume_from_torch_save_weights_only_equals_uninterrupted(tmp_path):
    for update_every in (None, 3):
        whole_model = _model()
        whole = _train(
            whole_model, VarianceImportanceTorch(whole_model, update_every=update_every), 8
        )

        model = _model()
        first = _train(model, VarianceImportanceTorch(model, update_every=update_every), 4)
        path = tmp_path / "ckpt.pt"
        torch.save({"model": model.state_dict(), "viann": first.state_dict()}, path)

        checkpoint = torch.load(path, weights_only=True)
        resumed_model = _model()
        resumed_model.load_state_dict(checkpoint["model"])
        resumed = VarianceImportanceTorch(resumed_model, update_every=update_every)
        resumed.load_state_dict(checkpoint["viann"])
        resumed.on_train_begin()  # resumes instead of resetting
        _train(resumed_model, resumed, 8, start_epoch=4, begin=False)

        assert resumed.n_updates_ == whole.n_updates_
        np.testing.assert_array_equal(resumed.feature_importances_, whole.feature_importances_)


def test_npz_state_also_works_for_torch(tmp_path):
    model = _model()
    tracker = _train(model, VarianceImportanceTorch(model, scoring="viann"), 3)
    tracker.save_state(tmp_path / "state.safetensors")
    other = VarianceImportanceTorch(model, scoring="viann")
    other.load_state(tmp_path / "state.safetensors")
    np.testing.assert_array_equal(other.raw_importances_, tracker.raw_importances_)
    assert other.state_dict()["moments"]["m2"].dtype == torch.float64
