"""Text-to-speech behind an engine interface; espeak-ng's Vietnamese voice by default.

:func:`speak` prepares the text first (NFC, numbers, dates and times spelt out in
Vietnamese by :mod:`audio.vi_text`, split at sentences) and returns PCM that then goes
through the same loudness and encoding path as any upload.
"""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from typing import Protocol

import ffmpeg

from loa.errors import AudioError, ToolMissing

from . import ffmpeg as ff
from .settings import AudioSettings
from .vi_text import speakable, split_sentences

#: Longest piece handed to the engine at once, and the pause between pieces.
SENTENCE_CHARS = 400
SENTENCE_GAP_MS = 250


class SpeechEngine(Protocol):
    def synthesize(self, text: str) -> bytes:
        """Return a WAV file speaking ``text``."""


class EspeakEngine:
    """espeak-ng, reading UTF-8 text from stdin and writing WAV to stdout."""

    def __init__(self, voice: str = "vi", *, binary: str = "", timeout: float = 60.0) -> None:
        found = shutil.which(binary or "espeak-ng")
        if not found:
            raise ToolMissing("espeak-ng is not installed: apt-get install espeak-ng")
        self.binary = found
        self.voice = voice
        self.timeout = timeout

    def synthesize(self, text: str) -> bytes:
        text = unicodedata.normalize("NFC", text).strip()
        if not text:
            raise AudioError("there is no text to speak")
        try:
            proc = subprocess.run(
                [self.binary, "-v", self.voice, "-b", "1", "--stdin", "--stdout"],
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AudioError("text-to-speech took too long") from exc
        if proc.returncode != 0 or not proc.stdout.startswith(b"RIFF"):
            raise AudioError(
                "text-to-speech failed", detail=proc.stderr.decode("utf-8", "replace")[-500:]
            )
        wav: bytes = proc.stdout
        return wav


def wav_to_pcm(wav: bytes, settings: AudioSettings) -> bytes:
    """A WAV (as engines write it, sizes possibly unset) → mono s16le at the internal rate."""
    graph = ffmpeg.input("pipe:", format="wav").output(
        "pipe:", format="s16le", acodec="pcm_s16le", ac=1, ar=settings.sample_rate
    )
    return ff.run(
        graph,
        binary=ff.find_ffmpeg(settings.ffmpeg),
        data=wav,
        timeout=settings.decode_timeout_s,
        what="reading synthesised speech",
    )


def speak(engine: SpeechEngine, text: str, settings: AudioSettings) -> bytes:
    """Vietnamese text → mono s16le PCM: numbers, dates and times spelt out, read by sentence.

    Long text is synthesised a sentence group at a time (bounded engine runs) and joined
    with a short breath between them.
    """
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise AudioError("there is no text to speak")
    pieces = split_sentences(speakable(text), max_chars=SENTENCE_CHARS)
    gap = bytes(2 * (settings.sample_rate * SENTENCE_GAP_MS // 1000))
    out = bytearray()
    for i, piece in enumerate(pieces):
        if i:
            out += gap
        out += wav_to_pcm(engine.synthesize(piece), settings)
    return bytes(out)
