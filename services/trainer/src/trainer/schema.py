"""The customer-churn dataset's schema, declared once: names, dtypes and allowed values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column of the raw dataset and the values it may hold."""

    name: str
    dtype: str  # "int64" or "float64": the dtype the generator writes and the validator expects
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[int, ...] | None = None  # a closed set of values, e.g. contract lengths
    description: str = ""

    @property
    def is_integer(self) -> bool:
        return self.dtype == "int64"

    def describe_range(self) -> str:
        if self.allowed is not None:
            return "{" + ", ".join(str(v) for v in self.allowed) + "}"
        low = "-inf" if self.minimum is None else f"{self.minimum:g}"
        high = "inf" if self.maximum is None else f"{self.maximum:g}"
        return f"[{low}, {high}]"


ID = Column("customer_id", "int64", minimum=0, description="unique customer key")
LABEL = Column("churned", "int64", allowed=(0, 1), description="1 if the customer left")

FEATURES: tuple[Column, ...] = (
    Column("age", "int64", 18, 100, description="years"),
    Column("tenure_months", "int64", 0, 600, description="months as a customer"),
    Column("monthly_charges", "float64", 0, None, description="current monthly bill"),
    Column("total_charges", "float64", 0, None, description="billed over the whole tenure"),
    Column("support_calls", "int64", 0, None, description="support calls in the last 90 days"),
    Column("data_usage_gb", "float64", 0, None, description="mobile data used last month"),
    Column("late_payments", "int64", 0, None, description="late payments in the last year"),
    Column("contract_months", "int64", allowed=(1, 12, 24), description="contract length"),
)

COLUMNS: tuple[Column, ...] = (ID, *FEATURES, LABEL)
FEATURE_NAMES: tuple[str, ...] = tuple(c.name for c in FEATURES)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
