"""The promotion gates of the whole DAG, under real Airflow, against a real MLflow server.

One story on one local platform: a good day deploys a champion; a corrupted day after it
stops at validate and leaves registry, aliases and endpoint as they were; then days that
drifted from the champion's training data, whose deploy waits for a person: refused, nobody
answering (the default, Skip, at the deadline), approved (deployed, and who approved is in
the summary).

The DAG is the churn pipeline, copied into a DAGs folder of its own with a spec whose
drift_threshold is low enough that a mildly drifted day (PSI ~0.15, which every other gate
lets through) asks for approval; the approval mechanism, not the churn data, is under test.
"""

from __future__ import annotations

import email
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml
from mlflow import MlflowClient

from ml_platform.local.demo import format_summary, run_dag_locally
from ml_platform.local.mlflow_server import MlflowServer
from ml_platform.local.partitions import generate_partition

pytestmark = pytest.mark.slow

REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"
GOOD_DAY, CORRUPTED_DAY = date(2026, 11, 3), date(2026, 11, 4)
REJECTED_DAY, UNANSWERED_DAY, APPROVED_DAY = date(2026, 11, 5), date(2026, 11, 6), date(2026, 11, 7)
DRIFT = 0.3  # churn-synthetic: max PSI ~0.17 against a drift-0 champion; validate passes
MODEL = "churn-gates"
CONF = {"model_name": MODEL, "learning_rates": [0.01], "epochs": 4, "min_improvement": 0.0}


@pytest.fixture(scope="module")
def dags_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dags")
    shutil.copy(REPO_DAGS / "ml_training_pipeline.py", folder)
    spec = yaml.safe_load((REPO_DAGS / "churn_classifier.model.yaml").read_text())
    spec["promotion"].update(
        {"drift_threshold": 0.1, "suspect_drop": 0.2, "golden_tolerance": 0.05}
    )
    (folder / "churn_classifier.model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def _run(platform, dags_folder: Path, day: date, *approval: str) -> dict[str, Any]:
    local_dir, server = platform
    return run_dag_locally(
        local_dir, server.url, day, CONF, dags_folder=dags_folder, existing_data=True,
        approval=list(approval),
    )  # fmt: skip


def _registry(server: MlflowServer) -> tuple[list[str], dict[str, str]]:
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    versions = sorted(v.version for v in client.search_model_versions(f"name='{MODEL}'"))
    return versions, dict(client.get_registered_model(MODEL).aliases)


def _served(endpoint: str, rows: pd.DataFrame) -> tuple[str, list[Any]]:
    features = rows.drop(columns=["customer_id", "churned"])
    answer = requests.post(
        f"{endpoint}/invocations",
        json={"dataframe_split": features.to_dict(orient="split")},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    version = requests.get(f"{endpoint}/version", timeout=10).json()["model_version"]
    return str(version), answer.json()["predictions"]


@pytest.fixture(scope="module")
def good_run(platform, dags_folder: Path) -> dict[str, Any]:
    local_dir, _ = platform
    generate_partition(local_dir, GOOD_DAY, drift=0.0, rows=3000)
    outcome = _run(platform, dags_folder, GOOD_DAY)
    assert outcome["state"] == "success", outcome["failures"]
    assert outcome["results"]["notify"]["deployed"]["version"] == "1"
    return outcome


def _partition(local_dir: Path, day: date) -> Path:
    return next((local_dir / "datasets" / "daily" / day.isoformat()).glob("*.parquet"))


def test_a_corrupted_day_after_a_good_one_changes_nothing(platform, dags_folder, good_run) -> None:
    local_dir, server = platform
    endpoint = good_run["results"]["notify"]["deployed"]["endpoint"]
    rows = pd.read_parquet(_partition(local_dir, GOOD_DAY))
    before = (_registry(server), _served(endpoint, rows.head(5)))
    # The good day's rows with one feature a trillion times its scale: within the contract
    # (monthly_charges has only a lower bound), far outside what the champion was trained on.
    corrupted = local_dir / "datasets" / "daily" / CORRUPTED_DAY.isoformat()
    corrupted.mkdir(parents=True)
    rows.assign(monthly_charges=rows["monthly_charges"] * 1e12).to_parquet(
        corrupted / "data.parquet", index=False
    )

    outcome = _run(platform, dags_folder, CORRUPTED_DAY)

    assert outcome["state"] == "failed"
    assert outcome["task_states"]["data_preparation.validate"] == ["failed"]
    assert outcome["task_states"]["deploy"] == ["upstream_failed"]
    reason = outcome["failures"]["data_preparation.validate"]
    assert "column 'monthly_charges'" in reason and "above the reference max" in reason, reason
    assert (_registry(server), _served(endpoint, rows.head(5))) == before
    summary = format_summary(outcome, "ui")
    assert f"stopped at data_preparation.validate: {reason}" in summary
    # The team hears of it: the local SMTP server got the failed task with its reason.
    subjects = {sent["subject"]: sent["path"] for sent in outcome["notifications"]}
    failed = "[ml-platform local] ml_training_pipeline: task data_preparation.validate failed"
    assert failed in subjects, list(subjects)
    mail = email.message_from_bytes(Path(subjects[failed]).read_bytes())
    body = next(p for p in mail.walk() if p.get_content_type() == "text/html")
    assert "column &#x27;monthly_charges&#x27;" in body.get_payload(decode=True).decode()


def _drifted_day(platform, dags_folder: Path, day: date, *approval: str) -> dict[str, Any]:
    generate_partition(platform[0], day, drift=DRIFT, rows=3000)
    outcome = _run(platform, dags_folder, day, *approval)
    assert outcome["state"] == "success", outcome["failures"]
    evaluation = outcome["results"]["evaluate"]
    assert evaluation["should_deploy"] and evaluation["needs_approval"], evaluation["reason"]
    assert evaluation["drift"]["drifted"], evaluation["drift"]
    assert "deploying needs a person's approval" in evaluation["reason"]
    return outcome


def test_a_refused_approval_keeps_the_champion(platform, dags_folder, good_run) -> None:
    _, server = platform
    before = _registry(server)
    outcome = _drifted_day(platform, dags_folder, REJECTED_DAY, "--reject")
    assert outcome["task_states"]["deploy"] == ["skipped"]
    assert outcome["task_states"]["skip_deploy"] == ["success"]
    approval = outcome["results"]["notify"]["approval"]
    assert approval["required"] and approval["chosen"] == "Skip" and not approval["timed_out"]
    assert approval["responded_by"].endswith("(run-dag --reject)")
    assert _registry(server) == before
    assert "approval:     Skip chosen by" in format_summary(outcome, "ui")


def test_an_unanswered_approval_skips_at_the_deadline(platform, dags_folder, good_run) -> None:
    _, server = platform
    before = _registry(server)
    outcome = _drifted_day(platform, dags_folder, UNANSWERED_DAY, "--approval-timeout", "1")
    assert outcome["task_states"]["deploy"] == ["skipped"]
    approval = outcome["results"]["notify"]["approval"]
    assert approval == {**approval, "chosen": "Skip", "timed_out": True, "responded_by": None}
    assert _registry(server) == before
    assert "nobody answered in time: Skip by default" in format_summary(outcome, "ui")


def test_an_approved_drifted_day_deploys_and_says_who_approved(
    platform, dags_folder, good_run
) -> None:
    local_dir, server = platform
    outcome = _drifted_day(platform, dags_folder, APPROVED_DAY, "--approve")
    summary = outcome["results"]["notify"]
    assert outcome["task_states"]["deploy"] == ["success"]
    assert summary["approval"]["chosen"] == "Deploy"
    assert summary["approval"]["responded_by"].endswith("(run-dag --approve)")
    assert (
        summary["gates"]["drift"]["drifted"] == outcome["results"]["evaluate"]["drift"]["drifted"]
    )
    versions, aliases = _registry(server)
    assert aliases["champion"] == summary["deployed"]["version"] == versions[-1] != "1"
    rows = pd.read_parquet(_partition(local_dir, APPROVED_DAY)).head(3)
    assert _served(summary["deployed"]["endpoint"], rows)[0] == versions[-1]
    text = format_summary(outcome, "ui")
    assert "approval:     Deploy chosen by" in text
    assert (
        "  drift:        max PSI " in text and "against the profile of champion version 1" in text
    )
    assert "  importance:   " in text
