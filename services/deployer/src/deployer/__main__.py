"""`python -m deployer` is the `deployer` console script."""

from deployer.cli import main

raise SystemExit(main())
