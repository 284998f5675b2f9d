"""Training hyperparameters: a plain dataclass, so the CLI can parse them without torch."""

from __future__ import annotations

from dataclasses import dataclass

OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class Hyperparams:
    learning_rate: float = 1e-3
    batch_size: int = 128
    optimizer: str = "adam"
    epochs: int = 20
    hidden_sizes: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    weight_decay: float = 0.0
    seed: int = 42

    def as_params(self) -> dict[str, str | int | float]:
        """Flat values for MLflow params and XCom; hidden_sizes as '64,32'."""
        return {
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "epochs": self.epochs,
            "hidden_sizes": ",".join(str(size) for size in self.hidden_sizes),
            "dropout": self.dropout,
            "weight_decay": self.weight_decay,
            "seed": self.seed,
        }
