"""``loa bench audio``: the library's cost and the live path's latency.

* Ingest: five minutes of Vietnamese speech (espeak-ng, saved as a 128 kb/s MP3 as a
  district office would send it) through decode → trim → two-pass loudness → FLAC +
  Opus + MP3, timed against one plain ``ffmpeg`` transcode of the same file to Opus in
  the same run (the ratio is what Loa's extra care costs).
* Bytes per hour of the stored renditions: Opus 24 kb/s and MP3 128 kb/s.
* Live: a client sends MediaRecorder-like webm/opus pieces over the WebSocket at real
  time (one piece per 100 ms of sound, as the live page records); a subscriber on the
  hamlet's topic reads each frame's publish time (its ``sent_us``). Latency = publish
  time − the moment the last sample in the frame was spoken.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import anyio
import websockets
from aiomqtt import Client

from audio.ffmpeg import find_ffmpeg
from audio.ingest import decode_to_file
from audio.master_file import prepare_file
from audio.settings import AudioSettings
from audio.tts import EspeakEngine, speak
from broadcaster.settings import StreamSettings
from devices.frames import FrameType, decode_frame, unpack_packets
from devices.signing import Verifier
from devices.topics import Group, GroupKind
from firmware_sim.playlog import read_log
from firmware_sim.spec import DeviceSpec
from loa.clock import SystemClock

from .bytes import TEXTS
from .harness import SimProcess
from .report import Figure, Report, percentile
from .setup import COMMUNE, deployment, wait_online

PIECE_S = 0.1  # MediaRecorder timeslice (the live page records in 100 ms pieces)


def speech_file(work: Path, seconds: float, settings: AudioSettings) -> Path:
    """About ``seconds`` of Vietnamese speech as a 128 kb/s MP3 (and a WAV for live)."""
    engine = EspeakEngine(settings.tts_voice)
    pcm = b""
    i = 0
    while len(pcm) < seconds * settings.sample_rate * 2:
        pcm += speak(engine, TEXTS[i % len(TEXTS)], settings)
        i += 1
    pcm = pcm[: int(seconds * settings.sample_rate) * 2]
    raw = work / "speech.pcm"
    raw.write_bytes(pcm)
    out = work / "speech.mp3"
    _ffmpeg(
        "-f",
        "s16le",
        "-ar",
        str(settings.sample_rate),
        "-ac",
        "1",
        "-i",
        str(raw),
        "-c:a",
        "libmp3lame",
        "-b:a",
        "128k",
        str(out),
    )
    return out


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
        check=True,
        timeout=600,
    )


def time_ingest(path: Path, settings: AudioSettings) -> tuple[float, int, int]:
    """The upload path (on disk, as :meth:`Library.add_file` runs it), timed."""
    with tempfile.TemporaryDirectory(prefix="loa-ingest-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        decoded = decode_to_file(path, settings, work / "decoded.raw")
        prepared = prepare_file(decoded.path, settings, work)
        elapsed = time.perf_counter() - t0
    return elapsed, prepared.opus.size, prepared.duration_ms


def time_plain_ffmpeg(path: Path, work: Path) -> float:
    t0 = time.perf_counter()
    _ffmpeg("-i", str(path), "-ac", "1", "-c:a", "libopus", "-b:a", "24k", str(work / "p.ogg"))
    return time.perf_counter() - t0


def mp3_128_bytes(path: Path, work: Path) -> int:
    out = work / "m128.mp3"
    _ffmpeg("-i", str(path), "-ac", "1", "-c:a", "libmp3lame", "-b:a", "128k", str(out))
    return out.stat().st_size


def live_latencies(work: Path, speech: Path, seconds: float) -> list[float]:
    """Microphone → frame published, in ms, for every live frame of one session."""
    return live_session(work, speech, seconds)[0]


def live_session(
    work: Path, speech: Path, seconds: float, speaker: bool = False
) -> tuple[list[float], list[float]]:
    """One live session: (microphone → frame published, microphone → speaker plays), ms.

    With ``speaker``, a simulated speaker (its own process, clock-synced over MQTT) is in
    the hamlet; the second list is, per frame, the true time it handed the frame over
    (after its sleep, read from the machine's clock) minus the moment the frame's first
    sample was spoken."""
    work.mkdir(parents=True, exist_ok=True)
    webm = work / "mic.webm"
    _ffmpeg(
        "-i",
        str(speech),
        "-t",
        f"{seconds}",
        "-ac",
        "1",
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        "-vbr",
        "off",
        str(webm),
    )
    data = webm.read_bytes()
    sim: SimProcess | None = None
    with deployment(work, [("mic-1", "ap-1")], stream={"report_grace_s": 0.5}) as d:
        if speaker:
            sim = SimProcess(
                [DeviceSpec(id="mic-1", commune=COMMUNE, hamlet="ap-1")],
                host=d.broker.host,
                port=d.broker.port,
                pubkey_hex=d.pubkey,
                workdir=work / "speaker",
            )
            wait_online(d, 1, 60)
        verifier = Verifier([d.controller.services.signer.public])
        topic = Group(COMMUNE, GroupKind.HAMLET, "ap-1").topic_for("opus")
        clock = SystemClock()
        frames: list[tuple[int, int, int]] = []  # (pts, sent, packets)
        start: list[int] = []
        spoken_t0: list[int] = []
        ready = threading.Event()

        async def listen() -> None:
            async with Client(d.broker.host, d.broker.port) as mqtt:
                await mqtt.subscribe(topic, qos=1)
                ready.set()
                async for msg in mqtt.messages:
                    f = decode_frame(bytes(msg.payload), verifier, str(msg.topic))
                    if f.type is FrameType.START:
                        start.append(f.pts_us)
                    elif f.type is FrameType.AUDIO:
                        frames.append((f.pts_us, f.sent_us, len(unpack_packets(f.payload))))
                    else:
                        return

        async def speak_live() -> None:
            await anyio.to_thread.run_sync(ready.wait)
            url = d.url.replace("http://", "ws://") + f"/api/communes/{COMMUNE}/live"
            auth = {"Authorization": d.client.headers["Authorization"]}
            async with websockets.connect(url, additional_headers=auth) as ws:
                await ws.send(json.dumps({"targets": [{"commune": COMMUNE, "hamlet": "ap-1"}]}))
                await ws.recv()
                pieces = max(1, int(seconds / PIECE_S))
                step = -(-len(data) // pieces)
                t0 = clock.now_us()
                spoken_t0.append(t0)
                for k in range(pieces):
                    # piece k holds the sound up to (k + 1) × PIECE_S: sent when that is spoken
                    wait = (t0 + int((k + 1) * PIECE_S * 1e6) - clock.now_us()) / 1e6
                    if wait > 0:
                        await anyio.sleep(wait)
                    await ws.send(data[k * step : (k + 1) * step])
                await ws.send(json.dumps({"type": "stop"}))
                with anyio.fail_after(30):
                    async for raw in ws:
                        if json.loads(raw)["type"] == "off_air":
                            break

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(listen)
                await speak_live()
                await anyio.sleep(2)  # the END frame closes the listener
                tg.cancel_scope.cancel()

        try:
            anyio.run(main)
            if sim is not None:
                time.sleep(3)  # the speaker plays the last frames a live lead after they are sent
        finally:
            if sim is not None:
                sim.stop()
    if not start or not frames:
        return [], []
    t0, s0 = spoken_t0[0], start[0]
    # The last sample of a frame, as a position in the recording, was spoken at t0 + pos.
    published = [(sent - (t0 + (pts - s0) + n * 20_000)) / 1000 for pts, sent, n in frames]
    played: list[float] = []
    if sim is not None:
        for e in read_log(sim.log_path):
            if e.get("event") == "play" and "handed_true_us" in e:
                # The frame's first sample, spoken at t0 + its position, sounds now.
                played.append((e["handed_true_us"] - (t0 + (e["pts_us"] - s0))) / 1000)
    return published, played


def run(work: Path, *, seconds: float = 300.0, trials: int = 3, live_s: float = 30.0) -> Report:
    settings = AudioSettings()
    speech = speech_file(work, seconds, settings)
    ratios, ingest_s, plain_s = [], [], []
    opus_bph, durations = [], []
    for _ in range(trials):
        plain = time_plain_ffmpeg(speech, work)
        ingest, opus_bytes, duration_ms = time_ingest(speech, settings)
        ratios.append(ingest / plain)
        ingest_s.append(ingest)
        plain_s.append(plain)
        opus_bph.append(opus_bytes * 3600_000 / duration_ms)
        durations.append(duration_ms)
    mp3_bph = mp3_128_bytes(speech, work) * 3600 / seconds
    lat: list[float] = []
    lat_runs: list[float] = []
    for i in range(trials):
        (work / f"live{i}").mkdir()
        got = live_latencies(work / f"live{i}", speech, live_s)
        lat += got
        if got:
            lat_runs.append(percentile(got, 99))
    med = statistics.median
    report = Report(
        name="audio",
        title="Bulletin library: ingest cost and live latency",
        command=f"loa bench audio --seconds {seconds:g} --trials {trials}",
        figures=[
            Figure(
                "ingest_ratio_vs_ffmpeg",
                f"ingest + normalise + encode ÷ plain ffmpeg → Opus ({seconds:g} s of speech)",
                round(med(ratios), 2),
                "×",
                [round(r, 2) for r in ratios],
            ),
            Figure(
                "ingest_s",
                "ingest + normalise + encode",
                round(med(ingest_s), 2),
                "s",
                [round(x, 2) for x in ingest_s],
            ),
            Figure(
                "plain_ffmpeg_s",
                "plain ffmpeg transcode to Opus 24 kb/s",
                round(med(plain_s), 2),
                "s",
                [round(x, 2) for x in plain_s],
            ),
            Figure(
                "opus24_bytes_per_hour",
                "stored Opus 24 kb/s rendition",
                round(med(opus_bph)),
                "B/h",
                [round(x) for x in opus_bph],
            ),
            Figure(
                "mp3_128_bytes_per_hour", "MP3 128 kb/s of the same speech", round(mp3_bph), "B/h"
            ),
            Figure(
                "mp3_128_over_opus24",
                "MP3 128 kb/s ÷ Opus 24 kb/s",
                round(mp3_bph / med(opus_bph), 2),
                "×",
            ),
            Figure(
                "live_latency_p50_ms",
                "live: microphone → frame published, p50",
                round(percentile(lat, 50), 1),
                "ms",
            ),
            Figure(
                "live_latency_p99_ms",
                "live: microphone → frame published, p99",
                round(percentile(lat, 99), 1),
                "ms",
                [round(x, 1) for x in lat_runs],
            ),
            Figure(
                "live_latency_max_ms",
                "live: microphone → frame published, max",
                round(max(lat), 1) if lat else float("nan"),
                "ms",
            ),
        ],
        notes=[
            f"Speech: espeak-ng Vietnamese, {seconds:g} s, as a 128 kb/s MP3 file; the ingest "
            "path is decode → silence trim → ebur128 measure → loudnorm → gain correction if "
            "it undershot → FLAC master + Opus 24 kb/s + MP3 rendition, the same as an upload. "
            "Plain ffmpeg is one `ffmpeg -i speech.mp3 -c:a libopus -b:a 24k` run, timed in "
            "the same trial.",
            f"Live: {live_s:g} s sent as webm/opus in {PIECE_S * 1000:g} ms pieces at real "
            "time over the WebSocket; each frame is timed from when its last sample was "
            "spoken to its publish time (`sent_us`, read by a subscriber on the hamlet "
            "topic). The wait for the MediaRecorder piece that holds a sample is included.",
        ],
    )
    report.series = {"live_latency_ms": lat, "ingest_ratio": ratios}
    return report


def run_live(work: Path, *, seconds: float = 30.0, trials: int = 3) -> Report:
    """``loa bench live``: microphone → speaker, on the simulator's true clock."""
    speech = speech_file(work, seconds, AudioSettings())
    stream = StreamSettings()
    lead_ms, chunk_ms = stream.live_lead_ms, stream.live_chunk_ms
    published: list[float] = []
    played: list[float] = []
    p99s: list[float] = []
    for i in range(trials):
        pub, play = live_session(work / f"t{i}", speech, seconds, speaker=True)
        published += pub
        played += play
        if play:
            p99s.append(round(percentile(play, 99), 1))
    if not played:
        raise RuntimeError("the simulated speaker played nothing")
    return Report(
        name="live",
        title="Live: microphone to speaker",
        command=f"loa bench live --seconds {seconds:g} --trials {trials}",
        figures=[
            Figure(
                "mouth_to_speaker_p99_ms",
                "microphone sample → the speaker plays it, p99",
                round(percentile(played, 99), 1),
                "ms",
                p99s,
            ),
            Figure(
                "mouth_to_speaker_p50_ms",
                "microphone sample → the speaker plays it, median",
                round(percentile(played, 50), 1),
                "ms",
            ),
            Figure("mouth_to_speaker_max_ms", "the same, largest", round(max(played), 1), "ms"),
            Figure(
                "mic_to_publish_p99_ms",
                "microphone → frame published (the controller's part), p99",
                round(percentile(published, 99), 1),
                "ms",
            ),
            Figure("frames_played", "live frames the speaker played", len(played), ""),
        ],
        notes=[
            f"{trials} sessions of {seconds:g} s of espeak-ng speech sent as webm/opus in "
            f"{PIECE_S * 1000:g} ms pieces at real time over the WebSocket (as the live "
            "page's MediaRecorder "
            "does), to one simulated speaker in its own process, clock-synced over MQTT.",
            "Per frame: the true time the speaker handed it over (read from the machine "
            "clock after its sleep, not the target) minus the moment its first sample was "
            f"spoken. It includes the {PIECE_S * 1000:g} ms piece the browser waits for, "
            f"the controller's {lead_ms} ms live lead (settings stream.live_lead_ms) and the "
            f"{chunk_ms} ms frames; the target is ≤ 1 000 ms now, ≤ 500 ms next.",
        ],
    )
