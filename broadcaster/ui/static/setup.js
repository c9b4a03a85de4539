// Loa set-up pages: places from empty (province, commune, hamlets, zones), speakers by
// CSV or one by one, accounts limited to hamlets, and a speaker's provisioning QR code.
// Uses api(), $, esc and showError from loa.js.
"use strict";

const setupStatus = $("#setup-status");

function said(key) { return setupStatus ? setupStatus.dataset[key] : ""; }

function done(key) {
  document.querySelectorAll("#main .error").forEach((x) => { x.textContent = ""; });
  setupStatus.textContent = said(key);
}

function failed(form, err) {
  setupStatus.textContent = "";
  let el = $("#setup-error");
  if (form) {
    el = form.querySelector(".error");
    if (!el) {
      el = document.createElement("p");
      el.className = "error";
      el.setAttribute("role", "alert");
      form.querySelector("button").insertAdjacentElement("beforebegin", el);
    }
  }
  if (err.data && err.data.status === 409) {
    // a refusal with its reason (speakers still there, history kept), in the user's
    // language, with the details (which speakers, which zones) as the server gave them
    const code = ((err.data.errors || [])[0] || {}).code;
    el.textContent = (said(code) || said("failed")) + " (" + err.message + ")";
  } else {
    showError(el, err);
  }
}

// a list item with a name to rename in place, and a delete button
function placeItem(label, url, name, extra) {
  const li = document.createElement("li");
  li.innerHTML = `<input aria-label="${esc(said("rename"))}: ${esc(label)}" value="${esc(name)}" maxlength="100">
    <button type="button" data-act="rename">${esc(said("rename"))}</button>
    <button type="button" data-act="delete" class="secondary">${esc(said("delete"))}</button>
    <span class="muted">${esc(extra || "")}</span>`;
  li.dataset.url = url;
  return li;
}

async function onPlaceAction(e) {
  const btn = e.target.closest("button[data-act]");
  if (!btn) return;
  const li = btn.closest("li");
  try {
    if (btn.dataset.act === "rename") {
      await api("PUT", li.dataset.url, { name: li.querySelector("input").value });
      done("saved");
    } else {
      await api("DELETE", li.dataset.url);
      done("deleted");
    }
    await loadSetup();
  } catch (err) { failed(null, err); }
}

let setupCommune = "";

async function loadSetup() {
  const [provs, communes] = await Promise.all([api("GET", "/api/provinces"), api("GET", "/api/communes")]);
  const pl = $("#province-list");
  pl.replaceChildren(...provs.provinces.map((p) => placeItem(p.name, `/api/provinces/${p.id}`, p.name, `${p.communes}`)));
  $("#commune-province").innerHTML = provs.provinces.map((p) => `<option value="${esc(p.id)}">${esc(p.name)}</option>`).join("");
  $("#commune-list").replaceChildren(...communes.communes.map((c) =>
    placeItem(c.name, `/api/communes/${c.id}`, c.name, `${c.province_name} · ${c.devices}`)));
  const choice = $("#setup-commune");
  if (!communes.communes.some((c) => c.id === setupCommune)) setupCommune = commune() || (communes.communes[0] || {}).id || "";
  if (!communes.communes.some((c) => c.id === setupCommune)) setupCommune = (communes.communes[0] || {}).id || "";
  choice.innerHTML = communes.communes.map((c) => `<option value="${esc(c.id)}" ${c.id === setupCommune ? "selected" : ""}>${esc(c.name)}</option>`).join("");
  for (const id of ["#step-hamlets", "#step-speakers", "#step-users"]) $(id).hidden = !setupCommune;
  $("#step-commune").hidden = !provs.provinces.length;
  if (!setupCommune) return;
  const c = setupCommune;
  const [detail, devs] = await Promise.all([api("GET", `/api/communes/${c}`), api("GET", `/api/communes/${c}/devices`)]);
  const hamlets = detail.commune.hamlets;
  const names = Object.fromEntries(hamlets.map((h) => [h.id, h.name]));
  $("#hamlet-list").replaceChildren(...hamlets.map((h) => placeItem(h.name, `/api/communes/${c}/hamlets/${h.id}`, h.name, `${h.devices}`)));
  $("#zone-list").replaceChildren(...detail.commune.zones.map((z) =>
    placeItem(z.name, `/api/communes/${c}/zones/${z.id}`, z.name, z.hamlets.map((h) => names[h] || h).join(", "))));
  const boxes = (name) => hamlets.map((h) =>
    `<label><input type="checkbox" name="${name}" value="${esc(h.id)}"> ${esc(h.name)}</label>`).join("");
  for (const [sel, name] of [["#zone-hamlets", "zone-hamlet"], ["#user-hamlets", "user-hamlet"]]) {
    const fs = $(sel);
    fs.querySelectorAll("label").forEach((x) => x.remove());
    fs.insertAdjacentHTML("beforeend", boxes(name));
  }
  $("#device-hamlet").innerHTML = hamlets.map((h) => `<option value="${esc(h.id)}">${esc(h.name)}</option>`).join("");
  $("#setup-devices").innerHTML = devs.devices.map((d) =>
    `<tr><td><a href="/devices/${esc(d.id)}">${esc(d.name)}</a> <span class="muted">${esc(d.id)}</span></td>
     <td>${esc(names[d.hamlet] || d.hamlet)}</td><td>${d.online ? esc(T("Trực tuyến")) : esc(T("Ngoại tuyến"))}</td></tr>`).join("");
  $("#csv-template").href = `/api/communes/${c}/devices/export.csv?template=1`;
  $("#csv-export").href = `/api/communes/${c}/devices/export.csv`;
}

function submitting(sel, action) {
  const form = $(sel);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await action(form);
      form.reset();
      await loadSetup();
    } catch (err) { failed(form, err); }
  });
}

if ($("#province-form")) {
  for (const sel of ["#province-list", "#commune-list", "#hamlet-list", "#zone-list"]) $(sel).addEventListener("click", onPlaceAction);
  $("#setup-commune").addEventListener("change", (e) => { setupCommune = e.target.value; loadSetup(); });
  submitting("#province-form", async () => {
    await api("POST", "/api/provinces", { name: $("#province-name").value });
    done("saved");
  });
  submitting("#commune-form", async () => {
    const r = await api("POST", `/api/provinces/${$("#commune-province").value}/communes`,
      { name: $("#commune-name").value, timezone: $("#commune-timezone").value });
    setupCommune = r.commune.id;
    done("saved");
  });
  submitting("#hamlet-form", async () => {
    await api("POST", `/api/communes/${setupCommune}/hamlets`, { name: $("#hamlet-name").value });
    done("saved");
  });
  submitting("#zone-form", async (form) => {
    const hamlets = [...form.querySelectorAll('input[name="zone-hamlet"]:checked')].map((x) => x.value);
    await api("POST", `/api/communes/${setupCommune}/zones`, { name: $("#zone-name").value, hamlets });
    done("saved");
  });
  submitting("#import-form", async () => {
    const file = $("#import-file").files[0];
    const create = $("#import-create").checked ? "1" : "0";
    const r = await api("POST", `/api/communes/${setupCommune}/devices/import?create_hamlets=${create}`,
      undefined, new Blob([await file.arrayBuffer()], { type: "text/csv" }));
    done("imported");
    setupStatus.textContent += ` (${r.created.length + r.updated.length})`;
  });
  submitting("#device-form", async () => {
    await api("POST", `/api/communes/${setupCommune}/devices`, {
      id: $("#device-id").value, hamlet: $("#device-hamlet").value,
      ...($("#device-name").value ? { name: $("#device-name").value } : {}),
    });
    done("saved");
  });
  submitting("#user-form", async (form) => {
    const hamlets = [...form.querySelectorAll('input[name="user-hamlet"]:checked')].map((x) => x.value);
    const detail = await api("GET", `/api/communes/${setupCommune}`);
    await api("POST", "/api/users", {
      username: $("#user-name").value, password: $("#user-password").value, roles: [$("#user-role").value],
      area: { province: detail.commune.province_id, commune: setupCommune, hamlets },
    });
    done("saved");
  });
  loadSetup().catch((err) => failed(null, err));
}

// --- a speaker's page: issue credentials, show the provisioning QR code once ---------
const provisionBtn = $("#provision");
if (provisionBtn) provisionBtn.addEventListener("click", async () => {
  const id = $("#device-name").dataset.device;
  try {
    const r = await api("POST", `/api/devices/${encodeURIComponent(id)}/credentials`);
    const blob = new Blob([JSON.stringify(r.provisioning, null, 1)], { type: "application/json" });
    if (r.qr) $("#provision-qr").src = r.qr;
    $("#provision-qr").hidden = !r.qr;  // too large for a QR code: the file below
    $("#provision-file").href = URL.createObjectURL(blob);
    $("#provision-file").download = `${id}.json`;
    $("#provision-file").hidden = false;
    $("#provision-password").textContent = r.password;
    $("#provision-urls").textContent = r.provisioning.mqtt.urls.join("  ");
    $("#provision-error").textContent = "";
  } catch (err) { showError($("#provision-error"), err); }
});
