"""What an output file is, from its first bytes: the extension it is saved under and whether it is
a picture, a video or a sound. Segmind serves files under generic content types
(``application/octet-stream``) and URLs without extensions, so the bytes decide.
"""

from __future__ import annotations

from typing import Literal

from engine.localimage import image_kind

__all__ = ["MediaKind", "media_kind", "sniff_extension"]

MediaKind = Literal["image", "video", "audio"]

_IMAGES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "gif": ".gif"}
_KINDS: dict[str, MediaKind] = {
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".webp", ".gif"), "image"),
    **dict.fromkeys((".mp4", ".mov", ".webm", ".mkv", ".m4v"), "video"),
    **dict.fromkeys((".mp3", ".wav", ".ogg", ".oga", ".flac", ".m4a", ".aac", ".opus"), "audio"),
}


def sniff_extension(data: bytes) -> str | None:
    """The extension the bytes show (``.png``, ``.mp4``, ``.wav``…), or None when they show none."""
    kind = image_kind(data)
    if kind is not None:
        return _IMAGES[kind]
    head = data[:64]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand.startswith(b"M4A") or brand.startswith(b"M4B"):
            return ".m4a"
        return ".mov" if brand == b"qt  " else ".mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, or its WebM profile
        return ".webm" if b"webm" in data[:4096] else ".mkv"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return ".wav"
    if head.startswith(b"OggS"):
        return ".ogg"
    if head.startswith(b"fLaC"):
        return ".flac"
    if head.startswith(b"ID3") or _mpeg_audio_frame(head):
        return ".mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS AAC
        return ".aac"
    return None


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header (layer III): eleven sync bits, then a valid version and layer."""
    if len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0b11, (head[1] >> 1) & 0b11
    return version != 0b01 and layer == 0b01


def media_kind(extension: str) -> MediaKind | None:
    """Whether a file with this extension is a picture, a video or a sound (None: neither)."""
    return _KINDS.get(extension.lower())
