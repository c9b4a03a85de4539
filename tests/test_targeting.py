"""broadcaster.places.targeting.resolve on hand-built directories (pure, no database)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.places.targeting import Directory, Target, member, resolve
from broadcaster.store.rows import DeviceRow
from devices.topics import Group, GroupKind
from loa.errors import InvalidInput


def dev(commune: str, id: str, hamlet: str, *zones: str, online: bool = False) -> DeviceRow:
    return DeviceRow(commune, id, hamlet, id, online, tuple(sorted(zones)))


def make_directory(devices: list[DeviceRow], zones: dict[str, set[str]] | None = None) -> Directory:
    hamlets: dict[str, set[str]] = {}
    by_commune: dict[str, list[DeviceRow]] = {}
    for d in devices:
        hamlets.setdefault(d.commune_id, set()).add(d.hamlet_id)
        by_commune.setdefault(d.commune_id, []).append(d)
    zone_ids: dict[str, set[str]] = {c: set() for c in hamlets}
    for d in devices:
        zone_ids[d.commune_id].update(d.zones)
    for c, extra in (zones or {}).items():
        zone_ids.setdefault(c, set()).update(extra)
        hamlets.setdefault(c, set())
    return Directory(
        hamlets={c: frozenset(h) for c, h in hamlets.items()},
        zones={c: frozenset(z) for c, z in zone_ids.items()},
        devices={c: sorted(ds, key=lambda d: (d.hamlet_id, d.id)) for c, ds in by_commune.items()},
    )


# Two communes: Vị Tân (3 hamlets, a market zone across two of them) and Hỏa Lựu.
DEVICES = [
    dev("vi-tan", "vt-1-1", "ap-1", "cho"),
    dev("vi-tan", "vt-1-2", "ap-1"),
    dev("vi-tan", "vt-2-1", "ap-2", "cho"),
    dev("vi-tan", "vt-2-2", "ap-2"),
    dev("vi-tan", "vt-3-1", "ap-3"),
    dev("hoa-luu", "hl-1-1", "ap-1"),
    dev("hoa-luu", "hl-1-2", "ap-1", "truong"),
    dev("hoa-luu", "hl-2-1", "ap-2"),
]
DIRECTORY = make_directory(DEVICES, zones={"vi-tan": {"bo-song"}})  # bo-song: empty zone


def ids(devices: tuple[DeviceRow, ...]) -> set[str]:
    return {d.id for d in devices}


def test_whole_commune():
    r = resolve([Target("vi-tan")], DIRECTORY)
    assert r.groups == (Group("vi-tan", GroupKind.COMMUNE),)
    assert ids(r.devices) == {"vt-1-1", "vt-1-2", "vt-2-1", "vt-2-2", "vt-3-1"}
    assert r.communes == ("vi-tan",)


def test_whole_commune_absorbs_its_hamlet_zone_and_device_targets():
    r = resolve(
        [
            Target("vi-tan", hamlet="ap-1"),
            Target("vi-tan", zone="cho"),
            Target("vi-tan", device="vt-3-1"),
            Target("vi-tan"),
            Target("hoa-luu", hamlet="ap-2"),
        ],
        DIRECTORY,
    )
    assert r.groups == (
        Group("hoa-luu", GroupKind.HAMLET, "ap-2"),
        Group("vi-tan", GroupKind.COMMUNE),
    )
    assert ids(r.devices) == {"vt-1-1", "vt-1-2", "vt-2-1", "vt-2-2", "vt-3-1", "hl-2-1"}
    assert r.communes == ("hoa-luu", "vi-tan")


def test_device_inside_targeted_hamlet_is_dropped():
    r = resolve(
        [Target("vi-tan", device="vt-1-2"), Target("vi-tan", hamlet="ap-1")],
        DIRECTORY,
    )
    assert r.groups == (Group("vi-tan", GroupKind.HAMLET, "ap-1"),)
    assert ids(r.devices) == {"vt-1-1", "vt-1-2"}


def test_device_outside_targeted_hamlet_is_kept():
    r = resolve(
        [Target("vi-tan", hamlet="ap-1"), Target("vi-tan", device="vt-2-2")],
        DIRECTORY,
    )
    assert set(r.groups) == {
        Group("vi-tan", GroupKind.HAMLET, "ap-1"),
        Group("vi-tan", GroupKind.DEVICE, "vt-2-2"),
    }
    assert ids(r.devices) == {"vt-1-1", "vt-1-2", "vt-2-2"}


def test_same_hamlet_id_in_another_commune_does_not_absorb():
    # Both communes have an "ap-1"; targeting Hỏa Lựu's must not swallow a Vị Tân device.
    r = resolve(
        [Target("hoa-luu", hamlet="ap-1"), Target("vi-tan", device="vt-1-1")],
        DIRECTORY,
    )
    assert Group("vi-tan", GroupKind.DEVICE, "vt-1-1") in r.groups
    assert ids(r.devices) == {"hl-1-1", "hl-1-2", "vt-1-1"}


def test_zone_membership_crosses_hamlets():
    r = resolve([Target("vi-tan", zone="cho")], DIRECTORY)
    assert r.groups == (Group("vi-tan", GroupKind.ZONE, "cho"),)
    assert ids(r.devices) == {"vt-1-1", "vt-2-1"}


def test_zone_and_hamlet_overlap_reach_each_device_once():
    r = resolve([Target("vi-tan", zone="cho"), Target("vi-tan", hamlet="ap-1")], DIRECTORY)
    assert len(r.groups) == 2  # a zone is not absorbed by a hamlet: it reaches ap-2 too
    assert [d.id for d in r.devices] == ["vt-1-1", "vt-1-2", "vt-2-1"]


def test_two_communes():
    r = resolve([Target("hoa-luu"), Target("vi-tan", hamlet="ap-3")], DIRECTORY)
    assert r.communes == ("hoa-luu", "vi-tan")
    assert ids(r.devices) == {"hl-1-1", "hl-1-2", "hl-2-1", "vt-3-1"}
    assert r.groups == (
        Group("hoa-luu", GroupKind.COMMUNE),
        Group("vi-tan", GroupKind.HAMLET, "ap-3"),
    )


def test_unknown_targets_are_all_listed_with_their_index():
    targets = [
        Target("vi-tan", hamlet="ap-1"),  # fine
        Target("xa-khac"),
        Target("vi-tan", hamlet="ap-9"),
        Target("vi-tan", zone="khong-co"),
        Target("vi-tan", device="vt-9-9"),
        Target("vi-tan", device="hl-1-1"),  # exists, but in another commune
        Target("hoa-luu", zone="cho"),  # zone of the other commune
    ]
    with pytest.raises(InvalidInput) as info:
        resolve(targets, DIRECTORY)
    errors = info.value.errors
    assert [e.field for e in errors] == [f"targets[{i}]" for i in range(1, 7)]
    assert all(e.code == "unknown" for e in errors)
    assert "xa-khac" in errors[0].message
    assert "ap-9" in errors[1].message
    assert "khong-co" in errors[2].message
    assert "vt-9-9" in errors[3].message
    assert "hl-1-1" in errors[4].message
    assert "cho" in errors[5].message
    assert info.value.status == 400


def test_empty_targets():
    with pytest.raises(InvalidInput) as info:
        resolve([], DIRECTORY)
    assert [(e.field, e.code) for e in info.value.errors] == [("targets", "required")]


def test_targets_reaching_no_devices():
    with pytest.raises(InvalidInput) as info:
        resolve([Target("vi-tan", zone="bo-song")], DIRECTORY)
    assert [(e.field, e.code) for e in info.value.errors] == [("targets", "empty")]


def test_commune_without_devices():
    d = Directory(hamlets={"moi": frozenset({"ap-1"})}, zones={}, devices={})
    with pytest.raises(InvalidInput, match="no speakers"):
        resolve([Target("moi")], d)
    with pytest.raises(InvalidInput, match="no speakers"):
        resolve([Target("moi", hamlet="ap-1")], d)


def test_groups_are_unique_and_sorted():
    targets = [
        Target("vi-tan", device="vt-3-1"),
        Target("vi-tan", zone="cho"),
        Target("vi-tan", hamlet="ap-2"),
        Target("hoa-luu", device="hl-2-1"),
        Target("vi-tan", hamlet="ap-2"),
        Target("vi-tan", zone="cho"),
        Target("hoa-luu", device="hl-2-1"),
    ]
    r = resolve(targets, DIRECTORY)
    assert list(r.groups) == sorted(set(r.groups))
    assert len(r.groups) == 4
    assert len(r.devices) == len(ids(r.devices))


def test_online_flag_is_carried_through():
    d = make_directory([dev("x", "x-1", "h", online=True), dev("x", "x-2", "h")])
    r = resolve([Target("x")], d)
    assert {row.id: row.online for row in r.devices} == {"x-1": True, "x-2": False}


def test_member():
    d = DEVICES[0]  # vt-1-1, ap-1, zone cho
    assert member(d, Group("vi-tan", GroupKind.COMMUNE))
    assert member(d, Group("vi-tan", GroupKind.HAMLET, "ap-1"))
    assert member(d, Group("vi-tan", GroupKind.ZONE, "cho"))
    assert member(d, Group("vi-tan", GroupKind.DEVICE, "vt-1-1"))
    assert not member(d, Group("hoa-luu", GroupKind.COMMUNE))
    assert not member(d, Group("hoa-luu", GroupKind.HAMLET, "ap-1"))
    assert not member(d, Group("vi-tan", GroupKind.HAMLET, "ap-2"))
    assert not member(d, Group("vi-tan", GroupKind.ZONE, "bo-song"))
    assert not member(d, Group("vi-tan", GroupKind.DEVICE, "vt-1-2"))


# --- property: reached devices == union of members of the requested targets -----------

COMMUNES = ["c0", "c1", "c2"]
HAMLETS = ["h0", "h1", "h2"]
ZONES = ["z0", "z1"]


@st.composite
def directories(draw: st.DrawFn) -> Directory:
    devices: list[DeviceRow] = []
    n = 0
    for c in COMMUNES:
        for h in HAMLETS:
            for _ in range(draw(st.integers(0, 2))):
                zones = draw(st.sets(st.sampled_from(ZONES), max_size=2))
                devices.append(dev(c, f"d{n}", h, *zones))
                n += 1
    directory = make_directory(devices)
    # Every commune exists with every hamlet and zone, even without devices.
    return Directory(
        hamlets={c: frozenset(HAMLETS) for c in COMMUNES},
        zones={c: frozenset(ZONES) for c in COMMUNES},
        devices={c: directory.devices.get(c, []) for c in COMMUNES},
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Directory, list[Target]]:
    directory = draw(directories())
    all_devices = [d for c in COMMUNES for d in directory.devices[c]]
    options = [st.builds(Target, st.sampled_from(COMMUNES))]
    options.append(
        st.builds(
            lambda c, h: Target(c, hamlet=h), st.sampled_from(COMMUNES), st.sampled_from(HAMLETS)
        )
    )
    options.append(
        st.builds(lambda c, z: Target(c, zone=z), st.sampled_from(COMMUNES), st.sampled_from(ZONES))
    )
    if all_devices:
        options.append(
            st.sampled_from(all_devices).map(lambda d: Target(d.commune_id, device=d.id))
        )
    targets = draw(st.lists(st.one_of(options), min_size=1, max_size=8))
    return directory, targets


def expected_members(directory: Directory, targets: list[Target]) -> set[str]:
    out: set[str] = set()
    for t in targets:
        for d in directory.devices.get(t.commune, ()):
            if member(d, t.group()):
                out.add(d.id)
    return out


@settings(max_examples=150, deadline=None)
@given(cases())
def test_reached_devices_equal_union_of_target_members(case: tuple[Directory, list[Target]]):
    directory, targets = case
    want = expected_members(directory, targets)
    if not want:
        with pytest.raises(InvalidInput, match="no speakers"):
            resolve(targets, directory)
        return
    r = resolve(targets, directory)
    assert ids(r.devices) == want
    assert len(r.devices) == len(want)  # each device once
    # The groups kept reach exactly the same devices (normalising loses nobody).
    via_groups = {
        d.id for c in COMMUNES for d in directory.devices[c] if any(member(d, g) for g in r.groups)
    }
    assert via_groups == want
    assert list(r.groups) == sorted(set(r.groups))
    assert r.communes == tuple(sorted({g.commune for g in r.groups}))
    assert set(r.communes) <= {t.commune for t in targets}
    whole = {g.commune for g in r.groups if g.kind is GroupKind.COMMUNE}
    assert all(g.kind is GroupKind.COMMUNE for g in r.groups if g.commune in whole)
    kept_hamlets = {(g.commune, g.id) for g in r.groups if g.kind is GroupKind.HAMLET}
    by_id = {d.id: d for c in COMMUNES for d in directory.devices[c]}
    for g in r.groups:
        if g.kind is GroupKind.DEVICE:
            assert (g.commune, by_id[g.id].hamlet_id) not in kept_hamlets
