"""The store's rows as plain values: a speaker, a stored item, and the API's view of an
item's row (renditions grouped, waveform decoded)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeviceRow:
    commune_id: str
    id: str
    hamlet_id: str
    name: str
    online: bool
    zones: tuple[str, ...] = ()
    codecs: tuple[str, ...] = ()  # as announced in presence; () = unknown (assume Opus)

    @property
    def needs_mp3(self) -> bool:
        return "mp3" in self.codecs and "opus" not in self.codecs


@dataclass(frozen=True)
class MediaRow:
    id: str
    commune_id: str | None
    title: str
    duration_ms: int
    codec: str
    bitrate_kbps: int
    frame_ms: int
    sha256: str
    path: str
    mp3_path: str | None = None


#: The columns of an item the API shows.
MEDIA_COLUMNS = (
    "id, commune_id, kind, title, filename, source_text, duration_ms, trimmed_ms,"
    " loudness_in_lufs, true_peak_in_dbtp, loudness_lufs, true_peak_dbtp, peak_dbfs,"
    " codec, bitrate_kbps, frame_ms, sha256, bytes,"
    " mp3_sha256, mp3_bytes, mp3_bitrate_kbps, master_sha256, master_bytes,"
    " peaks, created_us"
)


def media_out(row: dict[str, Any]) -> dict[str, Any]:
    """The API's view of an item: renditions grouped, waveform decoded."""
    out = {
        k: row[k]
        for k in (
            "id",
            "commune_id",
            "kind",
            "title",
            "filename",
            "source_text",
            "duration_ms",
            "trimmed_ms",
            "created_us",
        )
    }
    out["loudness"] = {
        "input_lufs": row["loudness_in_lufs"],
        "input_true_peak_dbtp": row["true_peak_in_dbtp"],
        "lufs": row["loudness_lufs"],
        "true_peak_dbtp": row["true_peak_dbtp"],
    }
    out["renditions"] = [
        {
            "codec": "opus",
            "bitrate_kbps": row["bitrate_kbps"],
            "frame_ms": row["frame_ms"],
            "sha256": row["sha256"],
            "bytes": row["bytes"],
        },
        {
            "codec": "mp3",
            "bitrate_kbps": row["mp3_bitrate_kbps"],
            "sha256": row["mp3_sha256"],
            "bytes": row["mp3_bytes"],
        },
    ]
    if row["master_sha256"]:
        out["renditions"].insert(
            0,
            {"codec": "flac", "sha256": row["master_sha256"], "bytes": row["master_bytes"]},
        )
    out["waveform"] = json.loads(row["peaks"]) if row["peaks"] else []
    return out
