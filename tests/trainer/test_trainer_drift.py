"""PSI and KS per feature: no drift on a sample of the same distribution, drift on a shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_contract import Column, ModelSpec, Promotion
from trainer.drift import category_psi, feature_drift, profile_drift, psi
from trainer.profile import profile_frame


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


def _profile_spec() -> ModelSpec:
    return ModelSpec(
        model="m",
        task="regression",
        key="id",
        label="y",
        columns=(
            Column("id", "int64"),
            Column("x", "float64"),
            Column("kind", "string", nullable=True, categories=("a", "b", "c")),
            Column("y", "float64"),
        ),
        metric="rmse",
        promotion=Promotion(threshold=10.0),
    )


def test_profile_drift_matches_sample_drift_on_the_same_data() -> None:
    """Against the reference's own profile: small for the same distribution, large on a
    shift, and close to the PSI computed from the reference rows themselves."""
    rng = np.random.default_rng(5)
    spec = _profile_spec()

    def frame(loc: float, p: list[float], rows: int = 4000) -> pd.DataFrame:
        kinds = rng.choice(["a", "b", "c", None], rows, p=p)
        return pd.DataFrame(
            {"id": range(rows), "x": rng.normal(loc, 1.0, rows), "kind": kinds, "y": 0.0}
        )

    reference = frame(0.0, [0.5, 0.3, 0.1, 0.1])
    profile = profile_frame(reference, spec)
    calm = profile_drift(profile, frame(0.0, [0.5, 0.3, 0.1, 0.1]), spec.features)
    moved = profile_drift(profile, frame(1.0, [0.1, 0.2, 0.3, 0.4]), spec.features)

    assert set(calm) == {"x", "kind"}
    assert calm["x"]["psi"] < 0.03 and calm["kind"]["psi"] < 0.01
    assert moved["x"]["psi"] > 0.25 and moved["kind"]["psi"] > 0.5
    assert 0.3 < moved["x"]["ks"] <= 0.45  # the exact KS of a 1-sigma shift is 0.38
    assert moved["x"]["psi"] == pytest.approx(
        psi(reference["x"].to_numpy(), frame(1.0, [1, 0, 0, 0])["x"].to_numpy()), rel=0.5
    )


def test_profile_drift_sees_values_beyond_the_reference_max() -> None:
    spec = _profile_spec()
    reference = pd.DataFrame({"id": range(1000), "x": np.linspace(0, 1, 1000), "kind": "a"})
    profile = profile_frame(reference.assign(y=0.0), spec)
    scaled = reference.assign(x=reference["x"] * 1e12, y=0.0)
    report = profile_drift(profile, scaled, spec.features)
    assert report["x"]["psi"] > 5
    assert report["kind"]["psi"] == pytest.approx(0.0, abs=1e-6)


def test_profile_drift_leaves_out_features_the_profile_lacks() -> None:
    spec = _profile_spec()
    reference = pd.DataFrame({"id": range(100), "x": np.arange(100.0), "kind": "a", "y": 0.0})
    profile = profile_frame(reference, spec)
    del profile["columns"]["kind"]
    assert set(profile_drift(profile, reference, spec.features)) == {"x"}
