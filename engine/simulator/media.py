"""The preview's placeholders for models that answer a video or a sound, clearly marked as previews.

A sound is a WAV written with the standard library: three short beeps (a tone no model would
answer) for as long as the request asks (``duration``, up to a cap), with ``render preview`` in
its INFO chunk. A video is one small file made once and shipped (``preview.webm``: two seconds of
160×90 VP8 reading PREVIEW, 3 KB), since writing a video codec is not a few lines; WebM plays in
every browser's ``<video>``, so the contact sheet's player shows it.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["preview_audio", "preview_video"]

_RATE = 8000
_DEFAULT_S = 2.0
_MAX_S = 30.0
_VIDEO = Path(__file__).resolve().parent / "preview.webm"


def _seconds(payload: Mapping[str, Any]) -> float:
    asked = payload.get("duration", _DEFAULT_S)
    if isinstance(asked, bool) or not isinstance(asked, int | float) or asked <= 0:
        return _DEFAULT_S
    return min(float(asked), _MAX_S)


def preview_audio(payload: Mapping[str, Any]) -> bytes:
    """A WAV of the requested length: a 880 Hz beep three times a second, 8 kHz mono 8-bit."""
    frames = int(_seconds(payload) * _RATE)
    samples = bytearray(frames)
    for index in range(frames):
        beeping = (index % (_RATE // 3)) < _RATE // 12
        level = math.sin(2 * math.pi * 880 * index / _RATE) if beeping else 0.0
        samples[index] = 128 + int(60 * level)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(_RATE)
        out.writeframes(bytes(samples))
    data = buffer.getvalue()
    comment = b"render preview\x00\x00"
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(comment)) + comment
    chunk = b"LIST" + struct.pack("<I", len(info)) + info
    body = data[8:] + chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def preview_video() -> bytes:
    """The shipped placeholder video."""
    return _VIDEO.read_bytes()
