"""The installed pytest11 entry point's old name: re-exports `evalkit.pytest.plugin` (hooks and fixtures)."""

from evalkit.pytest.plugin import *  # noqa: F403
from evalkit.pytest.plugin import __all__  # noqa: F401
