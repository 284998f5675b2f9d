"""One read-only serving login per model of the repository's specs, as the program declares
them (under the mocks): its own Secret in the serving namespace, its login in the users
document; none shared between models. The DAG library names them alike without the platform
document (test_infra_serving_names.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi_harness import MODELS, STACKS, declared, stack_config, stack_values, unwrap

from ml_contract.serving import serving_secret, serving_user
from ml_infra import model_identities
from ml_infra.config_reader import StackConfigError
from ml_infra.model_identities import model_identities as identities
from ml_infra.model_identities import spec_team
from ml_platform.model_specs import team_of

# A spec of the repository's, under another model name.
SPEC = (Path(__file__).resolve().parents[2] / "dags" / "churn_classifier.model.yaml").read_text()


def _spec(model: str) -> str:
    return SPEC.replace("model: churn-classifier\n", f"model: {model}\n", 1)


def test_the_repository_has_models_of_more_than_one_team():
    assert len(MODELS) >= 3 and len(set(MODELS.values())) >= 2


@pytest.mark.parametrize("stack", STACKS)
def test_each_model_gets_its_own_login_and_secret(stack: str):
    resources = declared(stack)
    serving_ns = stack_values(stack)["ml-platform:namespaces"]["serving"]
    secrets = {
        s.inputs["metadata"]["name"]: unwrap(s.inputs["stringData"])
        for s in resources.of_type("core/v1:Secret")
        if s.inputs["metadata"]["namespace"] == serving_ns
    }
    # Exactly one Secret per model, each holding that model's login alone.
    assert set(secrets) == {f"serve-{model}-mlflow" for model in MODELS}
    logins = {model: secrets[f"serve-{model}-mlflow"] for model in MODELS}
    assert {m: d["MLFLOW_TRACKING_USERNAME"] for m, d in logins.items()} == {
        m: f"serve-{m}" for m in MODELS
    }
    passwords = [d["MLFLOW_TRACKING_PASSWORD"] for d in logins.values()]
    assert len(set(passwords)) == len(passwords)
    users = json.loads(
        unwrap(resources.named("mlflow-users", ":Secret").inputs["stringData"])["users.json"]
    )["users"]
    for model, data in logins.items():
        assert users[f"serve-{model}"] == data["MLFLOW_TRACKING_PASSWORD"]
    # The names the DAG library gives a deploy step are the ones created (ml_contract.serving).
    assert {secret: data["MLFLOW_TRACKING_USERNAME"] for secret, data in secrets.items()} == {
        serving_secret(model): serving_user(model) for model in MODELS
    }
    # The document carries no names: a new spec must not need it regenerated.
    assert "models" not in resources.outputs["platform_config"]


def test_infra_decides_a_specs_team_as_the_dag_library_does(tmp_path: Path):
    root = tmp_path / "dags"
    for relative in ("a.model.yaml", "teams/fraud/b.model.yaml", "teams/fraud/sub/c.model.yaml"):
        path = root / relative
        assert spec_team(path.relative_to(root)) == team_of(path, root)


@pytest.mark.parametrize(
    "model",
    ["churn-classifier", "wine_v2", "a.b", "a-b", "x" * 63, "y" * 50, "z" * 51, "0.9"],
)
def test_a_serving_name_is_a_secret_name_and_tells_models_apart(model: str):
    user = serving_user(model)
    secret = serving_secret(model)
    assert len(secret) <= 63
    assert all(c.isdigit() or c == "-" or "a" <= c <= "z" for c in secret)
    assert secret[0].isalnum() and secret[-1].isalnum()
    if model in ("churn-classifier", "a-b", "y" * 50):
        assert user == f"serve-{model}"  # a name that fits stays readable
    else:
        assert user != f"serve-{model}"


def test_models_that_sanitise_alike_get_different_logins():
    names = {serving_user(m) for m in ("a.b", "a_b", "a-b", "a..b", "x" * 60, "x" * 61)}
    assert len(names) == 6


def _dags(tmp_path: Path, specs: dict[str, str]) -> Path:
    for relative, model in specs.items():
        path = tmp_path / "dags" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_spec(model))
    return tmp_path


def _read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Shown relative to the repository in messages: this folder stands for it.
    monkeypatch.setattr(model_identities, "REPOSITORY", tmp_path)
    return identities(stack_config("kind"), tmp_path)


def test_a_model_of_a_team_not_on_the_stack_names_its_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _dags(tmp_path, {"teams/fraud/score.model.yaml": "fraud-score"})
    with pytest.raises(StackConfigError) as raised:
        _read(tmp_path, monkeypatch)
    assert str(raised.value) == (
        "dags/teams/fraud/score.model.yaml: model 'fraud-score' belongs to team 'fraud' (its "
        "folder), which is not in ml-platform:teams of this stack; add the team there"
    )


def test_two_specs_of_one_model_and_a_bad_spec_name_their_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _dags(tmp_path, {"a.model.yaml": "m", "teams/examples/b.model.yaml": "m"})
    with pytest.raises(StackConfigError) as raised:
        _read(tmp_path, monkeypatch)
    assert str(raised.value).startswith(
        "dags/teams/examples/b.model.yaml: model 'm' is also the model of dags/a.model.yaml"
    )
    (tmp_path / "dags" / "teams" / "examples" / "b.model.yaml").write_text("model: [\n")
    with pytest.raises(StackConfigError) as raised:
        _read(tmp_path, monkeypatch)
    message = str(raised.value)
    assert message.startswith("dags/teams/examples/b.model.yaml:") and "\n" not in message
    assert str(tmp_path) not in message


def test_the_models_of_a_dag_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _dags(tmp_path, {"teams/examples/w.model.yaml": "w_v2", "top.model.yaml": "top"})
    found = {
        m.model: (m.team, m.serving_user, m.serving_secret) for m in _read(tmp_path, monkeypatch)
    }
    assert found == {
        "top": ("ml-platform", "serve-top", "serve-top-mlflow"),
        "w_v2": ("examples", serving_user("w_v2"), serving_user("w_v2") + "-mlflow"),
    }
