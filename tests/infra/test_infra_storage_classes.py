"""GKE's StorageClass is declared by the program, and every volume the Airflow chart can claim
on the dev stack names it (EKS's gp3 is checked in test_infra_pools.py)."""

from __future__ import annotations

from pulumi_harness import declared, unwrap

from ml_infra.cluster_gke import STORAGE_CLASS

# Chart values under which the Airflow chart renders volumeClaimTemplates (StatefulSets).
PVC_PERSISTENCE = ("workers", "triggerer", "redis")
# The chart's shared PVCs (logs, DAGs) ask for ReadWriteMany, which PD cannot give: kept off.
SHARED_PERSISTENCE = ("logs", "dags")


def test_gke_declares_a_pd_balanced_storage_class():
    dev = declared("dev")
    (storage_class,) = dev.of_type(":StorageClass")
    sc = storage_class.inputs
    assert sc["metadata"] == {"name": STORAGE_CLASS}  # not the default: charts name it
    assert sc["provisioner"] == "pd.csi.storage.gke.io"
    assert sc["parameters"] == {"type": "pd-balanced"}
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["allowVolumeExpansion"] is True
    assert sc["reclaimPolicy"] == "Delete"
    cluster = dev.named("ml-platform-dev", "container/cluster:Cluster").inputs
    assert cluster["addonsConfig"]["gcePersistentDiskCsiDriverConfig"] == {"enabled": True}


def test_dev_airflow_volumes_name_the_declared_class():
    values = unwrap(declared("dev").release("airflow").inputs["values"])
    (storage_class,) = declared("dev").of_type(":StorageClass")
    name = storage_class.inputs["metadata"]["name"]
    for component in PVC_PERSISTENCE:
        assert values[component]["persistence"]["storageClassName"] == name, component
    for component in SHARED_PERSISTENCE:
        assert not values.get(component, {}).get("persistence", {}).get("enabled"), component
    assert not values.get("workers", {}).get("volumeClaimTemplates")
