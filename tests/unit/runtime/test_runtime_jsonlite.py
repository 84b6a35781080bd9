"""The runtime's JSON without `json`: the same text out, the same values in, or a fallback."""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.runtime import jsonlite
from toolkit.runtime.policy import PolicyError, parse

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and the infinities included: json writes NaN, Infinity
    | st.text()  # control characters, quotes, backslashes, astral characters
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=20,
)


class Opaque:
    def __repr__(self) -> str:
        return "Opaque(\\x01 é)"


@given(VALUES)
def test_dumps_writes_what_json_writes(value: Any) -> None:
    assert jsonlite.dumps(value) == json.dumps(value, indent=1, default=repr)


def test_dumps_passes_other_objects_through_default_like_json() -> None:
    value = {"dtype": Opaque(), "subclass": True, "nested": [Opaque(), {"k": (1, 2.5)}]}
    assert jsonlite.dumps(value) == json.dumps(value, indent=1, default=repr)


@pytest.mark.parametrize(
    "value",
    [{1: "a key that is not a string"}, [[[]]] * 3, {"deep": [[[[[[[[[[[[0]]]]]]]]]]]]}],
)
def test_dumps_leaves_what_it_does_not_handle_to_json(value: Any) -> None:
    assert jsonlite.dumps(value) == json.dumps(value, indent=1, default=repr)


def test_dumps_falls_back_to_json_for_a_cycle() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular reference"):
        jsonlite.dumps(cycle)


FLAT = st.dictionaries(
    st.text(),
    st.none() | st.booleans() | st.integers(min_value=0) | st.text(),
    max_size=6,
)


@given(FLAT, st.booleans())
def test_loads_flat_reads_flat_objects_as_json_does_or_declines(
    value: dict[str, Any], compact: bool
) -> None:
    text = json.dumps(value, separators=(",", ":") if compact else None, ensure_ascii=False)
    found = jsonlite.loads_flat(text)
    assert found is None or found == json.loads(text)
    plain = all(
        isinstance(item, str) and item.isprintable() and not set(item) & set('",:\\\\')
        for item in [*value, *(v for v in value.values() if isinstance(v, str))]
    )
    if plain:  # what the launcher writes is always read here, never given to json
        assert found == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "null",
        "[1]",
        '{"a": 1,}',
        '{"a" 1}',
        '{"a": 01}',
        '{"a": -1}',
        '{"a": 1.5}',
        r'{"a": "x\"y"}',
        '{"a": [1]}',
        '{"a": {"b": 1}}',
        r'{"a": "\u0041"}',
        '{"a":\f1}',  # form feed: whitespace to Python, not to JSON
        '{"a": \u0661}',  # a digit to str.isdigit, not to JSON
        "{a: 1}",
    ],
)
def test_loads_flat_declines_what_is_not_flat_or_not_json(text: str) -> None:
    assert jsonlite.loads_flat(text) is None


def test_nan_is_written_as_json_writes_it() -> None:
    assert jsonlite.dumps([math.nan, -math.inf]) == "[\n NaN,\n -Infinity\n]"


class Colour(str, enum.Enum):  # noqa: UP042  # str() gives "Colour.RED", not StrEnum's value
    RED = "red"


class Shouting(str):
    def __str__(self) -> str:
        return "OTHER"

    def __iter__(self) -> Iterator[str]:
        return iter("OTHER")


@pytest.mark.parametrize(
    "value",
    [Colour.RED, {Colour.RED: 1}, Shouting("x"), {Shouting("k\n"): Shouting("v\x01")}],
)
def test_str_subclasses_are_written_by_their_characters_as_json_does(value: Any) -> None:
    assert jsonlite.dumps(value) == json.dumps(value, indent=1, default=repr)


def test_a_number_too_long_for_python_is_left_to_json() -> None:
    text = '{"seed": ' + "1" * 5000 + "}"
    assert jsonlite.loads_flat(text) is None
    with pytest.raises(PolicyError, match="not JSON"):
        parse(text)
