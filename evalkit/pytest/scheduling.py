"""How the gate's tests are parametrized and spread: test ids, pytest-xdist work units (one per device and model),
and one GPU per xdist worker."""

from __future__ import annotations

from evalkit.gate.manifest import Case, Manifest

__all__ = ["DEVICES", "case_id", "flavours", "worker_device", "xdist_groups"]


DEVICES = ("cpu", "cuda")
"""The flavours of the gate's tests: the same checks on CPU, and on CUDA under the ``gpu`` marker."""


def flavours(device: str, option: str | None = None) -> tuple[str, ...]:
    """The flavours to collect: ``--gate-device`` when given (``both``: cpu and cuda), else the manifest's device (a
    CPU manifest gets no CUDA items to skip; ``auto`` gets both, the CUDA ones skipping where there is no GPU).

    >>> flavours("cpu"), flavours("cuda:1"), flavours("auto"), flavours("cpu", "both")
    (('cpu',), ('cuda',), ('cpu', 'cuda'), ('cpu', 'cuda'))
    """
    wanted = option or ("cpu" if device == "cpu" else "cuda" if device.startswith("cuda") else "both")
    return DEVICES if wanted == "both" else (wanted,)


def case_id(device: str, case: Case) -> str:
    """The parametrize id of one (device, model, task): ``cpu-base-zoo_math``."""
    return f"{device}-{case.id}"


def xdist_groups(manifest: Manifest) -> dict[str, str]:
    """Test id -> the work unit it belongs to under pytest-xdist: one per device and model, so a worker loads and
    evaluates each of its models once. (A parent's generations reach the other workers through the engine's disk
    cache; grouping whole families instead would leave one worker with most of a zoo built around one parent.)

    >>> from evalkit.gate.manifest import loads
    >>> m = loads("[tasks.t]\\n[tasks.u]\\n[models.p]\\npath='p'\\n[models.v]\\npath='v'\\nparent='p'\\n")
    >>> xdist_groups(m)["cuda-v-t"], xdist_groups(m)["cuda-v-u"]
    ('cuda-v', 'cuda-v')
    """
    return {case_id(d, c): f"{d}-{c.model}" for d in DEVICES for c in manifest.cases()}


def worker_device(worker_id: str | None, visible: str | None, count: int) -> str | None:
    """The CUDA_VISIBLE_DEVICES value for a pytest-xdist worker: worker gw<i> pins GPU i (round robin).

    visible: the CUDA_VISIBLE_DEVICES the run started with (None: all `count` GPUs). None when nothing to pin.

    >>> worker_device("gw3", None, 4), worker_device("gw5", "2,3", 0), worker_device("gw0", None, 0)
    ('3', '3', None)
    """
    if not worker_id or not worker_id.startswith("gw"):
        return None
    gpus = [g.strip() for g in visible.split(",") if g.strip()] if visible else [str(i) for i in range(count)]
    if not gpus:
        return None
    return gpus[int(worker_id[2:]) % len(gpus)]
