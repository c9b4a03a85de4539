"""Finding and running ffmpeg, the one place it is called.

Command lines are built with ffmpeg-python; the process is run here with a timeout so
an untrusted file can never hang the controller. Failures keep ffmpeg's stderr.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from functools import lru_cache

import ffmpeg

from loa.errors import AudioError, ToolMissing

from .settings import AudioSettings

logger = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def find_ffmpeg(configured: str = "") -> str:
    """The configured binary, else ``ffmpeg`` on PATH, else imageio-ffmpeg's static one."""
    if configured:
        found = shutil.which(configured)
        if not found:
            raise ToolMissing(f"ffmpeg not found at {configured!r} (setting audio.ffmpeg)")
        return found
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg

        exe: str = imageio_ffmpeg.get_ffmpeg_exe()
        return exe
    except (ImportError, RuntimeError) as exc:
        raise ToolMissing(
            "ffmpeg is not installed: apt-get install ffmpeg (or pip install imageio-ffmpeg)"
        ) from exc


def _tail(stderr: bytes, lines: int = 8) -> str:
    text = stderr.decode("utf-8", "replace").strip().splitlines()
    return "\n".join(text[-lines:])


def run(
    stream: ffmpeg.nodes.OutputStream, *, binary: str, data: bytes | None, timeout: float, what: str
) -> bytes:
    """Run a compiled ffmpeg-python graph; return stdout or raise AudioError."""
    return run_with_log(stream, binary=binary, data=data, timeout=timeout, what=what)[0]


def run_with_log(
    stream: ffmpeg.nodes.OutputStream,
    *,
    binary: str,
    data: bytes | None,
    timeout: float,
    what: str,
    loglevel: str = "error",
) -> tuple[bytes, str]:
    """Like :func:`run`, also returning stderr (filters such as loudnorm report there)."""
    args = stream.global_args("-nostdin", "-hide_banner", "-loglevel", loglevel).compile(cmd=binary)
    try:
        proc = subprocess.run(
            args,
            input=data,
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=None if data is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise AudioError(
            f"{what}: took longer than {timeout:g} s and was stopped",
            detail=_tail(exc.stderr or b""),
        ) from exc
    if proc.returncode != 0:
        detail = _tail(proc.stderr)
        logger.info("ffmpeg %s failed (%d): %s", what, proc.returncode, detail)
        raise AudioError(f"{what}: ffmpeg could not process it", detail=detail)
    out: bytes = proc.stdout
    return out, proc.stderr.decode("utf-8", "replace")


def inspect(binary: str, path: str, *, options: list[str], timeout: float) -> str:
    """``ffmpeg -i path`` with no output: what the container says (on stderr), no decoding.

    ffmpeg exits non-zero here by design ("At least one output file must be specified");
    the caller reads the text.
    """
    args = [binary, "-nostdin", "-hide_banner", *options, "-i", path]
    try:
        proc = subprocess.run(
            args, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise AudioError(
            f"reading the file's header: took longer than {timeout:g} s and was stopped",
            detail=_tail(exc.stderr or b""),
        ) from exc
    return proc.stderr.decode("utf-8", "replace")


def read_pcm(path: str, settings: AudioSettings, what: str = "reading a stored item") -> bytes:
    """A stored audio file decoded to mono s16le PCM at ``settings.sample_rate``."""
    graph = ffmpeg.input(path).output(
        "pipe:", format="s16le", acodec="pcm_s16le", ac=1, ar=settings.sample_rate
    )
    return run(
        graph,
        binary=find_ffmpeg(settings.ffmpeg),
        data=None,
        timeout=settings.decode_timeout_s,
        what=what,
    )
