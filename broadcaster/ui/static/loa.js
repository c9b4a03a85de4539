// Loa UI: plain JavaScript over the JSON API (session cookie + CSRF header).
// Every user-facing text goes through the T function (the catalogue; a test checks).
"use strict";
const STRINGS = (() => {
  const node = document.getElementById("loa-strings");
  try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
})();
const T = (s) => STRINGS[s] || s;
// After logging in: only a path on this site (never javascript: or another host).
function safeNext(value) {
  if (!value || !value.startsWith("/") || value.startsWith("//") || /[\\\s\u0000-\u001f]/.test(value)) return "/";
  try { const u = new URL(value, location.origin); return u.origin === location.origin ? u.pathname + u.search + u.hash : "/"; }
  catch (e) { return "/"; }
}
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
const commune = () => document.body.dataset.commune;
const LOCALE = document.body.dataset.lang === "en" ? "en-GB" : "vi-VN";
const can = (perm) => (document.body.dataset.perms || "").split(" ").includes(perm);
// Replace a part only when it changed: a preview playing or a focused button survives a refresh.
const setHtml = (el, html) => { if (el.dataset.html !== html) { el.innerHTML = html; el.dataset.html = html; } };
const view = (sel) => ({ set html(v) { setHtml($(sel), v); } });
const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => String(values[k] ?? ""));

// --- numbers, times and dates as people write them (decimal comma in Vietnamese) --------
const num = (x, digits = 1) => new Intl.NumberFormat(LOCALE, { maximumFractionDigits: digits }).format(x);
// Times are the commune's (its time zone), whatever the browser's clock is set to.
const ZONED = new Intl.DateTimeFormat("en-GB", { timeZone: document.body.dataset.tz || undefined, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
const zoned = (d) => Object.fromEntries(ZONED.formatToParts(d).map((x) => [x.type, x.value]));
const hhmm = (d) => { const p = zoned(d); return `${p.hour}:${p.minute}`; };
const hhmmss = (d) => { const p = zoned(d); return `${p.hour}:${p.minute}:${p.second}`; };
const ddmmyyyy = (d) => { const p = zoned(d); return `${p.day}/${p.month}/${p.year}`; };
const dayKey = (d) => { const p = zoned(d); return `${p.year}-${p.month}-${p.day}`; };
const fromUs = (us) => new Date(us / 1000);
const seconds = (ms) => fill(T("{n} giây"), { n: num(ms / 1000, 1) });
const percent = (f) => num(f * 100, 1) + " %";
function ago(us) {
  if (!us) return T("chưa bao giờ");
  const s = Math.max(0, (Date.now() - us / 1000) / 1000);
  if (s < 60) return T("vừa xong");
  if (s < 3600) return fill(T("{n} phút trước"), { n: Math.floor(s / 60) });
  if (s < 86400) return fill(T("{n} giờ trước"), { n: Math.floor(s / 3600) });
  return hhmm(fromUs(us)) + " " + ddmmyyyy(fromUs(us));
}

// --- talking to the server: three kinds of failure, told apart --------------------------
function failure(kind, status, data) {
  const err = new Error((data && data.error) || kind); // the API's sentence, for the log
  err.kind = kind; // network | auth | permission | fields | refused | server
  err.status = status;
  err.data = data || {};
  return err;
}
function classify(status, data) {
  if (status === 401) return failure("auth", status, data);
  if (status === 403) return failure("permission", status, data);
  if (data && data.errors && data.errors.length) return failure("fields", status, data);
  if (status >= 500) return failure("server", status, data);
  return failure("refused", status, data);
}
async function api(method, url, body, raw, timeoutMs = 10000) {
  const opts = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
  if (raw) { opts.body = raw; opts.headers["Content-Type"] = raw.type || "application/octet-stream"; } else if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const ctl = new AbortController();
  const timer = timeoutMs ? setTimeout(() => ctl.abort(), timeoutMs) : null;
  opts.signal = ctl.signal;
  let resp;
  try { resp = await fetch(url, opts); } catch (e) { throw failure("network", 0); } finally { if (timer) clearTimeout(timer); }
  let data = {};
  try { if (resp.headers.get("content-type")?.includes("json")) data = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) throw classify(resp.status, data);
  return data;
}

// The API's error codes are stable; its sentences are English for developers. The page
// says what happened in the reader's language.
const FIELD_CODES = {
  missing: T("Bắt buộc"), required: T("Bắt buộc"),
  string_too_long: T("Quá dài"), too_long: T("Quá dài"), too_short: T("Quá ngắn"), string_too_short: T("Quá ngắn"),
  too_large: T("Quá lớn"), unknown: T("Không tồn tại"), not_found: T("Không tồn tại"),
  not_audio: T("Không phải tệp âm thanh"), no_audio: T("Tệp không có âm thanh"), damaged: T("Tệp bị hỏng"),
  silent: T("Tệp chỉ có im lặng"), empty: T("Tệp không có âm thanh"), date: T("Ngày hoặc giờ không hợp lệ"),
  range: T("Ngày hoặc giờ không hợp lệ"), scope: T("Ngoài khu vực của bạn"), forbidden: T("Ngoài khu vực của bạn"),
};
const ERROR_CODES = {
  invalid_input: T("Yêu cầu không hợp lệ – chưa có gì thay đổi."),
  not_found: T("Không tìm thấy – có thể đã bị xóa."),
  conflict: T("Không làm được ở trạng thái hiện tại – hãy tải lại trang."),
  too_large: T("Tệp hoặc nội dung quá lớn."),
  unsupported_media: T("Định dạng không được hỗ trợ."),
  audio_rejected: T("Tệp âm thanh này không dùng được."),
  tool_missing: T("Máy chủ thiếu công cụ xử lý âm thanh – báo kỹ thuật viên."),
  broker_unavailable: T("Máy chủ chưa liên lạc được với loa – hãy thử lại sau ít phút."),
  disk_full: T("Ổ đĩa của máy chủ đã đầy – chưa lưu được gì. Báo kỹ thuật viên."),
  rate_limited: T("Thao tác quá nhanh – hãy đợi một chút rồi thử lại."),
  internal: T("Máy chủ gặp lỗi – hãy thử lại hoặc báo kỹ thuật viên."),
};
const NETWORK = T("Không kết nối được máy chủ – chưa có gì thay đổi. Hãy thử lại khi có mạng.");
function labelOf(form, name) {
  const input = form.querySelector(`[name="${name}"]`);
  if (input && input.labels && input.labels.length) return input.labels[0].textContent.trim();
  if (name === "targets" || name === "hamlet") return T("Nơi phát");
  return "";
}
function messageFor(err) {
  if (err.kind === "network") return NETWORK;
  if (err.kind === "auth") return T("Phiên đăng nhập đã hết – hãy đăng nhập lại.");
  if (err.kind === "permission") return err.data.code === "forbidden" && /area|commune|hamlet/.test(err.data.error || "")
    ? T("Ngoài khu vực của bạn – tài khoản không được làm việc này ở đây.")
    : T("Tài khoản của bạn không có quyền làm việc này.");
  if (err.kind === "fields") return T("Hãy sửa các ô được đánh dấu.");
  return ERROR_CODES[err.data.code] || T("Không thực hiện được – chưa có gì thay đổi.");
}
function showError(el, err) {
  const form = el.closest("form") || document;
  form.querySelectorAll(".field-error").forEach((x) => x.remove());
  el.className = "error";
  el.hidden = false;
  el.textContent = messageFor(err);
  for (const f of err.kind === "fields" ? err.data.errors : []) {
    const name = String(f.field).split(".")[0] === "body" ? String(f.field).split(".")[1] : String(f.field).split(".")[0];
    const input = form.querySelector(`[name="${name}"]`);
    const note = document.createElement("span");
    note.className = "field-error";
    note.setAttribute("role", "alert");
    note.textContent = FIELD_CODES[f.code] || T("Giá trị không hợp lệ");
    if (input && input.type !== "checkbox" && input.type !== "hidden") input.insertAdjacentElement("afterend", note);
    else el.appendChild(document.createTextNode(" · " + (labelOf(form, name) || T("Dữ liệu")) + ": " + note.textContent));
  }
}
function showOk(el, text) {
  const form = el.closest("form");
  if (form) form.querySelectorAll(".field-error").forEach((x) => x.remove());
  el.className = "ok";
  el.hidden = false;
  el.textContent = text;
}
function busy(button, on, text) {
  if (on) { button.dataset.label = button.textContent; button.textContent = text; button.disabled = true; button.setAttribute("aria-busy", "true"); }
  else { button.textContent = button.dataset.label || button.textContent; button.disabled = false; button.removeAttribute("aria-busy"); }
}

// --- state from the server, or plainly stale -----------------------------------------------
// Each live part of a page is fed by a poll; when one fails (network, server error) the page
// says so at once, greys what is stale (.live), retries with back-off and recovers by itself.
const feedState = { okAt: null };
function markFresh() {
  feedState.okAt = new Date();
  document.body.classList.remove("stale");
  $("#stale-banner").hidden = true;
  document.querySelectorAll("#as-of").forEach((e) => { e.textContent = hhmmss(feedState.okAt); });
}
function markStale() {
  document.body.classList.add("stale");
  const banner = $("#stale-banner");
  banner.textContent = fill(T("Mất kết nối máy chủ – số liệu lúc {time}. Đang thử kết nối lại…"), { time: feedState.okAt ? hhmm(feedState.okAt) : "—" });
  banner.hidden = false;
}
function feed(fn, everyMs) {
  let fails = 0;
  const run = async () => {
    let wait = everyMs;
    try {
      await fn();
      fails = 0;
      markFresh();
    } catch (err) {
      if (err.kind === "auth") { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
      if (err.kind === "network" || err.kind === "server") {
        fails += 1;
        markStale();
        wait = Math.min(everyMs * 2 ** (fails - 1), 8000); // back-off, capped
      }
    }
    setTimeout(run, wait);
  };
  run();
}
const LINK_TEXT = { up: T("Máy chủ và loa: đang kết nối"), down: T("Máy chủ và loa: mất kết nối với loa"), lost: T("Máy chủ: mất kết nối") };
if ($("#logout")) {
  feed(async () => {
    let h;
    try { h = await api("GET", "/api/health", undefined, undefined, 4000); } catch (err) {
      if ($("#link-text")) { $("#link-text").textContent = LINK_TEXT.lost; $("#link-state .state-dot").className = "state-dot state-unknown"; }
      throw err;
    }
    if ($("#link-text")) {
      $("#link-text").textContent = h.mqtt ? LINK_TEXT.up : LINK_TEXT.down;
      $("#link-state .state-dot").className = "state-dot " + (h.mqtt ? "state-online" : "state-fault");
    }
  }, 2000);
}

// --- the menu collapses on a phone ---------------------------------------------------------
if ($("#menu-toggle")) $("#menu-toggle").addEventListener("click", () => {
  const open = $("#menu").classList.toggle("open");
  $("#menu-toggle").setAttribute("aria-expanded", String(open));
});

const logout = $("#logout");
if (logout) logout.addEventListener("click", async () => { await api("POST", "/api/logout").catch(() => {}); location.href = "/login"; });

// --- login -----------------------------------------------------------------
const loginForm = $("#login-form");
if (loginForm) loginForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const button = loginForm.querySelector("button[type=submit]");
  busy(button, true, T("Đang đăng nhập…"));
  try {
    await api("POST", "/api/login", { username: $("#username").value, password: $("#password").value });
    showOk($("#login-error"), T("Đã đăng nhập"));
    location.href = safeNext(loginForm.dataset.next);
  } catch (err) {
    if (err.kind === "auth" || err.status === 400) { const el = $("#login-error"); el.className = "error"; el.textContent = T("Sai tên đăng nhập hoặc mật khẩu."); }
    else showError($("#login-error"), err);
  } finally { busy(button, false); }
});

// --- one targets picker: "Cả xã" and hamlets exclusive, map and boxes agree ----------------
function pickedTargets(form) {
  const box = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((x) => x.value);
  const hamlets = box("hamlet"), zones = box("zone");
  if (hamlets.includes("")) return [{ commune: commune() }];
  const out = [...hamlets.map((h) => ({ commune: commune(), hamlet: h })), ...zones.map((z) => ({ commune: commune(), zone: z }))];
  return out.length ? out : null;
}
function pickedSummary(form) {
  const picked = [...form.querySelectorAll('input[name="hamlet"]:checked, input[name="zone"]:checked')];
  if (!picked.length) return null;
  const whole = picked.some((x) => x.name === "hamlet" && x.value === "");
  const circles = [...form.querySelectorAll(".pick-map circle")];
  const hamlets = new Set(picked.filter((x) => x.name === "hamlet").map((x) => x.value));
  const zones = picked.filter((x) => x.name === "zone").map((x) => x.value);
  const devices = circles.filter((c) => whole || hamlets.has(c.dataset.hamlet) || zones.some((z) => (c.dataset.zones || "").split(" ").includes(z)));
  const names = whole ? [fill(T("Cả xã {name}"), { name: picked.find((x) => x.value === "").dataset.name })] : picked.map((x) => x.dataset.name);
  return { names: names.join(", "), speakers: new Set(devices.map((c) => c.dataset.device)).size };
}
const speakersText = (n) => (n === 1 ? T("1 loa") : fill(T("{n} loa"), { n }));
function refuseNoTargets(el) {
  el.className = "error";
  el.dataset.refusal = "targets";
  el.textContent = T("Chưa chọn nơi phát – hãy chọn cả xã, một hay nhiều ấp, hoặc khu vực.");
}
document.querySelectorAll(".targets").forEach((box) => {
  const form = box.closest("form");
  const map = box.querySelector(".pick-map");
  const whole = box.querySelector('input[name="hamlet"][value=""]');
  const parts = () => [...box.querySelectorAll('input[name="hamlet"]:not([value=""]), input[name="zone"]')];
  const sync = () => {
    const s = pickedSummary(form);
    const on = new Set([...box.querySelectorAll('input[name="hamlet"]:checked')].map((x) => x.value));
    const zones = [...box.querySelectorAll('input[name="zone"]:checked')].map((x) => x.value);
    map.querySelectorAll("circle").forEach((c) => {
      const chosen = on.has("") || on.has(c.dataset.hamlet) || zones.some((z) => (c.dataset.zones || "").split(" ").includes(z));
      c.setAttribute("class", "speaker " + (chosen ? "picked" : "unpicked"));
      c.setAttribute("aria-pressed", String(chosen));
    });
    if (s) form.querySelectorAll('[data-refusal="targets"]').forEach((e) => { e.textContent = ""; delete e.dataset.refusal; });
    box.querySelector(".targets-summary").textContent = s
      ? fill(T("Nơi phát: {where} – {speakers}"), { where: s.names, speakers: speakersText(s.speakers) })
      : T("Chưa chọn nơi phát");
  };
  box.addEventListener("change", (e) => {
    if (e.target === whole && whole.checked) parts().forEach((x) => { x.checked = false; });
    else if (e.target.checked && whole) whole.checked = false;
    sync();
  });
  const toggle = (c) => {
    const hamlet = box.querySelector(`input[name="hamlet"][value="${c.dataset.hamlet}"]`);
    if (!hamlet) return;
    if (whole && whole.checked) { whole.checked = false; parts().forEach((x) => { x.checked = false; }); }
    hamlet.checked = !hamlet.checked;
    hamlet.dispatchEvent(new Event("change", { bubbles: true }));
  };
  map.querySelectorAll("circle").forEach((c) => {
    c.addEventListener("click", () => toggle(c));
    c.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(c); } });
  });
  form.addEventListener("reset", () => setTimeout(sync));
  sync();
});

// --- on air: what plays now, with a stop button for those allowed ------------------------
const STATUS_WORDS = {
  streaming: T("Đang phát"), finishing: T("Sắp xong"), done: T("Đã phát xong"), stopped: T("Đã dừng"),
  interrupted: T("Bị gián đoạn"), failed: T("Không phát được"), preempted: T("Bị ngắt bởi tin khẩn"), queued: T("Đang chờ"),
};
async function stopBroadcast(id, resultEl) {
  if (!confirm(T("Dừng phát bản tin này trên mọi loa đang phát?"))) return;
  try {
    await api("POST", `/api/broadcasts/${id}/stop`);
    showOk(resultEl, T("Đã dừng phát."));
  } catch (err) { showError(resultEl, err); }
}

// --- dashboard: speakers coloured by state, what is on air, all from the server ------------
const STATE_WORDS = { offline: T("Mất kết nối"), fault: T("Lỗi"), playing: T("Đang phát"), idle: T("Sẵn sàng") };
async function refreshDashboard() {
  const c = commune();
  const [devs, bcs, alarms] = await Promise.all([
    api("GET", `/api/communes/${c}/devices`, undefined, undefined, 4000),
    api("GET", `/api/communes/${c}/broadcasts`, undefined, undefined, 4000),
    api("GET", `/api/communes/${c}/alarms`, undefined, undefined, 4000),
  ]);
  const playing = new Set();
  const live = bcs.broadcasts.filter((b) => b.status === "streaming" || b.status === "finishing");
  const details = await Promise.all(live.map((b) => api("GET", `/api/broadcasts/${b.id}`, undefined, undefined, 4000)));
  details.forEach((d) => d.broadcast.deliveries.filter((x) => x.targeted).forEach((x) => playing.add(x.device_id)));
  const faulty = new Set(alarms.alarms.filter((a) => a.kind !== "offline" && !a.cleared_us).map((a) => a.device_id));
  for (const d of devs.devices) {
    const el = document.getElementById("sp-" + d.id);
    if (!el) continue;
    const state = !d.online ? "offline" : faulty.has(d.id) ? "fault" : playing.has(d.id) ? "playing" : "idle";
    el.setAttribute("class", "speaker " + state);
    el.dataset.state = state;
    el.querySelector("title").textContent = (d.name || d.id) + " — " + STATE_WORDS[state];
  }
  const up = {};
  devs.devices.forEach((d) => { up[d.hamlet] = (up[d.hamlet] || 0) + (d.online ? 1 : 0); });
  document.querySelectorAll("#hamlets tr[data-hamlet]").forEach((row) => {
    row.querySelector(".online").textContent = up[row.dataset.hamlet] || 0;
  });
  view("#on-air").html = live.length
    ? details.map(({ broadcast: b }) => {
      const n = b.deliveries.filter((x) => x.targeted).length;
      return `<li class="on-air-item" data-broadcast="${b.id}"><span><b>${esc(b.title)}</b> – ${esc(STATUS_WORDS[b.status] || b.status)}, ${esc(speakersText(n))}</span>` +
        (can("broadcast") ? ` <button type="button" class="stop" data-stop="${b.id}">${esc(T("Dừng phát"))}</button>` : "") + "</li>";
    }).join("")
    : `<li class="empty">${esc(T("Không có gì đang phát"))}</li>`;
}
if ($("#map")) {
  feed(refreshDashboard, 2000);
  $("#on-air").addEventListener("click", (e) => { if (e.target.dataset && e.target.dataset.stop) stopBroadcast(e.target.dataset.stop, $("#on-air-result")); });
}

// --- library: upload, record, text-to-speech, and play any item now ----------------------
let mediaById = {};
async function loadMedia(select) {
  const data = await api("GET", `/api/communes/${commune()}/media`, undefined, undefined, 4000);
  mediaById = Object.fromEntries(data.media.map((m) => [m.id, m]));
  if (select) {
    const keep = select.value;
    select.innerHTML = `<option value="">${esc(T("– Chọn bản tin –"))}</option>` + data.media.map((m) => `<option value="${m.id}">${esc(m.title)}</option>`).join("");
    if (keep) select.value = keep;
    return;
  }
  view("#media-list").html = data.media.length ? data.media.map((m) =>
    `<tr data-media="${m.id}"><td><b>${esc(m.title)}</b></td><td data-label="${esc(T("Thời lượng"))}">${esc(seconds(m.duration_ms))}</td>` +
    `<td data-label="${esc(T("Độ to (LUFS)"))}">${m.loudness && m.loudness.lufs != null ? esc(num(m.loudness.lufs, 1)) : "—"}</td>` +
    `<td><audio controls preload="none" src="/api/media/${m.id}/audio?codec=mp3"></audio></td>` +
    `<td>${can("broadcast") ? `<button type="button" data-play="${m.id}">${esc(T("Phát ngay"))}</button>` : ""}</td></tr>`).join("")
    : `<tr><td colspan="5" class="empty">${esc(T("Thư viện còn trống – hãy tải lên, ghi âm hoặc gõ một bản tin."))}</td></tr>`;
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
      let data = {};
      try { data = JSON.parse(xhr.responseText || "{}"); } catch (e) { /* not JSON */ }
      if (xhr.status < 300) resolve(data); else reject(classify(xhr.status, data));
    };
    xhr.onerror = () => reject(failure("network", 0));
    xhr.send(form);
  });
}
// Phát ngay: the item, the targets, a confirm line (what, where, how many speakers), then a stop button.
let playing = null;
function openPlay(media) {
  $("#play-panel").hidden = false;
  $("#play-media").value = media.id;
  $("#play-what").textContent = media.title;
  $("#play-form").hidden = false;
  $("#play-error").textContent = "";
  updatePlayConfirm();
  $("#play-panel").scrollIntoView({ block: "start" });
}
function updatePlayConfirm() {
  const s = pickedSummary($("#play-form"));
  const title = $("#play-what").textContent;
  $("#play-confirm").textContent = s
    ? fill(T("Sẽ phát «{what}» tới {where} – {speakers}."), { what: title, where: s.names, speakers: speakersText(s.speakers) })
    : T("Chưa chọn nơi phát");
}
async function watchPlay(id) {
  const b = (await api("GET", `/api/broadcasts/${id}`, undefined, undefined, 4000)).broadcast;
  const played = b.deliveries.filter((d) => d.targeted && ["played", "partial"].includes(d.outcome)).length;
  const targeted = b.deliveries.filter((d) => d.targeted).length;
  const on = b.status === "streaming" || b.status === "finishing";
  $("#play-state").textContent = on
    ? fill(T("Đang phát «{what}» – {speakers}"), { what: b.title, speakers: speakersText(targeted) })
    : fill(T("«{what}»: {status} – {played}/{total} loa đã phát"), { what: b.title, status: STATUS_WORDS[b.status] || b.status, played, total: targeted });
  $("#play-state").className = on ? "on-air" : "ok";
  $("#play-stop").hidden = !on;
  $("#play-status").dataset.status = b.status;
  return on;
}
if ($("#media-list")) {
  feed(() => loadMedia(), 5000);
  $("#media-list").addEventListener("click", (e) => {
    const id = e.target.dataset && e.target.dataset.play;
    if (id && mediaById[id]) openPlay(mediaById[id]);
  });
  $("#play-form").addEventListener("change", updatePlayConfirm);
  $("#play-close").addEventListener("click", () => { $("#play-panel").hidden = true; });
  $("#play-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const targets = pickedTargets($("#play-form"));
    if (!targets) { refuseNoTargets($("#play-error")); return; }
    const button = $("#play-go");
    busy(button, true, T("Đang bắt đầu phát…"));
    try {
      const b = (await api("POST", "/api/broadcasts", { media_id: $("#play-media").value, targets, priority: $("#play-priority").value })).broadcast;
      playing = b.id;
      $("#play-form").hidden = true;
      $("#play-status").hidden = false;
      $("#play-status").dataset.broadcast = b.id;
      const tick = async () => {
        let on = true;
        try { on = await watchPlay(b.id); markFresh(); } catch (err) { if (err.kind === "network") markStale(); }
        if (on && playing === b.id) setTimeout(tick, 1000);
      };
      tick();
    } catch (err) { showError($("#play-error"), err); } finally { busy(button, false); }
  });
  $("#play-stop").addEventListener("click", () => stopBroadcast(playing, $("#play-state")));
}
if ($("#upload-form")) {
  $("#upload-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = $("#upload-form button[type=submit]");
    const el = $("#upload-error");
    el.className = "status"; el.textContent = T("Đang tải lên…");
    busy(button, true, T("Đang tải lên…"));
    try {
      const data = await upload($("#upload-file").files[0], $("#upload-title").value);
      const m = data.media || {};
      showOk(el, fill(T("Đã tải lên «{title}» ({length}) – đã có trong thư viện."), { title: m.title || $("#upload-title").value, length: seconds(m.duration_ms || 0) }));
      await loadMedia();
    } catch (err) { showError(el, err); } finally { busy(button, false); }
  });
  const makeText = async (andPlay) => {
    const el = $("#tts-error");
    const button = andPlay ? $("#tts-play") : $("#tts-save");
    const both = [$("#tts-save"), $("#tts-play")].filter(Boolean);
    if (!$("#tts-text").value.trim()) { showError(el, failure("fields", 400, { errors: [{ field: "text", code: "missing" }] })); return; }
    busy(button, true, T("Đang đọc thành tiếng…"));
    both.forEach((b) => { b.disabled = true; });
    try {
      const data = await api("POST", `/api/communes/${commune()}/media/text`, { text: $("#tts-text").value, title: $("#tts-title").value || $("#tts-text").value.slice(0, 60) }, undefined, 120000);
      const m = data.media;
      showOk(el, fill(T("Đã tạo bản tin «{title}» ({length})."), { title: m.title, length: seconds(m.duration_ms) }));
      await loadMedia();
      if (andPlay) openPlay(m);
    } catch (err) { showError(el, err); } finally { busy(button, false); both.forEach((b) => { b.disabled = false; }); }
  };
  $("#tts-form").addEventListener("submit", (e) => { e.preventDefault(); makeText(false); });
  if ($("#tts-play")) $("#tts-play").addEventListener("click", () => makeText(true));
  let recorder = null;
  $("#record-start").addEventListener("click", async () => {
    let stream;
    try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); } catch (e) {
      $("#upload-error").className = "error"; $("#upload-error").textContent = T("Không mở được micrô – hãy cho phép trình duyệt dùng micrô."); return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = async () => {
      stream.getTracks().forEach((t) => t.stop());
      try { await upload(new File(chunks, "ghi-am.webm", { type: "audio/webm" }), ""); showOk($("#upload-error"), T("Đã lưu bản ghi âm vào thư viện.")); loadMedia(); }
      catch (err) { showError($("#upload-error"), err); }
    };
    recorder.start();
    $("#record-start").disabled = true; $("#record-stop").disabled = false;
  });
  $("#record-stop").addEventListener("click", () => { recorder && recorder.stop(); $("#record-start").disabled = false; $("#record-stop").disabled = true; });
}

// --- schedule: a week calendar with status, targets and time; approve/return; conflicts --------
const PROG_STATUS = { draft: T("Nháp"), submitted: T("Chờ duyệt"), approved: T("Đã duyệt"), returned: T("Bị trả lại") };
function hamletNames() {
  const names = JSON.parse(($("#calendar") && $("#calendar").dataset.names) || "{}");
  document.querySelectorAll('.targets input[name="hamlet"], .targets input[name="zone"]').forEach((x) => { names[x.value] = x.dataset.name; });
  return names;
}
function whereText(targets) {
  const names = hamletNames();
  return (targets || []).map((t) => (t.hamlet ? names[t.hamlet] || t.hamlet : t.zone ? names[t.zone] || t.zone : t.device ? t.device : T("Cả xã"))).join(", ");
}
async function loadCalendar() {
  const now = Date.now();
  const days = [];
  for (let i = 0; i < 7; i++) days.push(new Date(now + i * 86400000));
  const [data, progs] = await Promise.all([
    api("GET", `/api/communes/${commune()}/occurrences?from=${dayKey(days[0])}&to=${dayKey(new Date(now + 7 * 86400000))}`, undefined, undefined, 4000),
    api("GET", `/api/communes/${commune()}/programmes`, undefined, undefined, 4000),
  ]);
  const byId = Object.fromEntries(progs.programmes.map((p) => [p.id, p]));
  view("#calendar").html = days.map((d) => {
    const items = data.occurrences.filter((o) => dayKey(fromUs(o.fire_us)) === dayKey(d));
    return `<div class="day"><h3>${esc(d.toLocaleDateString(LOCALE, { weekday: "short", timeZone: document.body.dataset.tz || undefined }))} ${esc(ddmmyyyy(d).slice(0, 5))}</h3>` +
      items.map((o) => {
        const p = byId[o.programme_id] || { status: "approved", targets: [] };
        return `<div class="occ status-${p.status}" data-programme="${o.programme_id}" data-status="${p.status}"><span class="when">${esc(hhmm(fromUs(o.fire_us)))}</span> ${esc(o.title || p.title)} ` +
          `<span class="status status-${p.status}">${esc(PROG_STATUS[p.status] || p.status)}</span><span class="where">${esc(whereText(p.targets))}</span></div>`;
      }).join("") + (items.length ? "" : `<p class="empty">${esc(T("Trống"))}</p>`) + "</div>";
  }).join("");
  const pending = progs.programmes.filter((p) => p.status === "submitted");
  view("#pending").html = pending.length ? pending.map((p) =>
    `<li class="on-air-item" data-programme="${p.id}"><span><b>${esc(p.title)}</b> – ${esc(whereText(p.targets))}</span>` +
    (can("approve") ? ` <button type="button" data-approve="${p.id}">${esc(T("Duyệt"))}</button> <button type="button" class="secondary" data-return="${p.id}">${esc(T("Trả lại"))}</button>` : "") + "</li>").join("")
    : `<li class="empty">${esc(T("Không có chương trình nào chờ duyệt"))}</li>`;
}
async function decide(id, action) {
  const title = document.querySelector(`#pending li[data-programme="${id}"] b`).textContent;
  const el = $("#pending-result");
  if (action === "approve") {
    if (!confirm(fill(T("Duyệt «{title}»? Chương trình sẽ được phát theo lịch."), { title }))) return;
    try { await api("POST", `/api/programmes/${id}/approve`); showOk(el, fill(T("Đã duyệt «{title}» – sẽ phát theo lịch."), { title })); } catch (err) { showError(el, err); }
  } else {
    const reason = prompt(fill(T("Trả lại «{title}» cho người soạn. Lý do:"), { title }));
    if (reason === null) return;
    try { await api("POST", `/api/programmes/${id}/return`, { reason }); showOk(el, fill(T("Đã trả lại «{title}»."), { title })); } catch (err) { showError(el, err); }
  }
  loadCalendar().catch(() => {});
}
function programmeBody(form) {
  const when = { kind: $("#p-kind").value, at: $("#p-at").value };
  if (when.kind === "once") when.start = $("#p-start").value;
  if (when.kind === "weekly") when.weekdays = [new Date($("#p-start").value).getDay() || 7];
  return { title: $("#p-title").value, what: { kind: "media", media_id: $("#p-media").value }, targets: pickedTargets(form), when };
}
function conflictLines(conflicts) {
  const seen = new Map(); // one line per clashing programme: its first clash
  conflicts.forEach((c) => { if (!seen.has(c.programme_id)) seen.set(c.programme_id, c); });
  return [...seen.values()].map((c) => `<li>${esc(fill(T("Trùng giờ với «{title}» lúc {time} ({speakers})"), { title: c.title, time: hhmm(fromUs(c.at_us)), speakers: speakersText(c.speakers) }))}</li>`).join("");
}
let conflictCheck = 0; // only the answer to the latest question is shown
async function checkConflicts() {
  const form = $("#programme-form");
  const body = programmeBody(form);
  const mine = ++conflictCheck;
  if (!$("#p-media").value || !body.targets || !$("#p-at").value) { $("#conflicts").innerHTML = ""; return; }
  try {
    const data = await api("POST", `/api/communes/${commune()}/programmes/check`, { ...body, title: body.title || "?" });
    if (mine !== conflictCheck) return;
    $("#conflicts").innerHTML = data.conflicts.length ? conflictLines(data.conflicts) : `<li class="ok">${esc(T("Không trùng lịch"))}</li>`;
  } catch (err) { $("#conflicts").innerHTML = ""; /* the save shows refusals */ }
}
if ($("#calendar")) {
  feed(loadCalendar, 5000);
  $("#pending").addEventListener("click", (e) => {
    const d = e.target.dataset || {};
    if (d.approve) decide(d.approve, "approve");
    if (d.return) decide(d.return, "return");
  });
}
if ($("#programme-form")) {
  loadMedia($("#p-media"));
  $("#programme-form").addEventListener("change", checkConflicts);
  $("#p-start").value = dayKey(new Date());
  $("#programme-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    const body = programmeBody(form);
    if (!body.targets) { refuseNoTargets($("#programme-error")); return; }
    const button = form.querySelector("button[type=submit]");
    busy(button, true, T("Đang lưu…"));
    try {
      const data = await api("POST", `/api/communes/${commune()}/programmes`, body);
      $("#conflicts").innerHTML = conflictLines(data.conflicts);
      await api("POST", `/api/programmes/${data.programme.id}/submit`);
      showOk($("#programme-error"), fill(T("Đã lưu «{title}» cho {where} và gửi duyệt."), { title: data.programme.title, where: whereText(data.programme.targets) }));
      loadCalendar().catch(() => {});
    } catch (err) { showError($("#programme-error"), err); } finally { busy(button, false); }
  });
}

// --- live: push-to-talk from the microphone (a toggle) -----------------------------------
if ($("#ptt")) {
  let ws = null, rec = null, stream = null;
  $("#ptt").addEventListener("click", async () => {
    if (rec) { rec.stop(); ws.send(JSON.stringify({ type: "stop" })); stream.getTracks().forEach((t) => t.stop()); rec = null; $("#on-air-indicator").className = "off-air"; $("#on-air-indicator").textContent = T("Đã dừng"); return; }
    const targets = pickedTargets($("#live-form"));
    if (!targets) { refuseNoTargets($("#live-error")); return; }
    $("#live-error").textContent = "";
    try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); } catch (e) {
      $("#live-error").className = "error"; $("#live-error").textContent = T("Không mở được micrô – hãy cho phép trình duyệt dùng micrô."); return;
    }
    const ctx = new AudioContext(); const an = ctx.createAnalyser(); ctx.createMediaStreamSource(stream).connect(an);
    const buf = new Float32Array(an.fftSize);
    setInterval(() => { an.getFloatTimeDomainData(buf); $("#level").value = Math.min(1, Math.sqrt(buf.reduce((s, v) => s + v * v, 0) / buf.length) * 4); }, 100);
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + `/api/communes/${commune()}/live`);
    ws.onerror = () => { $("#live-error").className = "error"; $("#live-error").textContent = NETWORK; };
    ws.onopen = () => {
      ws.send(JSON.stringify({ targets, title: T("Phát trực tiếp") }));
      rec = new MediaRecorder(stream, { mimeType: "audio/webm;codecs=opus" });
      rec.ondataavailable = (e) => e.data.size && ws.send(e.data);
      rec.start(100);  // 100 ms pieces: the wait for a piece is part of the live delay
      const s = pickedSummary($("#live-form"));
      $("#on-air-indicator").className = "on-air";
      $("#on-air-indicator").textContent = fill(T("Đang phát trực tiếp tới {where} – {speakers}"), { where: s.names, speakers: speakersText(s.speakers) });
    };
  });
}

// --- devices: names, hamlets, status colour, last seen, signal; alarms in words ----------------
const ALARM_KINDS = {
  offline: T("Mất kết nối"), amp_fault: T("Hỏng loa hoặc bộ khuếch đại"), temperature: T("Quá nóng"),
  weak_signal: T("Tín hiệu yếu"), missed_programme: T("Bỏ lỡ chương trình theo lịch"), failed_alert: T("Không phát được tin khẩn cấp"),
};
function signalText(t) {
  if (!t || t.rssi_dbm == null) return "—";
  const word = t.rssi_dbm >= -75 ? T("tốt") : t.rssi_dbm >= -90 ? T("trung bình") : T("yếu");
  return `${t.rssi_dbm} dBm (${word})`;
}
async function loadDevices() {
  const [data, alarms, hamlets] = await Promise.all([
    api("GET", `/api/communes/${commune()}/devices`, undefined, undefined, 4000),
    api("GET", `/api/communes/${commune()}/alarms`, undefined, undefined, 4000),
    api("GET", `/api/communes/${commune()}/hamlets`, undefined, undefined, 4000),
  ]);
  const names = Object.fromEntries(hamlets.hamlets.map((h) => [h.id, h.name]));
  const open = alarms.alarms.filter((a) => !a.cleared_us);
  const faulty = new Set(open.filter((a) => a.kind !== "offline").map((a) => a.device_id));
  const f = $("#device-filter").value;
  const rows = data.devices.filter((d) => !f || (f === "online") === d.online);
  view("#device-list").html = rows.length ? rows.map((d) => {
    const state = !d.online ? "offline" : faulty.has(d.id) ? "fault" : "online";
    const word = { offline: T("Ngoại tuyến"), fault: T("Có sự cố"), online: T("Trực tuyến") }[state];
    return `<tr data-device="${d.id}" data-online="${d.online}" data-state="${state}"><td><a href="/devices/${d.id}">${esc(d.name || d.id)}</a></td>` +
      `<td data-label="${esc(T("Ấp / thôn"))}">${esc(names[d.hamlet] || d.hamlet)}</td>` +
      `<td data-label="${esc(T("Trạng thái"))}"><span class="state-dot state-${state}"></span>${esc(word)}</td>` +
      `<td data-label="${esc(T("Liên lạc lần cuối"))}">${esc(ago(d.last_seen_us))}</td>` +
      `<td data-label="${esc(T("Tín hiệu"))}">${esc(signalText(d.telemetry))}</td>` +
      `<td data-label="${esc(T("Phần mềm"))}">${esc(d.firmware || "—")}</td></tr>`;
  }).join("") : `<tr><td colspan="6" class="empty">${esc(T("Không có loa nào ở đây"))}</td></tr>`;
  const byId = Object.fromEntries(data.devices.map((d) => [d.id, d]));
  view("#alarm-list").html = open.length ? open.map((a) =>
    `<li class="on-air-item"><span><span class="state-dot state-${a.kind === "offline" ? "offline" : "fault"}"></span><b>${esc((byId[a.device_id] || {}).name || a.device_id)}</b>: ${esc(ALARM_KINDS[a.kind] || a.kind)} – ${esc(ago(a.raised_us))}</span> ` +
    (a.acked_us ? esc(T("Đã xác nhận")) : can("device") ? `<button type="button" data-ack="${a.id}">${esc(T("Đã biết"))}</button>` : "") + "</li>").join("")
    : `<li class="empty">${esc(T("Không có sự cố"))}</li>`;
}
if ($("#device-list")) {
  feed(loadDevices, 3000);
  $("#device-filter").addEventListener("change", () => loadDevices().catch(() => {}));
  $("#alarm-list").addEventListener("click", async (e) => {
    const id = e.target.dataset && e.target.dataset.ack;
    if (!id) return;
    try { await api("POST", `/api/alarms/${id}/ack`); loadDevices().catch(() => {}); } catch (err) { /* shown stale by the feed */ }
  });
}
if ($("#firmware-form")) $("#firmware-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const devices = [...document.querySelectorAll("#device-list tr[data-online=true]")].map((r) => r.dataset.device);
  if (!confirm(fill(T("Cập nhật phần mềm {version} cho {speakers} đang trực tuyến? Loa sẽ khởi động lại."), { version: $("#fw-version").value, speakers: speakersText(devices.length) }))) return;
  try {
    const file = $("#fw-file").files[0];
    const fw = (await api("POST", `/api/firmware?version=${encodeURIComponent($("#fw-version").value)}`, undefined,
      new Blob([await file.arrayBuffer()], { type: "application/octet-stream" }), 0)).firmware;
    // online speakers only: an offline one would hold the wave until it times out
    const r = (await api("POST", `/api/firmware/${fw.id}/rollouts`, { devices, canary: Number($("#fw-canary").value) })).rollout;
    const words = { running: T("Đang cập nhật"), done: T("Đã cập nhật xong"), halted: T("Đã dừng vì lỗi"), failed: T("Không cập nhật được") };
    const poll = setInterval(async () => {
      const now = (await api("GET", `/api/rollouts/${r.id}`)).rollout;
      $("#rollout-status").textContent = words[now.status] || now.status;
      if (now.status !== "running") clearInterval(poll);
    }, 1000);
  } catch (err) { showError($("#firmware-error"), err); }
});

// --- one speaker: facts, health plot with axes and units, commands sent → acknowledged → result ---
const COMMAND_NAMES = { test_tone: T("Phát âm thử"), reboot: T("Khởi động lại"), set_volume: T("Đặt âm lượng"), resync_clock: T("Đồng bộ đồng hồ"), stop: T("Dừng phát"), update_config: T("Cập nhật cấu hình") };
function plotHealth(series) {
  // drawn at the size it is shown, so its labels keep their 13 px on a phone
  const W = Math.max(300, Math.round($("#health").getBoundingClientRect().width) || 640), H = 300, L = 48, R = 48, TOP = 32, B = 44;
  $("#health").setAttribute("viewBox", `0 0 ${W} ${H}`);
  const ticks = W < 500 ? 2 : 3;
  const temps = series.filter((t) => t.temperature_c != null), sig = series.filter((t) => t.rssi_dbm != null);
  if (series.length < 2) { $("#health").innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">${esc(T("Chưa đủ số liệu để vẽ"))}</text>`; return; }
  const t0 = series[0].at_us, t1 = Math.max(series[series.length - 1].at_us, t0 + 1);
  const x = (us) => L + ((W - L - R) * (us - t0)) / (t1 - t0);
  const tMax = Math.max(60, ...temps.map((p) => p.temperature_c)), yT = (c) => TOP + (H - TOP - B) * (1 - Math.max(0, c) / tMax);
  const yS = (dbm) => TOP + (H - TOP - B) * (Math.min(0, Math.max(-120, dbm)) / -120);
  let g = `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#111"/><line x1="${L}" y1="${TOP}" x2="${L}" y2="${H - B}" stroke="#a30000"/><line x1="${W - R}" y1="${TOP}" x2="${W - R}" y2="${H - B}" stroke="#1456c8"/>`;
  for (let i = 0; i <= 4; i++) {
    const c = (tMax * i) / 4, y = yT(c);
    g += `<text x="${L - 6}" y="${y + 4}" text-anchor="end">${esc(num(c, 0))}</text><line x1="${L}" y1="${y}" x2="${W - R}" y2="${y}" stroke="#ddd"/>`;
    g += `<text x="${W - R + 6}" y="${yS(-30 * i) + 4}">${-30 * i}</text>`;
  }
  for (let i = 0; i <= ticks; i++) {
    const us = t0 + ((t1 - t0) * i) / ticks;
    const label = t1 - t0 < 600e6 ? hhmmss(fromUs(us)) : t1 - t0 < 86400e6 ? hhmm(fromUs(us)) : ddmmyyyy(fromUs(us)).slice(0, 5) + " " + hhmm(fromUs(us));
    g += `<text x="${x(us)}" y="${H - B + 18}" text-anchor="middle">${esc(label)}</text>`;
  }
  g += `<text x="${L - 40}" y="16" fill="#a30000">${esc(T("Nhiệt độ (°C)"))}</text><text x="${W - R + 40}" y="16" text-anchor="end" fill="#1456c8">${esc(T("Tín hiệu (dBm)"))}</text>`;
  g += `<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">${esc(T("Giờ"))}</text>`;
  if (temps.length) g += `<polyline fill="none" stroke="#a30000" stroke-width="2.5" points="${temps.map((p) => `${x(p.at_us)},${yT(p.temperature_c)}`).join(" ")}"/>`;
  if (sig.length) g += `<polyline fill="none" stroke="#1456c8" stroke-width="2.5" stroke-dasharray="6 3" points="${sig.map((p) => `${x(p.at_us)},${yS(p.rssi_dbm)}`).join(" ")}"/>`;
  $("#health").innerHTML = g;
}
function commandSteps(c) {
  const acked = c.status === "ok" || c.status === "failed";
  const result = c.status === "ok" ? `<li class="done">${esc(T("Kết quả: thành công"))}</li>`
    : c.status === "failed" ? `<li class="failed">${esc(fill(T("Kết quả: thất bại ({detail})"), { detail: c.detail }))}</li>`
      : c.status === "timeout" ? `<li class="failed">${esc(T("Loa không trả lời kịp"))}</li>` : `<li class="todo">${esc(T("Kết quả: đang chờ"))}</li>`;
  return `<ol class="steps"><li class="done">${esc(fill(T("Đã gửi lúc {time}"), { time: hhmmss(fromUs(c.sent_us)) }))}</li>` +
    `<li class="${acked ? "done" : "todo"}">${esc(acked ? fill(T("Loa đã nhận lúc {time}"), { time: hhmmss(fromUs(c.acked_us)) }) : T("Chờ loa nhận"))}</li>${result}</ol>`;
}
if ($("#device-name") && $("#device-name").dataset.device) {  // the speaker page (not set-up's field)
  const id = $("#device-name").dataset.device;
  feed(async () => {
    const [d, u] = await Promise.all([api("GET", `/api/devices/${id}`, undefined, undefined, 4000), api("GET", `/api/devices/${id}/uptime`, undefined, undefined, 4000)]);
    const dev = d.device;
    $("#device-name").textContent = dev.name || dev.id;
    const hamlets = await api("GET", `/api/communes/${dev.commune}/hamlets`, undefined, undefined, 4000);
    $("#device-hamlet").textContent = (hamlets.hamlets.find((h) => h.id === dev.hamlet) || {}).name || dev.hamlet;
    $("#device-state").innerHTML = `<span class="state-dot state-${dev.online ? "online" : "offline"}"></span>` + esc(dev.online ? T("Trực tuyến") : T("Ngoại tuyến")) + (dev.firmware ? " · " + esc(dev.firmware) : "");
    $("#device-seen").textContent = ago(dev.last_seen_us);
    $("#device-signal").textContent = signalText(dev.telemetry);
    $("#device-uptime").textContent = u.uptime.uptime == null ? "—" : percent(u.uptime.uptime);
    plotHealth(d.telemetry);
    if ($("#command-list")) {
      const cmds = (await api("GET", `/api/devices/${id}/commands`, undefined, undefined, 4000)).commands.slice(0, 5);
      view("#command-list").html = cmds.length ? cmds.map((c) => `<li data-command-id="${c.id}" data-status="${c.status}"><b>${esc(COMMAND_NAMES[c.action] || c.action)}</b>${commandSteps(c)}</li>`).join("")
        : `<li class="empty">${esc(T("Chưa gửi lệnh nào"))}</li>`;
    }
  }, 2000);
  if ($("#device-delete")) {
    guarded($("#device-delete"), T("Xoá loa này khỏi danh sách? Loa sẽ không kết nối được nữa."), T("Xoá"), async () => {
      await api("DELETE", `/api/devices/${id}`);
      location.href = "/devices";
    });
  }
  document.querySelectorAll("[data-command]").forEach((b) => b.addEventListener("click", async () => {
    const action = b.dataset.command;
    if (action === "reboot" && !confirm(T("Khởi động lại loa này? Loa sẽ ngừng phát khoảng một phút."))) return;
    const args = action === "set_volume" ? { volume: Number($("#volume").value) } : {};
    try {
      await api("POST", `/api/devices/${id}/commands`, { action, args });
      showOk($("#command-status"), fill(T("Đã gửi lệnh «{name}» – xem loa nhận và kết quả bên dưới."), { name: COMMAND_NAMES[action] }));
    } catch (err) { showError($("#command-status"), err); }
  }));
}

// --- reports: the chosen month, in the page's language, printable --------------------------
if ($("#report-form")) {
  const url = (fmt) => `/api/communes/${commune()}/report?month=${$("#r-month").value}&format=${fmt}&lang=${document.body.dataset.lang}`;
  const show = () => {
    if (!$("#r-month").value) return;
    $("#r-csv").href = url("csv");
    $("#r-html").href = url("html");
    $("#report-frame").src = url("html");
  };
  $("#report-form").addEventListener("submit", (e) => { e.preventDefault(); show(); });
  $("#r-month").addEventListener("change", show);
  $("#r-print").addEventListener("click", () => { $("#report-frame").contentWindow.print(); });
  show();
}

// --- the red banner on every page: active alerts, from the server, kept current ------
const ALERT_STATES = { draft: T("Chờ xác nhận"), active: T("Đang phát"), cancelled: T("Đã dừng"), all_clear: T("Đã báo an toàn"), expired: T("Đã hết hạn") };
const stateWord = (s) => ALERT_STATES[s] || s;
// A button that asks once more before it acts, and shows that it is working.
function guarded(button, question, yesLabel, action) {
  button.addEventListener("click", () => {
    const box = button.parentElement;
    if (box.querySelector(".really")) return;
    const really = document.createElement("span");
    really.className = "really";
    really.innerHTML = `<span>${esc(question)}</span> <button type="button" class="danger yes">${esc(yesLabel)}</button> <button type="button" class="no">${esc(T("Không"))}</button>`;
    box.appendChild(really);
    really.querySelector(".no").addEventListener("click", () => really.remove());
    really.querySelector(".yes").addEventListener("click", async (e) => {
      const yes = e.currentTarget;
      yes.disabled = true; button.disabled = true; yes.textContent = T("Đang gửi…");
      try { await action(); really.remove(); } catch (err) { yes.disabled = false; button.disabled = false; yes.textContent = yesLabel; really.querySelector("span").textContent = T("Lỗi: ") + err.message; }
    });
  });
}
const stopAlert = (id) => api("POST", `/api/alerts/${id}/cancel`, {});
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
  guarded(div.querySelector(".banner-stop"), T("Dừng cảnh báo này trên mọi loa?"), T("Có, dừng ngay"), async () => { await stopAlert(id); div.remove(); syncBanner(); });
  guarded(div.querySelector(".banner-clear"), T("Báo an toàn: dừng còi và đọc thông báo kết thúc?"), T("Có, báo an toàn"), async () => { await clearAlert(id); div.remove(); syncBanner(); });
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
