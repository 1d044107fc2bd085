import base64
import io
import struct

from PIL import Image


def png_bytes(size=(4, 4), color=(200, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def data_url(raw: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def png_data_url(**kw) -> str:
    return data_url(png_bytes(**kw), "image/png")


def mp4_bytes(seconds: float = 5.0) -> bytes:
    """A minimal MP4 skeleton: ftyp + moov/mvhd with the given duration (timescale 1000)."""
    ftyp = struct.pack(">I4s4sI4s", 20, b"ftyp", b"isom", 512, b"isom")
    mvhd_body = bytes(4) + struct.pack(">IIII", 0, 0, 1000, int(seconds * 1000)) + bytes(80)
    mvhd = struct.pack(">I4s", 8 + len(mvhd_body), b"mvhd") + mvhd_body
    moov = struct.pack(">I4s", 8 + len(mvhd), b"moov") + mvhd
    return ftyp + moov
