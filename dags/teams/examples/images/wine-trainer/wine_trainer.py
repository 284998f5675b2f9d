"""The examples team's trainer for the wine-cultivar model: `wine_trainer train ...`.

Gradient-boosted trees (scikit-learn) on the raw features of the prepared splits, logged with
MLflow's scikit-learn flavour so that the served model answers one probability per cultivar,
in the order the spec lists them. The platform SDK (trainer.sdk) does the conventions: the
spec, the data under the contract, the retry-safe MLflow run, the XCom and one-line errors.
"""

from __future__ import annotations

import argparse
import sys

import mlflow
import mlflow.sklearn
import numpy as np
import sklearn
import skops
from sklearn.ensemble import GradientBoostingClassifier

from trainer import sdk
from trainer.metrics import class_indexes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wine-trainer", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["train"])
    sdk.add_train_flags(parser)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    return parser


def train(args: argparse.Namespace) -> dict:
    for flag, value, low in (
        ("--max-depth", args.max_depth, 1),
        ("--n-estimators", args.n_estimators, 1),
    ):
        if value < low:
            raise sdk.SdkError(f"{flag} must be at least {low}, got {value}")
    if not 0 < args.learning_rate <= 1:
        raise sdk.SdkError(f"--learning-rate must be in (0, 1], got {args.learning_rate}")
    spec = sdk.spec_from_args(args)
    if spec.task != "multiclass":
        raise sdk.SdkError(
            f"model {spec.model} is a {spec.task} task; wine-trainer fits multiclass"
        )
    prepared = sdk.load_prepared(args.data_uri, spec)
    params = {
        "max_depth": args.max_depth,
        "n_estimators": args.n_estimators,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
    }
    with sdk.tracked_run(args.experiment, params, prepared) as run:
        if run.reused is not None:
            return sdk.result_of(run.reused, spec, params)
        train_split = prepared.split("train")
        model = GradientBoostingClassifier(
            max_depth=args.max_depth,
            n_estimators=args.n_estimators,
            learning_rate=args.learning_rate,
            random_state=args.seed,
        )
        # Class indexes, so predict_proba's columns follow the spec's class order.
        model.fit(train_split.features, class_indexes(train_split.labels, spec.classes))
        example = train_split.features.head(5)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=sdk.signature(spec, example, model.predict_proba(example)),
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            # MLflow saves scikit-learn models with skops, which loads only trusted types;
            # the trees' node storage is ours, written just now.
            skops_trusted_types=["sklearn.tree._tree.Tree"],
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"skops=={skops.__version__}",
                f"mlflow-skinny=={mlflow.__version__}",
                f"numpy=={np.__version__}",
            ],
        )
        sdk.check_model(spec, info.model_uri, example)  # answers what the platform expects
        run.model_logged(info.model_uri)
        metrics = sdk.log_scores(prepared, info.model_uri)
    return sdk.train_result(run, metrics, params)


if __name__ == "__main__":
    sys.exit(sdk.entrypoint(build_parser(), train))
