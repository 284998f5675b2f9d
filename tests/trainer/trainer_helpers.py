"""Plain helpers shared by the trainer's tests (fixtures live in conftest.py)."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml_contract import TASKS
from trainer import storage

REPO = Path(__file__).resolve().parents[2]
CHURN_SPEC_FILE = REPO / "dags" / "churn_classifier.model.yaml"
GCS_BUCKET = "ml-datasets"  # the bucket the trainer tests' GCS emulator holds
TEST_ROWS = 1500  # small enough to train in a second or two, large enough for stable AUCs
# The console script `make setup` installs beside the interpreter.
TRAINER_SCRIPT = Path(sys.executable).with_name("trainer")


@dataclass(frozen=True)
class CliResult:
    code: int
    xcom: dict | None
    stderr: str

    @property
    def error_line(self) -> str:
        """The last stderr line: where main() prints an expected error."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def unique(prefix: str) -> str:
    """A name no other test on the shared MLflow server uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: proves a failed command changed nothing."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def file_uri(path: Path) -> str:
    return storage.normalize(str(path))


SPECS = Path(__file__).with_name("specs")
# One small contract per task, with categorical and nullable features (specs/shop_*.yaml).
SHOP_SPECS = {task: SPECS / f"shop_{task}.model.yaml" for task in TASKS}
SHOP_LABELS = {"binary": "bought", "multiclass": "segment", "regression": "spend"}
_COLOR_EFFECT = {"red": 1.5, "green": 0.0, "blue": -1.5}  # violet is never generated


def shop_frame(task: str, rows: int, seed: int, first_id: int = 0) -> pd.DataFrame:
    """Rows of the shop contract whose label follows `color` (a string category) most of all,
    then `member` and `size_cm`; channel and size_cm have nulls. Same arguments, same rows."""
    rng = np.random.default_rng(seed)
    color = rng.choice(list(_COLOR_EFFECT), size=rows)
    channel = rng.choice(np.array(["web", "store", "phone"], dtype=object), size=rows)
    channel[rng.uniform(size=rows) < 0.1] = None
    size = np.round(rng.uniform(5, 95, rows), 1)
    size[rng.uniform(size=rows) < 0.1] = np.nan
    member = rng.uniform(size=rows) < 0.4
    visits = rng.poisson(5, rows).clip(0, 50).astype(np.int64)
    signal = (
        np.vectorize(_COLOR_EFFECT.get)(color)
        + 0.8 * member
        + 0.02 * (np.nan_to_num(size, nan=50.0) - 50)
        + rng.normal(0, 0.4, rows)
    )
    frame = pd.DataFrame(
        {
            "order_id": np.arange(first_id, first_id + rows, dtype=np.int64),
            "color": pd.Series(color, dtype=str),
            "channel": pd.Series(channel, dtype=str),
            "size_cm": size,
            "visits": visits,
            "member": member,
        }
    )
    if task == "binary":
        frame["bought"] = np.where(signal > 0.3, "yes", "no")
    elif task == "multiclass":
        frame["segment"] = np.select([signal < -0.7, signal < 0.9], ["low", "mid"], "high")
    else:
        frame["spend"] = np.round(100 + 20 * signal + 0.5 * visits, 2)
    return frame


def write_partition(frame: pd.DataFrame, folder: Path, name: str = "data.parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / name, index=False)
    return folder
