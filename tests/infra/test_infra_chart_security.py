"""Every pod the program installs meets the Pod Security Standard `restricted`.

The charts are not rendered here (no helm binary in the test environment); instead each
chart's own precedence rules for security contexts are written out below, with the
template they come from, and applied to the values the program hands the chart. Chart
defaults that matter are taken from the pinned chart's values.yaml: every per-component
`securityContexts` / `securityContext` of the Airflow chart is empty, `uid` is 50000, `gid`
0 and `redis.uid` 0; MLflow's and SeaweedFS's contexts come from our values whole.

Each pod is then checked by tests.pod_security_profile.restricted_violations. For Airflow
only the security contexts are checked: on kind its pods also mount the repository from
the node (hostPath), which is why that namespace is PodSecurity `privileged` there.
"""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_harness import STACKS, declared, unwrap

from tests.pod_security_profile import restricted_violations

# --- Airflow chart 1.22.0 (templates/_helpers.yaml) ------------------------------------


def _get(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def airflow_pod_security_context(scopes: list[dict[str, Any]], values: dict[str, Any]) -> dict:
    """`airflowPodSecurityContext (list <node> .Values)`: the first non-empty of
    <node>.securityContexts.pod, <node>.securityContext, securityContexts.pod,
    securityContext, taken whole; else `runAsUser: uid, fsGroup: gid`."""
    for scope in [*scopes, values]:
        if (scope.get("securityContexts") or {}).get("pod"):
            return scope["securityContexts"]["pod"]
        if scope.get("securityContext"):
            return scope["securityContext"]
    return {"runAsUser": values.get("uid", 50000), "fsGroup": values.get("gid", 0)}


def container_security_context(scopes: list[dict[str, Any]], values: dict[str, Any]) -> dict:
    """`containerSecurityContext (list <node> .Values)`: <node>.securityContexts.container,
    else securityContexts.containers, else the chart's allowPrivilegeEscalation: false and
    capabilities.drop: [ALL] (no runAsNonRoot, no seccomp)."""
    for scope in scopes:
        if (scope.get("securityContexts") or {}).get("container"):
            return scope["securityContexts"]["container"]
    if (values.get("securityContexts") or {}).get("containers"):
        return values["securityContexts"]["containers"]
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def local_pod_security_context(node: dict[str, Any], default_uid: int) -> dict:
    """`localPodSecurityContext <node>` (redis, statsd): <node>.securityContexts.pod, else
    <node>.securityContext, else `runAsUser: <node>.uid`; the global contexts never apply."""
    if (node.get("securityContexts") or {}).get("pod"):
        return node["securityContexts"]["pod"]
    if node.get("securityContext"):
        return node["securityContext"]
    return {"runAsUser": node.get("uid", default_uid)}


def external_container_security_context(node: dict[str, Any]) -> dict:
    """`externalContainerSecurityContext <node>` (redis, statsd)."""
    if (node.get("securityContexts") or {}).get("container"):
        return node["securityContexts"]["container"]
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


# The Airflow-image pods the chart renders with our values, from the templates: each is
# (template, pod scope, [(container, its scope)]), a scope being a path under .Values.
# Every container's context is `containerSecurityContext (list <scope> .Values)`.
AIRFLOW_PODS = [
    (
        "scheduler/scheduler-deployment.yaml",
        "scheduler",
        [
            ("wait-for-airflow-migrations", "scheduler.waitForMigrations"),
            ("scheduler", "scheduler"),
            ("scheduler-log-groomer", "scheduler.logGroomerSidecar"),
        ],
    ),
    (
        "api-server/api-server-deployment.yaml",
        "apiServer",
        [
            ("wait-for-airflow-migrations", "apiServer.waitForMigrations"),
            ("api-server", "apiServer"),
        ],
    ),
    (
        "dag-processor/dag-processor-deployment.yaml",
        "dagProcessor",
        [
            ("wait-for-airflow-migrations", "dagProcessor.waitForMigrations"),
            ("dag-processor", "dagProcessor"),
            ("dag-processor-log-groomer", "dagProcessor.logGroomerSidecar"),
        ],
    ),
    (
        "triggerer/triggerer-deployment.yaml",
        "triggerer",
        [
            ("wait-for-airflow-migrations", "triggerer.waitForMigrations"),
            ("triggerer", "triggerer"),
            ("triggerer-log-groomer", "triggerer.logGroomerSidecar"),
        ],
    ),
    ("jobs/create-user-job.yaml", "createUserJob", [("create-user", "createUserJob")]),
    (
        "jobs/migrate-database-job.yaml",
        "migrateDatabaseJob",
        [("run-airflow-migrations", "migrateDatabaseJob")],
    ),
]
# CeleryExecutor only (workers/worker-deployment.yaml; workers.celery merged into workers).
CELERY_WORKER_POD = (
    "workers/worker-deployment.yaml",
    "workers",
    [
        ("wait-for-airflow-migrations", "workers.waitForMigrations"),
        ("worker", "workers"),
        ("worker-log-groomer", "workers.logGroomerSidecar"),
    ],
)


def _airflow_values(stack: str) -> dict[str, Any]:
    return unwrap(declared(stack).release("airflow").inputs["values"])


def _celery(values: dict[str, Any]) -> bool:
    return "CeleryExecutor" in values["executor"]


def airflow_pods(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each pod's spec as far as security goes: its context and its containers'."""
    pods = AIRFLOW_PODS + ([CELERY_WORKER_POD] if _celery(values) else [])
    specs = {}
    for template, pod_scope, containers in pods:
        node = _get(values, pod_scope) or {}
        specs[template] = {
            "securityContext": airflow_pod_security_context([node], values),
            "containers": [
                {
                    "name": name,
                    "securityContext": container_security_context(
                        [_get(values, scope) or {}], values
                    ),
                }
                for name, scope in containers
            ],
        }
    if _celery(values):
        redis = values.get("redis") or {}
        specs["redis/redis-statefulset.yaml"] = {
            "securityContext": local_pod_security_context(redis, default_uid=0),
            "containers": [
                {"name": "redis", "securityContext": external_container_security_context(redis)}
            ],
        }
    return specs


@pytest.mark.parametrize("stack", STACKS)
def test_airflow_renders_only_the_pods_checked_here(stack: str):
    """The templates whose pods AIRFLOW_PODS leaves out stay off, and so do the optional
    containers of the pods it lists, so the list above is every pod the chart renders."""
    values = _airflow_values(stack)
    assert int(values["airflowVersion"].split(".")[0]) >= 3  # no webserver Deployment
    assert _get(values, "statsd.enabled") is False
    assert _get(values, "pgbouncer.enabled") is False
    # Off by default in the chart, and we leave them off.
    for path in (
        "flower.enabled",
        "cleanup.enabled",
        "databaseCleanup.enabled",
        "dags.gitSync.enabled",
        "kerberos.enabled",
        "workers.persistence.fixPermissions",
        "workers.kerberosSidecar.enabled",
        "workers.kerberosInitContainer.enabled",
        "elasticsearch.enabled",
    ):
        assert not _get(values, path), f"{stack}: {path} renders a pod not checked here"
    for component in ("scheduler", "apiServer", "dagProcessor", "triggerer", "workers"):
        for extra in ("extraContainers", "extraInitContainers"):
            assert not _get(values, f"{component}.{extra}"), f"{component}.{extra}"
    assert values["redis"]["enabled"] is _celery(values)


@pytest.mark.parametrize("stack", STACKS)
def test_airflow_pods_are_restricted(stack: str):
    pods = airflow_pods(_airflow_values(stack))
    expected = {template for template, _, _ in AIRFLOW_PODS}
    if stack == "prod":
        expected |= {CELERY_WORKER_POD[0], "redis/redis-statefulset.yaml"}
    assert set(pods) == expected
    for template, spec in pods.items():
        assert restricted_violations(spec) == [], f"{stack}: {template}"


@pytest.mark.parametrize("stack", STACKS)
def test_airflow_pods_keep_the_image_user(stack: str):
    """The global pod context replaces the chart's uid/gid default whole, so it must say
    them again: the Airflow image runs as 50000 with group 0 (its files are group 0)."""
    for template, spec in airflow_pods(_airflow_values(stack)).items():
        context = spec["securityContext"]
        if template.startswith("redis/"):
            assert (context["runAsUser"], context["fsGroup"]) == (999, 999)
        else:
            assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (
                50000,
                0,
                0,
            ), template


def test_airflow_chart_defaults_are_not_restricted():
    """Without our contexts, the same helpers give the pods the chart's defaults, which
    `restricted` refuses (Redis as root, no seccomp, no runAsNonRoot): the check can fail."""
    values = _airflow_values("prod")
    values.pop("securityContexts")
    values["redis"] = {k: v for k, v in values["redis"].items() if k != "securityContexts"}
    pods = airflow_pods(values)
    assert "pod: runAsUser 0" in restricted_violations(pods["redis/redis-statefulset.yaml"])
    scheduler = restricted_violations(pods["scheduler/scheduler-deployment.yaml"])
    assert "container scheduler: seccompProfile is unset" in scheduler
    assert "container scheduler: runAsNonRoot is not true (container or pod level)" in scheduler


# --- MLflow: community-charts/mlflow 1.11.5 (templates/deployment.yaml) -----------------


def _mlflow_values(stack: str) -> dict[str, Any]:
    return unwrap(declared(stack).release("mlflow").inputs["values"])


def mlflow_pod(values: dict[str, Any]) -> dict[str, Any]:
    """The Deployment's pod: `.Values.podSecurityContext` on the pod and
    `.Values.securityContext` on each container the template renders."""
    backend = values.get("backendStore") or {}
    database = any((backend.get(db) or {}).get("enabled") for db in ("postgres", "mysql", "mssql"))
    names = []
    if database and backend.get("databaseConnectionCheck"):
        names.append("dbchecker")
    if database and backend.get("databaseMigration"):
        names.append("mlflow-db-migration")
    if (values.get("auth") or {}).get("enabled") or (values.get("ldapAuth") or {}).get("enabled"):
        names.append("ini-file-initializer")
    names.append("mlflow")
    context = values.get("securityContext") or {}
    return {
        "securityContext": values.get("podSecurityContext") or {},
        "containers": [{"name": name, "securityContext": context} for name in names],
        # The template's own volumes; extraVolumes stay empty (checked below).
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "dbchecker", "configMap": {}},
            {"name": "migrations-config", "configMap": {}},
            {"name": "ini-file", "emptyDir": {}},
            {"name": "auth-ini-template-file", "configMap": {}},
        ],
    }


@pytest.mark.parametrize("stack", STACKS)
def test_mlflow_pod_is_restricted(stack: str):
    values = _mlflow_values(stack)
    # The containers this pod could have beyond the ones above: none come with a
    # securityContext of ours (the oauth2-proxy sidecar gets none from the chart at all).
    for key in ("initContainers", "extraContainers", "extraVolumes"):
        assert not values.get(key), key
    assert not (values.get("oauth2Proxy") or {}).get("enabled")
    # Its bundled databases and MinIO are other charts' pods.
    for subchart in ("postgresql", "mysql", "minio"):
        assert not (values.get(subchart) or {}).get("enabled"), subchart
    pod = mlflow_pod(values)
    assert [c["name"] for c in pod["containers"]] == [
        "dbchecker",
        "mlflow-db-migration",
        "ini-file-initializer",
        "mlflow",
    ]
    assert restricted_violations(pod) == []
    # The image's user (mlflow, 1001) on every container.
    assert pod["securityContext"]["runAsUser"] == values["securityContext"]["runAsUser"] == 1001


# --- SeaweedFS chart 4.44.0 (kind only) ---------------------------------------------------


def _seaweedfs_values() -> dict[str, Any]:
    return unwrap(declared("kind").release("seaweedfs").inputs["values"])


def _enabled_context(context: dict[str, Any] | None) -> dict[str, Any]:
    """The chart renders `omit <context> "enabled"` only `if <context>.enabled`."""
    context = context or {}
    return {k: v for k, v in context.items() if k != "enabled"} if context.get("enabled") else {}


def seaweedfs_pods(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    all_in_one = values["allInOne"]
    filer = values.get("filer") or {}
    data = {"persistentVolumeClaim": {"claimName": "data"}}
    assert all_in_one["data"]["type"] == "persistentVolumeClaim"  # not hostPath
    pods = {
        # all-in-one/all-in-one-deployment.yaml
        "all-in-one": {
            "securityContext": _enabled_context(all_in_one.get("podSecurityContext")),
            "containers": [
                {
                    "name": "seaweedfs",
                    "securityContext": _enabled_context(all_in_one.get("containerSecurityContext")),
                }
            ],
            "volumes": [
                {"name": "data", **data},
                {"name": "config-s3-users", "secret": {}},
                {"name": "master-config", "configMap": {}},
            ],
        }
    }
    if all_in_one["s3"].get("enabled") and all_in_one["s3"].get("createBuckets"):
        # shared/post-install-bucket-hook.yaml: the filer's contexts, even in all-in-one.
        pods["bucket-hook"] = {
            "securityContext": _enabled_context(filer.get("podSecurityContext")),
            "containers": [
                {
                    "name": "post-install-job",
                    "securityContext": _enabled_context(filer.get("containerSecurityContext")),
                }
            ],
            "volumes": [{"name": "config-users", "secret": {}}],
        }
    return pods


def test_seaweedfs_renders_only_the_pods_checked_here():
    values = _seaweedfs_values()
    for component in ("master", "volume", "filer"):
        assert values[component]["enabled"] is False, component
    # Off by default in the chart, and we leave them off.
    for component in ("s3", "sftp", "admin", "worker", "cosi"):
        assert not (values.get(component) or {}).get("enabled"), component
    for key in ("initContainers", "sidecars"):
        assert not values["allInOne"].get(key), key
    assert set(seaweedfs_pods(values)) == {"all-in-one", "bucket-hook"}


@pytest.mark.parametrize("pod", ["all-in-one", "bucket-hook"])
def test_seaweedfs_pods_are_restricted(pod: str):
    spec = seaweedfs_pods(_seaweedfs_values())[pod]
    assert restricted_violations(spec) == []
    assert spec["securityContext"]["runAsUser"] == 1000  # the image's seaweed user


def test_seaweedfs_context_needs_enabled():
    """A context without `enabled: true` renders nothing: the check sees that."""
    values = _seaweedfs_values()
    values["allInOne"]["podSecurityContext"] = {
        k: v for k, v in values["allInOne"]["podSecurityContext"].items() if k != "enabled"
    }
    violations = restricted_violations(seaweedfs_pods(values)["all-in-one"])
    assert "container seaweedfs: runAsNonRoot is not true (container or pod level)" in violations


# --- kind's PostgreSQL StatefulSet (infra/ml_infra/postgres_kind.py) ----------------------


def _postgres_template() -> dict[str, Any]:
    statefulset = declared("kind").named("postgres", ":StatefulSet")
    return unwrap(statefulset.inputs["spec"]["template"])


def test_kind_postgres_pod_is_restricted():
    template = _postgres_template()
    assert restricted_violations(template) == []
    context = template["spec"]["securityContext"]
    # The postgres image's postgres user, which owns its data directory on the claim.
    assert (context["runAsUser"], context["fsGroup"]) == (999, 999)
    (container,) = template["spec"]["containers"]
    assert container["image"].startswith("postgres:")


def test_kind_postgres_without_contexts_is_not_restricted():
    template = _postgres_template()
    template["spec"].pop("securityContext", None)
    for container in template["spec"]["containers"]:
        container.pop("securityContext", None)
    assert "container postgres: allowPrivilegeEscalation is not false" in restricted_violations(
        template
    )
