"""Pulumi entry point: `pulumi up` in infra/ runs the platform program for the selected stack."""

from ml_infra.program import main

main()
