"""Read a request body up to a byte limit, on every Flask 3 (no per-request limit needed)."""

from __future__ import annotations

from flask import Request
from werkzeug.wsgi import get_input_stream

from .errors import PayloadTooLargeError, ValidationError

#: Bytes read from the stream at a time.
CHUNK_SIZE = 64 * 1024


def read_limited(request: Request, limit: int, what: str) -> bytes:
    """The raw body, at most ``limit`` bytes (413 beyond), 400 if it cannot be read.

    Reads the WSGI input itself, one byte past the limit, so a chunked body (no
    Content-Length) is bounded too, without Flask 3.1's per-request
    ``max_content_length``; ``limit`` wins over the app's MAX_CONTENT_LENGTH, as
    that setting did. A body the server cannot decode (a malformed chunked
    encoding, a client that stops early) is the client's error, not ours.
    """
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(what, limit)
    cached = getattr(request, "_cached_data", None)  # the host read it already (get_data)
    if isinstance(cached, bytes):
        if len(cached) > limit:
            raise _too_large(what, limit)
        return cached
    chunks: list[bytes] = []
    size = 0
    try:
        stream = get_input_stream(request.environ, max_content_length=None)
        while size <= limit:
            chunk = stream.read(min(CHUNK_SIZE, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except Exception:  # the server's own errors: gunicorn's are not all OSError
        raise ValidationError(f"{what} could not be read: malformed or cut short") from None
    if size > limit:
        raise _too_large(what, limit)
    return b"".join(chunks)


def _too_large(what: str, limit: int) -> PayloadTooLargeError:
    """The 413 error for a body over ``limit`` bytes (built only when raised)."""
    return PayloadTooLargeError(f"{what} is larger than {limit} bytes", {"limit": limit})
