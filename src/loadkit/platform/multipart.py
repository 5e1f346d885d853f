"""A small, strict ``multipart/form-data`` parser (RFC 7578 / RFC 2046) for whole bodies.

The stdlib's ``cgi`` module is deprecated (gone in 3.13) and ``email``'s parser is built for
mail, not uploads; the platform only needs whole-body parsing of a size-limited upload, which
is a few dozen lines done carefully: delimiters are matched only at a line start and only when
followed by CRLF, padding or ``--``, so file content that merely contains the boundary text on
a longer line is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

MAX_BOUNDARY_CHARS = 70


class MultipartError(ValueError):
    """The body is not valid multipart/form-data; the message says why (fit for a 400)."""


@dataclass(frozen=True)
class Part:
    """One form field: ``filename`` is set for a file field."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``form-data; name="a;b"; filename="x.csv"`` into the lower-cased main value and its
    parameters (names lower-cased, quotes and backslash escapes removed).

    ``filename*=UTF-8''...`` (RFC 5987) is decoded into ``filename``.
    """
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        start = i
        while i < n and rest[i] not in "=;":
            i += 1
        name = rest[start:i].strip().lower()
        if i >= n or rest[i] == ";":
            if name:
                params[name] = ""
            continue
        i += 1  # past "="
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            if i >= n:
                raise MultipartError(f"unterminated quoted string in header parameter {name!r}")
            i += 1  # past closing quote
            param = "".join(chars)
        else:
            start = i
            while i < n and rest[i] != ";":
                i += 1
            param = rest[start:i].strip()
        if name:
            params[name] = param
    extended = params.pop("filename*", None)
    if extended is not None:
        charset, _, encoded = extended.partition("''")
        try:
            params["filename"] = unquote(encoded, encoding=charset or "utf-8", errors="strict")
        except (LookupError, UnicodeDecodeError):
            raise MultipartError("undecodable filename* parameter") from None
    return main.strip().lower(), params


def boundary_from_content_type(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type, or :class:`MultipartError`."""
    if not content_type:
        raise MultipartError("expected Content-Type multipart/form-data")
    kind, params = parse_header_params(content_type)
    if kind != "multipart/form-data":
        raise MultipartError(f"expected Content-Type multipart/form-data, got {kind!r}")
    boundary = params.get("boundary", "")
    if not 1 <= len(boundary) <= MAX_BOUNDARY_CHARS or boundary.endswith(" "):
        raise MultipartError("multipart/form-data Content-Type lacks a valid boundary")
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError:
        raise MultipartError("multipart boundary must be ASCII") from None


def parse_multipart(body: bytes, boundary: bytes) -> list[Part]:
    """Every part of a complete ``multipart/form-data`` body, in order."""
    delimiter = b"--" + boundary
    position = _find_delimiter(body, delimiter, 0, at_start=True)
    if position < 0:
        raise MultipartError("multipart body does not contain its boundary")
    parts: list[Part] = []
    while True:
        position += len(delimiter)
        if body.startswith(b"--", position):
            return parts  # close delimiter; the epilogue is ignored
        position = _skip_padding_and_crlf(body, position)
        end = _find_delimiter(body, delimiter, position, at_start=False)
        if end < 0:
            raise MultipartError("multipart body is truncated: no closing boundary")
        parts.append(_parse_part(body[position : end - 2]))  # minus the CRLF before "--"
        position = end


def _find_delimiter(body: bytes, delimiter: bytes, start: int, *, at_start: bool) -> int:
    """Index of the next delimiter line at or after ``start`` (pointing at its ``--``)."""
    if at_start and body.startswith(delimiter) and _is_delimiter_end(body, len(delimiter)):
        return 0
    needle = b"\r\n" + delimiter
    index = body.find(needle, start)
    while index >= 0:
        if _is_delimiter_end(body, index + len(needle)):
            return index + 2
        index = body.find(needle, index + 1)
    return -1


def _is_delimiter_end(body: bytes, index: int) -> bool:
    rest = body[index : index + 2]
    return rest in (b"--", b"\r\n") or rest[:1] in (b" ", b"\t")


def _skip_padding_and_crlf(body: bytes, position: int) -> int:
    while body[position : position + 1] in (b" ", b"\t"):
        position += 1
    if body[position : position + 2] != b"\r\n":
        raise MultipartError("malformed multipart boundary line")
    return position + 2


def _parse_part(raw: bytes) -> Part:
    if raw.startswith(b"\r\n"):
        head, data = b"", raw[2:]
    else:
        head, separator, data = raw.partition(b"\r\n\r\n")
        if not separator:
            raise MultipartError("multipart part has no blank line after its headers")
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n"):
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            raise MultipartError("malformed multipart part header")
        headers[name.strip().lower().decode("latin-1")] = _decode_header(value.strip())
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise MultipartError("multipart part lacks Content-Disposition")
    kind, params = parse_header_params(disposition)
    if kind != "form-data" or "name" not in params:
        raise MultipartError("multipart part is not form-data with a name")
    return Part(
        name=params["name"],
        filename=params.get("filename"),
        content_type=headers.get("content-type"),
        data=data,
    )


def _decode_header(value: bytes) -> str:
    """Browsers send non-ASCII filenames as raw UTF-8; fall back to Latin-1 for anything else."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
