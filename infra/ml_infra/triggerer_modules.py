"""The platform's own trigger, put where Airflow's triggerer can import it.

The triggerer imports a deferred task's trigger by its class path, and Airflow 3 does not put
a DAG bundle on the triggerer's sys.path (a GitDagBundle's checkout is the DAG processor's and
the task runner's, apache/airflow#65455), so a trigger in the DAG library does not import
there. On GCP the partition sensor defers to ml_platform.gcs_partition.GcsPartitionTrigger:
the program ships that module, with the package's __init__.py, to the triggerer in a ConfigMap
mounted as <MOUNT_ROOT>/ml_platform/, with MOUNT_ROOT on its PYTHONPATH; a checksum annotation
restarts the triggerer when either file changes. The files are read from this checkout at
`pulumi up`, so the triggerer runs the trigger of the deployed commit. kind needs none of it
(every component has the mounted checkout on its PYTHONPATH), nor AWS (the s3:// sensor defers
to the Amazon provider's trigger, which the Airflow image has).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.config import StackConfig
from ml_infra.endpoints import storage_scheme
from ml_infra.kube import k8s_opts, metadata
from ml_infra.model_identities import dags_folder

CONFIG_MAP = "ml-platform-triggers"
MOUNT_ROOT = "/opt/airflow/ml-platform-triggers"
PACKAGE = "ml_platform"
# The trigger's module imports nothing else of the package (its docstring says why).
MODULES = ("__init__.py", "gcs_partition.py")
CHECKSUM_ANNOTATION = "ml-platform/triggers-checksum"


def needs_trigger_modules(config: StackConfig) -> bool:
    """gs:// partitions (GCP) with DAGs from git: the one case the triggerer lacks them."""
    return storage_scheme(config) == "gs" and config.airflow.dags.source != "local"


def trigger_module_files(config: StackConfig) -> dict[str, str]:
    """File name -> source of the modules the triggerer gets, from the DAG folder."""
    return dict(_read_modules(dags_folder(config) / PACKAGE))


@cache  # the chart values and the ConfigMap both need them: read once per `pulumi up`
def _read_modules(folder: Path) -> dict[str, str]:
    files = {}
    for name in MODULES:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the triggerer's {PACKAGE} module is missing")
        files[name] = path.read_text()
    return files


def triggerer_values(config: StackConfig) -> dict[str, Any]:
    """The Airflow chart's triggerer values that mount the modules (none where not needed)."""
    if not needs_trigger_modules(config):
        return {}
    files = trigger_module_files(config)
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]}\0".encode())
    return {
        "extraVolumes": [{"name": CONFIG_MAP, "configMap": {"name": CONFIG_MAP}}],
        "extraVolumeMounts": [
            {"name": CONFIG_MAP, "mountPath": f"{MOUNT_ROOT}/{PACKAGE}", "readOnly": True}
        ],
        "env": [{"name": "PYTHONPATH", "value": MOUNT_ROOT}],
        "podAnnotations": {CHECKSUM_ANNOTATION: digest.hexdigest()},
    }


def declare_trigger_modules(
    config: StackConfig, provider: k8s.Provider, namespace: pulumi.Resource
) -> list[pulumi.Resource]:
    """The ConfigMap the triggerer mounts, where it needs one."""
    if not needs_trigger_modules(config):
        return []
    return [
        k8s.core.v1.ConfigMap(
            CONFIG_MAP,
            metadata=metadata(CONFIG_MAP, config.namespaces["airflow"]),
            data=trigger_module_files(config),
            opts=k8s_opts(provider, [namespace]),
        )
    ]
