"""Text-to-speech behind an engine interface; espeak-ng's Vietnamese voice by default."""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from typing import Protocol

from loa.errors import AudioError, ToolMissing


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
