"""The one JSON reader of the project: bounded size, nesting depth and numbers.

Every JSON the project reads goes through `loads`: request bodies (/api/predict), Airflow's answers
and the XComs inside them, registry files and model descriptions, a run's working files. Python's
own parser has no such bounds: 50,000 nested brackets raise RecursionError (a 500, or a crash in
whatever walks the value later), and `10**400` parses to an int that float() cannot hold.
A value outside the bounds raises JsonLimitError, a ValueError whose message says which bound.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64  # arrays and objects inside each other; the deepest answer Airflow gives here is about 6
MAX_NUMBER_CHARS = 100  # digits of an integer or characters of a decimal number; a float64 needs fewer than 30


class JsonLimitError(ValueError):
    """JSON that is malformed or outside the bounds; the message says what was found and what is allowed."""


def _number_too_long(text: str) -> JsonLimitError:
    shown = text if len(text) <= 24 else f"{text[:12]}...{text[-6:]}"
    return JsonLimitError(f"a number of {len(text)} characters ({shown}); at most {MAX_NUMBER_CHARS}")


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _number_too_long(text)
    return int(text)


def _float_checked(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _number_too_long(text)
    value = float(text)
    if not math.isfinite(value):
        raise JsonLimitError(f"the number {text} is out of range (beyond ±1.8e308)")
    return value


def _float_lenient(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _number_too_long(text)
    return float(text)


def _no_constant(name: str) -> Any:
    raise JsonLimitError(f"{name} is not a JSON number")


# One decoder of each kind, made once: json.loads with hooks builds a new decoder at every call.
# A decoder keeps no state between calls, so threads share them.
_STRICT = json.JSONDecoder(parse_int=_int, parse_float=_float_checked, parse_constant=_no_constant)
_LENIENT = json.JSONDecoder(parse_int=_int, parse_float=_float_lenient)


def _depth_problem(data: str, value: Any, max_depth: int) -> str | None:
    """Walk without recursion: the value may be nested deeper than Python's stack allows."""
    if data.count("[") + data.count("{") <= max_depth:  # fewer brackets than levels allowed: no walk needed
        return None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return f"nested more than {max_depth} levels deep"
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return None


def loads(data: str | bytes | bytearray, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH, strict_numbers: bool = True) -> Any:
    """Parse `data` within the bounds; JsonLimitError (a ValueError) otherwise.

    strict_numbers: NaN, Infinity and numbers beyond float range are refused (a client's request);
    False keeps Python's reading of them (Airflow's answers: a metric may be NaN).
    """
    if len(data) > max_bytes:
        raise JsonLimitError(f"{len(data):,} bytes; at most {max_bytes:,}")
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonLimitError(f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    try:
        if data.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
        value = (_STRICT if strict_numbers else _LENIENT).decode(data)
    except JsonLimitError:
        raise
    except RecursionError:
        raise JsonLimitError(f"nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # json.JSONDecodeError among them
        raise JsonLimitError(f"not valid JSON: {exc}") from None
    problem = _depth_problem(data, value, max_depth)
    if problem:
        raise JsonLimitError(problem)
    return value


def load_bytes(data: str | bytes | bytearray, what: str, **bounds: Any) -> Any:
    """`loads`, with `what` (a file, an answer) at the start of the error message."""
    try:
        return loads(data, **bounds)
    except JsonLimitError as exc:
        raise JsonLimitError(f"{what}: {exc}") from None
