"""``loa bench fleet``: how many speakers one controller and one broker serve on time,
and what the dispatcher's one-publish-per-group costs against a per-speaker loop."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from audio.ogg import opus_stream
from audio.plan import plan_chunks
from devices.frames import Codec, Frame, FrameType, Priority, pack_packets
from devices.signing import Signer
from devices.topics import Group, GroupKind
from devices.transport import LinkOptions, MqttLink
from firmware_sim.spec import DeviceSpec
from loa.clock import SystemClock

from ..broadcasts.streams import publish_frame
from ..broker.process import start_broker
from .dispatch_cpu import dispatch_cpu, prepare
from .report import Figure, Report
from .setup import (
    COMMUNE,
    broadcast_and_wait,
    deployment,
    start_sims,
    upload_tone,
    wait_online,
)

LADDER = (100, 250, 500, 1000, 2000, 3000, 4000, 5000, 7500, 10000)
SIM_ARGS = ("--sync-interval", "0", "--first-sync", "0", "--telemetry-interval", "3600")


def late_fraction(b: dict[str, Any]) -> float:
    """Frames not played on time (late or missing) over frames sent, for online speakers."""
    rows = [d for d in b["deliveries"] if d["targeted"] and d["online_at_start"]]
    sent = b["chunks"] * len(rows)
    bad = sum(d["frames_late"] + d["frames_missing"] for d in rows)
    bad += b["chunks"] * sum(1 for d in rows if d["outcome"] in ("no_report", "pending"))
    return bad / sent if sent else 1.0


def serve_fleet(workdir: Path, size: int, processes: int, seconds: float) -> dict[str, float]:
    specs = [
        DeviceSpec(id=f"f{size}-{i:05d}", commune=COMMUNE, hamlet=f"h{i // 100:03d}")
        for i in range(size)
    ]
    with deployment(
        workdir / f"n{size}", [(s.id, s.hamlet) for s in specs], stream={"report_grace_s": 5.0}
    ) as d:
        sims = start_sims(d, specs, processes, workdir / f"n{size}", SIM_ARGS)
        try:
            t0 = time.monotonic()
            wait_online(d, size, 60 + size / 20)
            online_s = time.monotonic() - t0
            media = upload_tone(d, seconds)
            b = broadcast_and_wait(d, media["id"], 120)
        finally:
            for s in sims:
                s.stop()
    return {
        "size": size,
        "late": late_fraction(b),
        "online_s": online_s,
        "played": sum(1 for x in b["deliveries"] if x["outcome"] == "played"),
    }


async def dispatcher_cpu(
    host: str, port: int, speakers: int, naive: bool, frames: list[Frame]
) -> float:
    """CPU seconds this process spends streaming ``frames`` to ``speakers`` speakers."""
    signer = Signer.generate()

    async def ignore(topic: str, payload: bytes) -> None:
        return None

    link = MqttLink(
        LinkOptions(host, port, f"bench-{uuid.uuid4().hex[:8]}", publish_timeout_s=30),
        ignore,
        SystemClock(),
    )
    if naive:
        topics = [Group(COMMUNE, GroupKind.DEVICE, f"d{i:05d}").topic for i in range(speakers)]
    else:
        topics = [Group(COMMUNE, GroupKind.COMMUNE).topic]
    async with anyio.create_task_group() as tg:
        tg.start_soon(link.run)
        await link.wait_connected(10)
        t0 = time.process_time()
        for f in frames:
            if naive:  # the loop a naive controller would run: one signed publish per speaker
                for topic in topics:
                    await publish_frame(link, signer, [topic], f)
            else:
                await publish_frame(link, signer, topics, f)
        cpu = time.process_time() - t0
        tg.cancel_scope.cancel()
    return cpu


def bulletin_opus(seconds: float) -> bytes:
    """A chime and a tone as the stored Ogg Opus rendition."""
    from audio.encode import encode_opus
    from audio.settings import AudioSettings
    from audio.tones import chime, tone

    return encode_opus((chime() + tone(seconds, 440.0)).raw_data, AudioSettings()).data


def bulletin_frames(seconds: float) -> list[Frame]:
    from audio.encode import encode_opus
    from audio.settings import AudioSettings
    from audio.tones import chime, tone

    settings = AudioSettings()
    pcm = (chime() + tone(seconds, 440.0)).raw_data
    packets = opus_stream(encode_opus(pcm, settings).data).packets
    chunks = plan_chunks(len(packets), frame_ms=20, chunk_ms=2000, start_us=0, first_chunk_ms=200)
    sid = uuid.uuid4()
    return [
        Frame(
            FrameType.AUDIO,
            sid,
            i + 1,
            c.pts_us,
            0,
            pack_packets(packets[c.first_packet : c.first_packet + c.packets]),
            Codec.OPUS,
            Priority.NORMAL,
        )
        for i, c in enumerate(chunks)
    ]


def run(
    workdir: Path,
    *,
    max_speakers: int = 5000,
    processes: int = 2,
    trials: int = 3,
    seconds: float = 6.0,
    progress: Callable[[], None] | None = None,
    cpu_only: bool = False,
) -> Report:
    ladder = [] if cpu_only else [n for n in LADDER if n <= max_speakers]
    steps: list[dict[str, float]] = []
    best = 0
    for n in ladder:
        try:
            step = serve_fleet(workdir, n, processes, seconds)
        except Exception as exc:  # a size this machine cannot reach ends the ladder
            steps.append(
                {"size": n, "late": 1.0, "online_s": float("nan"), "played": 0, "error": 1.0}
            )
            print(f"  {n} speakers: {exc}")
            break
        steps.append(step)
        if progress:
            progress()
        if step["late"] >= 0.01:
            break
        best = n
    opus = bulletin_opus(10.0)
    cpu: dict[tuple[int, bool], list[float]] = {}
    broker = start_broker("auto")
    try:
        prepared = {n: prepare(workdir, n, opus) for n in (10, 100, 1000)}
        for _ in range(trials):
            for n in (10, 100, 1000):
                for naive in (False, True):
                    db, media, devices = prepared[n]
                    c = anyio.run(dispatch_cpu, broker.host, broker.port, db, media, devices, naive)
                    cpu.setdefault((n, naive), []).append(c)
            if progress:
                progress()
    finally:
        broker.stop()

    def med(n: int, naive: bool) -> float:
        return statistics.median(cpu[(n, naive)])

    ratios = {
        n: [a / b for a, b in zip(cpu[(n, True)], cpu[(n, False)], strict=True)]
        for n in (10, 100, 1000)
    }
    figures = [
        *(
            []
            if cpu_only
            else [
                Figure(
                    "max_speakers_under_1pct_late",
                    "largest fleet with < 1 % frames late",
                    best,
                    "speakers",
                )
            ]
        ),
        *(
            Figure(
                f"cpu_ratio_naive_over_ours_{n}",
                f"dispatcher CPU, naive ÷ ours, {n:,} speakers".replace(",", " "),
                round(statistics.median(ratios[n]), 1),
                "×",
                [round(r, 1) for r in ratios[n]],
            )
            for n in (1000, 100, 10)
        ),
    ]
    for n in (10, 100, 1000):
        figures.append(
            Figure(
                f"cpu_ours_ms_{n}",
                f"dispatcher CPU per 10 s bulletin, {n} speakers",
                round(med(n, False) * 1000, 1),
                "ms",
                [round(c * 1000, 1) for c in cpu[(n, False)]],
            )
        )
    ladder_text = ", ".join(
        f"{int(s['size'])}: {s['late'] * 100:.2f} % late"
        + (f" (online in {s['online_s']:.0f} s)" if s["online_s"] == s["online_s"] else " (failed)")
        for s in steps
    )
    report = Report(
        name="fleet-cpu" if cpu_only else "fleet",
        title="Dispatcher CPU over the whole dispatch path, ours against naive"
        if cpu_only
        else "Fleet scale (one controller, one Mosquitto, simulated speakers)",
        command=f"loa bench fleet --cpu-only --trials {trials}"
        if cpu_only
        else f"loa bench fleet --max-speakers {max_speakers} --processes {processes} "
        f"--trials {trials}",
        figures=figures,
        notes=[
            f"Ladder (one {seconds:g} s broadcast to every speaker; late = late or missing "
            f"frames): {ladder_text}.",
            f"Speakers run in {processes} simulator processes on the same 2-core machine as "
            "the broker and the controller, with clock sync off (one host, one clock); the "
            "simulators' own CPU is the first limit.",
            "Dispatcher CPU: process time of the whole dispatch path for a 10 s bulletin "
            "(first frame 200 ms, then 2 s frames), through the real Dispatcher and a real "
            "SQLite ledger — the broadcast and stream rows, one delivery row per speaker, "
            "every frame signed and published, the ledger finalised. Ours publishes each "
            "frame once to the commune's group topic and the broker fans out; the naive "
            "controller has one group per speaker, so it signs and publishes every frame "
            "once per speaker, with the same ledger work. Time is rushed (no waiting between "
            "frames), so this is CPU, not air time. Mosquitto's CPU is not counted in either.",
        ],
    )
    if cpu_only:  # the ladder's notes do not apply
        report.notes = report.notes[2:]
    report.series = {
        "fleet_size": [s["size"] for s in steps],
        "late_pct": [s["late"] * 100 for s in steps],
        "cpu_size": [10, 100, 1000],
        "cpu_ours_ms": [med(n, False) * 1000 for n in (10, 100, 1000)],
        "cpu_naive_ms": [med(n, True) * 1000 for n in (10, 100, 1000)],
    }
    return report
