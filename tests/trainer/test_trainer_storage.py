"""storage: URIs for local paths and s3:// (moto's S3 server on 127.0.0.1); what holds for
s3:// and gs:// alike runs on both (`object_store`); the rest of gs:// in
test_trainer_storage_gcs.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from trainer import storage
from trainer.errors import StorageError


def test_parquet_and_json_round_trip_over_an_object_store(object_store: str):
    frame = pd.DataFrame({"customer_id": [1, 2, 3], "monthly_charges": [10.5, 20.0, 30.25]})
    folder = f"{object_store}/datasets/daily/2026-11-21"
    uri = f"{folder}/data.parquet"

    storage.write_parquet(frame, uri)
    storage.write_json({"valid": True}, storage.join(folder, "_validation.json"))

    pd.testing.assert_frame_equal(storage.read_parquet(uri), frame)
    assert storage.read_json(f"{folder}/_validation.json") == {"valid": True}
    assert storage.is_dir(folder) and storage.exists(uri) and not storage.is_dir(uri)
    assert storage.list_files(folder, ".parquet") == [uri]
    assert storage.list_files(f"{folder}/") == [f"{folder}/_validation.json", uri]


def test_a_missing_object_names_the_uri(object_store: str):
    folder = f"{object_store}/datasets/daily/2026-01-01"
    uri = f"{folder}/data.parquet"

    with pytest.raises(StorageError) as error:
        storage.read_parquet(uri)

    assert str(error.value) == f"{uri}: not found"
    assert not storage.exists(uri)
    # An object store lists a missing folder as empty: storage still says it is not there.
    with pytest.raises(StorageError) as error:
        storage.list_files(folder)
    assert str(error.value) == f"{folder}: not found"


def test_corrupt_parquet_on_an_object_store_names_the_uri(object_store: str):
    uri = f"{object_store}/broken.parquet"
    storage.write_bytes(b"PAR1 but not really", uri)

    with pytest.raises(StorageError, match=r"^(s3|gs)://.*/broken\.parquet: not a readable"):
        storage.read_parquet(uri)


def test_the_cli_generates_and_validates_on_an_object_store(run_cli, object_store: str):
    partition = f"{object_store}/datasets/daily/2026-11-21"

    generated = run_cli(
        "generate", "--date", "2026-11-21", "--output-uri", partition, "--rows", "300"
    )
    validated = run_cli("validate", "--input-uri", partition)

    assert generated.code == 0, generated.stderr
    assert generated.xcom["uri"] == f"{partition}/data.parquet"
    assert validated.code == 0, validated.stderr
    assert validated.xcom["report_uri"] == f"{partition}/_validation.json"
    assert storage.read_json(validated.xcom["report_uri"])["valid"] is True


def test_local_uris_are_normalised(tmp_path: Path):
    assert storage.normalize(str(tmp_path / "a" / ".." / "b/")) == f"file://{tmp_path}/b"
    assert storage.normalize(f"file://{tmp_path}/b/") == f"file://{tmp_path}/b"
    assert storage.join(f"file://{tmp_path}", "x.json") == f"file://{tmp_path}/x.json"
    with pytest.raises(StorageError, match="^hdfs://b/k: unsupported URI scheme 'hdfs'"):
        storage.normalize("hdfs://b/k")
    with pytest.raises(StorageError, match="^file://host/x: file:// URIs must be absolute"):
        storage.normalize("file://host/x")


def test_local_writes_are_atomic_and_reads_name_the_file(tmp_path: Path):
    target = tmp_path / "nested" / "data.json"
    storage.write_json({"a": 1}, str(target))
    assert storage.read_json(f"file://{target}") == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["data.json"]  # no temporary left

    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StorageError, match=rf"^file://{tmp_path}/bad\.json: not valid JSON"):
        storage.read_json(str(tmp_path / "bad.json"))
    with pytest.raises(StorageError, match=rf"^file://{tmp_path}: is a folder, expected a file"):
        storage.read_bytes(str(tmp_path))
