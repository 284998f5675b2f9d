"""The read-only MLflow login a model's servers use, and the Secret carrying it, named from
the model name alone; and the registry tag that says where a version serves.

One rule for both sides of the contract: the platform program creates each model's login and
Secret from the model specs at `pulumi up` (ml_infra.model_identities), and the DAG library
names them to the model's deploy step (ml_platform.serving_identity). Deriving the names from
the model, rather than reading them from the platform document, lets a team add a model spec
without regenerating the document.
"""

from __future__ import annotations

import hashlib
import re

# Written by the deployer on the version it promotes (the endpoint it serves at), read by
# the trainer's monitor to hold the champion's endpoint to the spec's SLO.
DEPLOYED_ENDPOINT_TAG = "deployed_endpoint"

SERVING_PREFIX = "serve-"
SERVING_SECRET_SUFFIX = "-mlflow"
# A Kubernetes object name kept to a DNS label, as every other name of the platform.
MAX_NAME = 63
DIGEST_CHARS = 8
# Secret names take lowercase letters, digits and '-'; MLflow logins anything, so the
# Secret's rule decides both (a model name may also have '.' and '_').
_UNSAFE = re.compile(r"[^a-z0-9]+")


def serving_user(model: str) -> str:
    """`serve-<model>`, with a hash of the model name in place of what a Secret name cannot
    hold or of what is too long, so that two models never share a login."""
    safe = _UNSAFE.sub("-", model.lower()).strip("-")
    room = MAX_NAME - len(SERVING_PREFIX) - len(SERVING_SECRET_SUFFIX)
    if safe != model or len(safe) > room:
        digest = hashlib.sha256(model.encode()).hexdigest()[:DIGEST_CHARS]
        safe = f"{safe[: room - DIGEST_CHARS - 1].rstrip('-')}-{digest}".lstrip("-")
    return SERVING_PREFIX + safe


def serving_secret(model: str) -> str:
    """The Secret (serving namespace) that carries the model's serving login."""
    return serving_user(model) + SERVING_SECRET_SUFFIX
