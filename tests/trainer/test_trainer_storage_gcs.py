"""storage: gs:// URIs, read, written and listed for real on a GCS emulator on 127.0.0.1
(STORAGE_EMULATOR_HOST, as on GKE the default credentials would be used instead)."""

from __future__ import annotations

import pytest
from trainer_helpers import GCS_BUCKET

from tests.gcs_emulator import GcsEmulator
from trainer import storage
from trainer.errors import StorageError

BUCKET = GCS_BUCKET  # the `gcs` fixture's (tests/trainer/conftest.py)


def test_objects_another_client_wrote_are_listed_and_read(gcs: GcsEmulator):
    gcs.put(BUCKET, "teams/examples/daily/2026-11-21/part-0.parquet", b"PAR1")
    gcs.put(BUCKET, "teams/examples/daily/2026-11-21/nested/part-1.parquet", b"PAR1")
    folder = f"gs://{BUCKET}/teams/examples/daily/2026-11-21"

    # Only the files directly inside, as for s3:// and local folders.
    assert storage.list_files(folder, ".parquet") == [f"{folder}/part-0.parquet"]
    assert storage.read_bytes(f"{folder}/part-0.parquet") == b"PAR1"


def test_gcs_uris_are_normalised():
    assert storage.normalize("gs://bucket/") == "gs://bucket"
    assert storage.normalize("gs://bucket/a/b/") == "gs://bucket/a/b"
    assert storage.join("gs://bucket/a", "x.json") == "gs://bucket/a/x.json"
    with pytest.raises(
        StorageError, match=r"^gs:///k: no bucket \(expected gs://<bucket>/<key>\)$"
    ):
        storage.normalize("gs:///k")


def test_a_malformed_emulator_address_is_named(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(storage.GCS_EMULATOR_ENV, "127.0.0.1:9023")

    with pytest.raises(StorageError, match="^STORAGE_EMULATOR_HOST '127.0.0.1:9023' must look"):
        storage.read_bytes(f"gs://{BUCKET}/x")
