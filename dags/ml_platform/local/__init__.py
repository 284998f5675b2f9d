"""Run the platform on one machine: a local MLflow server and container tasks as processes."""
