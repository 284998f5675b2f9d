"""The network: an MLP on encoded features with one output per logit the task needs.

Only torch is imported here: train.py pickles this module by value into the logged model,
so the model server can load it without the trainer package installed.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def build_mlp(
    n_features: int, hidden_sizes: Sequence[int], dropout: float, outputs: int = 1
) -> nn.Sequential:
    """Linear-ReLU-Dropout blocks ending in one value per row (shape [batch]) or `outputs`."""
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, outputs))
    if outputs == 1:
        layers.append(nn.Flatten(start_dim=0))
    return nn.Sequential(*layers)
