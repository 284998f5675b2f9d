"""preprocess: deterministic, disjoint splits; a scaler fitted on train only; its artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from trainer_helpers import file_uri

from trainer import schema
from trainer.preprocess import assign_splits

FEATURES = list(schema.FEATURE_NAMES)


def _ids(folder: Path) -> dict[str, set[int]]:
    return {
        split: set(pd.read_parquet(folder / f"{split}.parquet")["customer_id"])
        for split in ("train", "val", "test")
    }


def test_preprocess_writes_splits_scaler_and_manifest(run_cli, raw_partition: Path, tmp_path):
    output = tmp_path / "prepared"

    result = run_cli("preprocess", "--input-uri", str(raw_partition), "--output-uri", str(output))

    assert result.code == 0, result.stderr
    base = file_uri(output)
    xcom = result.xcom
    assert xcom["data_uri"] == base
    assert [xcom[f"{s}_uri"] for s in ("train", "val", "test")] == [
        f"{base}/{s}.parquet" for s in ("train", "val", "test")
    ]
    assert xcom["scaler_uri"] == f"{base}/scaler.json"
    assert sum(xcom["rows"].values()) == 1500
    assert 0.6 < xcom["rows"]["train"] / 1500 < 0.8
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["source_uri"] == file_uri(raw_partition)
    assert manifest["dataset_version"] == xcom["dataset_version"]
    assert manifest["rows"] == xcom["rows"]
    assert (manifest["seed"], manifest["val_fraction"], manifest["test_fraction"]) == (
        42,
        0.15,
        0.15,
    )
    train = pd.read_parquet(output / "train.parquet")
    assert list(train.columns) == ["customer_id", *FEATURES, "churned"]
    assert all(str(train[name].dtype) == "float32" for name in FEATURES)


def test_splits_are_disjoint_complete_and_deterministic(
    raw_partition: Path, prepared: Path, run_cli, tmp_path
):
    again = tmp_path / "again"
    other_seed = tmp_path / "other-seed"
    run_cli("preprocess", "--input-uri", str(raw_partition), "--output-uri", str(again))
    run_cli(
        "preprocess",
        "--input-uri",
        str(raw_partition),
        "--output-uri",
        str(other_seed),
        "--seed",
        "7",
    )

    ids = _ids(prepared)
    assert ids == _ids(again)
    assert ids != _ids(other_seed)
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    all_ids = set(pd.read_parquet(raw_partition / "data.parquet")["customer_id"])
    assert ids["train"] | ids["val"] | ids["test"] == all_ids
    for split in ("train", "val", "test"):
        assert (prepared / f"{split}.parquet").read_bytes() == (
            again / f"{split}.parquet"
        ).read_bytes()


def test_a_customer_keeps_its_split_whatever_else_is_in_the_data():
    ids = np.arange(1_000_000, 1_020_000, dtype=np.int64)
    full = assign_splits(ids, 42, 0.15, 0.15)
    subset = assign_splits(ids[::7], 42, 0.15, 0.15)

    assert (full[::7] == subset).all()
    shares = {name: (full == name).mean() for name in ("train", "val", "test")}
    assert shares["train"] == pytest.approx(0.70, abs=0.01)
    assert shares["val"] == pytest.approx(0.15, abs=0.01)
    assert shares["test"] == pytest.approx(0.15, abs=0.01)


def test_the_scaler_is_fitted_on_train_only(raw_partition: Path, prepared: Path):
    raw = pd.read_parquet(raw_partition / "data.parquet").set_index("customer_id")
    scaler = json.loads((prepared / "scaler.json").read_text())
    train = pd.read_parquet(prepared / "train.parquet")
    test = pd.read_parquet(prepared / "test.parquet")

    assert scaler["features"] == FEATURES
    raw_train = raw.loc[train["customer_id"], FEATURES]
    np.testing.assert_allclose(scaler["mean"], raw_train.mean().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(scaler["scale"], raw_train.std(ddof=0).to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(train[FEATURES].mean().to_numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(train[FEATURES].std(ddof=0).to_numpy(), 1, atol=1e-4)
    # Test rows use the train statistics, so their means are close to, not exactly, zero.
    assert np.abs(test[FEATURES].mean().to_numpy()).max() > 1e-3
    raw_test = raw.loc[test["customer_id"], FEATURES].to_numpy()
    expected = (raw_test - np.array(scaler["mean"])) / np.array(scaler["scale"])
    np.testing.assert_allclose(test[FEATURES].to_numpy(), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        (["--val-fraction", "0"], 2, "argument --val-fraction: 0 must be between 0 and 1"),
        (["--test-fraction", "1.5"], 2, "argument --test-fraction: 1.5 must be between 0 and 1"),
        (
            ["--val-fraction", "0.5", "--test-fraction", "0.45"],
            1,
            "--val-fraction + --test-fraction must leave at least 10% for training, got 0.95",
        ),
    ],
)
def test_bad_fractions_are_refused(run_cli, raw_partition, tmp_path, capsys, flags, code, message):
    output = tmp_path / "out"
    args = ("preprocess", "--input-uri", str(raw_partition), "--output-uri", str(output), *flags)
    if code == 2:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(*args)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    else:
        result = run_cli(*args)
        assert result.code == 1
        assert result.error_line == f"trainer preprocess: error: {message}"
    assert not output.exists()


def test_output_inside_the_raw_partition_is_refused(run_cli, raw_partition: Path):
    before = sorted(p.name for p in raw_partition.iterdir())

    result = run_cli(
        "preprocess", "--input-uri", str(raw_partition), "--output-uri", str(raw_partition / "p")
    )

    assert result.code == 1
    assert result.error_line == (
        f"trainer preprocess: error: --output-uri {file_uri(raw_partition)}/p must be outside "
        f"--input-uri {file_uri(raw_partition)}"
    )
    assert sorted(p.name for p in raw_partition.iterdir()) == before
