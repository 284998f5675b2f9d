"""Each task end to end against the real MLflow server, on a small contract with categories.

One module-scoped run per task (binary, multiclass, regression) validates, preprocesses and
trains the shop contract (tests/trainer/specs/shop_*.model.yaml) through the CLI; the tests
then load the logged model by URI, evaluate it, register it and find its spec by name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from trainer_helpers import SHOP_SPECS, file_uri, shop_frame, unique, write_partition

from ml_contract import SPEC_ENV, ModelSpec, load_spec, metrics_for
from trainer.cli import main
from trainer.errors import TrainerError
from trainer.evaluate import predict_outputs
from trainer.metrics import score
from trainer.specs import SPEC_ARTIFACT, resolve_spec

pytestmark = pytest.mark.slow  # trains real models against MLflow

ROWS = 800
EPOCHS = 15
# Per-epoch validation scores each task logs (cheap ones: the forward pass is already done).
EPOCH_SCORES = {
    "binary": {"val_roc_auc", "val_accuracy"},
    "multiclass": {"val_accuracy"},
    "regression": {"val_rmse"},
}


@dataclass(frozen=True)
class Trained:
    task: str
    spec: ModelSpec
    spec_file: Path
    raw: Path
    prepared: Path
    train: dict  # the train XCom


def _cli(tmp: Path, *args: str) -> dict:
    """trainer.cli.main in-process, for a module-scoped fixture (capsys is per test)."""
    xcom = tmp / f"xcom-{unique(args[0])}.json"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["--xcom-path", str(xcom), *args])
    assert code == 0, err.getvalue()[-3000:]
    return json.loads(xcom.read_text())


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression"])
def trained(request, mlflow_server, tmp_path_factory) -> Iterator[Trained]:
    task = request.param
    tmp = tmp_path_factory.mktemp(f"shop-{task}")
    spec_file = SHOP_SPECS[task]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        for name in [k for k in os.environ if k.startswith("AIRFLOW_CTX_")]:
            env.delenv(name)
        mlflow.set_tracking_uri(mlflow_server.url)
        raw = write_partition(shop_frame(task, ROWS, seed=11), tmp / "daily" / "2026-11-21")
        prepared = tmp / "prepared"
        spec = ("--spec", str(spec_file))
        _cli(tmp, "validate", "--input-uri", str(raw), *spec)
        _cli(tmp, "preprocess", "--input-uri", str(raw), "--output-uri", str(prepared), *spec)
        train = _cli(
            tmp,
            "train",
            "--data-uri",
            str(prepared),
            "--experiment",
            unique(f"shop-{task}"),
            "--epochs",
            str(EPOCHS),
            "--batch-size",
            "64",
            "--learning-rate",
            "0.01",
            *spec,
        )
        yield Trained(task, load_spec(spec_file), spec_file, raw, prepared, train)


def _crown(model_uri: str, model_name: str) -> str:
    version = mlflow.register_model(model_uri, model_name).version
    MlflowClient().set_registered_model_alias(model_name, "champion", version)
    return str(version)


def test_each_task_trains_and_logs_the_metrics_of_its_task(trained: Trained, mlflow_uri: str):
    spec, xcom = trained.spec, trained.train

    names = {f"{split}_{m}" for split in ("val", "test") for m in metrics_for(spec.task)}
    assert set(xcom["metrics"]) == names
    deciding = spec.deciding_metric
    # Learnable: the label follows a string category, so it clears the spec's own bar.
    assert deciding.meets(xcom["metrics"][f"test_{spec.metric}"], spec.promotion.threshold)
    client = MlflowClient()
    run = client.get_run(xcom["run_id"])
    assert run.data.params["task"] == spec.task
    assert run.data.tags["ml_platform.model"] == spec.model
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/{SPEC_ARTIFACT}") == (
        spec.to_dict()
    )
    for name in {"train_loss", "val_loss"} | EPOCH_SCORES[spec.task]:
        history = client.get_metric_history(run.info.run_id, name)
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1)), name
    if spec.task == "regression":
        # The per-epoch rmse is in the label's units, like the final one.
        last = client.get_metric_history(run.info.run_id, "val_rmse")[-1].value
        assert last == pytest.approx(xcom["metrics"]["val_rmse"], rel=1e-3)


def test_the_logged_model_takes_raw_rows_with_unseen_categories_and_nulls(
    trained: Trained, mlflow_uri: str
):
    spec = trained.spec
    model = mlflow.pyfunc.load_model(trained.train["model_uri"])
    schema = model.metadata.get_input_schema()
    assert schema.input_names() == list(spec.feature_names)
    assert {c.name: (c.type.name, c.required) for c in schema.inputs} == {
        "color": ("string", True),
        "channel": ("string", False),
        "size_cm": ("double", False),
        "visits": ("long", True),
        "member": ("boolean", True),
    }
    test = pd.read_parquet(trained.prepared / "test.parquet")
    assert test["channel"].isna().any() and test["size_cm"].isna().any()  # nulls, as served
    odd = pd.DataFrame(
        {
            # violet is in the contract, but no training row had it.
            "color": ["violet", "red", "blue", "violet"],
            "channel": [None, "web", None, "phone"],
            "size_cm": [None, 12.5, None, 80.0],
            "visits": [3, 0, 7, 2],
            "member": [True, False, False, True],
        }
    )
    assert "violet" not in set(pd.read_parquet(trained.prepared / "train.parquet")["color"])

    on_test = np.asarray(model.predict(test))  # the key and label columns are ignored
    on_odd = np.asarray(model.predict(odd))
    # A category no training row had answers like a value outside the contract: no effect
    # of untrained weights.
    outside = np.asarray(model.predict(odd.assign(color=["zzz", "red", "blue", "zzz"])))
    np.testing.assert_allclose(on_odd, outside, rtol=1e-6)

    rows = len(test)
    if spec.task == "binary":
        assert on_test.shape == (rows,) and on_odd.shape == (4,)
        assert ((on_odd >= 0) & (on_odd <= 1)).all()
    elif spec.task == "multiclass":
        assert on_test.shape == (rows, 3) and on_odd.shape == (4, 3)
        np.testing.assert_allclose(on_odd.sum(axis=1), 1.0, rtol=1e-5)
    else:
        assert on_test.shape == (rows,) and on_odd.shape == (4,)
        spend = test["spend"]
        assert np.isfinite(on_odd).all()
        # Label units, not z-scores: the predictions sit where the spend does.
        assert abs(on_test.mean() - spend.mean()) < 0.5 * spend.std()
    # The scores train logged are the logged model's on the raw test rows.
    metrics = score(spec, test[spec.label].to_numpy(), on_test)
    assert metrics[spec.metric] == pytest.approx(
        trained.train["metrics"][f"test_{spec.metric}"], abs=1e-6
    )
    # The category matters, and in the direction the data has it: red raises the signal.
    red, blue = (np.asarray(model.predict(test.assign(color=c))) for c in ("red", "blue"))
    if spec.task == "multiclass":
        red, blue = red[:, spec.classes.index("high")], blue[:, spec.classes.index("high")]
    assert red.mean() > blue.mean()


def test_a_request_that_breaks_the_signature_is_refused_in_one_line(
    trained: Trained, mlflow_uri: str
):
    model_uri = trained.train["model_uri"]
    model = mlflow.pyfunc.load_model(model_uri)
    rows = pd.read_parquet(trained.prepared / "test.parquet").head(5)

    with pytest.raises(TrainerError) as fractional:
        predict_outputs(model, model_uri, rows.assign(visits=rows["visits"] + 0.5), trained.spec)
    with pytest.raises(TrainerError) as missing:
        predict_outputs(model, model_uri, rows.drop(columns=["color"]), trained.spec)

    assert str(fractional.value).startswith(f"{model_uri}: predicting raw rows failed (")
    assert "visits" in str(fractional.value)
    assert "\n" not in str(fractional.value)
    assert "color" in str(missing.value)


def test_a_nullable_column_may_be_left_out_of_a_request(trained: Trained, mlflow_uri: str):
    """The signature marks nullable columns optional: a request without them is valid."""
    model = mlflow.pyfunc.load_model(trained.train["model_uri"])
    rows = pd.read_parquet(trained.prepared / "test.parquet").head(5)

    without = np.asarray(model.predict(rows.drop(columns=["channel", "size_cm"])))
    as_nulls = np.asarray(model.predict(rows.assign(channel=None, size_cm=np.nan)))

    np.testing.assert_allclose(without, as_nulls, rtol=1e-6)


def test_evaluate_decides_with_the_metric_and_direction_of_the_spec(
    trained: Trained, run_cli, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
):
    spec, candidate = trained.spec, trained.train
    monkeypatch.delenv(SPEC_ENV)  # the spec comes from the prepared data, then the registry
    model_name = unique(spec.model)
    metric = spec.deciding_metric

    def evaluate() -> dict:
        result = run_cli(
            "evaluate",
            "--model-uri",
            candidate["model_uri"],
            "--data-uri",
            str(trained.prepared),
            "--model-name",
            model_name,
            "--run-id",
            candidate["run_id"],
        )
        assert result.code == 0, result.stderr
        return result.xcom

    first = evaluate()
    value = candidate["metrics"][f"test_{spec.metric}"]
    bar = "minimum" if metric.higher_is_better else "maximum"
    assert first["metric"] == spec.metric
    assert first["higher_is_better"] is metric.higher_is_better
    assert first["thresholds"] == {
        "threshold": spec.promotion.threshold,
        "min_improvement": spec.promotion.min_improvement,
        "golden_tolerance": spec.promotion.golden_tolerance,
        "breaking_change": spec.promotion.breaking_change,
        "suspect_drop": spec.promotion.suspect_drop,
        "drift_threshold": spec.promotion.drift_threshold,
        "max_importance_share": spec.promotion.max_importance_share,
    }
    assert first["should_deploy"] is True
    assert first["reason"] == (
        f"no champion yet; candidate {spec.metric} {value:.4f} meets the {bar} "
        f"{spec.promotion.threshold:.4f}"
    )
    assert first["candidate"]["score"] == pytest.approx(value, abs=1e-9)
    run = MlflowClient().get_run(candidate["run_id"])
    assert run.data.metrics[f"eval_{spec.metric}"] == pytest.approx(value)

    version = _crown(candidate["model_uri"], model_name)
    itself = evaluate()
    assert itself["should_deploy"] is False  # no improvement over itself
    assert itself["champion"]["version"] == version
    assert itself["reason"].endswith(
        f"by the required {spec.promotion.min_improvement:.4f} (change +0.0000)"
    )


def test_model_name_finds_the_spec_logged_with_the_champion(
    trained: Trained, run_cli, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    spec, churn_json = trained.spec, os.environ[SPEC_ENV]
    model_name = unique(spec.model)
    _crown(trained.train["model_uri"], model_name)
    monkeypatch.delenv(SPEC_ENV)

    validated = run_cli(
        "validate", "--model-name", model_name, "--input-uri", str(trained.raw / "data.parquet")
    )
    output = tmp_path / "prepared"
    preprocessed = run_cli(
        "preprocess",
        "--model-name",
        model_name,
        "--input-uri",
        str(trained.raw),
        "--output-uri",
        str(output),
    )

    assert validated.code == 0, validated.stderr
    assert validated.xcom["model"] == spec.model
    assert preprocessed.code == 0, preprocessed.stderr
    assert json.loads((output / "spec.json").read_text()) == spec.to_dict()
    # The registry's spec beats the one beside some other data ...
    churn_data = tmp_path / "churn"
    churn_data.mkdir()
    (churn_data / "spec.json").write_text(churn_json)
    assert resolve_spec(None, model_name, str(churn_data)) == spec
    # ... and the DAG's env beats the registry: under churn's contract the data is wrong.
    monkeypatch.setenv(SPEC_ENV, churn_json)
    under_churn = run_cli(
        "validate", "--model-name", model_name, "--input-uri", str(trained.raw / "data.parquet")
    )
    assert under_churn.code == 1
    assert "missing column(s) 'customer_id'" in under_churn.error_line


def test_monitor_compares_categories_and_scores_the_champion_by_its_spec(
    trained: Trained, run_cli, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    spec = trained.spec
    model_name = unique(spec.model)
    version = _crown(trained.train["model_uri"], model_name)
    monkeypatch.delenv(SPEC_ENV)  # the champion's logged spec
    calm = write_partition(shop_frame(spec.task, 400, seed=12, first_id=10_000), tmp_path / "a")
    shifted_frame = shop_frame(spec.task, 400, seed=13, first_id=20_000)
    shifted_frame.loc[shifted_frame.index % 4 != 0, "color"] = "violet"  # a new kind of order
    shifted = write_partition(shifted_frame, tmp_path / "b")

    def monitor(partition: Path, *flags: str) -> dict:
        result = run_cli(
            "monitor", "--current-uri", str(partition), "--model-name", model_name, *flags
        )
        assert result.code == 0, result.stderr
        return result.xcom

    quiet, moved = monitor(calm), monitor(shifted)
    # A bar no model meets, on the side the metric improves towards.
    metric = spec.deciding_metric
    unreachable = "0.9999" if metric.higher_is_better else "0.01"
    decayed = monitor(calm, "--threshold", unreachable)

    # The reference is the champion's training partition, found through its run.
    assert quiet["reference_uri"] == file_uri(trained.raw)
    assert set(quiet["drift"]) == set(spec.feature_names)
    assert set(quiet["drift"]["color"]) == {"psi"}  # categories: PSI over their shares
    assert quiet["drifted_features"] == []
    assert quiet["champion"]["version"] == version
    assert quiet["champion"]["metric"] == spec.metric
    assert spec.deciding_metric.meets(quiet["champion"]["score"], spec.promotion.threshold)
    assert quiet["should_retrain"] is False
    assert moved["drifted_features"] == ["color"]
    assert moved["should_retrain"] is True
    assert moved["reason"].startswith("PSI >= 0.2 on color")
    side = "fell below" if metric.higher_is_better else "rose above"
    assert decayed["should_retrain"] is True
    assert decayed["reason"] == (
        f"champion {spec.metric} {quiet['champion']['score']:.4f} {side} {float(unreachable):.4f}"
    )
