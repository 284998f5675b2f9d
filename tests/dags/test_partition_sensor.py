"""wait_for_partition: a deferrable sensor for s3:// (storage connection), gs:// (the platform's
own, test_gcs_partition.py) or file:// partitions."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk import DAG

from ml_platform.gcs_partition import GcsPartitionSensor
from ml_platform.sensors import LOCAL_FS_CONNECTION, wait_for_partition
from ml_platform.settings import DEFAULT_CONFIG_FILE, PlatformConfig, parse_config

KIND = parse_config(json.loads(DEFAULT_CONFIG_FILE.read_text()))


def test_s3_partition():
    sensor = wait_for_partition(
        "wait", "s3://ml-datasets/daily/{{ ds }}", poke_interval=timedelta(minutes=2), config=KIND
    )
    assert isinstance(sensor, S3KeySensor)
    assert sensor.bucket_key == "s3://ml-datasets/daily/{{ ds }}/*.parquet"
    assert sensor.wildcard_match is True
    assert sensor.aws_conn_id == KIND.storage["airflow_connection"] == "ml_storage"
    assert sensor.deferrable is True
    assert sensor.poke_interval == 120
    assert sensor.timeout == timedelta(hours=6).total_seconds()


def test_trailing_slash_is_not_doubled():
    sensor = wait_for_partition("wait", "s3://ml-datasets/daily/2026-01-01/", config=KIND)
    assert sensor.bucket_key == "s3://ml-datasets/daily/2026-01-01/*.parquet"


def test_s3_without_a_configured_connection_uses_aws_default():
    doc = json.loads(DEFAULT_CONFIG_FILE.read_text())
    del doc["storage"]["airflow_connection"]
    sensor = wait_for_partition("wait", "s3://bucket/p", config=parse_config(copy.deepcopy(doc)))
    assert sensor.aws_conn_id == "aws_default"


def test_file_partition():
    sensor = wait_for_partition("wait", "file:///data/datasets/daily/2026-01-01", config=KIND)
    assert isinstance(sensor, FileSensor)
    assert sensor.filepath == "/data/datasets/daily/2026-01-01/*.parquet"
    assert sensor.fs_conn_id == LOCAL_FS_CONNECTION
    assert sensor.deferrable is True


def test_gs_partition():
    sensor = wait_for_partition(
        "wait", "gs://ml-datasets/daily/{{ ds }}/", poke_interval=timedelta(minutes=2), config=KIND
    )
    assert isinstance(sensor, GcsPartitionSensor)
    assert sensor.partition_uri == "gs://ml-datasets/daily/{{ ds }}"
    assert sensor.suffix == ".parquet"
    assert sensor.deferrable is True
    assert sensor.poke_interval == 120
    assert sensor.timeout == timedelta(hours=6).total_seconds()


@pytest.mark.parametrize(
    "uri", ["hdfs://bucket/daily/2026-01-01", "/data/daily/2026-01-01", "S3:/b/x", "ml-datasets"]
)
def test_other_schemes_are_refused(uri: str):
    with pytest.raises(ValueError, match=f"partition '{uri}': only s3://, gs:// and file://"):
        wait_for_partition("wait", uri, config=KIND)


def test_pipeline_waits_on_the_configured_storage(pipeline_dag: DAG, platform: PlatformConfig):
    sensor = pipeline_dag.get_task("wait_for_data")
    assert isinstance(sensor, S3KeySensor)
    assert sensor.deferrable is True
    assert sensor.bucket_key == platform.datasets_uri + "/daily/{{ ds }}/*.parquet"
    assert sensor.aws_conn_id == platform.storage["airflow_connection"]
