"""Wine cultivar (examples team): a multiclass model trained by the team's own image.

The contract, metric (macro F1) and bar: wine.model.yaml beside this file; the trainer:
images/wine-trainer/ (gradient-boosted trees, built FROM the platform trainer by
`make images`). The platform pipeline around it is the same as for any model. Run it locally:

    make run-dag DAG=examples.wine_custom
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG

from ml_platform.model_specs import spec_beside
from ml_platform.training_dag import TrainResources, training_dag

dag: DAG = training_dag(
    spec_beside(__file__, "wine"),
    dag_id="examples.wine_custom",
    schedule="@daily",
    catchup=False,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    tags=["team:examples", "training", "custom-trainer"],
    doc_md=__doc__,
    # One train pod per combination, each passed as --max-depth 3 --n-estimators 100.
    sweep={"max_depth": [3, 6], "n_estimators": [100]},
    train_resources=TrainResources(gpus=0, cpu="1", memory="2Gi"),  # trees need no GPU
    local_source="sklearn-wine",  # `make run-dag`: the day's sample of sklearn's dataset
)
