"""Content hashes for the banks (issue 28): MD5 of media bytes, PDQ of images (Meta's
perceptual hash, through `pdqhash`, the binding of the reference C++), and a SHA-256 of
normalised text. Pure functions: bytes and strings in, lowercase hex out."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata

import numpy as np
import pdqhash
from PIL import Image

_SPACE = re.compile(r"\s+")
# Pillow's own guard against decompression bombs, and PDQ needs no more than this: the
# reference code downsamples to 64x64 anyway; decoding a 512 px draft is enough.
_PDQ_DRAFT = (512, 512)


def text_normalise(text: str) -> str:
    """NFKC, case folded, whitespace runs collapsed to one space and stripped: the same spam
    pasted with other spacing, case or compatibility characters hashes the same."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text_normalise(text).encode()).hexdigest()


def md5(raw: bytes) -> str:
    return hashlib.md5(raw, usedforsecurity=False).hexdigest()


def pdq(raw: bytes) -> tuple[str, int]:
    """The image's PDQ hash (64 hex characters, ThreatExchange's order: word 15 first) and
    its quality (0-100). Raises ValueError for bytes that are not an image Pillow reads."""
    try:
        image = Image.open(io.BytesIO(raw))
        image.draft("RGB", _PDQ_DRAFT)  # JPEG: decode at a reduced scale, much cheaper
        image = image.convert("RGB")
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not an image: {exc}") from exc
    if max(image.size) > _PDQ_DRAFT[0]:
        image.thumbnail(_PDQ_DRAFT)
    bits, quality = pdqhash.compute(np.asarray(image))
    return np.packbits(bits.astype(np.uint8)).tobytes().hex(), int(quality)


def pdq_distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


HEX_LENGTHS = {"md5": 32, "pdq": 64, "text_sha256": 64}
_HEX = re.compile(r"^[0-9a-f]+$")


def hash_valid(kind: str, value: str) -> bool:
    return kind in HEX_LENGTHS and len(value) == HEX_LENGTHS[kind] and bool(_HEX.match(value))
