"""The deployer: MLflow registry aliases + a model server rolled out locally or on Kubernetes."""

__version__ = "0.1.0"
