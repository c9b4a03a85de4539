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
    loudness_lufs: Annotated[float, Field(ge=-40, le=-5)] = Field(
        -16.0, description="EBU R128 integrated loudness every item is normalised to, LUFS"
    )
    true_peak_dbtp: Annotated[float, Field(ge=-9, le=0)] = Field(
        -1.5, description="true-peak ceiling after normalising, dBTP"
    )
    loudness_range_lu: Annotated[float, Field(ge=1, le=50)] = Field(
        11.0, description="loudness range target for loudnorm, LU"
    )
    trim_silence: bool = Field(True, description="cut leading and trailing silence")
    trim_threshold_dbfs: Annotated[float, Field(ge=-90, le=-10)] = Field(
        -50.0, description="quieter than this counts as silence when trimming"
    )
    trim_keep_ms: Annotated[int, Field(ge=0, le=5000)] = Field(
        150, description="silence kept before the first and after the last sound"
    )
    opus_cutoff_hz: Annotated[int, one_of(0, 4000, 6000, 8000, 12000, 20000)] = Field(
        0, description="Opus audio bandwidth (8000 = 16 kHz speech band; 0 = encoder decides)"
    )
    tts_voice: str = Field("vi", description="espeak-ng voice for text-to-speech")
