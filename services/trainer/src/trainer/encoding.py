"""Raw rows -> the network's float32 inputs and labels, fitted on the train split only.

Numeric features are standardised (a missing value of a nullable column becomes the train
mean, i.e. 0 after scaling); categorical features (string, bool) are one-hot over the
contract's categories that the train split holds: a value the train split never held, or one
outside the contract, encodes as all zeros. The fitted state is a small JSON document:
preprocess writes it, train reads it and bakes it into the logged model.

Only numpy and pandas are imported: train.py pickles this module by value into the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FeatureEncoder:
    numeric: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    categorical: tuple[tuple[str, tuple[Any, ...]], ...]  # (column, its categories)

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, numeric: tuple[str, ...], categorical: dict[str, tuple[Any, ...]]
    ) -> FeatureEncoder:
        mean, scale = [], []
        for name in numeric:
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
            finite = values[np.isfinite(values)]
            centre = float(finite.mean()) if len(finite) else 0.0
            spread = float(finite.std()) if len(finite) else 1.0
            mean.append(centre)
            scale.append(spread if spread > 0 else 1.0)  # constant columns: as StandardScaler
        return cls(
            tuple(numeric),
            tuple(mean),
            tuple(scale),
            # Only categories the train split holds get a column: one it never saw would keep
            # untrained weights, so it encodes as all zeros, like an unknown value.
            tuple(
                (name, tuple(v for v in values if bool((frame[name] == v).any())))
                for name, values in categorical.items()
            ),
        )

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(values) for _, values in self.categorical)

    @property
    def input_columns(self) -> tuple[str, ...]:
        return self.numeric + tuple(name for name, _ in self.categorical)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw feature columns (any order, extra columns ignored) -> [rows, width] float32."""
        rows = len(frame)
        out = np.zeros((rows, self.width), dtype=np.float32)
        if self.numeric:
            raw = np.column_stack(
                [
                    pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
                    for name in self.numeric
                ]
            )
            scaled = (raw - np.asarray(self.mean)) / np.asarray(self.scale)
            out[:, : len(self.numeric)] = np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0)
        column = len(self.numeric)
        for name, categories in self.categorical:
            values = frame[name].to_numpy(dtype=object)
            for category in categories:
                out[:, column] = _equals(values, category)
                column += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "categorical": {name: list(values) for name, values in self.categorical},
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> FeatureEncoder:
        numeric = tuple(document["numeric"])
        mean = tuple(float(v) for v in document["mean"])
        scale = tuple(float(v) for v in document["scale"])
        if len(mean) != len(numeric) or len(scale) != len(numeric) or min(scale, default=1) <= 0:
            raise ValueError("mean and scale need one value per numeric feature, scales > 0")
        categorical = tuple((name, tuple(v)) for name, v in dict(document["categorical"]).items())
        return cls(numeric, mean, scale, categorical)


def _equals(values: np.ndarray, category: Any) -> np.ndarray:
    """1.0 where a value is the category; missing and unknown values match none."""
    return np.asarray(values == category, dtype=np.float32)


@dataclass(frozen=True)
class LabelCodec:
    """Labels <-> training targets: class indexes, or a standardised regression target."""

    task: str
    classes: tuple[Any, ...] = ()
    mean: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(cls, task: str, labels: pd.Series, classes: tuple[Any, ...]) -> LabelCodec:
        if task != "regression":
            return cls(task, tuple(classes))
        values = labels.to_numpy(np.float64)
        spread = float(values.std())
        return cls(task, (), float(values.mean()), spread if spread > 0 else 1.0)

    @property
    def outputs(self) -> int:
        """Network outputs per row: one logit (binary), one per class, or one value."""
        return len(self.classes) if self.task == "multiclass" else 1

    def encode(self, labels: pd.Series) -> np.ndarray:
        """float32 0/1 (binary), int64 class index (multiclass), float32 z-score (regression)."""
        if self.task == "regression":
            return ((labels.to_numpy(np.float64) - self.mean) / self.scale).astype(np.float32)
        index = {value: i for i, value in enumerate(self.classes)}
        codes = np.array([index[v] for v in labels.tolist()], dtype=np.int64)
        return codes.astype(np.float32) if self.task == "binary" else codes

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "classes": list(self.classes),
            "mean": self.mean,
            "scale": self.scale,
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> LabelCodec:
        return cls(
            str(document["task"]),
            tuple(document.get("classes", ())),
            float(document.get("mean", 0.0)),
            float(document.get("scale", 1.0)),
        )
