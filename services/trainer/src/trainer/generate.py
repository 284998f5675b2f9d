"""The generate subcommand: write a day's partition of one demo data source."""

from __future__ import annotations

import logging

from trainer import storage
from trainer.errors import TrainerError
from trainer.sources import churn_synthetic, sklearn_daily
from trainer.sources.dates import parse_date

log = logging.getLogger(__name__)

DATA_FILE = "data.parquet"
CHURN = "churn-synthetic"
SOURCES = (CHURN, *sklearn_daily.DATASETS)


def run_generate(
    date: str, output_uri: str, rows: int | None, drift: float, source: str = CHURN
) -> dict:
    """Writes OUTPUT/data.parquet and returns the XCom result."""
    date = parse_date(date)
    output_uri = storage.normalize(output_uri)
    if not 0.0 <= drift <= 5.0:
        raise TrainerError(f"--drift must be between 0 and 5, got {drift}")
    log.info("generating %s for %s (rows %s, drift %.2f)", source, date, rows or "default", drift)
    if source == CHURN:
        frame = churn_synthetic.generate_frame(date, rows or 4000, drift)
    else:
        frame = sklearn_daily.daily_frame(source, date, rows, drift)
    uri = storage.join(output_uri, DATA_FILE)
    storage.write_parquet(frame, uri)
    log.info("wrote %d rows to %s", len(frame), uri)
    return {"uri": uri, "rows": len(frame), "date": date, "drift": drift, "source": source}
