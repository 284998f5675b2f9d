"""Where training runs, and the seeding that makes a run repeatable."""

from __future__ import annotations

import random

import numpy as np
import torch


def select_device() -> torch.device:
    """CUDA when a GPU is visible, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device too
    # Cheap determinism: pick fixed cuDNN kernels. (Full torch.use_deterministic_algorithms
    # would need CUBLAS_WORKSPACE_CONFIG set before CUDA starts, and slows some kernels.)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
