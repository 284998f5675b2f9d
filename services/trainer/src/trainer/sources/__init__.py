"""Demo data sources for `trainer generate`: a day's partition, the same for the same date."""
