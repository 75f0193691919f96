"""The backends' errors: one class per failure kind, all `BackendError`, each message naming what failed and where.

(The restructure of issue 17 introduces `evalkit.errors.EvalkitError`; `BackendError` is meant to derive from it then.)
"""

from __future__ import annotations


class BackendError(Exception):
    """A serving backend cannot produce generations: the message names the server, the model or the request."""


class RequestError(BackendError):
    """A request failed for good (after its retries, or at once for a client error): names server, item, status, body."""


class ServerStartError(BackendError):
    """A server could not be started or did not become ready: names the command, the log file and its last lines."""
