"""The conformance kit (``loa conformance``) against real speakers on the session's
real Mosquitto: our simulator (a separate ``loa sim --provision`` process) passes every
row; a deliberately broken speaker (tests/broken_speaker.py, built only on devices/)
fails exactly the rows it breaks; bad command lines are refused with one clear line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aiomqtt
import anyio
import pytest

from broadcaster.broker.process import Broker, free_port
from broadcaster.cli import main
from conformance import streams, tone
from conformance.cli import parse_broker
from conformance.report import ROWS
from devices import provisioning
from devices.frames import (
    Codec,
    Frame,
    FrameType,
    Priority,
    decode_frame,
    encode_frame,
    unpack_packets,
)
from devices.messages import (
    DeviceConfig,
    FirmwareOffer,
    GroupRef,
    ItemOffer,
    StreamEnd,
    StreamStart,
    dump,
    parse,
)
from devices.signing import Signer, Verifier
from devices.topics import DeviceTopic, device_topic
from loa.errors import ConfigError
from tests.broken_speaker import BrokenSpeaker

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("LOA_")}
    e["PYTHONPATH"] = str(ROOT)
    return e


def cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "broadcaster.cli", *args]


def provision(tmp: Path, port: int, device: str) -> tuple[Path, Path]:
    """A signing key (the kit's controller key) and a speaker's file trusting it."""
    key = tmp / "signing.key"
    signer = Signer.load_or_create(key)
    p = provisioning.build(
        device=device,
        commune="vi-tan",
        hamlet="ap-2a",
        timezone="Asia/Ho_Chi_Minh",
        urls=[f"mqtt://127.0.0.1:{port}"],
        password="mat-khau-thu",  # the session broker is open; a real one checks it
        public_keys=[signer.public_hex()],
        issued_us=1_796_022_404_000_000,
    )
    path = tmp / f"{device}.json"
    path.write_text(provisioning.to_json(p), encoding="utf-8")
    return path, key


def kit_args(broker: Broker, device: str, prov: Path, key: Path, *extra: str) -> list[str]:
    return cmd(
        "conformance",
        "--broker",
        f"mqtt://{broker.host}:{broker.port}",
        "--device",
        device,
        "--provision",
        str(prov),
        "--signing-key",
        str(key),
        *extra,
    )


def rows(out: str) -> dict[str, str]:
    return {m[1]: m[0] for m in re.findall(r"^(PASS|FAIL)\s+(\S+)", out, re.M)}


def test_the_simulator_passes_every_row(broker: Broker, tmp_path: Path) -> None:
    """The bench of docs/conformance.md, verbatim: the kit writes the speaker's file
    (and its own key), the speaker starts from it, the kit runs the session."""
    device = f"conf-sim-{uuid.uuid4().hex[:6]}"
    prov, key = tmp_path / "speaker.json", tmp_path / "bench.key"
    made = subprocess.run(
        [*kit_args(broker, device, prov, key), "--write-provision", "--hamlet", "ap-2a"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert oct(prov.stat().st_mode & 0o777) == "0o600" and key.exists()
    written = provisioning.parse(prov.read_text(encoding="utf-8"))
    assert (written.device, written.commune, written.hamlet) == (device, "conformance", "ap-2a")
    assert written.keys[0].public == Signer.load_or_create(key).public_hex()
    sim = subprocess.Popen(
        cmd("sim", "--provision", str(prov)),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The kit's controller clock an hour behind the speaker's: a speaker must take
        # its first TIME answer whatever the offset (protocol v1.1, "A clock far off at
        # boot"), then judge every frame by the controller's clock.
        done = subprocess.run(
            kit_args(broker, device, prov, key, "--clock-offset-ms", "-3600000"),
            env=env(),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    finally:
        sim.terminate()
        _, err = sim.communicate(timeout=10)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr + err
    assert rows(out) == dict.fromkeys(ROWS, "PASS"), out
    assert f"all {len(ROWS)} checks passed" in out
    assert "[§ Verifying a frame (in this order)]" in out  # each row cites its section


async def test_a_broken_speaker_fails_exactly_the_rows_it_breaks(
    broker: Broker, tmp_path: Path
) -> None:
    device = f"conf-bad-{uuid.uuid4().hex[:6]}"
    prov_path, key = provision(tmp_path, broker.port, device)
    prov = provisioning.parse(prov_path.read_text(encoding="utf-8"))
    signer = Signer.load_or_create(key)
    config_topic = device_topic("vi-tan", device, DeviceTopic.CONFIG)
    # The speaker's config as its controller left it: the kit must give it back.
    groups = [
        GroupRef(kind="all"),
        GroupRef(kind="hamlet", id="ap-2a"),
        GroupRef(kind="zone", id="xom-cho"),
        GroupRef(kind="device", id=device),
    ]
    before = DeviceConfig(device=device, commune="vi-tan", groups=groups, issued_us=1, volume=65)
    frame = Frame(FrameType.CONFIG, uuid.UUID(int=0), 0, 10**15, 10**15, dump(before))
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(config_topic, encode_frame(frame, signer, config_topic), 1, True)
    speaker = BrokenSpeaker(prov, verify=False, window=False)
    async with anyio.create_task_group() as tg:
        await tg.start(speaker.run)
        done = await anyio.run_process(
            kit_args(broker, device, prov_path, key), env=env(), check=False
        )
        tg.cancel_scope.cancel()
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(config_topic, 1)
        with anyio.fail_after(5):
            message = await anext(aiter(client.messages))
    assert isinstance(message.payload, bytes)
    left = decode_frame(message.payload, Verifier([signer.public]), config_topic)
    after = parse(DeviceConfig, left.payload)
    assert after.groups == groups and after.volume == 65 and after.issued_us > 10**15
    out = done.stdout.decode()
    assert done.returncode == 1, out + done.stderr.decode()
    broken = {"forged", "moved", "old", "preempt", "preempt-own"}
    assert rows(out) == {r: "FAIL" if r in broken else "PASS" for r in ROWS}, out
    assert f"{len(ROWS) - len(broken)} of {len(ROWS)} passed" in out
    assert "stream signed by an unknown key: PlayReport played" in out
    assert "pre-empted stream: PlayReport played, played 6" in out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_kit_stopped_half_way_gives_the_speaker_its_own_config_back(
    broker: Broker, tmp_path: Path, sig: signal.Signals
) -> None:
    """Stopped while its session's zone is on the speaker (an operator's Ctrl-C, a CI
    job's SIGTERM): the kit still puts the speaker's own groups back, says so in one
    line and exits 2."""
    device = f"conf-stop-{uuid.uuid4().hex[:6]}"
    prov_path, key = provision(tmp_path, broker.port, device)
    prov = provisioning.parse(prov_path.read_text(encoding="utf-8"))
    verifier = Verifier([Signer.load_or_create(key).public])
    topic = device_topic("vi-tan", device, DeviceTopic.CONFIG)
    groups = [GroupRef(kind="all"), GroupRef(kind="hamlet", id="ap-2a")]
    groups.append(GroupRef(kind="device", id=device))
    speaker = BrokenSpeaker(prov, verify=True, window=True)

    last: list[GroupRef] = []

    def zones(payload: bytes) -> list[str]:
        cfg = parse(DeviceConfig, decode_frame(payload, verifier, topic).payload)
        last[:] = cfg.groups
        return [g.id or "" for g in cfg.groups if g.kind == "zone"]

    async with (
        anyio.create_task_group() as tg,
        aiomqtt.Client(broker.host, broker.port) as watcher,
    ):
        await tg.start(speaker.run)
        await watcher.subscribe(topic, 1)
        kit = await anyio.open_process(kit_args(broker, device, prov_path, key), env=env())
        try:
            with anyio.fail_after(30):  # the kit's own zone arrives: the session is on
                async for m in watcher.messages:
                    assert isinstance(m.payload, bytes)
                    if zones(m.payload):
                        break
            kit.send_signal(sig)
            with anyio.fail_after(30):
                code = await kit.wait()
                async for m in watcher.messages:  # and then the config without it
                    assert isinstance(m.payload, bytes)
                    if not zones(m.payload):
                        break
        finally:
            if kit.returncode is None:
                kit.kill()
                await kit.wait()
        assert kit.stderr is not None
        err = (await kit.stderr.receive()).decode()
        tg.cancel_scope.cancel()
    assert code == 2, err
    assert last == groups  # the provisioned groups: it had no config of its own before
    assert "stopped before the end; the speaker's own config was put back" in err
    assert "Traceback" not in err


async def test_a_silent_speaker_fails_every_row_quickly(broker: Broker, tmp_path: Path) -> None:
    device = f"conf-mute-{uuid.uuid4().hex[:6]}"
    prov, key = provision(tmp_path, broker.port, device)
    with anyio.fail_after(30):
        done = await anyio.run_process(
            kit_args(broker, device, prov, key, "--step-timeout", "0.5"), env=env(), check=False
        )
    out = done.stdout.decode()
    assert done.returncode == 1, out
    assert rows(out) == dict.fromkeys(ROWS, "FAIL"), out
    assert "no online Presence" in out and "never came online" in out


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd(*args), env=env(), capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-provision", "cannot read the provisioning file"),
        ("bad-url", "give mqtt://host:port or mqtts://host:port"),
        ("bad-port", "give mqtt://host:port or mqtts://host:port"),
        ("other-device", "provisioning file, not"),
        ("untrusted-key", "the speaker does not trust"),
        ("missing-key", "cannot read the signing key"),
        ("no-broker", "could not connect to the MQTT broker"),
        ("not-json", "provisioning file"),
        ("write-over", "exists: give a new file"),
        ("write-bad-id", "is not a valid id"),
        ("bad-timeout", "--step-timeout must be"),
        ("bad-offset", "--clock-offset-ms must be within a day"),
    ],
)
def test_bad_command_lines_are_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, message: str
) -> None:
    prov, key = provision(tmp_path, 1883, "conf-cli")
    url, device = f"mqtt://127.0.0.1:{free_port()}", "conf-cli"
    extra: list[str] = ["--step-timeout", "1"]
    if case == "missing-provision":
        prov = tmp_path / "nowhere.json"
    elif case == "bad-url":
        url = "http://127.0.0.1:1883"
    elif case == "bad-port":
        url = "mqtt://127.0.0.1:99999"
    elif case == "other-device":
        device = "conf-khac"
    elif case == "untrusted-key":
        key = tmp_path / "other.key"
        Signer.load_or_create(key)
    elif case == "missing-key":
        key = tmp_path / "absent.key"
    elif case == "not-json":
        prov.write_text("{không phải JSON", encoding="utf-8")
    elif case == "write-over":
        extra.append("--write-provision")
    elif case == "write-bad-id":
        extra += ["--write-provision", "--hamlet", "Ấp 2A"]
        prov = tmp_path / "new.json"
    elif case == "bad-timeout":
        extra = ["--step-timeout", "0"]
    elif case == "bad-offset":
        extra += ["--clock-offset-ms", str(10**13)]
    before = prov.read_bytes() if prov.exists() else None
    args = ["--broker", url, "--device", device, "--provision", str(prov)]
    status = main(["conformance", *args, "--signing-key", str(key), *extra])
    err = capsys.readouterr().err
    assert status == 2, err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err
    if case == "missing-key":
        assert not key.exists()  # a session never creates a key
    assert (prov.read_bytes() if prov.exists() else None) == before  # nothing changed


def test_a_missing_file_and_a_missing_argument_exit_2(tmp_path: Path) -> None:
    """As a person at a terminal sees it: a real process, exit status 2, one line."""
    r = _run(
        "conformance",
        "--broker",
        "mqtt://127.0.0.1:1883",
        "--device",
        "vt-1",
        "--provision",
        str(tmp_path / "speaker.json"),
        "--signing-key",
        str(tmp_path / "signing.key"),
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "cannot read the provisioning file" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = _run("conformance", "--broker", "mqtt://127.0.0.1:1883", "--device", "vt-1")
    assert r.returncode == 2 and "--provision" in r.stderr


def test_the_kits_frames_follow_the_header_table() -> None:
    """docs/protocol.md, *Header values by frame type*: what the kit sends is what a
    controller sends, and every frame decodes with the trusted key on its topic."""
    assert tone.BEEP_MS == 500 and len(unpack_packets(tone.BEEP)) == 25
    signer = Signer.generate()
    s = streams.stream(start_us=2_000_000, sent_us=1_000_000, chunks=3, priority=Priority.LIVE)
    types = [f.type for f in s.frames]
    assert types == [FrameType.START, *[FrameType.AUDIO] * 3, FrameType.END]
    assert [f.seq for f in s.frames] == [0, 1, 2, 3, 4]
    assert [f.codec for f in s.frames] == [Codec.OPUS] * 4 + [Codec.NONE]
    assert {f.priority for f in s.frames} == {Priority.LIVE}
    assert [f.pts_us for f in s.frames] == [2_000_000, 2_000_000, 2_500_000, 3_000_000, 3_500_000]
    head = parse(StreamStart, s.frames[0].payload)
    assert (head.chunks, head.frame_ms, head.pre_skip, head.duration_ms) == (3, 20, 312, 1500)
    assert parse(StreamEnd, s.frames[-1].payload).chunks == 3
    topic = "loa/v1/vi-tan/audio/device/vt-1"
    verifier = Verifier([signer.public])
    for f in s.frames:
        assert decode_frame(encode_frame(f, signer, topic), verifier, topic) == f
    it = streams.item(sent_us=5, chunks=2)
    offer = parse(ItemOffer, it.offer.payload)
    assert (it.offer.type, it.offer.seq, offer.item) == (FrameType.ITEM, 0, str(it.id))
    assert [f.seq for f in it.data] == list(range(1, offer.slices + 1))
    bad = streams.item(sent_us=5, chunks=2, wrong_hash=True)
    assert parse(ItemOffer, bad.offer.payload).sha256 != parse(ItemOffer, it.offer.payload).sha256
    _, play = streams.play(it, at_us=9_000_000, sent_us=5)
    assert (play.type, play.seq, play.pts_us) == (FrameType.PLAY, 1, 9_000_000)
    rollout, fw = streams.firmware_bad_hash(signer, sent_us=5)
    fo = parse(FirmwareOffer, fw[0].payload)
    assert fw[0].codec == Codec.NONE and fo.rollout == str(rollout)
    assert fo.key_id == signer.key_id.hex() and len(fw) == fo.slices + 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", ("127.0.0.1", 1883, False)),
        ("mqtts://loa.tinh.vn:8883", ("loa.tinh.vn", 8883, True)),
        ("mqtt://broker", ("broker", 1883, False)),
        ("tcp://broker:1883", None),
        ("mqtt://:1883", None),
        ("mqtt://broker:port", None),
        ("broker:1883", None),
    ],
)
def test_broker_urls(url: str, expected: tuple[str, int, bool] | None) -> None:
    if expected is None:
        with pytest.raises(ConfigError, match="mqtt://host:port"):
            parse_broker(url)
    else:
        assert parse_broker(url) == expected
