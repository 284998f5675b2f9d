"""`make check-dags` on one bad DAG file per rule, the good DAGs of dags/, and a good fixture.

One run of the command line over all of them (the `checked` fixture: its parse timer starts
Airflow once); each bad file marks the line a finding must name with `# expect: CODE`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from checks_testkit import (
    BAD_DAGS,
    BAD_SPECS,
    DAGS,
    GOOD_DAGS,
    CheckRun,
    expected_marks,
    shown_path,
)

from ml_platform.violations import RULES

EXPECT = re.compile(r"# expect: (MLP\d{3})")
BAD_FILES = sorted(BAD_DAGS.glob("*.py"))
# What each finding's message (or the change it asks for) must say, per bad file.
MESSAGES = {
    "import_error.py": ["cannot import name 'container_tasks'", "traceback"],
    "slow_parse.py": ["over the 0.20s budget", "`from sklearn.linear_model import", "inside"],
    "no_owner.py": ["DAG 'bad_no_owner' has no owner", "default_args={'owner'"],
    "no_tags.py": ["DAG 'bad_no_tags' has no tags", "tags=["],
    "no_retries.py": ["sets no retries", "'retries': 2"],
    "no_schedule.py": ["does not set schedule", "schedule='@daily'"],
    "no_catchup.py": ["does not set catchup", "catchup=False"],
    "variable_at_top_level.py": ["Variable.get runs at module top level", "inside a task"],
    "raw_kpo_without_limits.py": ["sets no limits.cpu, limits.memory", "container_resources="],
    "privileged_pod.py": ["container 'base' runs privileged", "drop privileged=True"],
    "host_path_volume.py": ["hostPath '/var/run/docker.sock'", "emptyDir"],
    "host_network.py": ["sets hostNetwork: true", "remove hostnetwork=True"],
    "foreign_registry.py": [
        "'docker.io/library/python:3.11-slim', not from the platform registry "
        "'localhost/ml-platform'",
        "container_task(image=",
    ],
    "other_teams_credentials.py": [
        "task 'read_their_data' references 'team-examples-storage', team 'examples''s credentials",
        "task 'run_as_them' runs as service account 'team-examples' (team 'examples''s account)",
        "the platform: a team's tasks get the team's own",
    ],
    "deployer_account_misused.py": [
        "task 'replace_their_model' runs as the deployer account 'ml-deployer' for team 'risk' "
        "(DEPLOYER_TEAM) in a DAG of team 'ml-platform'",
        "deploy through the platform's training DAG",
    ],
    "unknown_gpu_type.py": ["stack 'kind'", "'nvidia-h100-80gb'", "GPU pools: gpu"],
    "textbook_gpu_pod_on_unknown_type.py": ["'ml-platform/gpu-type': 'nvidia-a100'"],
    "pod_not_buildable.py": ["expands 'container_resources' from a run-time value"],
    "sweep_over_gpu_quota.py": [
        "stack 'kind': task 'train' runs up to 4 pods at once (4 mapped value(s))",
        "the training GPU quota of 2 admits 2: 2 run at once, the rest are refused at creation",
        "stack 'dev'",
        "set max_active_tis_per_dagrun=2",
    ],
    "sweep_pods_cannot_share_node.py": [
        "stack 'kind': task 'train' runs up to 2 pods at once (max_active_tis_per_dagrun=2), "
        "each 1 GPU, 3001m CPU",
        "pool gpu holds 1 (1 node(s) x 1 per node): 1 run at once, the rest wait Pending",
        "max_parallel=1",
    ],
}


def _expected(path: Path) -> set[tuple[int, str]]:
    return {
        (number, match[1])
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if (match := EXPECT.search(line))
    }


def _findings_of(run: CheckRun, path: Path) -> list[dict[str, str]]:
    return [f for f in run.findings() if f["path"] == shown_path(path)]


def test_every_rule_has_a_bad_file() -> None:
    """Bad DAG files here; bad specs and team images in test_checks_specs.py."""
    spec_fixtures = [p for p in BAD_SPECS.rglob("*") if p.is_file()]
    covered = {code for path in BAD_FILES for _, code in _expected(path)}
    covered |= {code for path in spec_fixtures for _, code in expected_marks(path)}
    assert covered == set(RULES)
    assert sorted(MESSAGES) == [p.name for p in BAD_FILES]


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_file_gets_its_finding_at_its_line(checked: CheckRun, path: Path) -> None:
    findings = _findings_of(checked, path)
    assert {(int(f["line"]), f["code"]) for f in findings} == _expected(path), checked.stdout
    text = " ".join(f["text"] for f in findings)
    for fragment in MESSAGES[path.name]:
        assert fragment in text


def test_the_real_dags_and_the_good_fixture_have_no_finding(checked: CheckRun) -> None:
    good = sorted(DAGS.glob("*.py")) + sorted(GOOD_DAGS.glob("*.py"))
    assert good
    for path in good:
        assert _findings_of(checked, path) == [], checked.stdout


def test_the_platform_library_is_not_checked_as_dags(checked: CheckRun) -> None:
    assert not [f for f in checked.findings() if "ml_platform" in f["path"]]


def test_any_finding_fails_the_command_with_a_summary(checked: CheckRun) -> None:
    assert checked.returncode == 1, checked.stderr
    files = {f["path"] for f in checked.findings()}
    last = checked.stdout.strip().splitlines()[-1]
    assert last == (
        f"check-dags: {len(checked.findings())} finding(s) in {len(files)} file(s) "
        "(stacks: dev, kind, prod)"
    )
