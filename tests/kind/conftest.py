"""ml_infra (infra/) importable for these tests, as infra/kind/kind_platform.py imports it."""

from infra.kind import kind_platform

kind_platform.importable()
