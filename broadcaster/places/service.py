"""Provinces, communes, hamlets and zones: created, renamed and deleted from empty.

Ids are derived from the Vietnamese names when not given ("Ấp 2A" → ``ap-2a``,
"Xã Vị Tân" → ``vi-tan``) and are unique; people see names. A place that still holds
speakers, or that has history (broadcasts, programmes, alerts, accounts), is refused
for deletion with the reason: history is kept for the record.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from loa.errors import FieldError, InvalidInput, NotFound

from ..store.store import Store
from .names import (
    COMMUNE_WORDS,
    PROVINCE_WORDS,
    check_timezone,
    clean_name,
    refuse_same_name,
    refused,
    same_name,
    slug,
    unique_id,
)


def _targets_name(targets_json: str, key: str, value: str) -> bool:
    try:
        targets = json.loads(targets_json or "[]")
    except json.JSONDecodeError:
        return False
    return any(isinstance(t, dict) and t.get(key) == value for t in targets)


class Places:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.q = store.query

    # --- provinces ---------------------------------------------------------------------

    def provinces(self) -> list[dict[str, Any]]:
        return self.q(
            "SELECT p.id, p.name, (SELECT count(*) FROM communes c WHERE c.province_id=p.id)"
            " AS communes FROM provinces p ORDER BY p.name"
        )

    def province(self, pid: str) -> dict[str, Any]:
        rows = self.q("SELECT id, name FROM provinces WHERE id=?", [pid])
        if not rows:
            raise NotFound(f"province {pid!r} does not exist")
        return rows[0]

    def create_province(self, name: str, wanted: str | None = None) -> dict[str, Any]:
        name = clean_name(name, "province")
        rows = self.q("SELECT id, name FROM provinces")
        refuse_same_name(rows, name, "as a province")
        taken = {r["id"] for r in rows}
        pid = unique_id(wanted, name, PROVINCE_WORDS, taken)
        self.store.upsert_province(pid, name)
        return self.province(pid)

    def rename_province(self, pid: str, name: str) -> dict[str, Any]:
        self.province(pid)
        name = clean_name(name, "province")
        refuse_same_name(self.q("SELECT id, name FROM provinces"), name, "as a province", pid)
        self.store.db.table("provinces").update(pid, {"name": name})
        return self.province(pid)

    def delete_province(self, pid: str) -> None:
        p = self.province(pid)
        communes = self.q("SELECT name FROM communes WHERE province_id=?", [pid])
        if communes:
            names = ", ".join(c["name"] for c in communes[:5])
            raise refused(
                "not_empty",
                f"{p['name']} still has {len(communes)} communes ({names}): delete them first",
            )
        users = self.q("SELECT username FROM users WHERE province_id=?", [pid])
        if users:
            raise refused(
                "in_use",
                f"{p['name']} has {len(users)} accounts ({users[0]['username']}, …): "
                "move or disable them first",
            )
        self.store.db.execute("DELETE FROM provinces WHERE id=?", [pid])

    # --- communes ----------------------------------------------------------------------

    def commune(self, cid: str) -> dict[str, Any]:
        c = self.store.require_commune(cid)
        return {
            "id": c["id"],
            "name": c["name"],
            "province_id": c["province_id"],
            "timezone": c["timezone"],
            "hamlets": self.store.hamlets(cid),
            "zones": self.zones(cid),
        }

    def create_commune(
        self, pid: str, name: str, timezone: str, wanted: str | None = None
    ) -> dict[str, Any]:
        self.province(pid)
        name = clean_name(name, "commune")
        check_timezone(timezone)
        siblings = self.q("SELECT id, name FROM communes WHERE province_id=?", [pid])
        refuse_same_name(siblings, name, "in this province")
        taken = {r["id"] for r in self.q("SELECT id FROM communes")}
        cid = unique_id(wanted, name, COMMUNE_WORDS, taken)
        self.store.upsert_commune(cid, pid, name, timezone)
        return self.commune(cid)

    def update_commune(self, cid: str, name: str | None, timezone: str | None) -> dict[str, Any]:
        c = self.store.require_commune(cid)
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = clean_name(name, "commune")
            siblings = self.q(
                "SELECT id, name FROM communes WHERE province_id=?", [c["province_id"]]
            )
            refuse_same_name(siblings, values["name"], "in this province", cid)
        if timezone is not None:
            values["timezone"] = check_timezone(timezone)
        if values:
            self.store.db.table("communes").update(cid, values)
        return self.commune(cid)

    def delete_commune(self, cid: str) -> None:
        c = self.store.require_commune(cid)
        counts = {
            "speakers": "SELECT count(*) AS n FROM devices WHERE commune_id=?",
            "hamlets": "SELECT count(*) AS n FROM hamlets WHERE commune_id=?",
            "zones": "SELECT count(*) AS n FROM zones WHERE commune_id=?",
        }
        held = {k: self.q(sql, [cid])[0]["n"] for k, sql in counts.items()}
        left = [f"{n} {k}" for k, n in held.items() if n]
        if left:
            raise refused(
                "not_empty", f"{c['name']} still has {', '.join(left)}: delete them first"
            )
        history = {
            "broadcasts": "SELECT count(*) AS n FROM broadcast_communes WHERE commune_id=?",
            "programmes": "SELECT count(*) AS n FROM programmes WHERE commune_id=?",
            "alerts": "SELECT count(*) AS n FROM alerts WHERE commune_id=?",
            "recordings": "SELECT count(*) AS n FROM media WHERE commune_id=?",
            "accounts": "SELECT count(*) AS n FROM users WHERE commune_id=?",
        }
        had = {k: self.q(sql, [cid])[0]["n"] for k, sql in history.items()}
        kept = [f"{n} {k}" for k, n in had.items() if n]
        if kept:
            raise refused(
                "has_history",
                f"{c['name']} has history ({', '.join(kept)}), which is kept for the record: "
                "it cannot be deleted (rename it instead)",
            )
        self.store.db.execute("DELETE FROM communes WHERE id=?", [cid])

    # --- hamlets -----------------------------------------------------------------------

    def hamlet(self, cid: str, hid: str) -> dict[str, Any]:
        self.store.require_hamlet(cid, hid)
        return next(h for h in self.store.hamlets(cid) if h["id"] == hid)

    def create_hamlet(
        self, cid: str, name: str, wanted: str | None = None, position: int | None = None
    ) -> dict[str, Any]:
        self.store.require_commune(cid)
        name = clean_name(name, "hamlet")
        rows = self.q("SELECT id, name, position FROM hamlets WHERE commune_id=?", [cid])
        refuse_same_name(rows, name, "in this commune")
        hid = unique_id(wanted, name, (), {r["id"] for r in rows})
        if position is None:
            position = max((r["position"] or 0 for r in rows), default=-1) + 1
        self.store.upsert_hamlet(cid, hid, name, position)
        return self.hamlet(cid, hid)

    def find_hamlet(self, cid: str, text: str) -> str | None:
        """A hamlet's id from its id or its name (any case, NFC or NFD; typed without
        tone marks, "Ap 2A", it still matches the hamlet whose id it spells)."""
        wanted = unicodedata.normalize("NFC", text).strip()
        rows = self.q("SELECT id, name FROM hamlets WHERE commune_id=?", [cid])
        for r in rows:
            if r["id"] == wanted or same_name(r["name"], wanted):
                return str(r["id"])
        plain = slug(wanted)
        found = [r for r in rows if plain and (r["id"] == plain or slug(r["name"]) == plain)]
        if len(found) > 1:  # "Ap Hoa": Ấp Hòa or Ấp Hoa? tone marks tell words apart
            names = " or ".join(f"{r['name']} ({r['id']})" for r in found)
            raise InvalidInput(
                f"{text!r} could be {names}: write the name with its tone marks, or the id",
                errors=[FieldError("hamlet", "ambiguous without tone marks", "ambiguous")],
            )
        return str(found[0]["id"]) if found else None

    def update_hamlet(
        self, cid: str, hid: str, name: str | None, position: int | None
    ) -> dict[str, Any]:
        self.store.require_hamlet(cid, hid)
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = clean_name(name, "hamlet")
            rows = self.q("SELECT id, name FROM hamlets WHERE commune_id=?", [cid])
            refuse_same_name(rows, values["name"], "in this commune", hid)
        if position is not None:
            values["position"] = position
        if values:
            self.store.db.table("hamlets").update((cid, hid), values)
        return self.hamlet(cid, hid)

    def delete_hamlet(self, cid: str, hid: str) -> None:
        h = self.hamlet(cid, hid)
        devices = self.q(
            "SELECT id FROM devices WHERE commune_id=? AND hamlet_id=? ORDER BY id", [cid, hid]
        )
        if devices:
            shown = ", ".join(d["id"] for d in devices[:5])
            raise refused(
                "not_empty",
                f"{h['name']} has {len(devices)} speakers ({shown}): move them to another "
                "hamlet or delete them first",
            )
        played = self.q(
            "SELECT count(DISTINCT broadcast_id) AS n FROM deliveries"
            " WHERE commune_id=? AND hamlet_id=?",
            [cid, hid],
        )[0]["n"]
        if played:
            raise refused(
                "has_history",
                f"{h['name']} has history ({played} broadcasts reached it), which is kept "
                "for the record: it cannot be deleted (rename it instead)",
            )
        self._refuse_if_targeted(cid, "hamlet", hid, h["name"])
        users = [
            u["username"]
            for u in self.q("SELECT username, hamlets FROM users WHERE commune_id=?", [cid])
            if hid in json.loads(u["hamlets"] or "[]")
        ]
        if users:
            raise refused("in_use", f"{h['name']} is the area of accounts ({', '.join(users[:5])})")
        zones = self.q(
            "SELECT zone_id FROM zone_hamlets WHERE commune_id=? AND hamlet_id=?", [cid, hid]
        )
        if zones:
            raise refused(
                "in_use",
                f"{h['name']} is part of zones ({', '.join(z['zone_id'] for z in zones)}): "
                "take it out of them first",
            )
        self.store.db.execute("DELETE FROM hamlets WHERE commune_id=? AND id=?", [cid, hid])

    def refuse_device_in_use(self, cid: str, device: str) -> None:
        """A speaker a live programme or an unfinished alert names on its own cannot be
        deleted (it would silently drop out of them); ended ones are only history."""
        live = (
            (
                "programme",
                "SELECT title, targets FROM programmes WHERE commune_id=? AND deleted_us IS NULL",
            ),
            (
                "alert",
                "SELECT title, targets FROM alerts WHERE commune_id=?"
                " AND status IN ('draft', 'active')",
            ),
        )
        for what, sql in live:
            for r in self.q(sql, [cid]):
                if _targets_name(r["targets"], "device", device):
                    raise refused(
                        "in_use",
                        f"speaker {device} is a target of the {what} {r['title']!r}: "
                        "take it out of it first",
                    )

    def _refuse_if_targeted(self, cid: str, key: str, value: str, name: str) -> None:
        for table, what in (("programmes", "programme"), ("alerts", "alert")):
            extra = " AND deleted_us IS NULL" if table == "programmes" else ""
            for r in self.q(
                f"SELECT title, targets FROM {table} WHERE commune_id=?{extra}",  # noqa: S608
                [cid],
            ):
                if _targets_name(r["targets"], key, value):
                    raise refused(
                        "in_use",
                        f"{name} is a target of the {what} {r['title']!r}, which is kept "
                        "for the record: it cannot be deleted",
                    )

    # --- zones -------------------------------------------------------------------------

    def zones(self, cid: str) -> list[dict[str, Any]]:
        out = []
        for z in self.q("SELECT id, name FROM zones WHERE commune_id=? ORDER BY name", [cid]):
            out.append(self._zone_out(cid, z))
        return out

    def _zone_out(self, cid: str, z: dict[str, Any]) -> dict[str, Any]:
        hamlets = self.q(
            "SELECT hamlet_id FROM zone_hamlets WHERE commune_id=? AND zone_id=? ORDER BY 1",
            [cid, z["id"]],
        )
        devices = self.q(
            "SELECT device_id FROM zone_members WHERE commune_id=? AND zone_id=? ORDER BY 1",
            [cid, z["id"]],
        )
        return {
            "id": z["id"],
            "name": z["name"],
            "hamlets": [r["hamlet_id"] for r in hamlets],
            "devices": [r["device_id"] for r in devices],
        }

    def zone(self, cid: str, zid: str) -> dict[str, Any]:
        self.store.require_commune(cid)
        rows = self.q("SELECT id, name FROM zones WHERE commune_id=? AND id=?", [cid, zid])
        if not rows:
            raise NotFound(f"zone {zid!r} does not exist in commune {cid!r}")
        return self._zone_out(cid, rows[0])

    def _members(self, cid: str, hamlets: list[str], devices: list[str]) -> None:
        known_h = {r["id"] for r in self.q("SELECT id FROM hamlets WHERE commune_id=?", [cid])}
        known_d = {r["id"] for r in self.q("SELECT id FROM devices WHERE commune_id=?", [cid])}
        errors = [
            FieldError(f"hamlets.{i}", f"no hamlet {h!r} in this commune", "unknown")
            for i, h in enumerate(hamlets)
            if h not in known_h
        ] + [
            FieldError(f"devices.{i}", f"no speaker {d!r} in this commune", "unknown")
            for i, d in enumerate(devices)
            if d not in known_d
        ]
        if errors:
            raise InvalidInput("the zone names places that are not in this commune", errors=errors)

    def _set_members(self, cid: str, zid: str, hamlets: list[str], devices: list[str]) -> None:
        db = self.store.db
        db.execute("DELETE FROM zone_hamlets WHERE commune_id=? AND zone_id=?", [cid, zid])
        db.execute("DELETE FROM zone_members WHERE commune_id=? AND zone_id=?", [cid, zid])
        db.table("zone_hamlets").insert_all(
            [{"commune_id": cid, "zone_id": zid, "hamlet_id": h} for h in sorted(set(hamlets))]
        )
        db.table("zone_members").insert_all(
            [{"commune_id": cid, "zone_id": zid, "device_id": d} for d in sorted(set(devices))]
        )

    def create_zone(
        self,
        cid: str,
        name: str,
        hamlets: list[str],
        devices: list[str],
        wanted: str | None = None,
    ) -> dict[str, Any]:
        self.store.require_commune(cid)
        name = clean_name(name, "zone")
        self._members(cid, hamlets, devices)
        rows = self.q("SELECT id, name FROM zones WHERE commune_id=?", [cid])
        refuse_same_name(rows, name, "as a zone of this commune")
        taken = {r["id"] for r in rows}
        zid = unique_id(wanted, name, (), taken)
        with self.store.db.atomic():
            self.store.db.table("zones").insert({"commune_id": cid, "id": zid, "name": name})
            self._set_members(cid, zid, hamlets, devices)
        return self.zone(cid, zid)

    def update_zone(
        self,
        cid: str,
        zid: str,
        name: str | None,
        hamlets: list[str] | None,
        devices: list[str] | None,
    ) -> dict[str, Any]:
        before = self.zone(cid, zid)
        hamlets = before["hamlets"] if hamlets is None else hamlets
        devices = before["devices"] if devices is None else devices
        self._members(cid, hamlets, devices)
        if name is not None:
            name = clean_name(name, "zone")
            rows = self.q("SELECT id, name FROM zones WHERE commune_id=?", [cid])
            refuse_same_name(rows, name, "as a zone of this commune", zid)
        with self.store.db.atomic():
            if name is not None:
                self.store.db.table("zones").update((cid, zid), {"name": name})
            self._set_members(cid, zid, hamlets, devices)
        return self.zone(cid, zid)

    def delete_zone(self, cid: str, zid: str) -> None:
        z = self.zone(cid, zid)
        self._refuse_if_targeted(cid, "zone", zid, z["name"])
        with self.store.db.atomic():
            self._set_members(cid, zid, [], [])
            self.store.db.execute("DELETE FROM zones WHERE commune_id=? AND id=?", [cid, zid])
