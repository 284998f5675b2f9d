"""GCP storage identities use GKE Workload Identity, not keys: the dev stack under the mocks.

Each storage identity is a GCP service account that only its own Kubernetes service accounts
may act as; those carry the annotation that makes GKE's metadata server hand their pods its
tokens; no HMAC or service account key exists and no Secret holds storage credentials; data
paths are gs://. Under the mocks a GCP service account's email is `<resource>@mock.iam` and
its `name` output the resource's name. The expected members are written out from the dev
stack's names (namespaces, LocalExecutor's chart accounts, teams), not computed by infra/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pulumi_harness import (
    SITE_SETTINGS,
    declared,
    declared_secrets,
    release_values,
    stack_values,
    unwrap,
)

from tests.gcs_emulator import gcs_emulator

WORKLOAD_POOL = f"{SITE_SETTINGS['dev']['gcp:project']}.svc.id.goog"
ANNOTATION = "iam.gke.io/gcp-service-account"
MEMBERS = {
    "storage-mlflow": {"mlflow/mlflow"},
    # LocalExecutor: the scheduler runs tasks; the triggerer and the API server read logs.
    "storage-airflow": {
        "airflow/airflow-scheduler",
        "airflow/airflow-triggerer",
        "airflow/airflow-api-server",
    },
    "storage-team-ml-platform": {"ml-training/team-ml-platform"},
    "storage-team-examples": {"ml-training/team-examples"},
}
KEY_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GOOGLE_APPLICATION_CREDENTIALS")


def test_gcp_has_no_key_of_any_kind():
    resources = declared("dev")
    for kind in ("storage/hmacKey:HmacKey", "serviceaccount/key:Key"):
        assert resources.of_type(kind) == [], kind


def test_no_secret_holds_storage_credentials():
    secrets = declared_secrets("dev")
    assert secrets
    assert not [name for _, name in secrets if name.endswith("-storage")]
    for where, data in secrets.items():
        assert not set(KEY_ENV) & set(data), where
    assert "credentials_secret" not in stack_values("dev")["ml-platform:storage"]


def test_each_identity_is_acted_as_by_exactly_its_service_accounts():
    bindings = {
        b.name.removesuffix("-workload-identity"): b.inputs
        for b in declared("dev").of_type("serviceaccount/iAMBinding:IAMBinding")
    }
    assert set(bindings) == set(MEMBERS)
    for identity, inputs in bindings.items():
        assert inputs["serviceAccountId"] == identity  # the account of the same name
        assert inputs["role"] == "roles/iam.workloadIdentityUser"
        assert set(inputs["members"]) == {
            f"serviceAccount:{WORKLOAD_POOL}[{account}]" for account in MEMBERS[identity]
        }, identity
    # Nothing else grants the role (an additive member would widen the authoritative list).
    for kind in ("serviceaccount/iAMMember:IAMMember", "projects/iAMMember:IAMMember"):
        for member in declared("dev").of_type(kind):
            assert member.inputs["role"] != "roles/iam.workloadIdentityUser", member.name


def test_the_service_accounts_carry_their_identity():
    accounts = {
        a.inputs["metadata"]["name"]: a.inputs["metadata"].get("annotations")
        for a in declared("dev").of_type("core/v1:ServiceAccount")
    }
    for team in ("ml-platform", "examples"):
        assert unwrap(accounts[f"team-{team}"]) == {ANNOTATION: f"storage-team-{team}@mock.iam"}, (
            team
        )
    # The platform's own accounts have no storage identity: tasks run as their team's.
    for name in ("ml-training-runner", "ml-deployer", "model-server"):
        assert not accounts[name], name
    airflow = release_values("dev", "airflow")
    for component, name in (
        ("scheduler", "airflow-scheduler"),
        ("triggerer", "airflow-triggerer"),
        ("apiServer", "airflow-api-server"),
    ):
        assert airflow[component]["serviceAccount"] == {
            "name": name,
            "annotations": {ANNOTATION: "storage-airflow@mock.iam"},
        }, component
    for component in ("workers", "dagProcessor"):
        assert "annotations" not in airflow.get(component, {}).get("serviceAccount", {})
    assert release_values("dev", "mlflow")["serviceAccount"] == {
        "name": "mlflow",
        "annotations": {ANNOTATION: "storage-mlflow@mock.iam"},
    }


def test_the_cluster_runs_workload_identity_on_every_node_pool():
    (cluster,) = declared("dev").of_type("container/cluster:Cluster")
    assert cluster.inputs["workloadIdentityConfig"] == {"workloadPool": WORKLOAD_POOL}
    pools = declared("dev").of_type("container/nodePool:NodePool")
    assert pools
    for pool in pools:
        metadata = pool.inputs["nodeConfig"]["workloadMetadataConfig"]
        assert metadata == {"mode": "GKE_METADATA"}, pool.name


def test_data_paths_are_gs_with_no_s3_settings():
    buckets = stack_values("dev")["ml-platform:storage"]["buckets"]
    document = declared("dev").outputs["platform_config"]
    assert document["storage"] == {
        "datasets_uri": f"gs://{buckets['datasets']}",
        "artifacts_uri": f"gs://{buckets['artifacts']}",
        "logs_uri": f"gs://{buckets['logs']}",
        "airflow_connection": "ml_storage",
    }
    logging = release_values("dev", "airflow")["config"]["logging"]
    assert logging["remote_base_log_folder"] == f"gs://{buckets['logs']}/logs"
    assert logging["remote_log_conn_id"] == "ml_storage"
    connection = unwrap(
        declared("dev").named("airflow-storage-connection", ":Secret").inputs["stringData"]
    )["AIRFLOW_CONN_ML_STORAGE"]
    # No key, no key file: the Google provider takes the default credentials.
    assert json.loads(connection) == {
        "conn_type": "google_cloud_platform",
        "extra": {"project": SITE_SETTINGS["dev"]["gcp:project"]},
    }


def _trigger_modules() -> tuple[dict, dict[str, str]]:
    triggerer = release_values("dev", "airflow")["triggerer"]
    config_map = declared("dev").named("ml-platform-triggers", ":ConfigMap").inputs
    return triggerer, config_map["data"]


def test_the_triggerer_gets_the_gcs_trigger_from_this_checkout():
    triggerer, files = _trigger_modules()
    package = Path(__file__).resolve().parents[2] / "dags" / "ml_platform"
    assert files == {name: (package / name).read_text() for name in files}
    assert set(files) == {"__init__.py", "gcs_partition.py"}
    assert triggerer["extraVolumes"] == [
        {"name": "ml-platform-triggers", "configMap": {"name": "ml-platform-triggers"}}
    ]
    assert triggerer["extraVolumeMounts"] == [
        {
            "name": "ml-platform-triggers",
            "mountPath": "/opt/airflow/ml-platform-triggers/ml_platform",
            "readOnly": True,
        }
    ]
    mount_root = "/opt/airflow/ml-platform-triggers"
    assert triggerer["env"] == [{"name": "PYTHONPATH", "value": mount_root}]
    assert len(triggerer["podAnnotations"]["ml-platform/triggers-checksum"]) == 64
    # kind's components import the whole mounted checkout; AWS's sensor is the provider's.
    for stack in ("kind", "prod"):
        names = {c.name for c in declared(stack).of_type(":ConfigMap")}
        assert "ml-platform-triggers" not in names, stack
        values = unwrap(declared(stack).release("airflow").inputs["values"])
        assert "extraVolumes" not in values["triggerer"], stack


# As the triggerer imports a trigger (by class path) and runs it: with the mounted files alone.
TRIGGERER = """
import asyncio, json, sys
from airflow.sdk.module_loading import import_string

import ml_platform
assert ml_platform.__file__.startswith(sys.argv[1]), ml_platform.__file__
trigger = import_string("ml_platform.gcs_partition.GcsPartitionTrigger")(**json.loads(sys.argv[2]))

async def first():
    async for event in trigger.run():
        return event.payload

print(json.dumps(asyncio.run(asyncio.wait_for(first(), 30))))
"""


def test_the_mounted_modules_alone_import_and_run_the_trigger(tmp_path: Path):
    _, files = _trigger_modules()
    mount = tmp_path / "ml-platform-triggers"
    (mount / "ml_platform").mkdir(parents=True)
    for name, text in files.items():
        (mount / "ml_platform" / name).write_text(text)
    with gcs_emulator() as gcs:
        gcs.create_bucket("datasets")
        gcs.put("datasets", "daily/2026-11-21/part-0.parquet", b"PAR1")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env |= {
            "PYTHONPATH": str(mount),
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "STORAGE_EMULATOR_HOST": gcs.url,
        }
        kwargs = {"bucket": "datasets", "prefix": "daily/2026-11-21", "poke_interval": 0.2}
        done = subprocess.run(
            [sys.executable, "-c", TRIGGERER, str(mount), json.dumps(kwargs)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "status": "success",
        "objects": ["gs://datasets/daily/2026-11-21/part-0.parquet"],
    }
