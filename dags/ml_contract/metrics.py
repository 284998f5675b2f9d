"""Which metrics each task has, and which way is better: the one table both sides read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    bounds: tuple[float, float] | None  # the metric's possible values, when bounded

    def better(self, a: float, b: float) -> float:
        """How much better `a` is than `b` (positive = better), whatever the direction."""
        return a - b if self.higher_is_better else b - a

    def meets(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.higher_is_better else value <= threshold

    @property
    def bar_word(self) -> str:
        return "at least" if self.higher_is_better else "at most"


_CLASSIFICATION = {
    "roc_auc": Metric("roc_auc", True, (0.0, 1.0)),
    "accuracy": Metric("accuracy", True, (0.0, 1.0)),
    "f1": Metric("f1", True, (0.0, 1.0)),
    "log_loss": Metric("log_loss", False, (0.0, float("inf"))),
}
_REGRESSION = {
    "rmse": Metric("rmse", False, (0.0, float("inf"))),
    "mae": Metric("mae", False, (0.0, float("inf"))),
    "r2": Metric("r2", True, (float("-inf"), 1.0)),
}
METRICS: dict[str, dict[str, Metric]] = {
    "binary": _CLASSIFICATION,
    "multiclass": _CLASSIFICATION,
    "regression": _REGRESSION,
}


def metrics_for(task: str) -> dict[str, Metric]:
    """The metrics a task's models are scored with (train logs all; the spec picks one)."""
    return METRICS[task]
