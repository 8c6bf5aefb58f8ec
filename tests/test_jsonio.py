"""The project's one JSON reader: generated documents within the bounds parse as Python's json does,
every one outside them raises JsonLimitError (a ValueError) saying which bound, never RecursionError."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adclick_ops import jsonio

LEAVES = (
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
VALUES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30
)


def nested(depth: int, kind: str) -> str:
    opening, closing = {"list": ("[", "]"), "object": ('{"a":', "}")}[kind]
    return opening * depth + "1" + closing * depth


@settings(max_examples=150, deadline=None)
@given(VALUES)
def test_values_within_the_bounds_read_as_json_reads_them(value):
    text = json.dumps(value)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads(text.encode()) == json.loads(text)


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(jsonio.MAX_DEPTH + 1, 60_000), kind=st.sampled_from(["list", "object"]))
def test_any_depth_beyond_the_bound_is_refused_by_name(depth, kind):
    with pytest.raises(jsonio.JsonLimitError, match=f"nested more than {jsonio.MAX_DEPTH} levels"):
        jsonio.loads(nested(depth, kind))


@pytest.mark.parametrize("depth", [1, jsonio.MAX_DEPTH])
def test_the_depth_bound_itself_is_allowed(depth):
    assert jsonio.loads(nested(depth, "list")) is not None


@settings(max_examples=60, deadline=None)
@given(digits=st.integers(jsonio.MAX_NUMBER_CHARS + 1, 20_000), sign=st.sampled_from(["", "-"]), frac=st.booleans())
def test_numbers_too_long_are_refused_whatever_their_form(digits, sign, frac):
    number = sign + "1" + "0" * (digits - 1) + (".5" if frac else "")
    for strict in (True, False):
        with pytest.raises(jsonio.JsonLimitError, match="a number of"):
            jsonio.loads('{"Age": ' + number + "}", strict_numbers=strict)


@settings(max_examples=60, deadline=None)
@given(exponent=st.integers(309, 10**6), sign=st.sampled_from(["", "-"]))
def test_numbers_beyond_float_range_are_refused_in_a_request_and_kept_upstream(exponent, sign):
    text = f"[{sign}1e{exponent}]"
    with pytest.raises(jsonio.JsonLimitError, match="out of range"):
        jsonio.loads(text)
    assert math.isinf(jsonio.loads(text, strict_numbers=False)[0])


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_in_a_request(constant):
    with pytest.raises(jsonio.JsonLimitError, match="not a JSON number"):
        jsonio.loads(f'{{"Age": {constant}}}')


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_any_bytes_parse_or_raise_a_value_error(data):
    try:
        jsonio.loads(data)
    except jsonio.JsonLimitError as exc:
        assert str(exc)


def test_size_is_checked_before_parsing():
    with pytest.raises(jsonio.JsonLimitError, match="at most 10"):
        jsonio.loads(b"[" + b"1," * 10 + b"1]", max_bytes=10)


def test_load_bytes_names_what_it_read():
    with pytest.raises(jsonio.JsonLimitError, match=r"^registry/versions/1.json: nested more than"):
        jsonio.load_bytes(nested(50_000, "list"), "registry/versions/1.json")


def test_brackets_inside_strings_do_not_hide_or_fake_depth():
    # the bracket count is only an upper bound of the depth: strings full of brackets still parse,
    # and a document with fewer brackets than the bound is never walked, and never too deep
    shallow = json.dumps({"rows": [{"note": "[[[[{{{{" * 10}]})
    assert jsonio.loads(shallow, max_depth=3) == json.loads(shallow)
    with pytest.raises(jsonio.JsonLimitError, match="nested more than 2 levels"):
        jsonio.loads(json.dumps({"rows": [{"note": "[[[["}]}), max_depth=2)
    assert jsonio.loads("[[1]]", max_depth=2) == [[1]]


def test_a_byte_order_mark_is_refused_as_json_refuses_it():
    for data in ("\ufeff{}", b"\xef\xbb\xbf{}"):
        with pytest.raises(jsonio.JsonLimitError, match="not valid JSON: Unexpected UTF-8 BOM"):
            jsonio.loads(data)


def test_threads_parsing_at_once_each_get_their_own_document():
    # the decoders are shared by all threads (the monitor's workers parse requests in several)
    from concurrent.futures import ThreadPoolExecutor

    documents = [json.dumps({"rows": [{"n": i, "x": i / 7, "big": 10**20 + i}] * 20}) for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        parsed = list(pool.map(lambda text: jsonio.loads(text, strict_numbers=False), documents))
    assert parsed == [json.loads(text) for text in documents]
