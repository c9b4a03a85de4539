// Loa: the emergency page, for the worst night. Uses api, T, $, esc, commune, showError,
// guarded, stateWord, stopAlert and clearAlert from loa.js.
"use strict";
(() => {
  // risk colours as CSS properties set from script (no inline style: the page's CSP)
  document.querySelectorAll("[data-risk]").forEach((e) => e.style.setProperty("--risk", e.dataset.risk));
  const form = $("#alert-form");
  if (!form) return;
  const FIELDS = JSON.parse(form.dataset.fields);
  const TEMPLATES = JSON.parse(form.dataset.templates);
  const HAMLETS = JSON.parse(form.dataset.hamlets);
  const hamletName = (id) => (HAMLETS.find((h) => h.id === id) || { name: id }).name;
  const SIRENS = { wail: T("Còi hú (lên xuống)"), yelp: T("Còi ngắt quãng nhanh"), steady: T("Còi liên tục") };
  const newKey = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2)).replace(/[^A-Za-z0-9-]/g, "");
  $("#a-key").value = newKey();
  const asked = new URLSearchParams(location.search).get("type");  // from the dashboard
  const askedBox = asked && form.querySelector(`input[name="type"][value="${CSS.escape(asked)}"]`);
  if (askedBox) askedBox.checked = true;

  const type = () => form.querySelector('input[name="type"]:checked').value;
  const level = () => Number(form.querySelector('input[name="risk_level"]:checked').value);
  const boxes = () => [...form.querySelectorAll('input[name="hamlet"]')];
  const whole = () => form.querySelector('input[name="hamlet"][value=""]');
  const chosen = () => boxes().filter((b) => b.checked && b.value).map((b) => b.value);
  const custom = () => $("#a-message").value.trim();

  // "Cả xã" and hamlets exclude each other; nothing chosen is never everything.
  boxes().forEach((b) => b.addEventListener("change", () => {
    if (b.checked && b.value === "") boxes().forEach((x) => { if (x.value) x.checked = false; });
    if (b.checked && b.value && whole()) whole().checked = false;
    $("#target-error").textContent = "";
  }));
  function targets() {
    if (whole() && whole().checked) return [{ commune: commune() }];
    const zones = [...form.querySelectorAll('input[name="zone"]:checked')].map((z) => ({ commune: commune(), zone: z.value }));
    return [...chosen().map((h) => ({ commune: commune(), hamlet: h })), ...zones];
  }
  function placeText() {
    if (whole() && whole().checked) return JSON.parse(($("#alert-banner") || { dataset: {} }).dataset.names || "{}")[""] || "";
    return chosen().map(hamletName).join(", ");
  }

  // The template's fields are the form; the place follows the hamlets until typed over.
  const place = $("#f-place");
  let placeTyped = false;
  if (place) place.addEventListener("input", () => { placeTyped = place.value.trim() !== ""; });
  const time = $("#f-time");
  if (time && !time.value) time.value = new Date().toLocaleTimeString("vi-VN", { hour: "2-digit", minute: "2-digit" });
  function values() {
    const out = {};
    for (const f of FIELDS[type()]) { const el = form.querySelector(`[name="${f}"]`); out[f] = el ? el.value.trim() : ""; }
    return out;
  }
  function showFields() {
    const wanted = new Set(custom() ? [] : FIELDS[type()]);
    form.querySelectorAll("#a-fields [data-field]").forEach((el) => { el.hidden = !wanted.has(el.dataset.field); });
    $("#a-fields").hidden = wanted.size === 0;
  }
  function text() {
    if (custom()) return custom();
    const v = values();
    return TEMPLATES[type()].replace(/\{(\w+)\}/g, (_, k) => (k === "level" ? String(level()) : v[k] || `[${T("chưa nhập")}]`));
  }
  function preview() {
    if (place && !placeTyped) place.value = placeText();
    showFields();
    const repeat = Number($("#a-repeat").value);
    $("#a-siren-preview").textContent = `${SIRENS[$("#a-siren").value]} → ${T("rồi đọc")} ${repeat} ${T("lần")}:`;
    $("#a-preview").textContent = text();
  }
  form.addEventListener("input", preview);
  form.addEventListener("change", preview);
  preview();

  function busy(button, on, label) {
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
    if (on) { button.dataset.label = button.textContent; button.textContent = label || T("Đang gửi…"); } else if (button.dataset.label) button.textContent = button.dataset.label;
  }

  let draft = null;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = $("#alert-create");
    if (button.disabled) return;  // a second tap while the first is on its way
    $("#alert-error").textContent = "";
    if (!targets().length) {
      $("#target-error").textContent = T("Chọn nơi phát: cả xã hoặc ít nhất một ấp.");
      return;
    }
    const body = {
      type: type(), risk_level: level(), targets: targets(), siren: $("#a-siren").value,
      repeat: Number($("#a-repeat").value), reair_every_hours: Number($("#a-reair").value),
      client_key: $("#a-key").value,
    };
    if (custom()) body.message = custom(); else body.fields = values();
    busy(button, true, T("Đang chuẩn bị âm thanh…"));
    try {
      draft = (await api("POST", `/api/communes/${commune()}/alerts`, body, undefined, 120000)).alert;
      showConfirm(draft);
    } catch (err) { showError($("#alert-error"), err); markFields(err); } finally { busy(button, false); }
  });
  // A template field the server found missing ("fields.river") is marked at its input.
  function markFields(err) {
    for (const f of (err.data && err.data.errors) || []) {
      const m = /^fields\.(\w+)$/.exec(String(f.field));
      const input = m && form.querySelector(`#a-fields [name="${m[1]}"]`);
      if (!input) continue;
      const note = document.createElement("span");
      note.className = "field-error";
      note.setAttribute("role", "alert");
      note.textContent = T("Bắt buộc");
      input.insertAdjacentElement("afterend", note);
    }
  }

  function showConfirm(a) {
    $("#s-type").textContent = a.type_name[document.body.dataset.lang === "en" ? "en" : "vi"];
    const risk = $("#s-risk");
    risk.textContent = `${T("Cấp")} ${a.risk.level} — ${document.body.dataset.lang === "en" ? a.risk.colour_en : a.risk.colour_vi}`;
    risk.style.setProperty("--risk", a.risk.css);
    const whole = a.targets.some((t) => !t.hamlet && !t.zone && !t.device);
    $("#s-where").textContent = whole ? T("Cả xã") : a.targets.map((t) => hamletName(t.hamlet || t.zone || t.device)).join(", ");
    $("#s-speakers").textContent = `${a.speaker_count} ${T("loa")}`;
    $("#s-repeat").textContent = String(a.repeat);
    $("#s-reair").textContent = a.reair_hours ? T("Mỗi 2 giờ đến khi dừng") : T("Không phát lại");
    $("#s-text").textContent = a.message_vi;
    $("#confirm-error").textContent = "";
    form.hidden = true;
    $("#alert-confirm").hidden = false;
    $("#alert-go").focus();
  }
  $("#alert-back").addEventListener("click", () => { $("#alert-confirm").hidden = true; form.hidden = false; });
  $("#alert-go").addEventListener("click", async () => {
    const button = $("#alert-go");
    if (button.disabled || !draft) return;
    busy(button, true);
    try {
      await api("POST", `/api/alerts/${draft.id}/confirm`);
      $("#alert-confirm").hidden = true;
      form.reset(); form.hidden = false; placeTyped = false;
      if (time) time.value = new Date().toLocaleTimeString("vi-VN", { hour: "2-digit", minute: "2-digit" });
      boxes().forEach((b) => { b.checked = false; });
      $("#a-key").value = newKey();  // a new form, a new key
      draft = null;
      preview();
      await loadActive();
    } catch (err) { showError($("#confirm-error"), err); } finally { busy(button, false); }
  });

  // Alerts sounding now: a card each, per-hamlet progress live over SSE, stop/all-clear.
  const cards = new Map();
  function renderCard(card, a) {
    card.querySelector(".state").textContent = stateWord(a.status);
    card.dataset.status = a.status;
    card.querySelector("tbody").innerHTML = a.hamlets.map((h) =>
      `<tr data-hamlet="${esc(h.hamlet_id)}"><td>${esc(h.name)}</td><td class="played">${h.played}/${h.speakers}</td>` +
      `<td class="pending">${h.pending}</td><td class="missed">${h.not_played.length}</td></tr>`).join("");
    card.querySelectorAll("button.act").forEach((b) => { b.hidden = a.status !== "active"; });
  }
  function watch(a) {
    let card = cards.get(a.id);
    if (!card) {
      card = document.createElement("article");
      card.className = "card alert-card";
      card.dataset.alert = a.id;
      card.style.setProperty("--risk", a.risk.css);
      card.innerHTML = `<h3><span class="risk-chip">${esc(T("Cấp"))} ${a.risk.level}</span> ${esc(a.title)}</h3>` +
        `<p><b class="state" role="status"></b></p>` +
        `<table><thead><tr><th>${esc(T("Ấp / thôn"))}</th><th>${esc(T("Đã phát"))}</th><th>${esc(T("Đang chờ"))}</th><th>${esc(T("Chưa phát"))}</th></tr></thead><tbody></tbody></table>` +
        `<div class="actions"><button type="button" class="act stop danger">${esc(T("Dừng"))}</button> <button type="button" class="act clear">${esc(T("Báo an toàn"))}</button></div>`;
      $("#active-list").prepend(card);
      cards.set(a.id, card);
      guarded(card.querySelector(".stop"), T("Dừng cảnh báo này trên mọi loa?"), T("Có, dừng ngay"), async () => renderCard(card, (await stopAlert(a.id)).alert));
      guarded(card.querySelector(".clear"), T("Báo an toàn: dừng còi và đọc thông báo kết thúc?"), T("Có, báo an toàn"), async () => renderCard(card, (await clearAlert(a.id)).alert));
      const es = new EventSource(`/api/alerts/${a.id}/events`);
      es.addEventListener("alert", (e) => renderCard(card, JSON.parse(e.data)));
      es.addEventListener("end", () => es.close());
    }
    $("#alert-active").hidden = false;
    renderCard(card, a);
  }
  async function loadActive() {
    const list = (await api("GET", `/api/communes/${commune()}/alerts`)).alerts.filter((a) => a.status === "active" && !cards.has(a.id));
    for (const a of list) watch((await api("GET", `/api/alerts/${a.id}`)).alert);
  }
  document.addEventListener("loa:alerts", () => loadActive().catch(() => {}));
  loadActive().catch(() => {});
})();
