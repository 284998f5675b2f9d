"""Bad: imports scikit-learn at module top level, on every parse (an Airflow DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, task
from sklearn.linear_model import LogisticRegression  # expect: MLP002

with DAG(
    dag_id="bad_slow_parse",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):

    @task
    def fit() -> list[float]:
        model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
        return model.coef_[0].tolist()

    fit()
