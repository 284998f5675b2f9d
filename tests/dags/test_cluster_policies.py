"""The platform's cluster policies, as Airflow calls them: dag_policy, task_policy and the
refusals of pod_mutation_hook (its GPU placement is tested in test_pod_mutation_hook.py).

Each refusal is an AirflowClusterPolicyViolation whose message names the file and line at
fault and the change to make, with the code `make check-dags` prints for the same rule.
"""

from __future__ import annotations

from pathlib import Path

import airflow.settings
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.exceptions import AirflowClusterPolicyViolation
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from kubernetes.client import models as k8s

from ml_platform import policies
from ml_platform.container import container_task, mapped_container_task
from ml_platform.dag_rules import team_of
from ml_platform.local.run_dag import LOCAL_SETTINGS
from ml_platform.policies import dag_policy, pod_mutation_hook, schedule_gpu_pod, task_policy
from ml_platform.pools import check_schedulable
from ml_platform.settings import GPU_RESOURCE, PlatformConfig

THIS_FILE = str(Path(__file__).resolve())
BAD_DAGS = Path(__file__).resolve().parents[1] / "checks" / "bad_dags"
SIZE = {"cpu": "1", "memory": "1Gi"}
PLATFORM_IMAGE = "localhost/ml-platform/trainer:dev"


def _line(text: str) -> int:
    """The line of this file that holds `text` (where a DAG or task below is created)."""
    lines = Path(THIS_FILE).read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if text in line)


def _refusal(check, target) -> str:
    with pytest.raises(AirflowClusterPolicyViolation) as raised:
        check(target)
    return str(raised.value)


def test_the_real_dags_pass_dag_and_task_policy(dagbag: DagBag) -> None:
    assert dagbag.dags
    for dag in dagbag.dags.values():
        dag_policy(dag)
        for task in dag.tasks:
            task_policy(task)


def test_a_dag_without_owner_is_refused_at_its_line() -> None:
    with DAG(  # no owner
        "policy_no_owner", schedule=None, tags=["t"], default_args={"retries": 1}
    ) as dag:
        EmptyOperator(task_id="step")
    message = _refusal(dag_policy, dag)
    assert message.startswith(f"{THIS_FILE}:{_line('with DAG(  # no owner')}: MLP101 ")
    assert "DAG 'policy_no_owner' has no owner (tasks step run as 'airflow')" in message
    assert "set default_args={'owner'" in message


def test_a_team_dag_must_be_owned_by_its_team() -> None:
    default_args = {"owner": "risk", "retries": 1}
    with DAG("fraud.churn", schedule=None, tags=["t"], default_args=default_args) as dag:
        EmptyOperator(task_id="step")
    dag.fileloc = "/bundle/dags/teams/fraud/churn.py"
    message = _refusal(dag_policy, dag)
    assert "MLP101 DAG 'fraud.churn' is owned by risk, but lives in the 'fraud' team's folder" in (
        message
    )
    assert "set default_args['owner'] = 'fraud'" in message
    dag.fileloc = "/checkouts/teams/dags/churn.py"  # a checkout in a folder named teams
    assert team_of(dag.fileloc) is None
    dag_policy(dag)


def test_a_dag_without_tags_or_retries_gets_both_codes() -> None:
    with DAG("policy_bare", schedule=None, default_args={"owner": "fraud"}) as dag:
        EmptyOperator(task_id="step")
    message = _refusal(dag_policy, dag)
    assert ": MLP102 DAG 'policy_bare' has no tags" in message
    assert ": MLP103 DAG 'policy_bare' sets no retries" in message


def test_a_privileged_pod_operator_is_refused_at_its_line() -> None:
    with DAG("policy_privileged", schedule=None):
        score = KubernetesPodOperator(  # privileged
            task_id="score",
            image=PLATFORM_IMAGE,
            container_resources=k8s.V1ResourceRequirements(requests=SIZE, limits=SIZE),
            container_security_context=k8s.V1SecurityContext(privileged=True),
        )
    message = _refusal(task_policy, score)
    assert message.startswith(f"{THIS_FILE}:{_line('KubernetesPodOperator(  # privileged')}: ")
    assert "MLP202 task 'score': container 'base' runs privileged" in message


def test_a_raw_pod_operator_needs_limits_and_a_platform_image() -> None:
    with DAG("policy_raw", schedule=None):
        score = KubernetesPodOperator(
            task_id="score",
            image="python:3.11",
            container_resources=k8s.V1ResourceRequirements(requests=SIZE),
        )
    message = _refusal(task_policy, score)
    assert "MLP205 task 'score': container 'base' runs image 'python:3.11'" in message
    assert "MLP201 task 'score': container 'base' sets no limits.cpu, limits.memory" in message


def test_a_mapped_container_task_is_checked_from_its_partial_arguments() -> None:
    with DAG("policy_mapped", schedule=None):
        task = mapped_container_task(
            "train",
            image="trainer",
            arguments=[["train"]],
            hostnetwork=True,
        )
    assert "MLP204 task 'train' sets hostNetwork: true" in _refusal(task_policy, task)


def test_only_a_teams_own_deploy_step_runs_as_the_deployer() -> None:
    with DAG("policy_deployer", schedule=None):
        shell = container_task(
            "shell",
            image="deployer",
            service_account="deployer",
            cmds=["sh", "-c"],
            arguments=["kubectl delete deployment --all"],
            env={"DEPLOYER_TEAM": "ml-platform"},
        )
        foreign = KubernetesPodOperator(
            task_id="foreign",
            image=PLATFORM_IMAGE,
            service_account_name="ml-deployer",
            container_resources=k8s.V1ResourceRequirements(requests=SIZE, limits=SIZE),
        )
        own = container_task(
            "own",
            image="deployer",
            service_account="deployer",
            arguments=["deploy"],
            env={"DEPLOYER_TEAM": "ml-platform"},  # this file is the platform's, not a team's
        )
    assert "with its own cmds instead of the deployer's entrypoint" in _refusal(task_policy, shell)
    message = _refusal(task_policy, foreign)
    assert f"with image {PLATFORM_IMAGE!r}, not the platform's deployer" in message
    assert "for team None (DEPLOYER_TEAM) in a DAG of team 'ml-platform'" in message
    task_policy(own)


def test_only_the_deployer_may_wear_its_label() -> None:
    """The deployer's NetworkPolicy selects ml-platform/image=deployer: a pod that sets the
    label itself would get the Kubernetes API."""
    with DAG("policy_deployer_label", schedule=None):
        posing = KubernetesPodOperator(
            task_id="posing",
            image=PLATFORM_IMAGE,
            labels={"ml-platform/image": "deployer"},
            container_resources=k8s.V1ResourceRequirements(requests=SIZE, limits=SIZE),
        )
    message = _refusal(task_policy, posing)
    assert "carries ml-platform/image=deployer, which lets it reach the Kubernetes API" in message
    pod = _pod(container=k8s.V1Container(name="base", image=PLATFORM_IMAGE))
    pod.metadata.labels["ml-platform/image"] = "deployer"
    assert "MLP206 pod 'p-1' of task d.t carries" in _refusal(pod_mutation_hook, pod)


def test_platform_container_tasks_pass() -> None:
    with DAG("policy_platform", schedule=None):
        task = container_task("train", image="trainer", arguments=["train"], gpus=1)
    task_policy(task)


def test_a_gpu_sweep_is_limited_to_what_the_stack_runs_at_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The runtime half of MLP303: parsed in Airflow, the sweep of bad_dags (4 trials at
    once on kind's 2-GPU quota) queues its extra trials in Airflow."""
    monkeypatch.setattr(airflow.settings, "task_policy", task_policy)
    path = BAD_DAGS / "sweep_over_gpu_quota.py"
    bag = DagBag(dag_folder=str(path), safe_mode=False)
    assert bag.import_errors == {}
    assert bag.dags["bad_sweep_over_gpu_quota"].get_task("train").max_active_tis_per_dagrun == 2
    assert "max_active_tis_per_dagrun lowered to 2, what environment 'kind'" in caplog.text
    # Three CPUs per pod: one per kind GPU node, so one trial at a time.
    path = BAD_DAGS / "sweep_pods_cannot_share_node.py"
    bag = DagBag(dag_folder=str(path), safe_mode=False)
    train = bag.dags["bad_sweep_pods_cannot_share_node"].get_task("train")
    assert train.max_active_tis_per_dagrun == 1


def test_a_sweep_within_capacity_and_a_cpu_sweep_are_left_alone() -> None:
    with DAG("policy_sweeps", schedule=None):
        fits = mapped_container_task(
            "fits", image="trainer", arguments=[["a"], ["b"]], gpus=1, max_parallel=2
        )
        cpu = mapped_container_task("cpu", image="trainer", arguments=[["a"]] * 20)
    task_policy(fits)
    task_policy(cpu)
    assert fits.max_active_tis_per_dagrun == 2
    assert cpu.max_active_tis_per_dagrun is None


def test_a_gpu_sweep_is_placed_once_for_its_pool_and_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Placing a pod checks it against every pool: task_policy does it once and takes both the
    task's Airflow pool and its sweep limit from that placement."""
    placed: list[str] = []

    def counted(pod: k8s.V1Pod, config: PlatformConfig) -> None:
        placed.append(pod.metadata.name)
        schedule_gpu_pod(pod, config)

    monkeypatch.setattr(policies, "schedule_gpu_pod", counted)
    with DAG("policy_placed_once", schedule=None):
        sweep = mapped_container_task("sweep", image="trainer", arguments=[["a"]] * 4, gpus=1)
    task_policy(sweep)
    assert len(placed) == 1
    # kind: two GPUs, so two of the four one-GPU trials at once, a slot each of gpu-gpus.
    assert (sweep.pool, sweep.pool_slots, sweep.max_active_tis_per_dagrun) == ("gpu-gpus", 1, 2)


def _pod(**spec) -> k8s.V1Pod:
    container = spec.pop("container", k8s.V1Container(name="base", image=PLATFORM_IMAGE))
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="p-1", labels={"dag_id": "d", "task_id": "t"}),
        spec=k8s.V1PodSpec(containers=[container], **spec),
    )


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (
            _pod(
                container=k8s.V1Container(
                    name="base",
                    image=PLATFORM_IMAGE,
                    security_context=k8s.V1SecurityContext(privileged=True),
                )
            ),
            "MLP202 pod 'p-1' of task d.t: container 'base' runs privileged",
        ),
        (
            _pod(
                volumes=[k8s.V1Volume(name="root", host_path=k8s.V1HostPathVolumeSource(path="/"))]
            ),
            "MLP203 pod 'p-1' of task d.t mounts hostPath '/'",
        ),
        (_pod(host_network=True), "MLP204 pod 'p-1' of task d.t sets hostNetwork: true"),
        (_pod(host_pid=True), "MLP204 pod 'p-1' of task d.t sets hostPID: true"),
    ],
    ids=["privileged", "hostPath", "hostNetwork", "hostPID"],
)
def test_the_hook_refuses_unsafe_pods(pod: k8s.V1Pod, expected: str) -> None:
    assert expected in _refusal(pod_mutation_hook, pod)


@pytest.mark.usefixtures("kind_stack")
def test_the_hook_still_places_a_gpu_pod(platform: PlatformConfig) -> None:
    limits = {**SIZE, GPU_RESOURCE: "1"}
    resources = k8s.V1ResourceRequirements(requests=SIZE, limits=limits)
    pod = _pod(container=k8s.V1Container(name="base", image="any", resources=resources))
    pod_mutation_hook(pod)
    assert check_schedulable(pod, platform).has_gpus
    assert [t.key for t in pod.spec.tolerations] == [GPU_RESOURCE]


def test_airflow_turns_a_refusal_into_an_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the DAG processor does with the policies airflow_local_settings installs."""
    monkeypatch.setattr(airflow.settings, "dag_policy", dag_policy)
    monkeypatch.setattr(airflow.settings, "task_policy", task_policy)
    cases = [("no_owner.py", "MLP101"), ("privileged_pod.py", "MLP202")]
    cases.append(("deployer_account_misused.py", "MLP206"))
    for name, code in cases:
        path = BAD_DAGS / name
        bag = DagBag(dag_folder=str(path), safe_mode=False)
        assert bag.dags == {}
        error = bag.import_errors[str(path)]
        assert "AirflowClusterPolicyViolation" in error
        assert f"{path}:" in error and f": {code} " in error


def test_the_local_runtime_installs_all_three_policies() -> None:
    settings: dict = {}
    exec(LOCAL_SETTINGS, settings)
    assert settings["dag_policy"] is dag_policy
    assert settings["task_policy"] is task_policy
    assert settings["pod_mutation_hook"] is pod_mutation_hook
