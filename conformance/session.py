"""The scripted session: drive the speaker through every row, judge only by what it
publishes over MQTT (presence, reports, acks, cache and firmware answers, time
requests). Each wait has a deadline, so a silent speaker fails rows, never hangs."""

from __future__ import annotations

import uuid

import anyio

from devices.frames import Frame, FrameType, Priority
from devices.messages import DeviceConfig, GroupRef, PlayReport, Presence, dump
from devices.topics import DeviceTopic, Group, GroupKind

from . import streams
from .kit import NIL, Kit, Timing
from .refusals import check_refusals
from .report import ROWS, Row, describe, ordered

#: A pre-empted stream is reported this soon after the takeover ("at once").
PROMPT_US = 700_000
#: A report's start may differ from the frame's presentation time by this much.
ON_TIME_US = 100_000


def _report(kit: Kit, sid: uuid.UUID) -> PlayReport | None:
    found = kit.facts.reports(sid)
    return found[0] if found else None


def _on_time(rep: PlayReport, start_us: int) -> bool:
    return rep.started_us is not None and abs(rep.started_us - start_us) <= ON_TIME_US


class Session:
    def __init__(self, kit: Kit, timing: Timing) -> None:
        self.kit = kit
        self.t = timing
        self.rows: list[Row] = []
        self.zone = f"conformance-{uuid.uuid4().hex[:6]}"
        dev = kit.device
        self.other = (dev[:60] + "-xx") if not dev.endswith("-xx") else (dev[:60] + "-yy")
        self.tone_id = self.expired_id = self.first_stream = NIL
        self.tone_bytes = b""

    def row(self, rid: str, passed: bool, detail: str = "") -> None:
        assert rid in ROWS
        self.rows.append(Row(rid, passed, detail))

    def audio(self, device: str | None = None, *, emergency: bool = False) -> str:
        g = Group(self.kit.commune, GroupKind.DEVICE, device or self.kit.device)
        return g.topic_for("opus", emergency=emergency)

    async def send(self, topic: str, frames: list[Frame]) -> list[bytes]:
        return [await self.kit.publish(topic, f) for f in frames]

    async def run(self) -> list[Row]:
        k = self.kit
        online = await k.until(self._online, self.t.presence_s)
        p = self._presence()
        if not online:
            self.row("presence", False, f"no online Presence within {self.t.presence_s:.0f} s")
            self.rows += [
                Row(r, False, "not run: the speaker never came online")
                for r in ROWS
                if r != "presence"
            ]
            return ordered(self.rows)
        assert p is not None
        self.row("presence", True, f"fw {p.fw or '?'}, proto {p.proto or '1.0'}, codecs {p.codecs}")
        if p.codecs and "opus" not in p.codecs:
            self.row("messages", False, "the speaker decodes no Opus: this kit sends Opus only")
            return ordered(self.rows)
        await self.configure(with_zone=True)
        try:
            await self.sync_clock()
            await self.commands()  # answered while the first stream plays
            replay = await self.stream()
            await self.acks()
            await self.config_stream()
            await self.preemption()
            await self.own_preemption()
            rollout = await self.firmware()  # answered while the prefetch runs
            await self.prefetch()
            await self.firmware_status(rollout)
            await self.refusals(replay)
            self.messages()
        finally:
            # Even when stopped half-way (Ctrl-C, SIGTERM, a failed step): the speaker
            # gets back its own groups, without the session's zone.
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.t.step_s):
                await self.configure(with_zone=False)
        return ordered(self.rows)

    # --- steps ---------------------------------------------------------------------

    def _presence(self) -> Presence | None:
        found = [m for m in self.kit.facts.of(Presence) if isinstance(m, Presence)]
        return found[-1] if found else None

    def _online(self) -> bool:
        p = self._presence()
        return p is not None and p.state == "online"

    async def configure(self, *, with_zone: bool) -> None:
        """A signed, retained DeviceConfig: the speaker's own groups (from the config the
        kit found, else the provisioned ones), plus a zone of the session's own."""
        k = self.kit
        found = k.found_config
        if found is not None and found.groups:
            groups = list(found.groups)
        else:
            groups = [
                GroupRef(kind="all"),
                GroupRef(kind="hamlet", id=k.prov.hamlet),
                GroupRef(kind="device", id=k.device),
            ]
        if with_zone:
            groups.append(GroupRef(kind="zone", id=self.zone))
        now = k.now()
        cfg = DeviceConfig(
            device=k.device,
            commune=k.commune,
            groups=groups,
            issued_us=now,
            volume=found.volume if found is not None else None,
        )
        frame = Frame(FrameType.CONFIG, NIL, 0, now, now, dump(cfg))
        k.config_sent = True
        await k.publish(k.topic(DeviceTopic.CONFIG), frame, retain=True)

    async def sync_clock(self) -> None:
        """Ask for a fresh sync (resync_clock) and answer the burst that follows."""
        k = self.kit
        before = k.facts.time_answered
        _, frame = k.command_frame("resync_clock")
        await k.publish(k.topic(DeviceTopic.CMD), frame)
        await k.until(lambda: k.facts.time_answered - before >= 8, self.t.step_s)
        if k.facts.time_answered == 0:  # no resync_clock: wait for its periodic exchange
            await k.until(lambda: k.facts.time_answered > 0, 2 * self.t.step_s)
        await k.clock.sleep(0.3)

    async def commands(self) -> None:
        """A test_tone and an expired command; their answers are judged by :meth:`acks`."""
        k = self.kit
        self.tone_id, tone = k.command_frame("test_tone")
        self.expired_id, expired = k.command_frame("test_tone", expires_s=-10)
        self.tone_bytes = await k.publish(k.topic(DeviceTopic.CMD), tone)
        await k.publish(k.topic(DeviceTopic.CMD), expired)

    async def acks(self) -> None:
        k = self.kit
        tone_id, old_id = self.tone_id, self.expired_id
        await k.until(lambda: bool(k.facts.acks(tone_id) and k.facts.acks(old_id)), self.t.step_s)
        acks = k.facts.acks(tone_id)
        self.row(
            "command",
            bool(acks) and acks[0].ok,
            f"Ack ok={acks[0].ok} {acks[0].detail}".strip() if acks else "no Ack",
        )
        acks = k.facts.acks(old_id)
        self.row(
            "command-expired",
            bool(acks) and not acks[0].ok,
            f"Ack ok={acks[0].ok} {acks[0].detail!r}" if acks else "no Ack",
        )

    async def play(
        self, topic: str, chunks: int, priority: Priority = Priority.NORMAL
    ) -> tuple[streams.Stream, PlayReport | None, list[bytes]]:
        k = self.kit
        now = k.now()
        s = streams.stream(
            start_us=now + int(self.t.lead_s * 1e6), sent_us=now, chunks=chunks, priority=priority
        )
        sent = await self.send(topic, s.frames)
        await k.until(lambda: _report(k, s.id) is not None, self._until(s.end_us))
        return s, _report(k, s.id), sent

    def _until(self, at_us: int) -> float:
        """Seconds from now until ``at_us`` plus the step allowance."""
        return max(0.0, (at_us - self.kit.now()) / 1e6) + self.t.step_s

    async def stream(self) -> list[bytes]:
        s, rep, sent = await self.play(self.audio(), 3)
        good = rep is not None and rep.outcome == "played" and rep.frames_played == 3
        on_time = rep is not None and _on_time(rep, s.start_us)
        self.row(
            "stream",
            good and on_time,
            describe(rep) + ("" if on_time or rep is None else ", started_us not within 100 ms"),
        )
        k = self.kit
        synced = good and on_time and rep is not None and rep.frames_late == 0
        self.row(
            "time-sync",
            k.facts.time_answered > 0 and synced,
            f"{k.facts.time_answered} time requests answered; "
            + (
                "the stream then played on the kit's clock"
                if synced
                else "the stream did not play on the kit's clock"
            ),
        )
        self.first_stream = s.id
        return sent

    async def config_stream(self) -> None:
        topic = Group(self.kit.commune, GroupKind.ZONE, self.zone).topic_for("opus")
        _, rep, _ = await self.play(topic, 2)
        ok = rep is not None and rep.outcome == "played" and rep.frames_played == 2
        self.row("config", ok, f"zone {self.zone}: {describe(rep)}")

    async def preemption(self) -> None:
        k = self.kit
        now = k.now()
        a = streams.stream(
            start_us=now + int(self.t.lead_s * 1e6), sent_us=now, chunks=6, end=False
        )
        takeover = a.start_us + 1_000_000  # after A's second frame
        b = streams.stream(
            start_us=takeover, sent_us=now, chunks=2, priority=Priority.EMERGENCY, title="Báo động"
        )
        await self.send(self.audio(), a.frames)
        await self.send(self.audio(emergency=True), b.frames)
        end = streams.preempted_end(a, takeover, k.now(), Priority.NORMAL)
        await k.publish(self.audio(), end)
        await k.until(
            lambda: _report(k, a.id) is not None and _report(k, b.id) is not None,
            self._until(b.end_us),
        )
        ra, rb = _report(k, a.id), _report(k, b.id)
        self.row(
            "preempt",
            ra is not None and ra.outcome == "preempted" and ra.frames_played <= 2,
            f"pre-empted stream: {describe(ra)} (at most 2 of 6 may play)",
        )
        self.row(
            "alert",
            rb is not None and rb.outcome == "played" and rb.frames_played == 2,
            f"alert: {describe(rb)}",
        )

    async def own_preemption(self) -> None:
        """A PRIORITY stream takes over a NORMAL one that goes on for other speakers: no
        END ``preempted`` comes (the END sent is the stream's own, at its natural end),
        so the speaker must cut it at the takeover time and report it at once."""
        k = self.kit
        now = k.now()
        a = streams.stream(start_us=now + int(self.t.lead_s * 1e6), sent_us=now, chunks=6)
        takeover = a.start_us + 1_000_000
        b = streams.stream(start_us=takeover, sent_us=now, chunks=2, priority=Priority.PRIORITY)
        await self.send(self.audio(), a.frames[:-1])
        await self.send(self.audio(), b.frames)
        await self.kit.publish(self.audio(), a.frames[-1])  # END complete, at A's own end
        await k.until(
            lambda: _report(k, a.id) is not None and _report(k, b.id) is not None,
            self._until(b.end_us),
        )
        ra, rb = _report(k, a.id), _report(k, b.id)
        heard = [h.at_us for h in k.facts.heard if h.message is ra]
        prompt = bool(heard) and heard[0] <= takeover + PROMPT_US
        ok = (
            ra is not None
            and ra.outcome == "preempted"
            and ra.frames_played <= 2
            and prompt
            and rb is not None
            and rb.outcome == "played"
            and rb.frames_played == 2
        )
        when = ""
        if heard:
            delta = (heard[0] - takeover) / 1e6
            side = "after" if delta >= 0 else "before"
            when = f", reported {abs(delta):.1f} s {side} the takeover"
        self.row(
            "preempt-own",
            ok,
            f"normal stream: {describe(ra)}{when}; priority stream: {describe(rb)}",
        )

    async def prefetch(self) -> None:
        k = self.kit
        now = k.now()
        good, bad = (
            streams.item(sent_us=now, chunks=3),
            streams.item(sent_us=now, chunks=2, wrong_hash=True),
        )
        for it in (good, bad):
            await self.send(self.audio(), [it.offer, *it.data])
        await k.until(
            lambda: (
                bool(k.facts.cache(good.id, "stored", "refused"))
                and bool(k.facts.cache(bad.id, "stored", "refused"))
            ),
            self.t.step_s,
        )
        stored = k.facts.cache(good.id, "stored")
        self.row("prefetch", bool(stored), self._cache_detail(good.id))
        self.row(
            "prefetch-hash",
            bool(k.facts.cache(bad.id, "refused")) and not k.facts.cache(bad.id, "stored"),
            self._cache_detail(bad.id),
        )
        at = k.now() + 2_000_000
        pid, frame = streams.play(good, at_us=at, sent_us=k.now())
        await k.publish(self.audio(), frame)
        end = at + good.chunks * 500_000
        await k.until(lambda: _report(k, pid) is not None, self._until(end))
        armed = k.facts.cache(good.id, "armed")
        rep = _report(k, pid)
        ok = (
            bool(armed)
            and rep is not None
            and rep.outcome == "played"
            and rep.source == "cache"
            and rep.frames_played == good.chunks
            and _on_time(rep, at)
        )
        detail = f"{'armed' if armed else 'never armed'}; {describe(rep)}"
        if rep is not None:
            detail += f", source {rep.source}" + ("" if _on_time(rep, at) else ", not on time")
        self.row("play-at-t", ok, detail)

    def _cache_detail(self, item: uuid.UUID) -> str:
        found = self.kit.facts.cache(item, "stored", "refused")
        if not found:
            return "no CacheReport"
        return f"CacheReport {found[0].state} {found[0].detail}".strip()

    async def refusals(self, replay: list[bytes]) -> None:
        await check_refusals(self, replay)

    async def firmware(self) -> uuid.UUID:
        k = self.kit
        rollout, frames = streams.firmware_bad_hash(k.signer, sent_us=k.now())
        await self.send(k.topic(DeviceTopic.FW), frames)
        return rollout

    async def firmware_status(self, rollout: uuid.UUID) -> None:
        k = self.kit
        await k.until(lambda: bool(k.facts.firmware(rollout)), self.t.step_s)
        found = k.facts.firmware(rollout)
        self.row(
            "firmware-hash",
            bool(found) and all(f.state == "refused" for f in found),
            f"FirmwareStatus {found[0].state} {found[0].detail!r}"
            if found
            else "no FirmwareStatus",
        )

    def messages(self) -> None:
        f = self.kit.facts
        bad = f.malformed
        self.row(
            "messages",
            not bad and bool(f.heard),
            f"{len(f.heard)} valid messages" + (f"; refused: {'; '.join(bad[:3])}" if bad else ""),
        )
