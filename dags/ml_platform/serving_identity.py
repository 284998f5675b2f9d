"""A model's servers' read-only MLflow login and its Secret (serving namespace), named from
the model name alone.

infra's ml_infra.model_identities.serving_user makes the same names from the same model specs
when `pulumi up` creates the logins; the two rules must stay identical
(tests/infra/test_infra_serving_names.py). Deriving the names here, rather than reading them
from the platform document, lets a team add a model spec without regenerating the document.
"""

from __future__ import annotations

import hashlib
import re

SERVING_PREFIX = "serve-"
SERVING_SECRET_SUFFIX = "-mlflow"
# A Kubernetes object name kept to a DNS label, as every other name of the platform.
MAX_NAME = 63
DIGEST_CHARS = 8
# Secret names take lowercase letters, digits and '-'; MLflow logins anything, so the
# Secret's rule decides both (a model name may also have '.' and '_').
_UNSAFE = re.compile(r"[^a-z0-9]+")
# What any model's login or Secret looks like: a value of this form in a deploy pod that is
# not its own model's is another model's.
_SERVING_NAME = re.compile(re.escape(SERVING_PREFIX) + r"[a-z0-9-]+")


def serving_user(model: str) -> str:
    """`serve-<model>`, with a hash of the model name in place of what a Secret name cannot
    hold or of what is too long, so that two models never share a login."""
    safe = _UNSAFE.sub("-", model.lower()).strip("-")
    room = MAX_NAME - len(SERVING_PREFIX) - len(SERVING_SECRET_SUFFIX)
    if safe != model or len(safe) > room:
        digest = hashlib.sha256(model.encode()).hexdigest()[:DIGEST_CHARS]
        safe = f"{safe[: room - DIGEST_CHARS - 1].rstrip('-')}-{digest}".lstrip("-")
    return SERVING_PREFIX + safe


def serving_identity(model: str) -> tuple[str, str]:
    """(the model servers' MLflow login, the Secret in the serving namespace carrying it)."""
    login = serving_user(model)
    return login, login + SERVING_SECRET_SUFFIX


def looks_like_serving_name(value: str) -> bool:
    """Whether `value` has the form of some model's serving login or Secret."""
    return _SERVING_NAME.fullmatch(value) is not None
