"""Daily churn model: validate the day's data, sweep hyperparameters on GPUs, deploy if better.

The model, its data contract, metric and promotion bar: churn_classifier.model.yaml beside
this file. The pipeline itself is the platform's (ml_platform.training_dag).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from ml_platform.model_specs import spec_beside
from ml_platform.training_dag import training_dag

DAG_ID = "ml_training_pipeline"

dag: DAG = training_dag(
    spec_beside(__file__, "churn_classifier"),
    dag_id=DAG_ID,
    schedule="@daily",
    catchup=False,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    tags=["ml", "training", "gpu"],
    doc_md=__doc__,
    threshold_param="min_metric",  # the name runs (and their confs) have always used
    execution_timeout=timedelta(hours=2),
    local_source="churn-synthetic",
)
