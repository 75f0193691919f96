"""Packaging beside pyproject.toml (which holds the metadata): the one thing pyproject cannot say.

The fixture zoo (``fixtures/``: its manifest and committed parents) and the guides (``docs/``) live at the
repository's root, where the project's tests and readers expect them, and ship inside the wheel as evalkit's package
data ``evalkit/_fixtures`` and ``evalkit/_docs``: an installed evalkit runs the zoo gate, and every message that
names a guide names a file that exists (`evalkit.core.paths`). Mapping a package onto another folder needs
``package_dir``, which pyproject's package discovery cannot combine with ``find``.
"""

from setuptools import find_packages, setup

DATA = {"evalkit._fixtures": "fixtures", "evalkit._docs": "docs"}

setup(
    packages=[*find_packages(include=["evalkit", "evalkit.*"]), *DATA],
    package_dir=DATA,
    package_data={
        "evalkit": ["py.typed", "**/*.jinja", "**/*.json", "**/*.toml", "**/*.html"],
        "evalkit._fixtures": ["zoo.toml", "zoo/*/*"],
        "evalkit._docs": ["*.md", "examples/*"],
    },
    include_package_data=False,
)
