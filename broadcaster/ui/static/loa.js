// Loa UI: plain JavaScript over the JSON API (session cookie + CSRF header).
"use strict";
const T = (s) => (window.T && window.T[s]) || s;
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
const commune = () => document.body.dataset.commune;

async function api(method, url, body, raw) {
  const opts = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
  if (raw) { opts.body = raw; opts.headers["Content-Type"] = raw.type || "application/octet-stream"; } else if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(url, opts);
  const data = resp.headers.get("content-type")?.includes("json") ? await resp.json() : {};
  if (!resp.ok) { const err = new Error(data.error || resp.statusText); err.data = data; throw err; }
  return data;
}

// A refusal in the user's language, next to the fields it is about, keeping what the
// user typed. The API's codes are stable; its sentences are English.
const CODES = {
  missing: "Bắt buộc", required: "Bắt buộc",
  string_too_long: "Quá dài", too_long: "Quá dài", too_short: "Quá ngắn", string_too_short: "Quá ngắn",
  too_large: "Quá lớn", unknown: "Không tồn tại", not_found: "Không tồn tại",
  not_audio: "Không phải tệp âm thanh", no_audio: "Tệp không có âm thanh", damaged: "Tệp bị hỏng",
  silent: "Tệp chỉ có im lặng", empty: "Tệp không có âm thanh", date: "Ngày hoặc giờ không hợp lệ",
  range: "Ngày hoặc giờ không hợp lệ", scope: "Ngoài khu vực của bạn", forbidden: "Ngoài khu vực của bạn",
};
function fieldMessage(f) { return T(CODES[f.code] || "Giá trị không hợp lệ"); }
function showError(el, err) {
  const form = el.closest("form") || document;
  form.querySelectorAll(".field-error").forEach((x) => x.remove());
  const english = document.body.dataset.lang === "en";
  el.textContent = english ? T("Lỗi: ") + err.message : T("Không thực hiện được. Hãy sửa các ô được đánh dấu.");
  const fields = (err.data && err.data.errors) || [];
  if (!fields.length && !english && err.data && err.data.code) el.textContent += " (" + (T(CODES[err.data.code] || "") || err.data.code) + ")";
  for (const f of fields) {
    const name = String(f.field).split(".").pop().replace(/\[\d+\]$/, "");
    const input = form.querySelector(`[name="${name}"]`) || form.querySelector(`[name="hamlet"]`);
    const note = document.createElement("span");
    note.className = "field-error";
    note.setAttribute("role", "alert");
    note.textContent = fieldMessage(f) + (english ? ` (${f.message})` : "");
    if (input && input.name === name) input.insertAdjacentElement("afterend", note);
    else el.appendChild(document.createTextNode(" · " + f.field + ": " + fieldMessage(f)));
  }
}

const logout = $("#logout");
if (logout) logout.addEventListener("click", async () => { await api("POST", "/api/logout"); location.href = "/login"; });

// --- login -----------------------------------------------------------------
const loginForm = $("#login-form");
if (loginForm) loginForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await api("POST", "/api/login", { username: $("#username").value, password: $("#password").value });
    location.href = loginForm.dataset.next || "/";
  } catch (err) { showError($("#login-error"), err); }
});

// --- dashboard: speakers coloured by state, updated live --------------------
async function refreshMap() {
  const c = commune();
  const [devs, bcs, alarms] = await Promise.all([
    api("GET", `/api/communes/${c}/devices`),
    api("GET", `/api/communes/${c}/broadcasts`),
    api("GET", `/api/communes/${c}/alarms`),
  ]);
  const playing = new Set();
  const live = bcs.broadcasts.filter((b) => b.status === "streaming" || b.status === "finishing");
  for (const b of live) {
    const d = await api("GET", `/api/broadcasts/${b.id}`);
    d.broadcast.deliveries.forEach((x) => playing.add(x.device_id));
  }
  const faulty = new Set(alarms.alarms.filter((a) => a.kind !== "offline").map((a) => a.device_id));
  for (const d of devs.devices) {
    const el = document.getElementById("sp-" + d.id);
    if (!el) continue;
    const state = !d.online ? "offline" : faulty.has(d.id) ? "fault" : playing.has(d.id) ? "playing" : "idle";
    el.setAttribute("class", "speaker " + state);
    el.dataset.state = state;
    el.querySelector("title").textContent = d.id + " — " + T({ offline: "Mất kết nối", fault: "Lỗi", playing: "Đang phát", idle: "Rảnh" }[state]);
  }
  const up = {};
  devs.devices.forEach((d) => { up[d.hamlet] = (up[d.hamlet] || 0) + (d.online ? 1 : 0); });
  document.querySelectorAll("#hamlets tr[data-hamlet]").forEach((row) => {
    row.querySelector(".online").textContent = up[row.dataset.hamlet] || 0;
  });
  $("#on-air").innerHTML = live.length
    ? live.map((b) => `<li>${esc(b.title)} (${esc(b.priority)})</li>`).join("")
    : `<li>${esc(T("Chưa có bản tin"))}</li>`;
}
if ($("#map")) { refreshMap(); setInterval(() => refreshMap().catch(() => {}), 2000); }

// --- library ----------------------------------------------------------------
async function loadMedia(select) {
  const data = await api("GET", `/api/communes/${commune()}/media`);
  if (select) {
    select.innerHTML = data.media.map((m) => `<option value="${m.id}">${esc(m.title)}</option>`).join("");
    return;
  }
  $("#media-list").innerHTML = data.media.map((m) =>
    `<tr><td>${esc(m.title)}</td><td>${(m.duration_ms / 1000).toFixed(1)} s</td>` +
    `<td>${m.loudness && m.loudness.lufs != null ? m.loudness.lufs.toFixed(1) : "—"}</td>` +
    `<td><audio controls preload="none" src="/api/media/${m.id}/audio?codec=mp3"></audio></td></tr>`).join("");
}
function upload(file, title) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("file", file);
    if (title) form.append("title", title);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/communes/${commune()}/media`);
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) $("#upload-progress").value = (100 * e.loaded) / e.total; };
    xhr.onload = () => {
      const data = JSON.parse(xhr.responseText || "{}");
      if (xhr.status < 300) resolve(data); else { const err = new Error(data.error); err.data = data; reject(err); }
    };
    xhr.onerror = () => reject(new Error("network"));
    xhr.send(form);
  });
}
if ($("#upload-form")) {
  loadMedia();
  $("#upload-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("#upload-error").textContent = T("Đang tải lên…");
    try {
      await upload($("#upload-file").files[0], $("#upload-title").value);
      $("#upload-error").textContent = T("Đã tải lên");
      loadMedia();
    } catch (err) { showError($("#upload-error"), err); }
  });
  $("#tts-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", `/api/communes/${commune()}/media/text`, { text: $("#tts-text").value, title: $("#tts-title").value || $("#tts-text").value.slice(0, 60) });
      $("#tts-error").textContent = T("Đã lưu");
      loadMedia();
    } catch (err) { showError($("#tts-error"), err); }
  });
  let recorder = null;
  $("#record-start").addEventListener("click", async () => {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = async () => {
      stream.getTracks().forEach((t) => t.stop());
      try { await upload(new File(chunks, "ghi-am.webm", { type: "audio/webm" }), ""); loadMedia(); }
      catch (err) { showError($("#upload-error"), err); }
    };
    recorder.start();
    $("#record-start").disabled = true; $("#record-stop").disabled = false;
  });
  $("#record-stop").addEventListener("click", () => { recorder && recorder.stop(); $("#record-start").disabled = false; $("#record-stop").disabled = true; });
}

// --- schedule: a week calendar, create with targets, conflicts shown ---------
function targetsFrom(form) {
  const picked = [...form.querySelectorAll('input[name="hamlet"]:checked')].map((x) => x.value);
  if (!picked.length || picked.includes("")) return [{ commune: commune() }];
  return picked.map((h) => ({ commune: commune(), hamlet: h }));
}
async function loadCalendar() {
  const now = new Date();
  const from = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const to = new Date(from.getTime() + 7 * 86400000);
  const data = await api("GET", `/api/communes/${commune()}/occurrences?from=${from.toISOString().slice(0, 10)}&to=${to.toISOString().slice(0, 10)}`);
  const days = [];
  for (let i = 0; i < 7; i++) days.push(new Date(from.getTime() + i * 86400000));
  const lang = document.body.dataset.lang === "en" ? "en-GB" : "vi-VN";
  $("#calendar").innerHTML = days.map((d) => {
    const items = data.occurrences.filter((o) => new Date(o.fire_us / 1000).toDateString() === d.toDateString());
    return `<div class="day"><h3>${esc(d.toLocaleDateString(lang, { weekday: "short", day: "numeric", month: "numeric" }))}</h3>` +
      items.map((o) => `<div class="occ" data-programme="${o.programme_id}">${esc(new Date(o.fire_us / 1000).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" }))} ${esc(o.title)}</div>`).join("") + "</div>";
  }).join("");
  const progs = await api("GET", `/api/communes/${commune()}/programmes`);
  $("#pending").innerHTML = progs.programmes.filter((p) => p.status === "submitted").map((p) =>
    `<li>${esc(p.title)} <button type="button" data-approve="${p.id}">✓</button></li>`).join("");
  document.querySelectorAll("[data-approve]").forEach((b) => b.addEventListener("click", async () => {
    await api("POST", `/api/programmes/${b.dataset.approve}/approve`); loadCalendar();
  }));
}
function programmeBody(form) {
  const when = { kind: $("#p-kind").value, at: $("#p-at").value };
  if (when.kind === "once") when.start = $("#p-start").value;
  if (when.kind === "weekly") when.weekdays = [new Date($("#p-start").value).getDay() || 7];
  return { title: $("#p-title").value || "?", what: { kind: "media", media_id: $("#p-media").value }, targets: targetsFrom(form), when };
}
async function checkConflicts() {
  const form = $("#programme-form");
  if (!$("#p-media").value) return;
  try {
    const data = await api("POST", `/api/communes/${commune()}/programmes/check`, programmeBody(form));
    $("#conflicts").innerHTML = data.conflicts.length
      ? data.conflicts.map((c) => `<li>${esc(T("Trùng lịch"))}: ${esc(c.title)} — ${c.overlap_minutes} min, ${c.speakers} loa</li>`).join("")
      : `<li>${esc(T("Không trùng lịch"))}</li>`;
  } catch (err) { /* the save shows refusals */ }
}
if ($("#programme-form")) {
  loadMedia($("#p-media")).then(checkConflicts); loadCalendar();
  $("#programme-form").addEventListener("change", checkConflicts);
  $("#p-start").value = new Date().toISOString().slice(0, 10);
  $("#programme-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    try {
      const data = await api("POST", `/api/communes/${commune()}/programmes`, { ...programmeBody(form), title: $("#p-title").value });
      $("#conflicts").innerHTML = data.conflicts.map((c) => `<li>${esc(c.title)}: ${c.overlap_minutes} min, ${c.speakers} loa</li>`).join("");
      await api("POST", `/api/programmes/${data.programme.id}/submit`);
      $("#programme-error").textContent = T("Đã lưu");
      loadCalendar();
    } catch (err) { showError($("#programme-error"), err); }
  });
}

// --- live: push-to-talk from the microphone -----------------------------------
if ($("#ptt")) {
  let ws = null, rec = null, stream = null;
  $("#ptt").addEventListener("click", async () => {
    if (rec) { rec.stop(); ws.send(JSON.stringify({ type: "stop" })); stream.getTracks().forEach((t) => t.stop()); rec = null; $("#on-air-indicator").className = "off-air"; $("#on-air-indicator").textContent = T("Đã dừng"); return; }
    const hamlets = [...document.querySelectorAll('#live-form input[name="hamlet"]:checked')].map((x) => ({ commune: commune(), hamlet: x.value }));
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const ctx = new AudioContext(); const an = ctx.createAnalyser(); ctx.createMediaStreamSource(stream).connect(an);
    const buf = new Float32Array(an.fftSize);
    setInterval(() => { an.getFloatTimeDomainData(buf); $("#level").value = Math.min(1, Math.sqrt(buf.reduce((s, v) => s + v * v, 0) / buf.length) * 4); }, 100);
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + `/api/communes/${commune()}/live`);
    ws.onopen = () => {
      ws.send(JSON.stringify({ targets: hamlets.length ? hamlets : [{ commune: commune() }], title: "Phát trực tiếp" }));
      rec = new MediaRecorder(stream, { mimeType: "audio/webm;codecs=opus" });
      rec.ondataavailable = (e) => e.data.size && ws.send(e.data);
      rec.start(250);
      $("#on-air-indicator").className = "on-air"; $("#on-air-indicator").textContent = T("Đang phát trực tiếp");
    };
  });
}

// --- devices ---------------------------------------------------------------------
async function loadDevices() {
  const data = await api("GET", `/api/communes/${commune()}/devices`);
  const f = $("#device-filter").value;
  $("#device-list").innerHTML = data.devices.filter((d) => !f || (f === "online") === d.online).map((d) =>
    `<tr data-device="${d.id}" data-online="${d.online}"><td><a href="/devices/${d.id}">${esc(d.id)}</a></td><td>${esc(d.hamlet)}</td>` +
    `<td>${esc(T(d.online ? "trực tuyến" : "ngoại tuyến"))}</td><td>${esc(d.firmware)}</td></tr>`).join("");
  const alarms = await api("GET", `/api/communes/${commune()}/alarms`);
  $("#alarm-list").innerHTML = alarms.alarms.map((a) =>
    `<li>${esc(a.device_id)}: ${esc(a.kind)} — ${esc(a.detail)} ${a.acked_us ? "✓" : `<button type="button" data-ack="${a.id}">OK</button>`}</li>`).join("");
  document.querySelectorAll("[data-ack]").forEach((b) => b.addEventListener("click", async () => { await api("POST", `/api/alarms/${b.dataset.ack}/ack`); loadDevices(); }));
}
if ($("#firmware-form")) $("#firmware-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const file = $("#fw-file").files[0];
    const fw = (await api("POST", `/api/firmware?version=${encodeURIComponent($("#fw-version").value)}`, undefined,
      new Blob([await file.arrayBuffer()], { type: "application/octet-stream" }))).firmware;
    // online speakers only: an offline one would hold the wave until it times out
    const devices = [...document.querySelectorAll("#device-list tr[data-online=true]")].map((r) => r.dataset.device);
    const r = (await api("POST", `/api/firmware/${fw.id}/rollouts`, { devices, canary: Number($("#fw-canary").value) })).rollout;
    const poll = setInterval(async () => {
      const now = (await api("GET", `/api/rollouts/${r.id}`)).rollout;
      $("#rollout-status").textContent = `${now.status} ${now.reason || ""}`;
      if (now.status !== "running") clearInterval(poll);
    }, 1000);
  } catch (err) { showError($("#firmware-error"), err); }
});
if ($("#device-list")) { loadDevices(); $("#device-filter").addEventListener("change", loadDevices); setInterval(() => loadDevices().catch(() => {}), 3000); }

if ($("#device-name")) {
  const id = $("#device-name").dataset.device;
  (async () => {
    const d = await api("GET", `/api/devices/${id}`);
    $("#device-state").textContent = T(d.device.online ? "trực tuyến" : "ngoại tuyến") + " · " + (d.device.firmware || "");
    const u = await api("GET", `/api/devices/${id}/uptime`);
    $("#device-uptime").textContent = u.uptime.uptime == null ? "—" : (u.uptime.uptime * 100).toFixed(1) + " %";
    const pts = d.telemetry.filter((t) => t.temperature_c != null);
    if (pts.length > 1) {
      const t0 = pts[0].at_us, t1 = pts[pts.length - 1].at_us || t0 + 1;
      const line = pts.map((p) => `${(600 * (p.at_us - t0)) / (t1 - t0)},${150 - p.temperature_c * 1.5}`).join(" ");
      $("#health").innerHTML = `<polyline fill="none" stroke="#a30000" stroke-width="2" points="${line}"/>`;
    }
  })();
  document.querySelectorAll("[data-command]").forEach((b) => b.addEventListener("click", async () => {
    const args = b.dataset.command === "set_volume" ? { volume: Number($("#volume").value) } : {};
    try { await api("POST", `/api/devices/${id}/commands`, { action: b.dataset.command, args }); $("#command-status").textContent = T("Đã gửi"); }
    catch (err) { showError($("#command-status"), err); }
  }));
}

// --- reports -----------------------------------------------------------------------
if ($("#report-form")) {
  const show = () => {
    const m = $("#r-month").value;
    const q = m ? `month=${m}` : "";
    $("#r-csv").href = `/api/communes/${commune()}/report?${q}&format=csv`;
    $("#r-html").href = `/api/communes/${commune()}/report?${q}&format=html`;
    $("#report-frame").src = `/api/communes/${commune()}/report?${q}&format=html`;
  };
  $("#report-form").addEventListener("submit", (e) => { e.preventDefault(); show(); });
  show();
}

// --- targets picked on the map: a click (or Enter) toggles the speaker's hamlet ---------
document.querySelectorAll(".pick-map").forEach((map) => {
  const form = map.closest("form");
  const sync = () => {
    const on = new Set([...form.querySelectorAll('input[name="hamlet"]:checked')].map((x) => x.value));
    map.querySelectorAll("circle").forEach((c) => c.setAttribute("class", "speaker " + (on.has(c.dataset.hamlet) ? "playing" : "idle")));
  };
  const toggle = (c) => {
    const box = form.querySelector(`input[name="hamlet"][value="${c.dataset.hamlet}"]`);
    if (!box) return;
    box.checked = !box.checked;
    const whole = form.querySelector('input[name="hamlet"][value=""]');
    if (whole && box.checked) whole.checked = false;
    sync();
    form.dispatchEvent(new Event("change"));
  };
  map.querySelectorAll("circle").forEach((c) => {
    c.addEventListener("click", () => toggle(c));
    c.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(c); } });
  });
  form.addEventListener("change", sync);
  sync();
});

// --- the red banner on every page: active alerts, from the server, kept current ------
const STATE_WORDS = { draft: "Chờ xác nhận", active: "Đang phát", cancelled: "Đã dừng", all_clear: "Đã báo an toàn", expired: "Đã hết hạn" };
const stateWord = (s) => T(STATE_WORDS[s] || s);
// A button that asks once more before it acts, and shows that it is working.
function guarded(button, question, yesLabel, action) {
  button.addEventListener("click", () => {
    const box = button.parentElement;
    if (box.querySelector(".really")) return;
    const really = document.createElement("span");
    really.className = "really";
    really.innerHTML = `<span>${esc(T(question))}</span> <button type="button" class="danger yes">${esc(T(yesLabel))}</button> <button type="button" class="no">${esc(T("Không"))}</button>`;
    box.appendChild(really);
    really.querySelector(".no").addEventListener("click", () => really.remove());
    really.querySelector(".yes").addEventListener("click", async (e) => {
      const yes = e.currentTarget;
      yes.disabled = true; button.disabled = true; yes.textContent = T("Đang gửi…");
      try { await action(); really.remove(); } catch (err) { yes.disabled = false; button.disabled = false; yes.textContent = T(yesLabel); really.querySelector("span").textContent = T("Lỗi: ") + err.message; }
    });
  });
}
const stopAlert = (id) => api("POST", `/api/alerts/${id}/cancel`, { reason: "dừng từ giao diện" });
const clearAlert = (id) => api("POST", `/api/alerts/${id}/all-clear`);
const banner = $("#alert-banner");
const bannerWatch = new Map();
function bannerItem(a) {
  const names = JSON.parse(banner.dataset.names || "{}");
  const where = [...new Set(a.targets.map((t) => names[t.hamlet] || t.zone || t.device || names[""] || t.commune))].join(", ");
  const since = new Date((a.confirmed_us || 0) / 1000).toLocaleTimeString(document.body.dataset.lang === "en" ? "en-GB" : "vi-VN", { hour: "2-digit", minute: "2-digit" });
  const div = document.createElement("div");
  div.className = "banner-item"; div.dataset.alert = a.id;
  div.innerHTML = `<p><strong>${esc(T("ĐANG PHÁT CẢNH BÁO"))}</strong> <span class="what">${esc(a.type_name[document.body.dataset.lang === "en" ? "en" : "vi"])}</span> — <span class="where">${esc(where)}</span> — ${esc(T("từ"))} <time>${esc(since)}</time></p>` +
    `<button type="button" class="banner-stop">${esc(T("Dừng"))}</button> <button type="button" class="banner-clear">${esc(T("Báo an toàn"))}</button>`;
  return div;
}
function wireBanner(div) {
  const id = div.dataset.alert;
  guarded(div.querySelector(".banner-stop"), "Dừng cảnh báo này trên mọi loa?", "Có, dừng ngay", async () => { await stopAlert(id); div.remove(); syncBanner(); });
  guarded(div.querySelector(".banner-clear"), "Báo an toàn: dừng còi và đọc thông báo kết thúc?", "Có, báo an toàn", async () => { await clearAlert(id); div.remove(); syncBanner(); });
  if (!bannerWatch.has(id) && window.EventSource) {  // the SSE feed: ends show at once
    const es = new EventSource(`/api/alerts/${id}/events`);
    es.addEventListener("alert", (e) => { if (JSON.parse(e.data).status !== "active") { div.remove(); syncBanner(); } });
    es.addEventListener("end", () => { es.close(); bannerWatch.delete(id); });
    es.onerror = () => { es.close(); bannerWatch.delete(id); };
    bannerWatch.set(id, es);
  }
}
function syncBanner() { banner.hidden = !banner.querySelector(".banner-item"); }
async function refreshBanner() {
  if (!commune()) return;
  const list = (await api("GET", `/api/communes/${commune()}/alerts`)).alerts.filter((a) => a.status === "active");
  const shown = new Set([...banner.querySelectorAll(".banner-item")].map((d) => d.dataset.alert));
  for (const a of list) if (!shown.has(a.id)) { const div = bannerItem(a); banner.appendChild(div); wireBanner(div); }
  const live = new Set(list.map((a) => a.id));
  banner.querySelectorAll(".banner-item").forEach((d) => { if (!live.has(d.dataset.alert)) d.remove(); });
  syncBanner();
  document.dispatchEvent(new CustomEvent("loa:alerts", { detail: list }));
}
if (banner) {
  banner.querySelectorAll(".banner-item").forEach(wireBanner);
  setInterval(() => refreshBanner().catch(() => {}), 3000);
}
