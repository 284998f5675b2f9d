"""Which spec a subcommand runs under: --spec, then $ML_MODEL_SPEC, then the registry, then the
prepared data; a bad one is an error, never skipped. (The registry step against a registered
model is in test_trainer_tasks.py, which trains one.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from trainer_helpers import SHOP_SPECS, unique

from ml_contract import SPEC_ENV, ModelSpec, load_spec
from trainer.errors import TrainerError
from trainer.specs import resolve_spec


@pytest.fixture
def shop_spec() -> ModelSpec:
    return load_spec(SHOP_SPECS["binary"])


@pytest.fixture
def shop_data(tmp_path: Path, shop_spec: ModelSpec) -> Path:
    """A folder holding the spec.json that preprocess writes beside its splits."""
    folder = tmp_path / "prepared"
    folder.mkdir()
    (folder / "spec.json").write_text(shop_spec.to_json())
    return folder


def test_the_flag_wins_over_the_env_and_the_data(
    churn_spec: ModelSpec, shop_spec: ModelSpec, shop_data: Path, tmp_path: Path
):
    as_json = tmp_path / "churn.json"
    as_json.write_text(churn_spec.to_json())
    # The env holds churn's spec (conftest); the data holds the shop's.
    assert resolve_spec(str(SHOP_SPECS["binary"]), "some-model", str(shop_data)) == shop_spec
    assert resolve_spec(f"file://{SHOP_SPECS['binary']}") == shop_spec
    assert resolve_spec(str(as_json), None, str(shop_data)) == churn_spec  # the JSON form


def test_the_env_wins_over_the_data(churn_spec: ModelSpec, shop_data: Path):
    assert resolve_spec(None, None, str(shop_data)) == churn_spec


def test_the_data_is_the_last_resort(
    shop_spec: ModelSpec, shop_data: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(SPEC_ENV)

    assert resolve_spec(None, None, str(shop_data)) == shop_spec


def test_without_any_spec_the_error_says_what_was_tried(
    tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(SPEC_ENV)
    name = unique("no-such-model")

    with pytest.raises(TrainerError) as error:
        resolve_spec(None, name, str(tmp_path))

    assert str(error.value) == (
        f"no model spec: pass --spec FILE or set {SPEC_ENV} "
        f"(no spec logged with model {name!r}; no spec.json in {tmp_path})"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("{not json", f"{SPEC_ENV}: not valid JSON ("),
        ('{"model": "m", "task": "ranking"}', f"{SPEC_ENV}: task: 'ranking' is not a task"),
    ],
)
def test_a_bad_spec_in_the_env_is_an_error_even_when_the_data_has_one(
    env: str, message: str, shop_data: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(SPEC_ENV, env)

    with pytest.raises(TrainerError) as error:
        resolve_spec(None, None, str(shop_data))

    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_a_bad_spec_file_is_an_error_naming_it(tmp_path: Path):
    missing_yaml, missing_json = tmp_path / "gone.model.yaml", tmp_path / "gone.json"
    broken = tmp_path / "broken.model.yaml"
    broken.write_text(SHOP_SPECS["binary"].read_text().replace("task: binary", "task: ranking"))

    for path in (missing_yaml, missing_json):
        with pytest.raises(TrainerError, match=re.escape(f"{path}: cannot read")):
            resolve_spec(str(path))
    with pytest.raises(TrainerError) as error:
        resolve_spec(str(broken))
    assert str(error.value).startswith(f"{broken}:5: task: 'ranking' is not a task")


def test_the_cli_without_a_spec_is_a_one_line_error(
    run_cli, raw_partition: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(SPEC_ENV)

    result = run_cli("validate", "--input-uri", str(raw_partition))

    assert result.code == 1
    assert result.error_line == (
        f"trainer validate: error: no model spec: pass --spec FILE or set {SPEC_ENV}"
    )
    assert not (raw_partition / "_validation.json").exists()  # nothing checked, nothing written


def test_the_cli_runs_validate_under_the_spec_it_is_given(run_cli, raw_partition: Path):
    # Churn's partition under the shop contract (the flag beats the env): the wrong columns.
    result = run_cli(
        "validate", "--input-uri", str(raw_partition), "--spec", str(SHOP_SPECS["binary"])
    )

    assert result.code == 1
    assert "missing column(s) 'order_id', 'color', 'channel'" in result.error_line
