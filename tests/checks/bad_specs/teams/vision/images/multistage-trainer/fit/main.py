"""A fixture module (never run)."""
