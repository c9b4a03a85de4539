"""The demo province: Xã Vị Tân with its nine hamlets, three speakers each."""

from __future__ import annotations

from firmware_sim.spec import DeviceSpec

from ..store.store import Store

PROVINCE = ("can-tho", "Thành phố Cần Thơ")
COMMUNE = ("vi-tan", "Xã Vị Tân")
HAMLETS = [
    ("ap-1", "Ấp 1"),
    ("ap-2", "Ấp 2"),
    ("ap-2a", "Ấp 2A"),
    ("ap-3", "Ấp 3"),
    ("ap-3a", "Ấp 3A"),
    ("ap-4", "Ấp 4"),
    ("ap-5", "Ấp 5"),
    ("ap-6", "Ấp 6"),
    ("ap-7", "Ấp 7"),
]
SPEAKERS_PER_HAMLET = 3
#: A zone crossing hamlets: the speakers around Vị Tân market.
MARKET_ZONE = ("cho-vi-tan", "Khu chợ Vị Tân", ["vt-ap-1-1", "vt-ap-2-1"])


#: An older speaker that decodes only MP3: the controller sends it an MP3 leg in step.
MP3_ONLY = frozenset({"vt-ap-7-3"})


def device_ids(hamlet: str) -> list[str]:
    return [f"vt-{hamlet}-{i}" for i in range(1, SPEAKERS_PER_HAMLET + 1)]


def seed(store: Store, timezone: str = "Asia/Ho_Chi_Minh") -> None:
    """Create (or refresh) the demo province; idempotent."""
    store.upsert_province(*PROVINCE)
    store.upsert_commune(COMMUNE[0], PROVINCE[0], COMMUNE[1], timezone)
    for pos, (hid, name) in enumerate(HAMLETS):
        store.upsert_hamlet(COMMUNE[0], hid, name, pos)
        for n, did in enumerate(device_ids(hid), start=1):
            store.upsert_device(COMMUNE[0], did, hid, f"Cụm loa {name} số {n}")
    store.upsert_zone(COMMUNE[0], MARKET_ZONE[0], MARKET_ZONE[1], MARKET_ZONE[2])


def fleet_specs(seed_offsets: bool = True) -> list[DeviceSpec]:
    """The simulated speakers matching :func:`seed`, with small clock errors."""
    specs = []
    zone_members = set(MARKET_ZONE[2])
    for h_index, (hid, _) in enumerate(HAMLETS):
        for n, did in enumerate(device_ids(hid)):
            k = h_index * SPEAKERS_PER_HAMLET + n
            offset = ((k * 37) % 101 - 50) / 100 if seed_offsets else 0.0  # ±0.5 s
            drift = ((k * 53) % 201 - 100) if seed_offsets else 0.0  # ±100 ppm
            specs.append(
                DeviceSpec(
                    id=did,
                    commune=COMMUNE[0],
                    hamlet=hid,
                    zones=(MARKET_ZONE[0],) if did in zone_members else (),
                    offset_s=offset,
                    drift_ppm=float(drift),
                    codecs=("mp3",) if did in MP3_ONLY else ("opus", "mp3"),
                )
            )
    return specs
