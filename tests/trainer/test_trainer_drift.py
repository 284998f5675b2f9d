"""PSI and KS per feature: no drift on a sample of the same distribution, drift on a shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_contract import Column, ModelSpec
from trainer.drift import category_psi, feature_drift, psi


def test_psi_is_small_for_the_same_distribution() -> None:
    rng = np.random.default_rng(0)
    assert psi(rng.normal(size=5000), rng.normal(size=5000)) < 0.02


def test_psi_grows_with_the_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=5000)
    small, large = psi(reference, reference + 0.3), psi(reference, reference + 1.5)
    assert 0.05 < small < large
    assert large > 1.0


def test_psi_counts_values_beyond_the_reference_range() -> None:
    reference = np.linspace(0, 1, 1000)
    assert psi(reference, np.full(1000, 5.0)) > 5


def test_psi_of_a_constant_reference() -> None:
    assert psi(np.ones(100), np.ones(50)) == 0.0
    assert psi(np.ones(100), np.array([1.0, 2.0])) == float("inf")


def test_feature_drift_reports_each_feature() -> None:
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    current = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(2.0, 1.0, size=2000)})
    columns = [Column("a", "float64"), Column("b", "float64")]
    report = feature_drift(reference, current, columns)
    assert set(report) == {"a", "b"}
    assert report["a"]["psi"] < 0.05 < 1.0 < report["b"]["psi"]
    assert report["b"]["ks"] > 0.5 and report["b"]["ks_pvalue"] < 1e-6
    assert report["a"]["ks_pvalue"] > 1e-3


def test_categorical_features_drift_on_their_category_shares() -> None:
    rng = np.random.default_rng(3)
    kinds = ("a", "b", "c")
    reference = pd.DataFrame(
        {"kind": rng.choice(kinds, 4000), "flag": rng.uniform(size=4000) < 0.5}
    )
    same = pd.DataFrame({"kind": rng.choice(kinds, 4000), "flag": rng.uniform(size=4000) < 0.5})
    shifted = pd.DataFrame(
        {
            "kind": rng.choice(kinds, 4000, p=[0.7, 0.2, 0.1]),
            "flag": rng.uniform(size=4000) < 0.9,
        }
    )
    # A bool column's categories are (False, True), as the spec parser fills them in.
    columns = [
        Column("kind", "string", categories=kinds),
        Column("flag", "bool", categories=(False, True)),
    ]

    calm, moved = (
        feature_drift(reference, same, columns),
        feature_drift(reference, shifted, columns),
    )

    assert set(calm["kind"]) == {"psi"}  # no KS for categories
    assert calm["kind"]["psi"] < 0.01 and calm["flag"]["psi"] < 0.01
    assert moved["kind"]["psi"] > 0.2 and moved["flag"]["psi"] > 0.2


def test_category_psi_counts_missing_values_as_their_own_share() -> None:
    reference = pd.Series(["a", "b"] * 500)
    with_nulls = pd.Series(["a", "b"] * 300 + [None] * 400)

    assert category_psi(reference, reference, ("a", "b")) == 0.0
    # 40% of the rows moved from a known category to "missing": a large shift.
    assert category_psi(reference, with_nulls, ("a", "b")) > 1.0


@pytest.mark.parametrize("drift", [0.0, 1.5])
def test_generated_partitions_drift_as_asked(drift: float, tmp_path, churn_spec: ModelSpec) -> None:
    from trainer.cli import main

    paths = {}
    for name, knob in (("ref", 0.0), ("cur", drift)):
        out = tmp_path / name
        assert (
            main(
                [
                    "--xcom-path",
                    str(tmp_path / "x.json"),
                    "generate",
                    "--date",
                    "2026-11-07" if name == "ref" else "2026-11-08",
                    "--output-uri",
                    str(out),
                    "--rows",
                    "3000",
                    "--drift",
                    str(knob),
                ]
            )
            == 0
        )
        paths[name] = pd.read_parquet(out / "data.parquet")
    report = feature_drift(paths["ref"], paths["cur"], churn_spec.features)
    worst = max(d["psi"] for d in report.values())
    assert (worst >= 0.2) == (drift > 0), report
