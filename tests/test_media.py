"""Issue 15: outputs are saved under the extension their bytes show, pictures, videos and sounds
alike; the preview answers a model that makes a sound or a video with a valid placeholder."""

from __future__ import annotations

import io
import wave

import pytest

from engine.media import media_kind, sniff_extension
from engine.simulator.media import preview_audio, preview_video


@pytest.mark.parametrize(
    ("head", "extension"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 16, ".png"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 16, ".jpg"),
        (b"\0\0\0\x20ftypisom\0\0\x02\0", ".mp4"),
        (b"\0\0\0\x18ftypmp42\0\0\0\0", ".mp4"),
        (b"\0\0\0\x14ftypqt  \0\0\0\0", ".mov"),
        (b"\0\0\0\x20ftypM4A \0\0\0\0", ".m4a"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", ".webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", ".mkv"),
        (b"RIFF\x24\0\0\0WAVEfmt ", ".wav"),
        (b"ID3\x04\0\0\0\0\0\0", ".mp3"),
        (b"\xff\xfb\x90\x64" + b"\0" * 8, ".mp3"),
        (b"OggS\0\x02" + b"\0" * 8, ".ogg"),
        (b"fLaC\0\0\0\x22", ".flac"),
        (b"\xff\xf1\x50\x80" + b"\0" * 8, ".aac"),
        (b'{"status": "Success"}', None),
        (b"", None),
    ],
)
def test_the_bytes_name_the_extension(head: bytes, extension: str | None) -> None:
    assert sniff_extension(head) == extension


@pytest.mark.parametrize(
    ("extension", "kind"),
    [
        (".png", "image"),
        (".JPG", "image"),
        (".mp4", "video"),
        (".webm", "video"),
        (".wav", "audio"),
        (".mp3", "audio"),
        (".bin", None),
        ("", None),
    ],
)
def test_an_extension_is_a_picture_a_video_or_a_sound(extension: str, kind: str | None) -> None:
    assert media_kind(extension) == kind


@pytest.mark.parametrize(("asked", "seconds"), [({}, 2.0), ({"duration": 5}, 5.0),
                                                 ({"duration": 600}, 30.0), ({"duration": "x"}, 2.0)])  # fmt: skip
def test_the_preview_sound_is_a_wav_as_long_as_asked_and_says_it_is_a_preview(
    asked: dict[str, object], seconds: float
) -> None:
    data = preview_audio(asked)
    assert sniff_extension(data) == ".wav"
    with wave.open(io.BytesIO(data)) as sound:
        assert (sound.getnchannels(), sound.getframerate()) == (1, 8000)
        assert sound.getnframes() == int(seconds * 8000)
    assert b"ICMTrender preview" not in data  # the chunk holds a length before the text
    assert b"render preview\x00" in data


def test_the_preview_video_is_a_small_webm() -> None:
    data = preview_video()
    assert sniff_extension(data) == ".webm"
    assert len(data) < 8_000
