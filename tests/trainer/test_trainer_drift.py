"""PSI and KS per feature: no drift on a sample of the same distribution, drift on a shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainer.drift import feature_drift, psi


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
    report = feature_drift(reference, current, ["a", "b"])
    assert set(report) == {"a", "b"}
    assert report["a"]["psi"] < 0.05 < 1.0 < report["b"]["psi"]
    assert report["b"]["ks"] > 0.5 and report["b"]["ks_pvalue"] < 1e-6
    assert report["a"]["ks_pvalue"] > 1e-3


@pytest.mark.parametrize("drift", [0.0, 1.5])
def test_generated_partitions_drift_as_asked(drift: float, tmp_path) -> None:
    from trainer import schema
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
    report = feature_drift(paths["ref"], paths["cur"], schema.FEATURE_NAMES)
    worst = max(d["psi"] for d in report.values())
    assert (worst >= 0.2) == (drift > 0), report
