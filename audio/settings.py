"""The ``[audio]`` settings section."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from loa.choices import one_of


class AudioSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ffmpeg: str = Field("", description="ffmpeg binary; empty = PATH, then imageio-ffmpeg's")
    max_upload_bytes: Annotated[int, Field(ge=1024)] = Field(
        50 * 1024 * 1024, description="largest accepted upload"
    )
    max_duration_s: Annotated[float, Field(gt=0)] = Field(
        3600.0, description="longest accepted item, seconds"
    )
    min_duration_s: Annotated[float, Field(ge=0)] = Field(
        0.3, description="shorter items are refused as empty"
    )
    silence_dbfs: Annotated[float, Field(le=0)] = Field(
        -60.0, description="items whose loudest sample is below this are refused as silent"
    )
    decode_timeout_s: Annotated[float, Field(gt=0)] = Field(
        120.0, description="ffmpeg is killed after this long"
    )
    sample_rate: Annotated[int, one_of(8000, 12000, 16000, 24000, 48000)] = Field(
        48000, description="internal PCM rate"
    )
    opus_bitrate_kbps: Annotated[int, Field(ge=6, le=128)] = Field(
        24, description="Opus bitrate on the air"
    )
    mp3_bitrate_kbps: Annotated[int, one_of(32, 40, 48, 56, 64, 80, 96, 112, 128)] = Field(
        48, description="MP3 rendition for speakers that cannot decode Opus"
    )
    opus_frame_ms: Annotated[int, one_of(10, 20, 40, 60)] = Field(
        20, description="Opus packet duration, ms"
    )
    tts_voice: str = Field("vi", description="espeak-ng voice for text-to-speech")
