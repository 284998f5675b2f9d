"""The serving login and Secret of a model have one rule (ml_contract.serving) on both sides:
infra creates them (ml_infra.model_identities) and the DAG library names them to the deploy
step (ml_platform.serving_identity) without reading them from the platform document. A
difference would hand a model's servers a login that does not exist; the rule must also keep
awkward model names apart and within a Secret name."""

from __future__ import annotations

import pytest
from pulumi_harness import MODELS

from ml_contract.serving import MAX_NAME
from ml_infra.model_identities import ModelIdentity
from ml_platform.serving_identity import looks_like_serving_name, serving_identity

# Names that sanitise alike, that a Secret name cannot hold, or that are too long for one.
AWKWARD = (
    "a.b",
    "a_b",
    "a-b",
    "a..b",
    "A-B",
    "a--b",
    "Churn.Classifier_V2",
    "wine_v2",
    "0.9",
    "-lead",
    "trail-",
    "x-",
    "...",
    "naïve-model",
    "x" * 49,
    "x" * 50,
    "x" * 51,
    "x" * 60,
    "x" * 61,
    "x" * 200,
    "y" * 40 + "." + "y" * 40,
    "serve-me",
)


@pytest.mark.parametrize("model", [*sorted(MODELS), *AWKWARD])
def test_infra_and_the_dag_library_name_a_models_login_and_secret_alike(model: str):
    login, secret = serving_identity(model)
    identity = ModelIdentity(model, "ml-platform", f"{model}.model.yaml")
    assert (identity.serving_user, identity.serving_secret) == (login, secret)
    assert looks_like_serving_name(login) and looks_like_serving_name(secret)
    # A Secret name: a DNS label of lowercase letters, digits and '-'.
    assert len(secret) <= MAX_NAME and secret == secret.lower().strip("-")


def test_awkward_names_keep_models_apart():
    assert len({serving_identity(m) for m in AWKWARD}) == len(AWKWARD)
