"""``loa bench bytes``: bytes on the air per hour of speech, per speaker, by codec."""

from __future__ import annotations

import io
import statistics
import time
import uuid
import wave
from dataclasses import dataclass

from pydub import AudioSegment

from audio.encode import encode_mp3, encode_opus
from audio.ingest import check_pcm
from audio.mp3 import mp3_frames
from audio.ogg import opus_stream
from audio.plan import plan_chunks
from audio.settings import AudioSettings
from audio.tts import EspeakEngine
from devices.frames import OVERHEAD, Priority, pack_packets
from devices.messages import dump
from devices.topics import Group, GroupKind, mqtt_publish_overhead

from ..broadcasts.legs import Timing, mp3_leg
from ..settings import StreamSettings
from .report import Figure, Report

TEXTS = [
    "Thông báo của Ủy ban nhân dân xã Vị Tân về lịch tiêm chủng mở rộng tháng này. "
    "Các gia đình có trẻ em dưới năm tuổi đưa trẻ đến trạm y tế xã vào sáng thứ bảy. ",
    "Bản tin nông nghiệp: nước sông Hậu đang lên, bà con ấp Ba và ấp Ba A chủ động gia cố "
    "bờ bao, theo dõi thông báo của ban chỉ huy phòng chống thiên tai. ",
    "Hưởng ứng ngày chủ nhật xanh, đoàn thanh niên xã tổ chức dọn vệ sinh kênh rạch, "
    "trồng cây xanh dọc tuyến đường liên ấp. Mời bà con cùng tham gia. ",
]


@dataclass
class Airtime:
    codec: str
    bitrate_kbps: int
    seconds: float
    codec_bytes: int  # the encoded audio itself
    wire_bytes: int  # + Loa framing and signatures + MQTT PUBLISH headers
    tcpip_bytes: int = 0  # + an estimate of TCP/IP headers and ACKs, both ways

    @property
    def overhead_with_tcpip(self) -> float:
        return (self.wire_bytes + self.tcpip_bytes) / self.codec_bytes - 1

    @property
    def per_hour(self) -> float:
        return self.wire_bytes * 3600 / self.seconds

    @property
    def overhead(self) -> float:
        return self.wire_bytes / self.codec_bytes - 1


def speech_pcm(text: str, seconds: float, settings: AudioSettings) -> bytes:
    """Vietnamese speech from espeak-ng, repeated to about ``seconds``."""
    wav = EspeakEngine(settings.tts_voice).synthesize(text)
    with wave.open(io.BytesIO(wav)) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    seg = AudioSegment(data=frames, sample_width=2, frame_rate=rate, channels=1)
    seg = seg.set_frame_rate(settings.sample_rate)
    reps = max(1, int(seconds * 1000 / len(seg)) + 1)
    pcm: bytes = (seg * reps)[: int(seconds * 1000)].raw_data
    check_pcm(pcm, settings)
    return pcm


def opus_airtime(
    pcm: bytes, settings: AudioSettings, stream: StreamSettings, topic: str
) -> Airtime:
    rendition = encode_opus(pcm, settings)
    packets = opus_stream(rendition.data).packets
    chunks = plan_chunks(
        len(packets),
        frame_ms=settings.opus_frame_ms,
        chunk_ms=stream.chunk_ms,
        start_us=0,
        first_chunk_ms=stream.first_chunk_ms,
    )
    wire = tcpip = 0
    sizes = [
        len(pack_packets(packets[c.first_packet : c.first_packet + c.packets])) for c in chunks
    ] + [200, 200]  # + START and END
    for size in sizes:
        message = OVERHEAD + size + mqtt_publish_overhead(topic, OVERHEAD + size)
        wire += message
        tcpip += tcpip_overhead(message)
    seconds = len(packets) * settings.opus_frame_ms / 1000
    return Airtime("opus", settings.opus_bitrate_kbps, seconds, sum(map(len, packets)), wire, tcpip)


def tcpip_overhead(message: int, mss: int = 1388) -> int:
    """IPv4 + TCP (with timestamps) headers per segment, the device's ACKs (one per two
    segments) and its MQTT PUBACK (4 bytes in one more packet): a model, not a capture."""
    segments = -(-message // mss)
    return segments * 52 + (-(-segments // 2)) * 52 + 4 + 52


def mp3_airtime(
    pcm: bytes, settings: AudioSettings, stream: StreamSettings, topic: str, bitrate: int
) -> Airtime:
    data = encode_mp3(pcm, settings, bitrate).data
    seconds = len(pcm) / 2 / settings.sample_rate
    frames = max(1, round(seconds * 1000 / stream.chunk_ms))
    per = len(data) / frames
    wire = int(len(data) + frames * (OVERHEAD + mqtt_publish_overhead(topic, int(per))))
    return Airtime("mp3", bitrate, seconds, len(data), wire)


def mp3_leg_airtime(
    pcm: bytes, settings: AudioSettings, stream: StreamSettings, topic: str
) -> Airtime:
    """Loa's own MP3 leg, as the dispatcher sends it: the stored MP3 rendition
    (``audio.mp3_bitrate_kbps``) cut by :func:`broadcaster.broadcasts.legs.mp3_leg` into frames,
    each with Loa's header, signature and the MQTT PUBLISH header; START and END too."""
    data = encode_mp3(pcm, settings, settings.mp3_bitrate_kbps).data
    mp3 = mp3_frames(data)
    group = Group("vi-tan", GroupKind.HAMLET, "ap-2a")
    t = Timing(0, stream.chunk_ms, stream.first_chunk_ms)
    leg = mp3_leg(mp3, [group], t, Priority.NORMAL, str(uuid.uuid4()), "bản tin")
    sizes = [len(f.payload) for f in leg.frames] + [len(dump(leg.header)), 40]
    wire = sum(OVERHEAD + n + mqtt_publish_overhead(topic, OVERHEAD + n) for n in sizes)
    seconds = len(mp3.frames) * mp3.frame_us / 1e6
    codec = sum(len(f.payload) for f in leg.frames)
    return Airtime("mp3", settings.mp3_bitrate_kbps, seconds, codec, wire)


def run(*, seconds: float = 120.0, trials: int = 3) -> Report:
    base = AudioSettings()
    stream = StreamSettings()
    topic = Group("vi-tan", GroupKind.HAMLET, "ap-2a").topic
    results: dict[str, list[Airtime]] = {}
    encode_time: list[float] = []
    for text in TEXTS[:trials]:
        pcm = speech_pcm(text, seconds, base)
        for kbps in (16, 24, 32):
            s = base.model_copy(update={"opus_bitrate_kbps": kbps})
            t0 = time.perf_counter()
            results.setdefault(f"opus{kbps}", []).append(opus_airtime(pcm, s, stream, topic))
            if kbps == 24:
                encode_time.append(time.perf_counter() - t0)
        for kbps in (32, 128):
            results.setdefault(f"mp3_{kbps}", []).append(
                mp3_airtime(pcm, base, stream, topic, kbps)
            )
        results.setdefault("mp3_leg", []).append(mp3_leg_airtime(pcm, base, stream, topic))

    def med(name: str) -> float:
        return statistics.median(a.per_hour for a in results[name])

    def fig(key: str, name: str, label: str) -> Figure:
        return Figure(
            key, label, round(med(name)), "B/h", [round(a.per_hour) for a in results[name]]
        )

    o24 = [a.overhead for a in results["opus24"]]
    report = Report(
        name="bytes",
        title="Cheap on the air (bytes per hour of speech, per speaker)",
        command=f"loa bench bytes --seconds {seconds:g} --trials {trials}",
        figures=[
            fig("opus16_bytes_per_hour", "opus16", "Opus 16 kb/s"),
            fig("opus24_bytes_per_hour", "opus24", "Opus 24 kb/s (default)"),
            fig("opus32_bytes_per_hour", "opus32", "Opus 32 kb/s"),
            fig("mp3_32_bytes_per_hour", "mp3_32", "MP3 32 kb/s"),
            fig("mp3_128_bytes_per_hour", "mp3_128", "MP3 128 kb/s"),
            fig(
                "mp3_leg_bytes_per_hour",
                "mp3_leg",
                f"Loa's own MP3 leg ({base.mp3_bitrate_kbps} kb/s, framed as sent)",
            ),
            Figure(
                "ratio_vs_mp3_leg",
                "Loa's MP3 leg ÷ Opus 24 kb/s (what an Opus speaker saves over an MP3 one)",
                round(med("mp3_leg") / med("opus24"), 2),
                "×",
            ),
            Figure(
                "ratio_vs_mp3_32",
                "MP3 32 kb/s ÷ Opus 24 kb/s",
                round(med("mp3_32") / med("opus24"), 2),
                "×",
            ),
            Figure(
                "mp3_128_over_opus24",
                "MP3 128 kb/s ÷ Opus 24 kb/s",
                round(med("mp3_128") / med("opus24"), 2),
                "×",
            ),
            Figure(
                "overhead_ratio",
                "framing + signature + MQTT overhead, Opus 24 kb/s",
                round(statistics.median(o24), 4),
                "of audio bytes",
                [round(x, 4) for x in o24],
            ),
            Figure(
                "overhead_ratio_with_tcpip",
                "the same plus TCP/IP headers, ACKs and PUBACKs (model)",
                round(statistics.median(a.overhead_with_tcpip for a in results["opus24"]), 4),
                "of audio bytes",
            ),
            Figure(
                "opus24_encode_s_per_audio_hour",
                "Opus 24 kb/s encode time per hour of audio",
                round(statistics.median(encode_time) * 3600 / seconds, 1),
                "s",
                [round(t * 3600 / seconds, 1) for t in encode_time],
            ),
        ],
        notes=[
            f"{trials} Vietnamese speech samples from espeak-ng, {seconds:g} s each, scaled to "
            "one hour; the median sample is shown.",
            f"Normal bulletins go out in {stream.chunk_ms} ms frames (first {stream.first_chunk_ms}"
            f" ms): each frame costs {OVERHEAD} bytes of header and Ed25519 signature plus the "
            "MQTT PUBLISH header (QoS 1, topic "
            f"`{topic}`); Opus packet lengths take one byte each.",
            "overhead_ratio counts Loa's framing, signatures and MQTT headers (the issue's "
            "≤ 5 % budget); overhead_ratio_with_tcpip adds a model of IPv4/TCP headers "
            "(52 B per 1 388-byte segment), the speaker's ACKs and its PUBACK, which the SIM "
            "is billed for too. TLS records would add ~30 B per frame. Clock sync and "
            "telemetry are not audio and are not counted here (see the sync section).",
        ],
    )
    report.series = {k: [a.per_hour for a in v] for k, v in results.items()}
    return report
