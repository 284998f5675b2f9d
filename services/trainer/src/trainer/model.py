"""The network: an MLP on standardised features, and the raw-feature model that gets logged.

Only torch is imported here: train.py pickles this module by value into the logged model,
so the model server can load it without the trainer package installed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


class Standardize(nn.Module):
    """(x - mean) / scale with the training split's statistics kept as buffers."""

    def __init__(self, mean: Sequence[float], scale: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(list(scale), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


def build_mlp(n_features: int, hidden_sizes: Sequence[int], dropout: float) -> nn.Sequential:
    """Linear-ReLU-Dropout blocks ending in one logit per row (shape [batch])."""
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers += [nn.Linear(width, 1), nn.Flatten(start_dim=0)]
    return nn.Sequential(*layers)


def raw_feature_model(
    mlp: nn.Module, mean: Sequence[float], scale: Sequence[float]
) -> nn.Sequential:
    """A CPU copy that maps raw (unscaled) features to churn probabilities."""
    deployable = nn.Sequential(Standardize(mean, scale), copy.deepcopy(mlp).cpu(), nn.Sigmoid())
    return deployable.eval()
