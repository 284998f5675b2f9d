"""gs:// partitions: the sensor and its trigger, against a GCS emulator on 127.0.0.1.

The trigger is run as the triggerer runs it: rebuilt from what it serialized (class path and
keyword arguments), its `run()` iterated on an event loop, with the object landing while it
polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from airflow.sdk.module_loading import import_string

from ml_platform.gcs_partition import (
    EMULATOR_ENV,
    GcsPartitionSensor,
    GcsPartitionTrigger,
    split_uri,
)
from tests.gcs_emulator import GcsEmulator, gcs_emulator

BUCKET = "ml-datasets"
PARTITION = "daily/2026-11-21"
EVENT_WAIT_S = 30.0  # bounded: a trigger that never fires fails the test, it does not hang


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[GcsEmulator]:
    with gcs_emulator() as emulator:
        emulator.create_bucket(BUCKET)
        monkeypatch.setenv(EMULATOR_ENV, emulator.url)
        yield emulator


def _as_the_triggerer_builds_it(trigger: GcsPartitionTrigger) -> Any:
    classpath, kwargs = trigger.serialize()
    return import_string(classpath)(**kwargs)


async def _first_event(trigger: Any, while_polling: Any = None) -> dict[str, Any]:
    """The trigger's first event; `while_polling` (a blocking callable) runs once the
    trigger has had time to poll at least once and find nothing."""
    events = trigger.run()
    first = asyncio.ensure_future(anext(events))
    if while_polling is not None:
        await asyncio.sleep(trigger.poke_interval * 3)
        assert not first.done(), f"fired before the object landed: {first.result()}"
        await asyncio.to_thread(while_polling)
    event = await asyncio.wait_for(first, timeout=EVENT_WAIT_S)
    await events.aclose()
    return event.payload


def test_the_trigger_fires_when_the_partition_lands(gcs: GcsEmulator):
    # Files that are not the partition's Parquet data do not count.
    gcs.put(BUCKET, f"{PARTITION}/_SUCCESS", b"done")  # (the emulator refuses empty bodies)
    gcs.put(BUCKET, f"{PARTITION}/nested/part-9.parquet", b"PAR1")
    gcs.put(BUCKET, "daily/2026-11-20/part-0.parquet", b"PAR1")
    trigger = _as_the_triggerer_builds_it(
        GcsPartitionTrigger(BUCKET, PARTITION, ".parquet", poke_interval=0.2)
    )

    event = asyncio.run(
        _first_event(trigger, lambda: gcs.put(BUCKET, f"{PARTITION}/part-0.parquet", b"PAR1"))
    )

    assert event == {
        "status": "success",
        "objects": [f"gs://{BUCKET}/{PARTITION}/part-0.parquet"],
    }


def test_the_trigger_serializes_to_its_importable_class():
    trigger = GcsPartitionTrigger(BUCKET, PARTITION, ".parquet", poke_interval=120.0)
    classpath, kwargs = trigger.serialize()

    assert classpath == "ml_platform.gcs_partition.GcsPartitionTrigger"
    assert kwargs == {
        "bucket": BUCKET,
        "prefix": PARTITION,
        "suffix": ".parquet",
        "poke_interval": 120.0,
    }
    assert _as_the_triggerer_builds_it(trigger).serialize() == (classpath, kwargs)


def test_a_missing_bucket_is_an_error_event_naming_the_partition(gcs: GcsEmulator):
    trigger = GcsPartitionTrigger("no-such-bucket", PARTITION, poke_interval=0.2)

    event = asyncio.run(_first_event(trigger))

    assert event == {
        "status": "error",
        "message": f"gs://no-such-bucket/{PARTITION}: bucket 'no-such-bucket' does not exist",
    }


def _sensor(**kwargs: Any) -> GcsPartitionSensor:
    return GcsPartitionSensor(
        task_id="wait",
        partition_uri=f"gs://{BUCKET}/{PARTITION}",
        poke_interval=60,
        timeout=timedelta(hours=6).total_seconds(),
        **kwargs,
    )


def test_the_sensor_defers_to_the_trigger_until_its_timeout(gcs: GcsEmulator):
    with pytest.raises(TaskDeferred) as deferred:
        _sensor().execute(context={})

    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(hours=6)
    assert deferred.value.trigger.serialize() == (
        "ml_platform.gcs_partition.GcsPartitionTrigger",
        {"bucket": BUCKET, "prefix": PARTITION, "suffix": ".parquet", "poke_interval": 60.0},
    )


def test_the_sensor_succeeds_without_deferring_when_the_data_is_there(gcs: GcsEmulator):
    gcs.put(BUCKET, f"{PARTITION}/part-0.parquet", b"PAR1")

    assert _sensor().execute(context={}) is None  # no TaskDeferred: nothing left to wait for


def test_the_sensor_resumes_on_the_triggers_events():
    sensor = _sensor()
    objects = [f"gs://{BUCKET}/{PARTITION}/part-0.parquet"]
    sensor.execute_complete(context={}, event={"status": "success", "objects": objects})

    message = f"gs://{BUCKET}/{PARTITION}: cannot list: permission denied"
    with pytest.raises(AirflowException, match=f"^{message}$"):
        sensor.execute_complete(context={}, event={"status": "error", "message": message})


def test_a_missing_bucket_fails_the_sensor_in_the_worker(gcs: GcsEmulator):
    sensor = GcsPartitionSensor(task_id="wait", partition_uri="gs://elsewhere/daily/x")

    with pytest.raises(AirflowException, match="^gs://elsewhere/daily/x: bucket 'elsewhere'"):
        sensor.execute(context={})


def test_partition_uris_are_checked():
    assert split_uri("gs://b/daily/2026-11-21/") == ("b", "daily/2026-11-21")
    with pytest.raises(ValueError, match="^partition 's3://b/x': expected a gs:// URI$"):
        GcsPartitionSensor(task_id="wait", partition_uri="s3://b/x")
    assert GcsPartitionSensor.template_fields == ("partition_uri",)
