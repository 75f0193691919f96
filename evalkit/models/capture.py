"""Third-party output, captured: what the libraries evalkit calls print while they load, quantize or generate.

compressed-tensors draws its own tqdm bars ("Applying quantization config", "Dispatching model") and passes
``disable=`` itself, so tqdm's ``TQDM_DISABLE`` cannot silence them; llmcompressor and compressed-tensors log through
loguru (and reset loguru's handlers when first imported), transformers and accelerate through `logging`, and every
one of them warns. On a terminal they break evalkit's one progress bar and bury the verdict table. `captured` sends
all of it to a sink (the run's log: ``run.log`` in the run folder) for the duration; with ``--verbose`` the CLI
passes no sink and everything shows, as before.

Libraries keep references to the stream of the moment (a logging handler or a loguru sink made on first import), so
for the duration ``sys.stdout`` and ``sys.stderr`` are stand-ins (`_Redirect`) that write to the sink, and afterwards
write where the streams they replaced write: a handler made during the capture prints to the terminal again.

>>> import io, sys, warnings
>>> log = io.StringIO()
>>> with captured(log):
...     print("a bar", file=sys.stderr)
...     warnings.warn("a library's warning")
>>> "a bar" in log.getvalue() and "a library's warning" in log.getvalue()
True
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["captured"]


class _Redirect(io.TextIOBase):
    """sys.stdout/sys.stderr for the duration of a capture: into the sink while it lasts, then to the stream it
    replaced (for whatever kept a reference to it)."""

    def __init__(self, outside: Any, sink: TextIO) -> None:
        super().__init__()
        self.outside, self.sink = outside, sink
        self.active = True

    @property
    def target(self) -> Any:
        return self.sink if self.active else self.outside

    def write(self, text: str) -> int:
        self.target.write(text)
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return False if self.active else bool(getattr(self.outside, "isatty", lambda: False)())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.outside, "encoding", None) or "utf-8")


@contextlib.contextmanager
def captured(sink: TextIO | None) -> Iterator[None]:
    """Third-party output into `sink` for the duration (None: leave it where it goes)."""
    if sink is None:
        yield
        return
    err, out = _Redirect(sys.stderr, sink), _Redirect(sys.stdout, sink)
    terminal = {id(sys.stderr), id(sys.stdout), id(sys.__stderr__), id(sys.__stdout__)}
    moved = [(h, h.stream) for h in _stream_handlers() if id(h.stream) in terminal]
    for handler, _ in moved:
        handler.setStream(err)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), _loguru_into(err), \
                warnings.catch_warnings():  # restores showwarning (and the filters) afterwards
            def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
                     ) -> None:
                sink.write(warnings.formatwarning(message, category, filename, lineno, line))

            warnings.showwarning = show
            yield
    finally:
        err.active = out.active = False
        for handler, stream in moved:
            handler.setStream(stream)


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    """Every logging handler that writes to a stream (logging's last-resort handler reads sys.stderr when it
    writes: it is redirected with it, and has no setter)."""
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    return [h for lg in loggers for h in lg.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
            and not isinstance(getattr(type(h), "stream", None), property)]


@contextlib.contextmanager
def _loguru_into(stream: Any) -> Iterator[None]:
    """loguru's handlers set aside for the duration, one handler into `stream` instead; afterwards the old ones come
    back, unless a library reset loguru meanwhile (llmcompressor and compressed-tensors remove every handler when
    first imported): then the library's own configuration stands, as it would without evalkit."""
    try:
        from loguru import logger
    except ImportError:
        yield
        return
    core = logger._core  # type: ignore[attr-defined]  # loguru has no public call to set handlers aside
    with core.lock:
        saved, saved_min = core.handlers, core.min_level
        core.handlers, core.min_level = {}, float("inf")
    ours = logger.add(stream, level="INFO")
    try:
        yield
    finally:
        reset = ours not in core.handlers
        with contextlib.suppress(ValueError):
            logger.remove(ours)
        if not reset:
            with core.lock:
                core.handlers = {**core.handlers, **saved}
                core.min_level = min(saved_min, core.min_level)
