"""Validated raw partition -> deterministic train/val/test splits and the encoder fitted on train.

The splits keep the raw rows (key, features, label): the logged model takes raw rows, so
evaluation and team trainers read them as they are. The encoder (scaling, one-hot, label
codes) is fitted on the train split only and written beside them with the spec.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd

from ml_contract import ModelSpec
from trainer import storage
from trainer.encoding import FeatureEncoder, LabelCodec
from trainer.errors import TrainerError
from trainer.specs import PREPARED_SPEC_FILE
from trainer.validation import validate_input

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
ENCODER_FILE = "encoder.json"
MANIFEST_FILE = "manifest.json"

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash; uint64 arithmetic wraps, which is the point."""
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> np.uint64(31))) & _MASK64


def key_hashes(keys: np.ndarray) -> np.ndarray:
    """uint64 per key: integers as they are, strings by their SHA-256 (stable everywhere)."""
    keys = np.asarray(keys)
    if np.issubdtype(keys.dtype, np.integer):
        return keys.astype(np.uint64)
    return np.array(
        [int.from_bytes(hashlib.sha256(str(k).encode()).digest()[:8], "big") for k in keys],
        dtype=np.uint64,
    )


def assign_splits(
    ids: np.ndarray, seed: int, val_fraction: float, test_fraction: float
) -> np.ndarray:
    """'train'/'val'/'test' per id; a given id and seed always land in the same split."""
    salt = _splitmix64(np.array([seed % 2**64], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        hashed = _splitmix64(key_hashes(ids) ^ salt)
    unit = (hashed >> np.uint64(11)).astype(np.float64) / float(2**53)  # uniform in [0, 1)
    return np.where(
        unit < test_fraction, "test", np.where(unit < test_fraction + val_fraction, "val", "train")
    )


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    for flag, value in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0 < value < 1:
            raise TrainerError(f"{flag} must be between 0 and 1 (exclusive), got {value}")
    if val_fraction + test_fraction >= 0.9:
        raise TrainerError(
            f"--val-fraction + --test-fraction must leave at least 10% for training, "
            f"got {val_fraction + test_fraction:g}"
        )


def fit_encoders(spec: ModelSpec, train: pd.DataFrame) -> tuple[FeatureEncoder, LabelCodec]:
    numeric = tuple(c.name for c in spec.features if not c.is_categorical)
    categorical = {c.name: tuple(c.categories or ()) for c in spec.features if c.is_categorical}
    features = FeatureEncoder.fit(train, numeric, categorical)
    labels = LabelCodec.fit(spec.task, train[spec.label], spec.classes)
    return features, labels


def run_preprocess(
    input_uri: str,
    output_uri: str,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    spec: ModelSpec,
    reference: dict[str, Any] | None = None,
) -> dict:
    """The preprocess subcommand: validates (against `reference` too, as validate does),
    splits, fits the encoder, writes the XCom."""
    check_fractions(val_fraction, test_fraction)
    input_uri, output_uri = storage.normalize(input_uri), storage.normalize(output_uri)
    if output_uri == input_uri or output_uri.startswith(input_uri + "/"):
        # The splits would land inside the raw partition and be read back as raw data.
        raise TrainerError(f"--output-uri {output_uri} must be outside --input-uri {input_uri}")
    log.info("validating %s under the %s contract before preprocessing", input_uri, spec.model)
    validation = validate_input(input_uri, spec, reference)
    if not validation.valid:
        raise validation.error()
    frame = validation.frame
    assert frame is not None  # valid implies rows

    split = assign_splits(frame[spec.key].to_numpy(), seed, val_fraction, test_fraction)
    parts = {name: frame[split == name].reset_index(drop=True) for name in SPLITS}
    for name, part in parts.items():
        if part.empty:
            raise TrainerError(
                f"{input_uri}: the {name} split has 0 rows; use more rows or larger split fractions"
            )
        if spec.task == "regression":
            continue
        classes = part[spec.label].nunique()
        if classes < 2:
            raise TrainerError(
                f"{input_uri}: the {name} split has {len(part)} row(s) and {classes} class(es); "
                "use more rows or larger split fractions"
            )

    features, labels = fit_encoders(spec, parts["train"])  # train only: val and test unseen
    uris = {name: storage.join(output_uri, f"{name}.parquet") for name in SPLITS}
    for name, part in parts.items():
        storage.write_parquet(part, uris[name])
        log.info("wrote %d %s rows to %s", len(part), name, uris[name])

    rows = {name: len(part) for name, part in parts.items()}
    encoder_uri = storage.join(output_uri, ENCODER_FILE)
    storage.write_json({"features": features.to_dict(), "label": labels.to_dict()}, encoder_uri)
    # Unsorted, so the columns keep the spec's order.
    storage.write_json(
        spec.to_dict(), storage.join(output_uri, PREPARED_SPEC_FILE), sort_keys=False
    )
    # Written last: a folder with a manifest is complete.
    storage.write_json(
        {
            "model": spec.model,
            "source_uri": input_uri,
            "source_files": validation.files,
            "dataset_version": validation.dataset_version,
            "rows": rows,
            "seed": seed,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "features": list(spec.feature_names),
            "label": spec.label,
            "id": spec.key,
            "task": spec.task,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        storage.join(output_uri, MANIFEST_FILE),
    )
    return {
        "data_uri": output_uri,
        "train_uri": uris["train"],
        "val_uri": uris["val"],
        "test_uri": uris["test"],
        "encoder_uri": encoder_uri,
        "rows": rows,
        "dataset_version": validation.dataset_version,
    }
