"""Reads a preprocess output folder back: the raw splits, the fitted encoder and the manifest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_contract import ModelSpec
from trainer import storage
from trainer.encoding import FeatureEncoder, LabelCodec
from trainer.errors import TrainerError
from trainer.preprocess import ENCODER_FILE, MANIFEST_FILE


@dataclass(frozen=True)
class Split:
    uri: str
    frame: pd.DataFrame  # raw rows: key, features, label
    spec: ModelSpec

    @property
    def features(self) -> pd.DataFrame:
        """The raw feature columns, as the logged model takes them."""
        return self.frame[list(self.spec.feature_names)]

    @property
    def labels(self) -> np.ndarray:
        return self.frame[self.spec.label].to_numpy()

    @property
    def keys(self) -> np.ndarray:
        return self.frame[self.spec.key].to_numpy()


@dataclass(frozen=True)
class Prepared:
    data_uri: str
    manifest: dict
    spec: ModelSpec
    encoder: FeatureEncoder
    label_codec: LabelCodec

    @property
    def dataset_version(self) -> str:
        return str(self.manifest.get("dataset_version", ""))

    def split(self, name: str) -> Split:
        return load_split(self.data_uri, name, self.spec)

    def encoded(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """The network's inputs and targets for a split."""
        labels = split.frame[self.spec.label]
        return self.encoder.transform(split.features), self.label_codec.encode(labels)


def load_split(data_uri: str, name: str, spec: ModelSpec) -> Split:
    uri = storage.join(data_uri, f"{name}.parquet")
    frame = storage.read_parquet(uri)
    needed = [spec.key, *spec.feature_names, spec.label]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise TrainerError(f"{uri}: missing column(s) {', '.join(repr(c) for c in missing)}")
    if frame.empty:
        raise TrainerError(f"{uri}: has 0 rows")
    if spec.task != "regression":
        unknown = set(frame[spec.label].unique().tolist()) - set(spec.classes)
        if unknown:
            raise TrainerError(
                f"{uri}: column {spec.label!r} holds {sorted(map(str, unknown))[:3]}, "
                f"not among the classes {list(spec.classes)}"
            )
    elif not np.isfinite(frame[spec.label].to_numpy(np.float64)).all():
        raise TrainerError(f"{uri}: column {spec.label!r} holds NaN or infinite values")
    return Split(uri, frame[needed], spec)


def load_prepared(data_uri: str, spec: ModelSpec) -> Prepared:
    """The manifest and encoder of a preprocess output made under `spec`; splits on demand."""
    data_uri = storage.normalize(data_uri)
    manifest_uri = storage.join(data_uri, MANIFEST_FILE)
    manifest = storage.read_json(manifest_uri)
    if not isinstance(manifest, dict) or "dataset_version" not in manifest:
        raise TrainerError(f"{manifest_uri}: not a preprocess manifest (no dataset_version)")
    if (
        list(manifest.get("features", [])) != list(spec.feature_names)
        or manifest.get("label") != spec.label
    ):
        raise TrainerError(
            f"{manifest_uri}: prepared for features {manifest.get('features')} and label "
            f"{manifest.get('label')!r}, but the spec of {spec.model} has "
            f"{list(spec.feature_names)} and {spec.label!r}: preprocess again under this spec"
        )
    encoder_uri = storage.join(data_uri, ENCODER_FILE)
    document = storage.read_json(encoder_uri)
    try:
        encoder = FeatureEncoder.from_dict(document["features"])
        codec = LabelCodec.from_dict(document["label"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainerError(f"{encoder_uri}: not an encoder document ({exc})") from None
    if codec.task != spec.task:
        raise TrainerError(
            f"{encoder_uri}: fitted for a {codec.task} task, the spec says {spec.task}"
        )
    return Prepared(data_uri, manifest, spec, encoder, codec)
