"""Every error a user of evalkit can see, under one base: ``except EvalkitError`` catches them all.

Each keeps the builtin base it always had (a bad manifest is still a ``ValueError``), so code written against the
old classes keeps working; the command line catches `EvalkitError` alone and prints it as one line.

>>> issubclass(ManifestError, EvalkitError) and issubclass(ManifestError, ValueError)
True
"""

from __future__ import annotations

__all__ = ["BackendError", "CLIError", "ConfigError", "CycleError", "DriftError", "EvalkitError", "GateError",
           "ManifestError", "ModelLoadError", "QuantizationError", "RequestError", "RunError", "ServerStartError",
           "TaskError", "UnknownNameError", "ZooError"]


class EvalkitError(Exception):
    """Base of every error evalkit raises on purpose; the message names the problem and the fix."""


class UnknownNameError(EvalkitError, ValueError):
    """A name that no registry knows (a metric, a check, a backend); the message lists the known ones."""


class CycleError(EvalkitError, ValueError):
    """A parent (or source) chain that loops back on itself; `name` is the first name met twice."""

    def __init__(self, name: str) -> None:
        super().__init__(f"chain loops back to {name!r}")
        self.name = name


class ManifestError(EvalkitError, ValueError):
    """A manifest that cannot be used; the message names the file, the table and the fix."""


class TaskError(EvalkitError, ValueError):
    """A task that cannot be loaded: unknown name, missing file, malformed row, empty dataset."""


class ModelLoadError(EvalkitError):
    """A model folder that cannot be loaded; the message names the folder, what is wrong and how to fix it."""


class QuantizationError(EvalkitError):
    """A quantization request that cannot run; the message names the problem and the fix."""


class DriftError(EvalkitError, ValueError):
    """Drift cannot be computed: the two models do not share a vocabulary, or there is nothing to compare."""


class ZooError(EvalkitError):
    """The zoo cannot be built or a name is unknown; the message says what to do."""


class GateError(EvalkitError, ValueError):
    """A gate asked to compare what cannot be compared (a metric without per-item scores, different items)."""


class RunError(EvalkitError, ValueError):
    """A run folder that cannot be read or written; the message names the file and the fix."""


class ConfigError(EvalkitError, ValueError):
    """A setting that cannot be used here: a device without its hardware, a dtype that is not a float dtype."""


class CLIError(EvalkitError):
    """A bad command line that argparse cannot see (e.g. a model name used twice); printed as one line."""


# --- issue 16: the serving backends (evalkit.run.backends.openai, evalkit.run.backends.vllm) -----------------------


class BackendError(EvalkitError):
    """A serving backend cannot produce generations: the message names the server, the model or the request."""


class RequestError(BackendError):
    """A request failed for good (after its retries, or at once for a client error): names server, item, status, body."""


class ServerStartError(BackendError):
    """A server could not be started or did not become ready: names the command, the log file and its last lines.

    `refused`: the server process exited while starting (the engine refused the checkpoint, e.g. a quantization
    scheme it has no kernel for), as opposed to an interpreter that is missing or a server that never got ready.
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
