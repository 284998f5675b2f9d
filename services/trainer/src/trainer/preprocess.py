"""Validated raw partition -> deterministic train/val/test splits scaled by train statistics."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from trainer import schema, storage
from trainer.errors import TrainerError
from trainer.scaling import Scaler
from trainer.validation import validate_input

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SCALER_FILE = "scaler.json"
MANIFEST_FILE = "manifest.json"

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash; uint64 arithmetic wraps, which is the point."""
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> np.uint64(31))) & _MASK64


def assign_splits(
    ids: np.ndarray, seed: int, val_fraction: float, test_fraction: float
) -> np.ndarray:
    """'train'/'val'/'test' per id; a given id and seed always land in the same split."""
    salt = _splitmix64(np.array([seed % 2**64], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        hashed = _splitmix64(np.asarray(ids).astype(np.uint64) ^ salt)
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


def run_preprocess(
    input_uri: str, output_uri: str, seed: int, val_fraction: float, test_fraction: float
) -> dict:
    """The preprocess subcommand: validates, splits, scales, writes and returns the XCom."""
    check_fractions(val_fraction, test_fraction)
    input_uri, output_uri = storage.normalize(input_uri), storage.normalize(output_uri)
    if output_uri == input_uri or output_uri.startswith(input_uri + "/"):
        # The splits would land inside the raw partition and be read back as raw data.
        raise TrainerError(f"--output-uri {output_uri} must be outside --input-uri {input_uri}")
    log.info("validating %s before preprocessing", input_uri)
    validation = validate_input(input_uri)
    if not validation.valid:
        raise validation.error()
    frame = validation.frame
    assert frame is not None  # valid implies rows

    split = assign_splits(frame[schema.ID.name].to_numpy(), seed, val_fraction, test_fraction)
    parts = {name: frame[split == name].reset_index(drop=True) for name in SPLITS}
    for name, part in parts.items():
        classes = part[schema.LABEL.name].nunique()
        if classes < 2:
            raise TrainerError(
                f"{input_uri}: the {name} split has {len(part)} row(s) and {classes} class(es); "
                "use more rows or larger split fractions"
            )

    scaler = Scaler.fit(parts["train"])  # train only: val and test stay unseen
    uris = {name: storage.join(output_uri, f"{name}.parquet") for name in SPLITS}
    for name, part in parts.items():
        scaled = pd.DataFrame(scaler.transform(part), columns=list(schema.FEATURE_NAMES))
        scaled.insert(0, schema.ID.name, part[schema.ID.name].to_numpy())
        scaled[schema.LABEL.name] = part[schema.LABEL.name].to_numpy()
        storage.write_parquet(scaled, uris[name])
        log.info("wrote %d %s rows to %s", len(scaled), name, uris[name])

    rows = {name: len(part) for name, part in parts.items()}
    scaler_uri = storage.join(output_uri, SCALER_FILE)
    storage.write_json(scaler.to_dict(), scaler_uri)
    # Written last: a folder with a manifest is complete.
    storage.write_json(
        {
            "source_uri": input_uri,
            "source_files": validation.files,
            "dataset_version": validation.dataset_version,
            "rows": rows,
            "seed": seed,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "features": list(schema.FEATURE_NAMES),
            "label": schema.LABEL.name,
            "id": schema.ID.name,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        storage.join(output_uri, MANIFEST_FILE),
    )
    return {
        "data_uri": output_uri,
        "train_uri": uris["train"],
        "val_uri": uris["val"],
        "test_uri": uris["test"],
        "scaler_uri": scaler_uri,
        "rows": rows,
        "dataset_version": validation.dataset_version,
    }
