"""JSON in and out of every process of a run without importing `json`.

`json` imports `re`, and with it `enum` and `functools`: ~7 ms at the start of every Python
process, a quarter of what a run adds to `docker run` of a short command (benchmarks/run.py).
The runtime only reads its policy (a flat object the launcher writes) and writes its report
(plain data), so both are done here by hand; anything else goes to `json` as before.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_CONSTANTS = {"true": True, "false": False, "null": None}
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_NOT_A_VALUE = object()
_SPACE = " \t\n\r"  # JSON's whitespace (str.strip's default takes more)


def loads_flat(text: str) -> dict[str, object] | None:
    """The object in `text` when it is flat: string keys; values that are non-negative
    integers, true, false, null or strings with nothing to unescape. None for any other text,
    valid JSON or not, which the caller gives to `json`."""
    text = text.strip(_SPACE)
    if not (text.startswith("{") and text.endswith("}")):
        return None
    found: dict[str, object] = {}
    body = text[1:-1].strip(_SPACE)
    for item in body.split(",") if body else ():
        name, colon, value = item.partition(":")
        key = _plain_string(name.strip(_SPACE))
        parsed = _scalar(value.strip(_SPACE))
        if not colon or key is None or parsed is _NOT_A_VALUE:
            return None
        found[key] = parsed
    return found


def _scalar(text: str) -> object:
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0")):
        try:
            return int(text)
        except ValueError:  # more digits than Python converts: json says why
            return _NOT_A_VALUE
    string = _plain_string(text)
    return _NOT_A_VALUE if string is None else string


def _plain_string(text: str) -> str | None:
    inner = text[1:-1]
    if len(text) < 2 or text[0] != '"' or text[-1] != '"' or '"' in inner or "\\" in inner:
        return None
    return inner if inner.isprintable() else None


def dumps(value: object, default: Callable[[object], object] = repr) -> str:
    """What `json.dumps(value, indent=1, default=default)` writes, character for character;
    `json` itself for what this does not handle (keys that are not strings, cycles)."""
    try:
        parts: list[str] = []
        _encode(value, default, "\n", parts, 0)
        return "".join(parts)
    except (TypeError, RecursionError):
        import json

        return json.dumps(value, indent=1, default=default)


def _encode(
    value: object, default: Callable[[object], object], newline: str, out: list[str], depth: int
) -> None:
    # The order of json's own encoder: bool before int, subclasses as their base type.
    if depth > 100:
        raise RecursionError("nested too deeply")
    if isinstance(value, str):
        out.append(_string(value))
    elif value is None or value is True or value is False:
        out.append({None: "null", True: "true", False: "false"}[value])
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + " "
        out.append("[")
        for i, item in enumerate(value):
            out.append(inner if i == 0 else "," + inner)
            _encode(item, default, inner, out, depth + 1)
        out.append(newline + "]")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + " "
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError("a key that is not a string")
            out.append((inner if i == 0 else "," + inner) + _string(key) + ": ")
            _encode(item, default, inner, out, depth + 1)
        out.append(newline + "}")
    else:
        _encode(default(value), default, newline, out, depth + 1)


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _string(value: str) -> str:
    text = str.__str__(value)  # the characters, as json takes them, whatever a subclass says
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return '"' + "".join(_escape(char) for char in text) + '"'


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    if 0x20 <= code < 0x7F:
        return char
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a surrogate pair, as json writes it
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"
