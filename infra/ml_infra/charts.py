"""Every Helm chart the program installs, pinned to one version, in one place.

Upgrading a chart is a one-line change here plus whatever its release notes ask of the
values in helm/ (see docs/platform-team.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chart:
    name: str
    version: str
    repo: str  # a Helm repository URL, or an OCI registry path for `oci://` charts

    @property
    def is_oci(self) -> bool:
        return self.repo.startswith("oci://")


# The official Apache Airflow chart (1.22.0 ships Airflow 3.2.2 by default; we pin the
# Airflow image separately in the stack config).
AIRFLOW = Chart("airflow", "1.22.0", "https://airflow.apache.org")
# community-charts/mlflow: Postgres backend + proxied S3 artifacts + basic auth from
# existing Secrets, no bundled database (chart 1.11.5 = MLflow 3.15.1).
MLFLOW = Chart("mlflow", "1.11.5", "https://community-charts.github.io/helm-charts")
# kind only: the in-cluster S3-compatible store.
SEAWEEDFS = Chart("seaweedfs", "4.44.0", "https://seaweedfs.github.io/seaweedfs/helm")
# kind only: advertises emulated nvidia.com/gpu capacity through a real device plugin.
FAKE_GPU_OPERATOR = Chart("fake-gpu-operator", "0.2.0", "oci://ghcr.io/run-ai/fake-gpu-operator")
# EKS only: the AL2023 NVIDIA AMI has the driver; the device plugin advertises the GPUs.
NVIDIA_DEVICE_PLUGIN = Chart(
    "nvidia-device-plugin", "0.20.0", "https://nvidia.github.io/k8s-device-plugin"
)
# EKS only: scales managed node groups between each pool's min_size and max_size
# (chart 9.59.0 = cluster-autoscaler 1.35, matching the EKS version in Pulumi.prod.yaml).
CLUSTER_AUTOSCALER = Chart(
    "cluster-autoscaler", "9.59.0", "https://kubernetes.github.io/autoscaler"
)

ALL = (AIRFLOW, MLFLOW, SEAWEEDFS, FAKE_GPU_OPERATOR, NVIDIA_DEVICE_PLUGIN, CLUSTER_AUTOSCALER)
