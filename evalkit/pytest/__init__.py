"""The pytest side of evalkit, and the only package that imports pytest: the plugin (hooks, options, fixtures),
the assertion glue (`require`, `GateCase`), xdist scheduling and GPU pinning, and the syrupy snapshot extensions.

Nothing is imported here, so ``evalkit.pytest.snapshots`` or ``evalkit.pytest.plugin`` load only what they need.
"""
