"""Simulated speakers in one process verify each shared frame once, also after a
CONFIG tells them which keys to trust (before, each then verified every frame alone:
1,000 speakers on 2 cores made the alert bench measure the simulator)."""

from __future__ import annotations

import uuid

import pytest

from devices.frames import Frame, FrameType, encode_frame
from devices.signing import Signer, Verifier
from firmware_sim.framecache import FrameCache
from loa.errors import SignatureError

TOPIC = "loa/v1/vi-tan/hamlet/ap-3/opus"


def test_speakers_given_the_same_keys_keep_sharing_one_cache() -> None:
    old, new = Signer.generate(), Signer.generate()
    shared = FrameCache(Verifier([old.public]))
    caches = [shared.for_keys([new.public_hex()]) for _ in range(3)]
    assert caches[0] is caches[1] is caches[2]
    assert caches[0] is not shared
    frame = Frame(FrameType.AUDIO, uuid.uuid4(), 1, 2, 3, b"\x01a")
    data = encode_frame(frame, new, TOPIC)
    for c in caches:
        assert c.decode(data, TOPIC)[0].seq == 1
    assert caches[0].hits == 2  # verified once, reused twice
    with pytest.raises(SignatureError):  # the old key is no longer trusted
        caches[0].decode(encode_frame(frame, old, TOPIC), TOPIC)
    with pytest.raises(SignatureError):  # the same bytes on another topic: verified again
        caches[0].decode(data, TOPIC.replace("ap-3", "ap-4"))
    other = shared.for_keys([old.public_hex(), new.public_hex()])
    assert other is not caches[0]
    assert caches[1].for_keys([new.public_hex()]) is caches[0]
