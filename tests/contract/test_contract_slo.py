"""The model spec's optional `slo` section: what it reads, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_contract_spec import GOOD

from ml_contract import SPEC_SUFFIX, Slo, SpecError, load_spec, spec_from_json


def _spec(tmp_path: Path, slo: str) -> Path:
    path = tmp_path / f"wine{SPEC_SUFFIX}"
    path.write_text(GOOD + "slo:\n" + slo)
    return path


def test_an_slo_is_read_with_its_defaults_and_round_trips(tmp_path: Path) -> None:
    spec = load_spec(_spec(tmp_path, "  p99_latency_ms: 50\n  max_error_rate: 0.01\n"))
    assert spec.slo == Slo(p99_latency_ms=50.0, max_error_rate=0.01)
    assert (spec.slo.window_minutes, spec.slo.on_breach, spec.slo.min_throughput_rps) == (
        5.0,
        "alert",
        None,
    )
    assert spec_from_json(spec.to_json()) == spec
    full = "  min_throughput_rps: 2\n  window_minutes: 0.5\n  on_breach: rollback\n"
    assert load_spec(_spec(tmp_path, full)).slo == Slo(
        min_throughput_rps=2.0, window_minutes=0.5, on_breach="rollback"
    )


def test_without_an_slo_the_json_form_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / f"wine{SPEC_SUFFIX}"
    path.write_text(GOOD)
    spec = load_spec(path)
    assert spec.slo is None and "slo" not in spec.to_dict()


BAD = {
    "no objective": ("  on_breach: alert\n", "slo", "names no objective"),
    "latency of zero": ("  p99_latency_ms: 0\n", "slo.p99_latency_ms", "must be above 0, got 0"),
    "latency as text": ("  p99_latency_ms: 50ms\n", "slo.p99_latency_ms", "expected a finite"),
    "error rate above 1": ("  max_error_rate: 5\n", "slo.max_error_rate", "between 0 and 1"),
    "negative throughput": (
        "  min_throughput_rps: -1\n",
        "slo.min_throughput_rps",
        "must be above 0, got -1",
    ),
    "window too long": (
        "  p99_latency_ms: 50\n  window_minutes: 60\n",
        "slo.window_minutes",
        "at most 15, got 60",
    ),
    "unknown reaction": (
        "  p99_latency_ms: 50\n  on_breach: page\n",
        "slo.on_breach",
        "'page' is not a reaction (known: alert, rollback)",
    ),
    "unknown key": ("  p95_latency_ms: 50\n", "slo.p95_latency_ms", "unknown key (allowed: "),
}


@pytest.mark.parametrize(("slo", "key", "says"), BAD.values(), ids=list(BAD))
def test_a_bad_slo_is_one_line_naming_file_line_and_key(
    tmp_path: Path, slo: str, key: str, says: str
) -> None:
    path = _spec(tmp_path, slo)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{path}:"), message
    assert f": {key}: " in message and says in message, message
    assert caught.value.key == key
    # The line is the key's own (the section's for a missing objective).
    wanted = key.rsplit(".", 1)[-1] + ":"
    assert path.read_text().splitlines()[caught.value.line - 1].lstrip().startswith(wanted)
