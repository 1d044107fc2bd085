"""HTTP helpers for the reviewer pages: stored media served with Range support."""

from __future__ import annotations

import re

from django.core.files import File
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a single-range `Range` header, or None to send it all.
    Raises ValueError for a range that cannot be satisfied. Multiple ranges are answered
    with the whole file, which RFC 9110 allows."""
    match = _RANGE.match(header.strip())
    if not match or (not match[1] and not match[2]):
        return None
    if match[1]:
        first = int(match[1])
        last = min(int(match[2]), size - 1) if match[2] else size - 1
    else:  # a suffix: the last N bytes
        first, last = max(size - int(match[2]), 0), size - 1
    if first >= size or first > last:
        raise ValueError("unsatisfiable range")
    return first, last


def _chunks(handle, first: int, length: int):
    with handle:
        handle.seek(first)
        while length > 0:
            data = handle.read(min(CHUNK, length))
            if not data:
                return
            length -= len(data)
            yield data


def ranged_file_response(request: HttpRequest, stored: File, *, content_type: str) -> HttpResponse:
    """The file, or the part a `Range` header asks for (206), as browsers need to seek in
    video; `416` for a range past the end."""
    size = stored.size
    header = request.headers.get("Range", "")
    response: HttpResponse
    try:
        wanted = _byte_range(header, size) if header else None
    except ValueError:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    if wanted is None:
        response = FileResponse(stored.open("rb"), content_type=content_type)
    else:
        first, last = wanted
        response = StreamingHttpResponse(
            _chunks(stored.open("rb"), first, last - first + 1),
            status=206,
            content_type=content_type,
        )
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
        response["Content-Length"] = str(last - first + 1)
    response["Accept-Ranges"] = "bytes"
    return response
