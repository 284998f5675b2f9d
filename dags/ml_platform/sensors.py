"""Wait for a dataset partition, wherever the environment keeps datasets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ml_platform.settings import PlatformConfig, platform_config

# Locally the partition is a folder on disk: the File connection's base path is the root.
LOCAL_FS_CONNECTION = "fs_default"


def wait_for_partition(
    task_id: str,
    partition_uri: str,
    *,
    poke_interval: timedelta = timedelta(minutes=5),
    timeout: timedelta = timedelta(hours=6),
    config: PlatformConfig | None = None,
    **kwargs: Any,
) -> Any:
    """A deferrable sensor that succeeds once `partition_uri` holds a Parquet file.

    s3:// partitions use the Amazon provider's S3KeySensor through the storage connection the
    deployment defines; gs:// ones (GCP) the platform's own GcsPartitionSensor, which lists
    with the component's default credentials (Workload Identity); file:// ones (the local
    runtime) the standard FileSensor.
    """
    config = config or platform_config()
    common = {
        "task_id": task_id,
        "poke_interval": poke_interval.total_seconds(),
        "timeout": timeout.total_seconds(),
        "deferrable": True,
        **kwargs,
    }
    pattern = partition_uri.rstrip("/") + "/*.parquet"
    if pattern.startswith("s3://"):
        from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

        return S3KeySensor(
            bucket_key=pattern,
            wildcard_match=True,
            aws_conn_id=config.storage.get("airflow_connection", "aws_default"),
            **common,
        )
    if partition_uri.startswith("gs://"):
        from ml_platform.gcs_partition import GcsPartitionSensor

        return GcsPartitionSensor(partition_uri=partition_uri.rstrip("/"), **common)
    if pattern.startswith("file://"):
        from airflow.providers.standard.sensors.filesystem import FileSensor

        return FileSensor(
            filepath=pattern.removeprefix("file://"), fs_conn_id=LOCAL_FS_CONNECTION, **common
        )
    raise ValueError(
        f"partition {partition_uri!r}: only s3://, gs:// and file:// URIs are supported"
    )
