"""gs:// partitions: a deferrable sensor and the trigger it defers to, listing GCS with pyarrow.

Why not the Google provider's GCS sensors: they would bring apache-airflow-providers-google
and its dependency tree into the platform's environment for one listing call. pyarrow's
GcsFileSystem, which the trainer reads datasets with too, lists a prefix with the process's
default credentials: on GKE the component's Workload Identity, no key anywhere.

The triggerer imports the trigger by its path, ml_platform.gcs_partition.GcsPartitionTrigger.
On GCP the DAG bundle is not on the triggerer's sys.path, so infra mounts this file (with the
package's __init__.py) into the triggerer alone: it must import nothing else of ml_platform.

STORAGE_EMULATOR_HOST (http://host:port), the variable Google's own clients honour, points
the listing at a GCS emulator, anonymously (tests and local runs).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
# pyarrow retries transient GCS errors (5xx, timeouts) for at most this long per call.
RETRY_LIMIT = timedelta(seconds=30)
TRIGGER_CLASSPATH = "ml_platform.gcs_partition.GcsPartitionTrigger"
SHOWN_OBJECTS = 5  # objects named in the success event, enough to see what arrived


class GcsPartitionError(Exception):
    """The partition cannot be looked at (no such bucket, no access, bad URI)."""


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix) of gs://bucket/prefix; the prefix without slashes at either end."""
    parsed = urlparse(uri)
    if parsed.scheme != "gs" or not parsed.netloc:
        raise GcsPartitionError(f"{uri}: expected gs://<bucket>/<prefix>")
    return parsed.netloc, parsed.path.strip("/")


def gcs_filesystem() -> Any:
    """pyarrow's GCS filesystem: default credentials, or the emulator in STORAGE_EMULATOR_HOST.
    pyarrow is imported here, not at parse time: DAG files never pay for it."""
    import pyarrow.fs as pafs

    options: dict[str, Any] = {"retry_time_limit": RETRY_LIMIT}
    emulator = os.environ.get(EMULATOR_ENV)
    if emulator:
        parsed = urlparse(emulator)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise GcsPartitionError(f"{EMULATOR_ENV}={emulator!r} must look like http://host:port")
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme, anonymous=True)
    return pafs.GcsFileSystem(**options)


def find_objects(bucket: str, prefix: str, suffix: str) -> list[str]:
    """gs:// URIs of the objects directly under the prefix whose names end with `suffix`,
    sorted; [] while there are none. A missing bucket or a refused listing raises
    GcsPartitionError with one line naming the partition."""
    import pyarrow.fs as pafs

    where = f"gs://{bucket}/{prefix}"
    try:
        filesystem = gcs_filesystem()
        listing = pafs.FileSelector(f"{bucket}/{prefix}".rstrip("/"), allow_not_found=True)
        found = sorted(
            info.path
            for info in filesystem.get_file_info(listing)
            if info.type == pafs.FileType.File and info.base_name.endswith(suffix)
        )
        # GCS lists a missing bucket as empty: say so rather than wait for it for hours.
        if not found and filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise GcsPartitionError(f"{where}: bucket {bucket!r} does not exist")
    except OSError as exc:
        raise GcsPartitionError(f"{where}: cannot list: {_one_line(exc)}") from exc
    return [f"gs://{path}" for path in found]


class GcsPartitionTrigger(BaseTrigger):
    """Fires once an object ending with `suffix` is directly under gs://bucket/prefix: a
    success event with the first objects found, or an error event naming the partition."""

    def __init__(
        self, bucket: str, prefix: str, suffix: str = ".parquet", poke_interval: float = 60.0
    ) -> None:
        super().__init__()
        self.bucket = bucket
        self.prefix = prefix
        self.suffix = suffix
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            TRIGGER_CLASSPATH,
            {
                "bucket": self.bucket,
                "prefix": self.prefix,
                "suffix": self.suffix,
                "poke_interval": self.poke_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The listing blocks (pyarrow): in a thread, so the triggerer's loop keeps serving
        # its other triggers.
        while True:
            try:
                found = await asyncio.to_thread(find_objects, self.bucket, self.prefix, self.suffix)
            except GcsPartitionError as exc:
                yield TriggerEvent({"status": "error", "message": str(exc)})
                return
            if found:
                yield TriggerEvent({"status": "success", "objects": found[:SHOWN_OBJECTS]})
                return
            await asyncio.sleep(self.poke_interval)


class GcsPartitionSensor(BaseSensorOperator):
    """Waits for `*<suffix>` objects directly under a gs:// partition (templated). Deferrable:
    one look in the worker, then the triggerer polls every poke_interval until `timeout`,
    when the task fails as a sensor timeout."""

    template_fields = ("partition_uri",)

    def __init__(
        self,
        *,
        partition_uri: str,
        suffix: str = ".parquet",
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not partition_uri.startswith("gs://"):
            raise ValueError(f"partition {partition_uri!r}: expected a gs:// URI")
        self.partition_uri = partition_uri
        self.suffix = suffix
        self.deferrable = deferrable

    def _look(self) -> list[str]:
        try:
            return find_objects(*split_uri(self.partition_uri), self.suffix)
        except GcsPartitionError as exc:
            raise AirflowException(str(exc)) from exc

    def poke(self, context: Any) -> bool:
        found = self._look()
        if found:
            self.log.info("%s: found %s", self.partition_uri, ", ".join(found[:SHOWN_OBJECTS]))
        return bool(found)

    def execute(self, context: Any) -> None:
        if not self.deferrable:
            super().execute(context)
        elif not self.poke(context):
            bucket, prefix = split_uri(self.partition_uri)
            self.defer(
                trigger=GcsPartitionTrigger(bucket, prefix, self.suffix, self.poke_interval),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        if event.get("status") != "success":
            raise AirflowException(event.get("message") or f"{self.partition_uri}: no event")
        self.log.info("%s: found %s", self.partition_uri, ", ".join(event["objects"]))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
