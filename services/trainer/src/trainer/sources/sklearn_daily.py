"""Daily partitions of real datasets that scikit-learn ships (diabetes, wine).

A day's partition is a deterministic sample of the dataset's rows (80% unless --rows asks for
fewer), drawn with the date's seed, each row keeping its dataset index as key: the same date
gives the same rows everywhere, and consecutive days overlap like a slowly changing table.
`drift` shifts every numeric feature by that many standard deviations: a simulated covariate
shift for trying the monitor, never a change of the labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainer.errors import TrainerError
from trainer.sources.dates import seed_for_date

_DAILY_SHARE = 0.8


def diabetes() -> pd.DataFrame:
    """442 patients: age, sex, bmi, bp, six serum measures; label: progression after a year."""
    from sklearn.datasets import load_diabetes

    raw = load_diabetes(scaled=False, as_frame=True).frame
    frame = pd.DataFrame({"patient_id": np.arange(len(raw), dtype=np.int64)})
    frame["age"] = raw["age"].round().astype(np.int64)
    frame["sex"] = raw["sex"].round().astype(np.int64).astype(str)  # coded 1 or 2 in the source
    for name in ("bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"):
        frame[name] = raw[name].astype(np.float64)
    frame["progression"] = raw["target"].astype(np.float64)
    return frame


def wine() -> pd.DataFrame:
    """178 wines of three cultivars: 13 chemical measures; label: the cultivar."""
    from sklearn.datasets import load_wine

    bunch = load_wine(as_frame=True)
    raw = bunch.frame
    frame = pd.DataFrame({"wine_id": np.arange(len(raw), dtype=np.int64)})
    for name in bunch.feature_names:
        # Column names are identifiers: od280/od315_of_diluted_wines has a slash.
        frame[name.replace("/", "_")] = raw[name].astype(np.float64)
    names = np.asarray(bunch.target_names)
    frame["cultivar"] = names[raw["target"].to_numpy()].astype(str)
    return frame


DATASETS = {"sklearn-diabetes": (diabetes, "progression"), "sklearn-wine": (wine, "cultivar")}


def daily_frame(source: str, date: str, rows: int | None, drift: float) -> pd.DataFrame:
    """The day's sample of one dataset (see the module doc)."""
    if source not in DATASETS:
        raise TrainerError(f"--source {source}: unknown (known: {', '.join(DATASETS)})")
    load, label = DATASETS[source]
    full = load()
    size = round(len(full) * _DAILY_SHARE) if rows is None else min(rows, len(full))
    if size < 1:
        raise TrainerError(f"--rows must be at least 1, got {rows}")
    rng = np.random.default_rng(seed_for_date(f"{source}/{date}"))
    picked = np.sort(rng.choice(len(full), size=size, replace=False))
    frame = full.iloc[picked].reset_index(drop=True)
    if drift:
        key = frame.columns[0]
        for name in frame.columns:
            if name not in (key, label) and frame[name].dtype == np.float64:
                frame[name] = frame[name] + drift * float(full[name].std())
    return frame
