"""preprocess: deterministic, disjoint splits of raw rows; an encoder fitted on train only."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from trainer_helpers import CHURN_SPEC_FILE, SHOP_SPECS, file_uri, shop_frame, write_partition

from ml_contract import Column, ModelSpec, load_spec
from trainer.prepared import load_prepared
from trainer.preprocess import assign_splits, run_preprocess

FEATURES = list(load_spec(CHURN_SPEC_FILE).feature_names)


def _ids(folder: Path) -> dict[str, set[int]]:
    return {
        split: set(pd.read_parquet(folder / f"{split}.parquet")["customer_id"])
        for split in ("train", "val", "test")
    }


def test_preprocess_writes_raw_splits_encoder_spec_and_manifest(
    run_cli, raw_partition: Path, tmp_path, churn_spec: ModelSpec
):
    output = tmp_path / "prepared"

    result = run_cli("preprocess", "--input-uri", str(raw_partition), "--output-uri", str(output))

    assert result.code == 0, result.stderr
    base = file_uri(output)
    xcom = result.xcom
    assert xcom["data_uri"] == base
    assert [xcom[f"{s}_uri"] for s in ("train", "val", "test")] == [
        f"{base}/{s}.parquet" for s in ("train", "val", "test")
    ]
    assert xcom["encoder_uri"] == f"{base}/encoder.json"
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
    assert {k: manifest[k] for k in ("model", "features", "label", "id", "task")} == {
        "model": "churn-classifier",
        "features": FEATURES,
        "label": "churned",
        "id": "customer_id",
        "task": "binary",
    }
    # The spec travels with the data, columns in the spec's order (train falls back on it).
    spec_text = (output / "spec.json").read_text()
    assert json.loads(spec_text) == churn_spec.to_dict()
    assert list(json.loads(spec_text)["dataset"]["columns"]) == list(churn_spec.column_names)
    # The splits keep the raw rows as they came: the logged model takes raw rows too.
    raw = pd.read_parquet(raw_partition / "data.parquet").set_index("customer_id")
    train = pd.read_parquet(output / "train.parquet")
    assert list(train.columns) == ["customer_id", *FEATURES, "churned"]
    pd.testing.assert_frame_equal(
        train.set_index("customer_id"), raw.loc[train["customer_id"]], check_names=False
    )


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


def test_the_encoder_is_fitted_on_train_only(prepared: Path, churn_spec: ModelSpec):
    document = json.loads((prepared / "encoder.json").read_text())
    loaded = load_prepared(str(prepared), churn_spec)
    train, test = loaded.split("train"), loaded.split("test")
    x_train, y_train = loaded.encoded(train)
    x_test, _ = loaded.encoded(test)

    # Every churn feature is numeric (contract_months is an int64 with allowed values).
    assert document["features"]["numeric"] == FEATURES
    assert document["features"]["categorical"] == {}
    assert document["label"] == {"task": "binary", "classes": [0, 1], "mean": 0.0, "scale": 1.0}
    raw_train = train.frame[FEATURES]
    np.testing.assert_allclose(document["features"]["mean"], raw_train.mean().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(
        document["features"]["scale"], raw_train.std(ddof=0).to_numpy(), rtol=1e-9
    )
    assert x_train.dtype == np.float32 and x_train.shape == (len(train.frame), 8)
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x_train.std(axis=0), 1, atol=1e-4)
    np.testing.assert_array_equal(y_train, train.frame["churned"].to_numpy(np.float32))
    # Test rows use the train statistics, so their means are close to, not exactly, zero.
    assert np.abs(x_test.mean(axis=0)).max() > 1e-3
    expected = (test.frame[FEATURES].to_numpy() - np.array(document["features"]["mean"])) / (
        np.array(document["features"]["scale"])
    )
    np.testing.assert_allclose(x_test, expected, atol=1e-5)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_categorical_and_nullable_features_are_encoded_from_the_contract(tmp_path: Path, task: str):
    spec = load_spec(SHOP_SPECS[task])
    raw = write_partition(shop_frame(task, 400, seed=3), tmp_path / "raw")
    run_preprocess(str(raw), str(tmp_path / "prepared"), 42, 0.15, 0.15, spec)
    loaded = load_prepared(str(tmp_path / "prepared"), spec)
    train = loaded.split("train")
    x, y = loaded.encoded(train)
    frame = train.frame

    encoder = loaded.encoder
    assert encoder.numeric == ("size_cm", "visits")
    # One column per category of the contract that the train split holds: violet, which no
    # row holds, gets none (its weights would stay untrained), so it encodes as all zeros.
    assert dict(encoder.categorical) == {
        "color": ("red", "green", "blue"),
        "channel": ("web", "store", "phone"),
        "member": (False, True),
    }
    assert encoder.width == 2 + 3 + 3 + 2 == x.shape[1]
    columns = dict(zip(_encoded_names(encoder), x.T, strict=True))
    assert "color=violet" not in columns
    violet = encoder.transform(frame.head(1).assign(color="violet"))
    unknown = encoder.transform(frame.head(1).assign(color="no-such-color"))
    np.testing.assert_array_equal(violet, unknown)
    for color in ("red", "green", "blue"):
        np.testing.assert_array_equal(columns[f"color={color}"], frame["color"] == color)
    # A missing channel has no one-hot column set; a missing size is the train mean, 0.
    missing_channel = frame["channel"].isna().to_numpy()
    assert missing_channel.any()
    channels = np.column_stack([columns[f"channel={c}"] for c in ("web", "store", "phone")])
    np.testing.assert_array_equal(channels.sum(axis=1), ~missing_channel)
    missing_size = frame["size_cm"].isna().to_numpy()
    assert missing_size.any()
    np.testing.assert_array_equal(columns["size_cm"][missing_size], 0)
    assert encoder.mean[0] == pytest.approx(frame["size_cm"].mean())  # of the present values
    np.testing.assert_array_equal(columns["member=True"], frame["member"])

    labels = frame[spec.label]
    if task == "regression":
        codec = loaded.label_codec
        assert (codec.mean, codec.scale) == pytest.approx((labels.mean(), labels.std(ddof=0)))
        np.testing.assert_allclose(y * codec.scale + codec.mean, labels, rtol=1e-5)
    else:
        # Class indexes in the contract's order (binary: the second class is 1).
        index = {c: i for i, c in enumerate(spec.classes)}
        np.testing.assert_array_equal(y, labels.map(index).to_numpy())
        assert y.dtype == (np.float32 if task == "binary" else np.int64)


def _encoded_names(encoder) -> list[str]:
    names = list(encoder.numeric)
    for name, categories in encoder.categorical:
        names += [f"{name}={category}" for category in categories]
    return names


def _with_string_key(spec: ModelSpec) -> ModelSpec:
    """The shop contract keyed by an order reference such as 'ord-00042'."""
    columns = tuple(
        Column("order_ref", "string") if c.name == spec.key else c for c in spec.columns
    )
    return dataclasses.replace(spec, key="order_ref", columns=columns)


def test_preprocess_splits_on_a_string_key(tmp_path: Path):
    spec = _with_string_key(load_spec(SHOP_SPECS["binary"]))
    frame = shop_frame("binary", 600, seed=4)
    frame = frame.rename(columns={"order_id": "order_ref"})
    frame["order_ref"] = [f"ord-{i:05d}" for i in frame["order_ref"]]
    raw = write_partition(frame, tmp_path / "raw")

    first = run_preprocess(str(raw), str(tmp_path / "a"), 42, 0.15, 0.15, spec)
    run_preprocess(str(raw), str(tmp_path / "b"), 42, 0.15, 0.15, spec)

    refs = {
        split: pd.read_parquet(tmp_path / "a" / f"{split}.parquet")["order_ref"]
        for split in ("train", "val", "test")
    }
    assert all(ref.map(type).eq(str).all() for ref in refs.values())  # still the references
    assert set().union(*map(set, refs.values())) == set(frame["order_ref"])
    assert sum(map(len, refs.values())) == len(frame) == sum(first["rows"].values())
    assert 0.6 < first["rows"]["train"] / len(frame) < 0.8
    for split in ("train", "val", "test"):
        assert (tmp_path / "a" / f"{split}.parquet").read_bytes() == (
            tmp_path / "b" / f"{split}.parquet"
        ).read_bytes()
    # A reference keeps its split whatever else is in the data, and the split is a hash of
    # the text, not of its position: a subset lands where the whole put it.
    keys = frame["order_ref"].to_numpy()
    np.testing.assert_array_equal(
        assign_splits(keys[::5], 42, 0.15, 0.15), assign_splits(keys, 42, 0.15, 0.15)[::5]
    )
    assert not (assign_splits(keys, 42, 0.15, 0.15) == assign_splits(keys, 7, 0.15, 0.15)).all()


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
