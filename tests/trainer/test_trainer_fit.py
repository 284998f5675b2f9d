"""fit(): the trainer's epoch loop is a bare PyTorch loop plus per-epoch bookkeeping."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from trainer.device import seed_everything, select_device
from trainer.fit import EpochMetrics, TensorData, fit
from trainer.hyperparams import Hyperparams
from trainer.model import build_mlp, raw_feature_model
from trainer.prepared import load_prepared


def _data(prepared: Path, device: torch.device) -> TensorData:
    loaded = load_prepared(str(prepared))
    train, val = loaded.split("train"), loaded.split("val")
    return TensorData.from_numpy(train.features, train.labels, val.features, val.labels, device)


def _bare_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, hp: Hyperparams) -> None:
    """What a benchmark compares against: the same steps with nothing else."""
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.learning_rate)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator(device=x.device).manual_seed(hp.seed)
    for _ in range(hp.epochs):
        model.train()
        order = torch.randperm(x.shape[0], generator=generator, device=x.device)
        for start in range(0, x.shape[0], hp.batch_size):
            index = order[start : start + hp.batch_size]
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def test_fit_trains_exactly_like_a_bare_loop(prepared: Path):
    device = select_device()
    data = _data(prepared, device)
    hp = Hyperparams(epochs=2, learning_rate=0.01)
    seen: list[EpochMetrics] = []

    seed_everything(hp.seed)
    ours = build_mlp(8, hp.hidden_sizes, hp.dropout).to(device)
    history = fit(ours, data, hp, on_epoch=seen.append)
    seed_everything(hp.seed)
    bare = build_mlp(8, hp.hidden_sizes, hp.dropout).to(device)
    _bare_loop(bare, data.x_train, data.y_train, hp)

    for mine, theirs in zip(ours.state_dict().values(), bare.state_dict().values(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    assert seen == history
    assert [m.epoch for m in history] == [1, 2]
    assert history[1].val_roc_auc > 0.75
    assert history[1].train_loss < history[0].train_loss


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_every_optimizer_learns(prepared: Path, optimizer: str):
    device = select_device()
    hp = Hyperparams(epochs=3, learning_rate=0.01, optimizer=optimizer, weight_decay=1e-4)
    seed_everything(hp.seed)
    model = build_mlp(8, (16,), 0.0).to(device)

    history = fit(model, _data(prepared, device), hp)

    assert history[-1].val_roc_auc > 0.75


def test_the_raw_feature_model_undoes_the_scaling():
    mlp = build_mlp(2, (4,), 0.0)
    mean, scale = [10.0, -3.0], [2.0, 0.5]
    raw = torch.tensor([[12.0, -3.5], [8.0, -2.0]])

    deployable = raw_feature_model(mlp, mean, scale)

    expected = torch.sigmoid(mlp((raw - torch.tensor(mean)) / torch.tensor(scale)))
    torch.testing.assert_close(deployable(raw), expected)
    assert not deployable.training
