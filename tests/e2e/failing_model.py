"""A model whose every prediction fails: MLflow "models from code" for the rollback e2e test.

Logged with `mlflow.pyfunc.log_model(python_model=<this file>, ...)`, the file itself is the
model: the model server loads it (it needs only mlflow) and becomes ready, and every request,
the deployer's smoke test included, gets an error. Not a test module: pytest does not collect
it, and it is not imported by the tests.
"""

import mlflow
from mlflow.pyfunc import PythonModel

FAILURE = "this model fails every prediction on purpose (e2e rollback test)"


class FailingModel(PythonModel):
    # No type hints: MLflow would infer a signature from them and override the one logged
    # (the champion's), which the smoke test's input example is checked against.
    def predict(self, context, model_input, params=None):
        raise RuntimeError(FAILURE)


mlflow.models.set_model(FailingModel())
