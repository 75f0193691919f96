"""evalkit.core.registry and evalkit.core.lineage: the one registry type and the one chain walker."""

from __future__ import annotations

import pytest

from evalkit.core.lineage import lineage, with_ancestors
from evalkit.core.registry import Registry
from evalkit.errors import CycleError, EvalkitError, TaskError, UnknownNameError


def test_registry_keeps_registration_order_and_looks_names_up() -> None:
    reg = Registry[int]("number")
    assert reg.register("one", 1) == 1
    reg.register("two", 2)
    assert reg.names() == ("one", "two") and list(reg) == ["one", "two"] and reg.values() == (1, 2)
    assert reg.get("two") == reg["two"] == 2 and "one" in reg and "three" not in reg and len(reg) == 2
    assert reg.items() == (("one", 1), ("two", 2))


def test_registry_decorator_registers_the_function() -> None:
    reg = Registry[object]("hook")

    @reg.register("shout")
    def shout(text: str) -> str:
        return text.upper()

    assert reg.get("shout") is shout and shout("a") == "A"


def test_an_unknown_name_is_one_uniform_evalkit_error() -> None:
    reg = Registry[int]("family", plural="families", error=TaskError)
    reg.register("math", 1)
    with pytest.raises(TaskError, match=r"^unknown family 'poetry'; known families: math$") as err:
        reg.get("poetry")
    assert isinstance(err.value, EvalkitError)
    with pytest.raises(UnknownNameError, match="unknown widget 'x'; known widgets: $"):
        Registry[int]("widget").get("x")


def test_registering_a_name_twice_is_an_error() -> None:
    reg = Registry[int]("metric")
    reg.register("accuracy", 1)
    with pytest.raises(UnknownNameError, match="registered twice"):
        reg.register("accuracy", 2)
    assert reg.get("accuracy") == 1


def test_lineage_walks_a_chain_and_refuses_a_loop() -> None:
    links = {"c": "b", "b": "a", "a": None, "x": "y", "y": "x"}
    assert lineage("c", links.get) == ["c", "b", "a"] and lineage("a", links.get) == ["a"]
    assert with_ancestors(["c", "b", "a"], links.get) == ["a", "b", "c"]
    with pytest.raises(CycleError) as err:
        lineage("x", links.get)
    assert err.value.name == "x"
