"""Reads a preprocess output folder back: the three splits, the scaler and the manifest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainer import schema, storage
from trainer.errors import TrainerError
from trainer.preprocess import MANIFEST_FILE, SCALER_FILE
from trainer.scaling import Scaler


@dataclass(frozen=True)
class Split:
    uri: str
    frame: pd.DataFrame  # customer_id, scaled float32 features, churned

    @property
    def features(self) -> np.ndarray:
        return self.frame[list(schema.FEATURE_NAMES)].to_numpy(np.float32, copy=True)

    @property
    def labels(self) -> np.ndarray:
        return self.frame[schema.LABEL.name].to_numpy(np.float32, copy=True)


@dataclass(frozen=True)
class Prepared:
    data_uri: str
    manifest: dict
    scaler: Scaler

    @property
    def dataset_version(self) -> str:
        return str(self.manifest.get("dataset_version", ""))

    def split(self, name: str) -> Split:
        return load_split(self.data_uri, name)


def load_split(data_uri: str, name: str) -> Split:
    uri = storage.join(data_uri, f"{name}.parquet")
    frame = storage.read_parquet(uri)
    needed = [schema.ID.name, *schema.FEATURE_NAMES, schema.LABEL.name]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise TrainerError(f"{uri}: missing column(s) {', '.join(repr(c) for c in missing)}")
    if frame.empty:
        raise TrainerError(f"{uri}: has 0 rows")
    features = frame[list(schema.FEATURE_NAMES)]
    if not all(pd.api.types.is_float_dtype(t) for t in features.dtypes):
        raise TrainerError(f"{uri}: features must be floats (is this a preprocess output?)")
    if not np.isfinite(features.to_numpy(np.float64)).all():
        raise TrainerError(f"{uri}: features hold NaN or infinite values")
    if not frame[schema.LABEL.name].isin((0, 1)).all():
        raise TrainerError(f"{uri}: column {schema.LABEL.name!r} must hold only 0 and 1")
    return Split(uri, frame[needed])


def load_prepared(data_uri: str) -> Prepared:
    """The manifest and scaler of a preprocess output; splits are read on demand."""
    data_uri = storage.normalize(data_uri)
    manifest_uri = storage.join(data_uri, MANIFEST_FILE)
    manifest = storage.read_json(manifest_uri)
    if not isinstance(manifest, dict) or "dataset_version" not in manifest:
        raise TrainerError(f"{manifest_uri}: not a preprocess manifest (no dataset_version)")
    return Prepared(data_uri, manifest, Scaler.load(storage.join(data_uri, SCALER_FILE)))
