"""Stage 5: status, headers and body bytes of an answer; compression and ETag for mobile clients.

The body is the text Postgres rendered; this module only frames it.
"""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

import brotli
import zstandard

from tuskbase.rest.errors import ApiError

JSON = b"application/json; charset=utf-8"
OPENAPI = b"application/openapi+json; charset=utf-8"
CSV = b"text/csv; charset=utf-8"
CORS = [(b"access-control-allow-origin", b"*"),
        (b"access-control-expose-headers", b"Content-Encoding, Content-Location, Content-Range, Content-Type, "
                                           b"Date, Location, Server, Transfer-Encoding, Range-Unit, ETag, Retry-After")]
_ZSTD = zstandard.ZstdCompressor(level=3)


class Answer:
    __slots__ = ("body", "cacheable", "headers", "status")

    def __init__(self, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None,
                 cacheable: bool = False) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []
        self.cacheable = cacheable  # a read: gets an ETag and honours If-None-Match


def error(err: ApiError) -> Answer:
    return Answer(err.status, err.body(), [(b"content-type", JSON), *err.headers])


def content_range(offset: int, rows: int, total: int | None) -> bytes:
    whole = "*" if total is None else str(total)
    if rows == 0:
        return f"*/{whole}".encode()
    return f"{offset}-{offset + rows - 1}/{whole}".encode()


def etag(body: bytes) -> bytes:
    return b'W/"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'


def choose_encoding(accept_encoding: bytes | None) -> bytes | None:
    if not accept_encoding:
        return None
    offered = {item.split(b";")[0].strip() for item in accept_encoding.lower().split(b",")
               if not item.strip().endswith(b"q=0")}
    for encoding in (b"zstd", b"br", b"gzip"):
        if encoding in offered:
            return encoding
    return None


def compress(body: bytes, encoding: bytes) -> bytes:
    if encoding == b"gzip":
        return gzip.compress(body, compresslevel=5, mtime=0)
    if encoding == b"br":
        return brotli.compress(body, quality=4)
    return _ZSTD.compress(body)


def finish(answer: Answer, method: str, headers: dict[bytes, bytes], compress_min: int) -> tuple[int, list[Any], bytes]:
    """Apply ETag / If-None-Match, compression and HEAD to an answer; returns (status, headers, body)."""
    out = answer.headers
    body = answer.body
    if b"origin" in headers:
        out.extend(CORS)
    if answer.cacheable and 200 <= answer.status < 300:
        tag = etag(body)
        out.append((b"etag", tag))
        wanted = headers.get(b"if-none-match")
        if wanted is not None and (wanted.strip() == b"*" or tag in [w.strip() for w in wanted.split(b",")]):
            return 304, out, b""
    if len(body) >= compress_min and body:
        encoding = choose_encoding(headers.get(b"accept-encoding"))
        if encoding is not None:
            body = compress(body, encoding)
            out.append((b"content-encoding", encoding))
            out.append((b"vary", b"Accept-Encoding"))
    if method == "HEAD":
        out.append((b"content-length", str(len(body)).encode()))
        return answer.status, out, b""
    return answer.status, out, body
