"""fit(): the trainer's epoch loop is a bare PyTorch loop plus per-epoch bookkeeping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ml_contract import ModelSpec
from trainer.device import seed_everything, select_device
from trainer.encoding import FeatureEncoder, LabelCodec
from trainer.fit import EpochMetrics, TensorData, fit
from trainer.hyperparams import Hyperparams
from trainer.model import build_mlp
from trainer.prepared import load_prepared
from trainer.served import TabularModel


def _data(prepared: Path, spec: ModelSpec, device: torch.device) -> TensorData:
    loaded = load_prepared(str(prepared), spec)
    (x_train, y_train), (x_val, y_val) = (
        loaded.encoded(loaded.split(name)) for name in ("train", "val")
    )
    return TensorData.from_numpy(x_train, y_train, x_val, y_val, device)


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


def test_fit_trains_exactly_like_a_bare_loop(prepared: Path, churn_spec: ModelSpec):
    device = select_device()
    data = _data(prepared, churn_spec, device)
    hp = Hyperparams(epochs=2, learning_rate=0.01)
    seen: list[EpochMetrics] = []

    seed_everything(hp.seed)
    ours = build_mlp(data.x_train.shape[1], hp.hidden_sizes, hp.dropout).to(device)
    history = fit(ours, data, hp, on_epoch=seen.append)
    seed_everything(hp.seed)
    bare = build_mlp(data.x_train.shape[1], hp.hidden_sizes, hp.dropout).to(device)
    _bare_loop(bare, data.x_train, data.y_train, hp)

    assert data.x_train.shape[1] == 8  # the churn contract: eight numeric features
    for mine, theirs in zip(ours.state_dict().values(), bare.state_dict().values(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    assert seen == history
    assert [m.epoch for m in history] == [1, 2]
    assert set(history[1].val_scores) == {"val_roc_auc", "val_accuracy"}
    assert history[1].val_scores["val_roc_auc"] > 0.75
    assert history[1].train_loss < history[0].train_loss
    assert history[1].as_mlflow() == {
        "train_loss": history[1].train_loss,
        "val_loss": history[1].val_loss,
        **history[1].val_scores,
    }


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_every_optimizer_learns(prepared: Path, churn_spec: ModelSpec, optimizer: str):
    device = select_device()
    hp = Hyperparams(epochs=3, learning_rate=0.01, optimizer=optimizer, weight_decay=1e-4)
    seed_everything(hp.seed)
    model = build_mlp(8, (16,), 0.0).to(device)

    history = fit(model, _data(prepared, churn_spec, device), hp)

    assert history[-1].val_scores["val_roc_auc"] > 0.75


def _blobs(task: str, rows: int = 600) -> TensorData:
    """Three separable clusters: class index targets, or a value per cluster for regression."""
    rng = np.random.default_rng(0)
    cluster = rng.integers(0, 3, rows)
    x = (rng.normal(0, 0.5, (rows, 2)) + np.array([[0, 3], [3, 0], [-3, -3]])[cluster]).astype(
        np.float32
    )
    y = cluster if task == "multiclass" else (cluster - 1.0).astype(np.float32)
    half = rows // 2
    return TensorData.from_numpy(x[:half], y[:half], x[half:], y[half:], torch.device("cpu"))


@pytest.mark.parametrize(("task", "outputs"), [("multiclass", 3), ("regression", 1)])
def test_fit_uses_the_loss_of_the_task(task: str, outputs: int):
    data = _blobs(task)
    hp = Hyperparams(epochs=15, learning_rate=0.01, batch_size=32)
    seed_everything(hp.seed)
    model = build_mlp(2, (16,), 0.0, outputs=outputs)

    history = fit(model, data, hp, task=task, val_scores=None)

    # Cross-entropy of three classes starts near ln 3; MSE on targets in {-1, 0, 1} near 2/3.
    expected = nn.CrossEntropyLoss() if task == "multiclass" else nn.MSELoss()
    with torch.no_grad():
        logits = model.eval()(data.x_val)
    assert history[-1].val_loss == pytest.approx(float(expected(logits, data.y_val)), rel=1e-5)
    assert history[-1].val_loss < 0.1 < history[0].train_loss
    assert history[-1].val_scores == {}
    if task == "multiclass":
        assert logits.shape == (len(data.y_val), 3)
        assert float((logits.argmax(dim=1) == data.y_val).float().mean()) > 0.95


def test_the_served_model_encodes_raw_rows_and_answers_per_task():
    frame = pd.DataFrame(
        {
            "x": [12.0, 8.0, np.nan],
            "kind": ["a", "b", "zz"],  # zz is no category: all its one-hot columns stay 0
        }
    )
    encoder = FeatureEncoder(("x",), (10.0,), (2.0,), (("kind", ("a", "b")),))
    expected_inputs = torch.tensor(
        [[1.0, 1.0, 0.0], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]  # a null is the train mean: 0
    )
    torch.testing.assert_close(torch.from_numpy(encoder.transform(frame)), expected_inputs)

    binary_net = build_mlp(3, (4,), 0.0)
    binary = TabularModel(binary_net, encoder, LabelCodec("binary", (0, 1)))
    torch.testing.assert_close(
        torch.from_numpy(binary.forward(frame)), torch.sigmoid(binary_net(expected_inputs))
    )
    assert not binary.network.training

    multi_net = build_mlp(3, (4,), 0.0, outputs=3)
    multi = TabularModel(multi_net, encoder, LabelCodec("multiclass", ("p", "q", "r")))
    probabilities = multi.forward(frame)
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)

    # Regression: the network predicts z-scores; the served model answers in label units.
    reg_net = build_mlp(3, (4,), 0.0)
    codec = LabelCodec("regression", (), mean=100.0, scale=20.0)
    predictions = TabularModel(reg_net, encoder, codec).forward(frame)
    with torch.no_grad():
        z = reg_net(expected_inputs).numpy().astype(np.float64)
    np.testing.assert_allclose(predictions, z * 20.0 + 100.0, rtol=1e-6)
    assert predictions.shape == (3,)
