"""The platform library that DAGs import: pools, container tasks, policies, local runtime."""
