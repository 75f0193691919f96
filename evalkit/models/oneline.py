"""Third-party errors as one line: what transformers, pydantic and friends say when a model folder is bad, turned
into the one line evalkit prints (the file, the problem, the fix).

transformers prints a load report (a table) as a warning and then raises "For details look at the above report!";
compressed-tensors' config validation raises a pydantic dump of several lines. `held_logs` holds transformers'
log records back during one load (and replays them when it succeeds); `HeldLogs.explain` and `first_line` say
what went wrong in one line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["HeldLogs", "first_line", "held_logs"]


class HeldLogs:
    """transformers' log records of one load, held back: replayed when the load succeeds, and turned into one line
    when it fails (its load report is a table printed before an error that says "see the above report")."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.replay = True

    def explain(self, err: BaseException) -> str:
        self.replay = False
        lines = [line for r in self.records for line in r.getMessage().splitlines()]
        bad = [line for line in lines if "| MISMATCH |" in line or "| CONVERSION |" in line]
        if not bad:
            return first_line(err)
        key, _, detail = (part.strip() for part in bad[0].split("|"))
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        return (f"weights do not fit config.json: {key}: {detail.replace('Reinit due to size mismatch - ', '')}"
                f"{more}; restore the config.json saved with these weights")


@contextlib.contextmanager
def held_logs() -> Iterator[HeldLogs]:
    import logging

    held = HeldLogs()
    logger = logging.getLogger("transformers")

    class _Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.records.append(record)

    saved = logger.handlers[:]
    logger.handlers = [_Hold()]
    try:
        yield held
    finally:
        logger.handlers = saved
        for record in held.records if held.replay else ():  # a load that went through: its warnings, as before
            logger.handle(record)


def first_line(err: BaseException) -> str:
    """A third-party error as one line: a pydantic validation error by its first problem, else its first line."""
    errors = getattr(err, "errors", None)
    if callable(errors):
        try:
            found = list(errors())
            loc = ".".join(str(part) for part in found[0]["loc"])
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            return f"invalid {getattr(err, 'title', 'value')}: {loc}: {found[0]['msg']}{more}"
        except (TypeError, KeyError, IndexError):
            pass
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
