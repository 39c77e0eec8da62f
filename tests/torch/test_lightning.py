import numpy as np
import pytest
import torch

lightning = pytest.importorskip("lightning")
from lightning_helpers import Regressor  # noqa: E402
from quiet_trainers import quiet_trainer  # noqa: E402

from neural_feature_importance import VarianceImportanceLightning, VarianceImportanceTorch  # noqa: E402


def _loader():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=generator)
    y = (3 * x[:, 0] - 2 * x[:, 1]).unsqueeze(1)
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=False)


def test_lightning_callback_tracks_input_features(tmp_path):
    viann = VarianceImportanceLightning()
    quiet_trainer(tmp_path, 6, [viann]).fit(Regressor(), _loader())
    scores = viann.feature_importances_
    assert scores.shape == (8,)
    assert set(np.argsort(scores)[::-1][:2]) == {0, 1}
    assert viann.tracker.tracked_layer_name_ == "net.0"
    assert viann.tracker.n_updates_ == 6


def test_lightning_equals_manual_loop(tmp_path):
    viann = VarianceImportanceLightning(update_every=2)
    module = Regressor()
    quiet_trainer(tmp_path, 3, [viann]).fit(module, _loader())

    manual_module = Regressor()
    tracker = VarianceImportanceTorch(manual_module, update_every=2)
    optimizer = manual_module.configure_optimizers()
    tracker.on_train_begin()
    for _ in range(3):
        for batch_idx, batch in enumerate(_loader()):
            optimizer.zero_grad()
            manual_module.training_step(batch, batch_idx).backward()
            optimizer.step()
            tracker.on_step_end()
        tracker.on_epoch_end()
    assert viann.tracker.n_updates_ == tracker.n_updates_ == 12
    np.testing.assert_allclose(viann.raw_importances_, tracker.raw_importances_, rtol=1e-6)


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    whole = VarianceImportanceLightning()
    quiet_trainer(tmp_path / "a", 6, [whole]).fit(Regressor(), _loader())

    first = VarianceImportanceLightning()
    trainer = quiet_trainer(tmp_path / "b", 3, [first])
    trainer.fit(Regressor(), _loader())
    ckpt = tmp_path / "half.ckpt"
    trainer.save_checkpoint(ckpt)
    checkpoint = torch.load(ckpt, weights_only=True)  # no pickle needed for our state
    assert first.state_key in checkpoint["callbacks"]

    resumed = VarianceImportanceLightning()
    quiet_trainer(tmp_path / "c", 6, [resumed]).fit(Regressor(), _loader(), ckpt_path=ckpt)
    assert resumed.tracker.n_updates_ == 6
    np.testing.assert_allclose(resumed.feature_importances_, whole.feature_importances_, rtol=1e-10)


def test_unfitted_callback_raises():
    from neural_feature_importance import NotFittedError

    with pytest.raises(NotFittedError, match=r"call trainer\.fit"):
        _ = VarianceImportanceLightning().feature_importances_


def test_two_callbacks_coexist_and_each_resumes_its_own_state(tmp_path):
    def pair():
        return VarianceImportanceLightning(scoring="taylor"), VarianceImportanceLightning(
            scoring="viann"
        )

    whole = pair()
    quiet_trainer(tmp_path / "a", 6, list(whole)).fit(Regressor(), _loader())

    first = pair()
    assert first[0].state_key != first[1].state_key
    trainer = quiet_trainer(tmp_path / "b", 3, list(first))
    trainer.fit(Regressor(), _loader())
    ckpt = tmp_path / "half.ckpt"
    trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=True)["callbacks"]
    assert saved[first[0].state_key]["scoring"] == "taylor"
    assert "scoring" not in saved[first[1].state_key]  # viann's state is the paper's

    resumed = pair()
    quiet_trainer(tmp_path / "c", 6, list(resumed)).fit(Regressor(), _loader(), ckpt_path=ckpt)
    for done, again in zip(whole, resumed, strict=True):
        assert again.tracker.n_updates_ == 6
        np.testing.assert_allclose(again.raw_importances_, done.raw_importances_, rtol=1e-12)


def test_a_feature_axis_names_the_callbacks_state_key():
    from neural_feature_importance import FeatureAxis

    named = VarianceImportanceLightning(layer=FeatureAxis("net.mix", axis=1), scoring="taylor")
    other = VarianceImportanceLightning(layer=FeatureAxis("net.other", axis=1), scoring="taylor")
    assert "net.mix" in named.state_key and "net.other" in other.state_key
    assert named.state_key != other.state_key
