"""A logged model's signature from the contract: what the model server checks requests against."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema

from ml_contract import ModelSpec

# Contract dtype -> MLflow column type; a nullable int column arrives as floats with NaN.
_COLUMN_TYPES = {"int64": "long", "float64": "double", "string": "string", "bool": "boolean"}


def model_signature(spec: ModelSpec, example: pd.DataFrame, outputs: np.ndarray) -> ModelSignature:
    """Inputs from the contract (names, types, required unless nullable); outputs inferred."""
    columns = []
    for column in spec.features:
        kind = (
            "double" if column.nullable and column.dtype == "int64" else _COLUMN_TYPES[column.dtype]
        )
        columns.append(ColSpec(kind, column.name, required=not column.nullable))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        inferred = infer_signature(example, outputs)
    return ModelSignature(inputs=Schema(columns), outputs=inferred.outputs)
