from __future__ import annotations

import torch
from torch import nn

from maestromotif.rewards.model import NUM_PARAMETERS, CharCNN, RewardEnsemble, RewardNet, count_parameters


def test_parameter_count_matches_method() -> None:
    assert count_parameters(RewardNet()) == NUM_PARAMETERS == 356_993


def test_linear_layers_orthogonal_with_zero_bias() -> None:
    model = RewardNet()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 6
    for layer in linears:
        w = layer.weight.detach()
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        assert torch.allclose(gram, torch.eye(gram.shape[0]), atol=1e-4)
        assert torch.count_nonzero(layer.bias) == 0


def test_char_cnn_output_and_shapes() -> None:
    cnn = CharCNN()
    out = cnn(torch.randint(0, 256, (3, 256), dtype=torch.uint8))
    assert out.shape == (3, 128)
    assert (out >= 0).all()  # ends with ReLU


def test_only_depth_change_matters() -> None:
    torch.manual_seed(0)
    model = RewardNet().eval()
    messages = torch.randint(0, 256, (4, 256), dtype=torch.uint8)
    stats = torch.zeros(4, 5)
    stats[:, 0] = torch.tensor([-1.0, 0.0, 1.0, 1.0])
    noisy = stats.clone()
    noisy[:, 1:] = torch.randn(4, 4)
    with torch.no_grad():
        base = model(messages, stats)
        assert torch.equal(base, model(messages, noisy))
        moved = stats.clone()
        moved[:, 0] = 0.5
        assert not torch.allclose(base, model(messages, moved))


def test_ensemble_is_one_column_per_model() -> None:
    torch.manual_seed(1)
    models = [RewardNet().eval() for _ in range(5)]
    ensemble = RewardEnsemble(models)
    messages = torch.randint(0, 256, (6, 256), dtype=torch.uint8)
    stats = torch.zeros(6, 5)
    with torch.no_grad():
        out = ensemble(messages, stats)
        assert out.shape == (6, 5)
        for k, model in enumerate(models):
            assert torch.allclose(out[:, k], model(messages, stats))
