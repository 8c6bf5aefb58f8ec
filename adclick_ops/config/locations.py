"""The one reading of a location (`dataset`, `model_dir`, `artifacts_root`): a local path or an object-storage URI.

`validate` (through the models) and the tasks (through `artifacts.as_path` and the dataset reader)
both call `parse_location`, so that what `validate` accepts is exactly what the tasks read:
schemes are case-insensitive, `file://` means a local path, and a scheme inside another
(`file://s3://...`, fsspec's `simplecache::s3://...`) is refused rather than guessed at.
Light on purpose: no pydantic, no fsspec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from adclick_ops.config.vocabulary import STORAGE_SCHEMES

LOCAL_SCHEME = "file"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


class LocationError(ValueError):
    """A location that names no place this project reads."""


@dataclass(frozen=True)
class Location:
    """`scheme` is '' for a local path, else the lower-case storage scheme; `path` is what follows `scheme://`."""

    scheme: str
    path: str

    @property
    def local(self) -> bool:
        return not self.scheme

    def __str__(self) -> str:
        return self.path if self.local else f"{self.scheme}://{self.path}"


def _schemes() -> str:
    return ", ".join(s + "://" for s in STORAGE_SCHEMES)


def parse_location(value: str, what: str = "location") -> Location:
    """The location `value` names; LocationError (a ValueError) says why it names none."""
    if not isinstance(value, str) or not value.strip():
        raise LocationError(f"{what} must not be empty")
    if "\x00" in value:
        raise LocationError(f"{what} contains a NUL byte")
    scheme, rest = "", value
    found = _SCHEME.match(value)
    if found and len(found.group(1)) > 1:  # one letter: a Windows drive, a path
        name = found.group(1).lower()
        if name != LOCAL_SCHEME and name not in STORAGE_SCHEMES:
            raise LocationError(
                f"{what} {value!r} is a {name}:// address, which is not read; expected a path in the project or object storage ({_schemes()})"
            )
        rest = value[found.end() :]
        if not rest.startswith("//"):
            raise LocationError(f"{what} {value!r}: expected {name}://...")
        rest = rest[2:]
        scheme = "" if name == LOCAL_SCHEME else name
    inner = _SCHEME.match(rest)
    if "://" in rest or (value != rest and ("::" in rest or (inner and len(inner.group(1)) > 1))):
        raise LocationError(
            f"{what} {value!r} nests one address in another; expected one local path or one object-storage URI ({_schemes()})"
        )
    if not rest.strip():
        raise LocationError(f"{what} {value!r} names no file or folder")
    return Location(scheme, rest)


def normalize_location(value: str, what: str = "location") -> str:
    """The canonical spelling: a local path without `file://`, or `scheme://...` with the scheme in lower case."""
    return str(parse_location(value, what))


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


# The same rules as JSON Schema patterns (ECMA-262, no flags): a scheme in any case; after `scheme://`
# no second scheme, no `://` and no `::`; a value without a scheme holds no `://` either.
SCHEME_PATTERN = r"^(?:" + "|".join(_any_case(s) for s in (LOCAL_SCHEME, *STORAGE_SCHEMES)) + r")://"
NESTED_PATTERN = r"^[^:]*:[\s\S]*(?:://|::)|^[^:]*://[A-Za-z][A-Za-z0-9+.\-]+:|^[^:]*://\s*$"
