"""Golden sets, signature compatibility and permutation importance, for evaluate.

Every candidate's run keeps its raw test split as artifact `golden/test.parquet` (tagged with
the dataset version): once the run's model is champion, that split is the champion's golden
set, a versioned yardstick a corrupted day cannot move.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric as MlflowMetric
from mlflow.exceptions import MlflowException
from mlflow.types import Schema

from ml_contract import Metric
from trainer.errors import TrainerError
from trainer.prepared import Split

log = logging.getLogger(__name__)

GOLDEN_DIR = "golden"
GOLDEN_FILE = "test.parquet"
GOLDEN_ARTIFACT = f"{GOLDEN_DIR}/{GOLDEN_FILE}"
GOLDEN_VERSION_TAG = "golden.dataset_version"
GOLDEN_ROWS_TAG = "golden.rows"
IMPORTANCE_DIR = "importance"


def log_golden_set(test: Split, dataset_version: str) -> None:
    """Log the raw test split (key, features, label) to the active run as its golden set."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / GOLDEN_FILE
        test.frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=GOLDEN_DIR)
    mlflow.set_tags({GOLDEN_VERSION_TAG: dataset_version, GOLDEN_ROWS_TAG: str(len(test.frame))})


def load_golden_set(client: MlflowClient, run_id: str | None) -> tuple[pd.DataFrame, str] | None:
    """The golden set logged with run `run_id` and its dataset version; None when it has none
    (a run from before golden sets, or a model logged outside a run)."""
    if not run_id:
        return None
    try:
        names = {entry.path for entry in client.list_artifacts(run_id, GOLDEN_DIR)}
        if GOLDEN_ARTIFACT not in names:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, GOLDEN_ARTIFACT, tmp)
            frame = pd.read_parquet(local)
        version = client.get_run(run_id).data.tags.get(GOLDEN_VERSION_TAG, "")
    except (MlflowException, OSError) as exc:
        raise TrainerError(f"run {run_id}: cannot read its golden set ({exc})") from exc
    return frame, version


def signature_breaks(
    champion: Schema | None, candidate: Schema | None, champion_label: str
) -> list[str]:
    """What the candidate's inputs break for callers of the champion: a dropped input, a
    changed type, a new required input. Empty when either model has no named input schema
    (nothing to compare)."""
    if champion is None or candidate is None:
        return []
    if not champion.has_input_names() or not candidate.has_input_names():
        return []
    theirs = {spec.name: spec for spec in champion.inputs}
    ours = {spec.name: spec for spec in candidate.inputs}
    problems = []
    for name, spec in theirs.items():
        if name not in ours:
            problems.append(f"input {name!r} of {champion_label} is missing")
        elif _type_name(ours[name]) != _type_name(spec):
            problems.append(
                f"input {name!r}: {_type_name(spec)} in {champion_label}, "
                f"{_type_name(ours[name])} in the candidate"
            )
    for name, spec in ours.items():
        if name not in theirs and spec.required:
            problems.append(f"input {name!r} is required by the candidate, not by {champion_label}")
    return problems


def _type_name(spec: object) -> str:
    kind = getattr(spec, "type", None)
    return str(getattr(kind, "name", kind))


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most `max_rows` rows, a seeded sample in their original order, index reset."""
    if len(frame) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(frame), max_rows, replace=False))
        frame = frame.iloc[keep]
    return frame.reset_index(drop=True)


def permutation_importance(
    score_rows: Callable[[pd.DataFrame], float],
    rows: pd.DataFrame,
    features: Sequence[str],
    metric: Metric,
    seed: int = 0,
    repeats: int = 3,
) -> dict[str, float]:
    """Mean drop of `metric` (in its better direction) when one feature's column is shuffled.

    sklearn.inspection.permutation_importance wants an estimator; this works on any scorer of
    raw rows, e.g. a pyfunc model. Sample the rows first (sample_rows) to keep it cheap.
    """
    rng = np.random.default_rng(seed)
    rows = rows.reset_index(drop=True)
    baseline = score_rows(rows)
    importance = {}
    for feature in features:
        drops = []
        for _ in range(repeats):
            shuffled = rows.copy()
            # reset_index keeps the column's dtype (object strings with None, nullable ints).
            permuted = rows[feature].iloc[rng.permutation(len(rows))]
            shuffled[feature] = permuted.reset_index(drop=True)
            drops.append(metric.better(baseline, score_rows(shuffled)))
        importance[feature] = float(np.mean(drops))
    return importance


def log_importance(
    client: MlflowClient, run_id: str, importance: dict[str, float], info: dict
) -> None:
    """importance_<feature> metrics, a JSON artifact and (when matplotlib is there) a plot."""
    client.log_batch(
        run_id,
        metrics=[_metric(f"importance_{name}", value) for name, value in importance.items()],
    )
    ranked = sorted(importance.items(), key=lambda item: item[1], reverse=True)
    with tempfile.TemporaryDirectory() as tmp:
        document = Path(tmp) / "permutation_importance.json"
        document.write_text(json.dumps({**info, "importance": dict(ranked)}, indent=2))
        client.log_artifact(run_id, str(document), IMPORTANCE_DIR)
        plot = _plot(ranked, info.get("metric", ""), Path(tmp) / "permutation_importance.png")
        if plot is not None:
            client.log_artifact(run_id, str(plot), IMPORTANCE_DIR)


def _metric(key: str, value: float) -> MlflowMetric:
    return MlflowMetric(key, value, int(time.time() * 1000), 0)


def _plot(ranked: list[tuple[str, float]], metric: str, path: Path) -> Path | None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # not in the trainer image's dependencies: the JSON says it all
        return None
    figure = Figure(figsize=(6, 0.4 * len(ranked) + 1.2))
    FigureCanvasAgg(figure)  # no pyplot: no global state, no display backend
    axes = figure.add_subplot()
    names = [name for name, _ in reversed(ranked)]
    axes.barh(names, [value for _, value in reversed(ranked)])
    axes.set_xlabel(f"drop of {metric} when shuffled")
    axes.set_title("Permutation importance on the golden set")
    figure.tight_layout()
    figure.savefig(path)
    return path
