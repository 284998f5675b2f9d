"""The ML platform's Pulumi program (see infra/README.md)."""
