"""``python -m evalkit.cli``: the ``evalkit`` console script."""

from evalkit.cli.dispatch import main

raise SystemExit(main())
