"""adclick_ops.config.locations: one reading of a location, a local path or an object-storage URI."""

from __future__ import annotations

import re

import pytest

from adclick_ops.config.locations import NESTED_PATTERN, SCHEME_PATTERN, Location, LocationError, normalize_location, parse_location
from adclick_ops.config.vocabulary import STORAGE_SCHEMES


@pytest.mark.parametrize(
    "value,scheme,path",
    [
        ("data/advertising.csv", "", "data/advertising.csv"),
        ("/srv/models", "", "/srv/models"),
        ("file:///srv/models", "", "/srv/models"),
        ("FILE://data/x.csv", "", "data/x.csv"),
        ("C:/data/x.csv", "", "C:/data/x.csv"),  # one letter: a drive, not a scheme
        ("S3://bucket/runs", "s3", "bucket/runs"),
    ],
)
def test_locations_are_read_with_case_insensitive_schemes(value, scheme, path):
    location = parse_location(value)
    assert (location.scheme, location.path, location.local) == (scheme, path, not scheme)


def test_the_canonical_spelling_drops_file_and_lowers_the_scheme():
    assert normalize_location("file://data/x.csv") == "data/x.csv"
    assert normalize_location("S3://bucket/Key") == "s3://bucket/Key"
    assert str(Location("s3", "b/k")) == "s3://b/k"


@pytest.mark.parametrize(
    "value,words",
    [
        ("", "model_dir must not be empty"),
        ("   ", "model_dir must not be empty"),
        ("a\x00b", "model_dir contains a NUL byte"),
        ("http://example.org/m", "model_dir 'http://example.org/m' is a http:// address, which is not read"),
        ("s3:bucket", "model_dir 's3:bucket': expected s3://..."),
        ("file://s3://bucket/x", "nests one address in another"),
        ("simplecache::s3://bucket/x", "is a simplecache:// address, which is not read"),
        ("s3://bucket::x", "nests one address in another"),
        ("s3://", "model_dir 's3://' names no file or folder"),
    ],
)
def test_what_names_no_place_is_refused_naming_the_field(value, words):
    with pytest.raises(LocationError) as raised:
        parse_location(value, "model_dir")
    assert words in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("value", ["data/x.csv", "file:///x", "S3://b/k", *(f"{s}://b/k" for s in STORAGE_SCHEMES)])
def test_the_schema_patterns_accept_what_the_reader_accepts(value):
    parse_location(value)
    assert not re.search(NESTED_PATTERN, value)
    assert bool(re.search(SCHEME_PATTERN, value)) == ("://" in value)


@pytest.mark.parametrize("value", ["file://s3://b/k", "s3://b::c", "s3://gs:x", "s3://  "])
def test_the_schema_patterns_refuse_nested_or_empty_addresses_as_the_reader_does(value):
    assert re.search(NESTED_PATTERN, value)
    with pytest.raises(LocationError):
        parse_location(value)
