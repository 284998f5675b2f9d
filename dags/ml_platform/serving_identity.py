"""A model's servers' read-only MLflow login and its Secret (serving namespace), as the deploy
step is given them: named from the model name by ml_contract.serving, the rule the platform
program creates them by.
"""

from __future__ import annotations

import re

from ml_contract.serving import SERVING_PREFIX, serving_secret, serving_user

# What any model's login or Secret looks like: a value of this form in a deploy pod that is
# not its own model's is another model's.
_SERVING_NAME = re.compile(re.escape(SERVING_PREFIX) + r"[a-z0-9-]+")


def serving_identity(model: str) -> tuple[str, str]:
    """(the model servers' MLflow login, the Secret in the serving namespace carrying it)."""
    return serving_user(model), serving_secret(model)


def looks_like_serving_name(value: str) -> bool:
    """Whether `value` has the form of some model's serving login or Secret."""
    return _SERVING_NAME.fullmatch(value) is not None
