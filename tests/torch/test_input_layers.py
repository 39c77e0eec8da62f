import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

from neural_feature_importance.torch.input_choice import choose_input_layers
from neural_feature_importance.torch.input_layers import InputLayerProbe, InputReader
from neural_feature_importance.torch.layers import select_layer


def probe_once(model, *args, **kwargs):
    found = []
    probe = InputLayerProbe(model, on_found=found.append)
    probe.attach()
    model(*args, **kwargs)
    assert len(found) == 1
    assert found[0] is probe.result
    return probe.result


def all_hooks(model):
    return [
        (name, len(m._forward_pre_hooks) + len(m._forward_hooks))
        for name, m in model.named_modules()
        if m._forward_pre_hooks or m._forward_hooks or m._forward_hooks_always_called
    ]


class HeadRegisteredFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(32, 1)
        self.body = nn.Linear(8, 32)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch_a = nn.Linear(3, 8)
        self.branch_b = nn.Linear(5, 8)
        self.head = nn.Linear(16, 1)

    def forward(self, a, b):
        hidden_b = self.branch_b(b)  # called before branch_a: call order != registration
        hidden_a = self.branch_a(a)
        return self.head(torch.cat([hidden_a, hidden_b], dim=1))


class Tabular(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 3)
        self.fc = nn.Linear(4 + 3, 16)
        self.out = nn.Linear(16, 1)

    def forward(self, x_num, x_cat):
        return self.out(torch.relu(self.fc(torch.cat([x_num, self.emb(x_cat)], dim=1))))


class DictInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 2)

    def forward(self, batch):
        return self.fc(batch["x"])


class RaisesAfterFirstLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.fail = True

    def forward(self, x):
        h = self.fc(x)
        if self.fail:
            raise RuntimeError("boom")
        return h


def test_head_registered_first_is_not_taken_for_the_input_layer():
    model = HeadRegisteredFirst()
    assert select_layer(model, None, "dense")[0] == "head"  # registration order is wrong here
    result = probe_once(model, torch.randn(4, 8))
    assert result.readers == [InputReader("body", model.body, 0)]
    assert result.called == ["body", "head"]
    assert result.unread == []
    assert [(i.index, i.path, i.shape) for i in result.inputs] == [(0, "args[0]", (4, 8))]
    assert choose_input_layers(result, "dense") == (["body"], None)


def test_sequential():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    result = probe_once(model, torch.randn(3, 4))
    assert [(r.name, r.input_index) for r in result.readers] == [("0", 0)]
    assert result.called == ["0", "2"]
    assert choose_input_layers(result, "dense") == (["0"], None)


def test_two_branches_are_both_found_in_call_order():
    model = TwoBranches()
    result = probe_once(model, torch.randn(2, 3), b=torch.randn(2, 5))
    assert result.readers == [
        InputReader("branch_b", model.branch_b, 1),
        InputReader("branch_a", model.branch_a, 0),
    ]
    assert [i.path for i in result.inputs] == ["args[0]", "kwargs['b']"]
    assert result.called == ["branch_b", "branch_a", "head"]
    names, warning = choose_input_layers(result, "dense")
    assert names == ["branch_b", "branch_a"]
    assert warning is not None
    assert "2 dense layers read the model's inputs" in warning
    assert "'branch_b' (Linear, reads input 1 (kwargs['b'], shape (2, 5)))" in warning
    assert "'branch_a' (Linear, reads input 0 (args[0], shape (2, 3)))" in warning


def test_tabular_embedding_then_concatenation():
    model = Tabular()
    x_num = torch.randn(5, 4)
    x_cat = torch.randint(0, 10, (5,))
    result = probe_once(model, x_num, x_cat)
    assert result.readers == [InputReader("emb", model.emb, 1)]
    assert result.unread == [0]
    assert result.called == ["emb", "fc", "out"]
    assert result.kinds == {"emb": "embedding", "fc": "dense", "out": "dense"}

    names, warning = choose_input_layers(result, "dense")
    assert names == ["fc"]
    assert "input 0 (args[0], shape (5, 4)) is read by no trackable layer" in warning
    assert "layer= " in warning and "groups=" in warning
    assert "falling back to 'fc', the first dense layer called" in warning
    assert "EmbeddingVarianceImportanceTorch(model, layer='emb')" in warning

    names, warning = choose_input_layers(result, "embedding")
    assert names == ["emb"]
    assert "input 0 (args[0], shape (5, 4))" in warning
    assert "falling back" not in warning


def test_hooks_are_removed_after_one_forward():
    model = TwoBranches()
    assert all_hooks(model) == []
    calls = []
    probe = InputLayerProbe(model, on_found=calls.append)
    probe.attach()
    probe.attach()  # idempotent
    assert probe.attached
    assert all_hooks(model) != []
    model(torch.randn(2, 3), torch.randn(2, 5))
    assert all_hooks(model) == []
    assert not probe.attached
    model(torch.randn(2, 3), torch.randn(2, 5))
    assert len(calls) == 1
    probe.detach()  # idempotent


def test_hooks_are_removed_after_a_forward_that_raises():
    model = RaisesAfterFirstLayer()
    calls = []
    probe = InputLayerProbe(model, on_found=calls.append)
    probe.attach()
    with pytest.raises(RuntimeError, match="boom"):
        model(torch.randn(2, 4))
    assert all_hooks(model) == []
    assert not model._forward_pre_hooks_with_kwargs and not model._forward_hooks_always_called
    assert calls == [] and probe.result is None
    # Attached again, it probes the next forward pass.
    model.fail = False
    probe.attach()
    model(torch.randn(2, 4))
    assert [r.name for r in calls[0].readers] == ["fc"]
    assert all_hooks(model) == []


def test_dict_input():
    model = DictInput()
    result = probe_once(model, {"x": torch.randn(3, 6), "mask": torch.ones(3, dtype=torch.bool)})
    assert result.readers == [InputReader("fc", model.fc, 0)]
    assert [(i.path, i.dtype) for i in result.inputs] == [
        ("args[0]['x']", torch.float32),
        ("args[0]['mask']", torch.bool),
    ]
    assert result.unread == [1]


def test_a_view_of_an_input_is_read_and_a_slice_is_not():
    class Viewing(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 2)
            self.side = nn.Linear(2, 2)

        def forward(self, x, y):
            return self.fc(x.view(x.shape[0], -1)) + self.side(y[:, :2])

    model = Viewing()
    result = probe_once(model, torch.randn(3, 2, 4), torch.randn(3, 5))
    assert [(r.name, r.input_index) for r in result.readers] == [("fc", 0)]
    assert result.unread == [1]


def test_parametrized_input_layer_is_found_and_the_model_itself_can_be_the_layer():
    model = nn.Sequential(parametrizations.weight_norm(nn.Linear(4, 3)), nn.Linear(3, 1))
    result = probe_once(model, torch.randn(2, 4))
    assert [(r.name, r.input_index) for r in result.readers] == [("0", 0)]
    bare = nn.Linear(4, 3)
    result = probe_once(bare, torch.randn(2, 4))
    assert result.readers == [InputReader("", bare, 0)]


def test_on_found_runs_before_the_weights_change():
    model = HeadRegisteredFirst()
    initial = model.body.weight.detach().clone()
    seen = []
    probe = InputLayerProbe(model, on_found=lambda r: seen.append(model.body.weight.clone()))
    probe.attach()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(torch.randn(4, 8)).sum().backward()
    optimizer.step()
    torch.testing.assert_close(seen[0], initial, rtol=0, atol=0)
    assert not torch.equal(model.body.weight, initial)


def test_no_layer_of_the_kind_and_bad_kind():
    model = nn.Sequential(nn.Linear(4, 2))
    result = probe_once(model, torch.randn(2, 4))
    names, warning = choose_input_layers(result, "conv")
    assert names == []
    assert "no conv layer was called in the forward pass (trackable layers called: '0')" in warning
    assert "ConvVarianceImportanceTorch" not in warning
    assert "VarianceImportanceTorch(model, layer='0')" in warning
    with pytest.raises(ValueError, match="kind must be one of"):
        choose_input_layers(result, "recurrent")


def test_a_model_calling_itself_is_probed_as_one_forward_pass():
    class Recursive(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x, depth=1):
            h = self.fc(x)
            return self(torch.tanh(h), depth - 1) if depth else h

    model = Recursive()
    result = probe_once(model, torch.randn(2, 4))
    assert len(result.inputs) == 1  # the inner call's argument is no model input
    assert [(r.name, r.input_index) for r in result.readers] == [("fc", 0)]
    assert all_hooks(model) == []


def test_label_keywords_are_not_inputs():
    """A Hugging Face-style call passes the targets as ``labels=``; no layer reads them."""

    class WithLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(3, 1)

        def forward(self, x, labels=None, num_items_in_batch=None):
            return nn.functional.mse_loss(self.net(x), labels)

    model = WithLoss()
    probe = InputLayerProbe(model)
    probe.attach()
    model(torch.randn(4, 3), labels=torch.randn(4, 1), num_items_in_batch=torch.tensor(4))
    assert probe.result is not None
    assert [i.path for i in probe.result.inputs] == ["args[0]"]
    assert probe.result.unread == []
    assert [reader.name for reader in probe.result.readers] == ["net"]


def test_a_layer_applied_to_two_inputs_is_named_for_both():
    class Siamese(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 1)
            self.shared = nn.Linear(4, 8)

        def forward(self, left, right):
            return self.head(self.shared(left) - self.shared(right))

    model = Siamese()
    result = probe_once(model, torch.randn(2, 4), torch.randn(2, 4))
    assert [(r.name, r.input_index) for r in result.readers] == [("shared", 0)]
    assert [(r.name, r.input_index) for r in result.shared] == [("shared", 1)]
    assert result.unread == []
    names, warning = choose_input_layers(result, "dense")
    assert names == ["shared"]
    assert (
        "input 1 (args[1], shape (2, 4)) is read by 'shared', which also reads input 0 "
        "(args[0], shape (2, 4)): its scores add up both inputs' use of each of its input "
        "features" in warning
    )
    assert "concatenated" not in warning
