"""The fitted feature scaler as a small JSON artifact that training and evaluation share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from trainer import schema, storage
from trainer.errors import TrainerError


@dataclass(frozen=True)
class Scaler:
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> Scaler:
        fitted = StandardScaler().fit(frame[list(schema.FEATURE_NAMES)].to_numpy(np.float64))
        return cls(
            schema.FEATURE_NAMES,
            tuple(float(v) for v in fitted.mean_),
            # StandardScaler already maps zero variance to a scale of 1.
            tuple(float(v) for v in fitted.scale_),
        )

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw feature columns -> standardised float32 matrix, columns in `features` order."""
        raw = frame[list(self.features)].to_numpy(np.float64)
        return ((raw - np.asarray(self.mean)) / np.asarray(self.scale)).astype(np.float32)

    def inverse(self, scaled: pd.DataFrame) -> pd.DataFrame:
        """Standardised feature columns -> raw values; integer columns are rounded back."""
        raw = scaled[list(self.features)].to_numpy(np.float64) * self.scale + np.asarray(self.mean)
        frame = pd.DataFrame(raw, columns=list(self.features), index=scaled.index)
        for column in schema.FEATURES:
            if column.is_integer and column.name in frame:
                frame[column.name] = frame[column.name].round().astype(np.int64)
        return frame

    def to_dict(self) -> dict:
        return {"features": list(self.features), "mean": list(self.mean), "scale": list(self.scale)}

    @classmethod
    def load(cls, uri: str) -> Scaler:
        document = storage.read_json(uri)
        try:
            features = tuple(document["features"])
            mean = tuple(float(v) for v in document["mean"])
            scale = tuple(float(v) for v in document["scale"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainerError(f"{uri}: not a scaler (needs features, mean, scale)") from exc
        if features != schema.FEATURE_NAMES:
            raise TrainerError(f"{uri}: features {list(features)} do not match the schema")
        if len(mean) != len(features) or len(scale) != len(features) or min(scale) <= 0:
            raise TrainerError(f"{uri}: mean and scale must have one positive scale per feature")
        return cls(features, mean, scale)
