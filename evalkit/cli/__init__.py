"""The ``evalkit`` console script: argparse (`parser`), dispatch (`dispatch.main`) and the subcommands (`commands`)."""

from evalkit.cli.dispatch import main, prepare_environment
from evalkit.errors import CLIError

__all__ = ["CLIError", "main", "prepare_environment"]
