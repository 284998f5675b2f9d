"""Diabetes progression (examples team): a regression model on the platform's own trainer.

The contract, metric (RMSE, lower is better) and bar: diabetes.model.yaml beside this file.
Each day the platform pipeline validates the day's partition, sweeps a small MLP on a GPU,
and deploys the best candidate when it beats the champion. Run it locally:

    make run-dag DAG=examples.diabetes_regression
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG

from ml_platform.model_specs import spec_beside
from ml_platform.training_dag import training_dag

dag: DAG = training_dag(
    spec_beside(__file__, "diabetes"),
    dag_id="examples.diabetes_regression",
    schedule="@daily",
    catchup=False,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    tags=["team:examples", "training", "regression"],
    doc_md=__doc__,
    # A few hundred rows a day: small batches, a narrow net, short training.
    sweep={
        "learning_rates": [0.003, 0.01],
        "batch_sizes": [32],
        "hidden_sizes": ["32"],
        "epochs": 30,
    },
    local_source="sklearn-diabetes",  # `make run-dag`: the day's sample of sklearn's dataset
)
