// ctgwatch nurse station: what the wall, the bed page and the hand-over share.
// api() and the signed-in user, text helpers, the CTG drawing, the alarm list with its in-page
// actions, and the priority-coded alarm sounds (IEC 60601-1-8).
"use strict";
const $ = (s, root = document) => root.querySelector(s);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const hhmm = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const words = (s) => String(s ?? "").replaceAll("_", " ");
let me = null;

async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options });
  if (res.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  const body = res.status === 204 ? {} : await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

async function post(path, body, method = "POST") {
  return api(path, { method, headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf }, body: JSON.stringify(body) });
}

// ---- concern of a bed: colour, a shape and a word (colour is never the only cue) ----
const CONCERN = {
  high: { shape: "▲", text: "HIGH PRIORITY ALARM" },
  medium: { shape: "◆", text: "MEDIUM PRIORITY ALARM" },
  low: { shape: "●", text: "LOW PRIORITY ALARM" },
  pathological: { shape: "■", text: "PATHOLOGICAL" },
  suspicious: { shape: "◇", text: "SUSPICIOUS" },
  normal: { shape: "✓", text: "NORMAL" },
  unknown: { shape: "…", text: "NOT YET CLASSIFIED" },
};
const PRIORITY_RANK = { high: 3, medium: 2, low: 1 };

function concernOf(tile) {
  const live = tile.alerts.filter((a) => a.status !== "resolved");
  const top = live.map((a) => a.priority).sort((a, b) => PRIORITY_RANK[b] - PRIORITY_RANK[a])[0];
  if (top) return top;
  return CONCERN[tile.classification] ? tile.classification : "unknown";
}

function concernBadge(level) {
  const c = CONCERN[level];
  return `<span class="concern ${level}"><span aria-hidden="true">${c.shape}</span> ${c.text}</span>`;
}

// ---- the CTG paper: FHR 50-210 bpm with the 110-160 band, UC 0-100 below ----
const FHR_LO = 50, FHR_HI = 210;
// Draw 1-Hz series on a canvas between times [t0, t1). series: {t0, fhr, uc, mhr}; opts: sizes, marks.
function drawCtg(g, box, data, t0, t1, opts = {}) {
  const { left, top, width, fhrH, gap, ucH } = box;
  const yF = (b) => top + ((FHR_HI - b) / (FHR_HI - FHR_LO)) * fhrH;
  const ucTop = top + fhrH + gap;
  const yU = (u) => ucTop + ((100 - Math.min(Math.max(u, 0), 100)) / 100) * ucH;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * width;
  g.fillStyle = "#fff"; g.fillRect(left, top, width, fhrH); g.fillRect(left, ucTop, width, ucH);
  g.fillStyle = "#e8f5e9"; g.fillRect(left, yF(160), width, yF(110) - yF(160));
  g.lineWidth = 1; g.font = `${opts.font || 11}px system-ui`;
  for (let b = 60; b <= 200; b += opts.small ? 30 : 10) {
    g.strokeStyle = b % 30 === 0 ? "#d5dae3" : "#eef0f4"; g.beginPath(); g.moveTo(left, yF(b)); g.lineTo(left + width, yF(b)); g.stroke();
    if (!opts.small && b % 30 === 0) { g.fillStyle = "#6b7280"; g.fillText(b, 4, yF(b) + 4); }
  }
  for (let u = 0; u <= 100; u += 25) {
    g.strokeStyle = "#eef0f4"; g.beginPath(); g.moveTo(left, yU(u)); g.lineTo(left + width, yU(u)); g.stroke();
    if (!opts.small) { g.fillStyle = "#6b7280"; g.fillText(u, 10, yU(u) + 4); }
  }
  const step = opts.small ? 300 : 60;  // minute lines (10-min darker); the wall: 5 min
  for (let s = Math.ceil(t0 / step) * step; s < t1; s += step) {
    g.strokeStyle = s % 600 === 0 ? "#c3c9d4" : "#eef0f4"; g.beginPath(); g.moveTo(x(s), top); g.lineTo(x(s), ucTop + ucH); g.stroke();
    if (!opts.small && s % 600 === 0) { g.fillStyle = "#6b7280"; g.fillText(hhmm(s), x(s) + 2, ucTop + ucH + 12); }
  }
  let labelEnd = -Infinity;  // where the last deceleration label ended: labels never overlap (one is left out)
  for (const m of [...(opts.marks || [])].sort((a, b) => a.start - b.start)) {  // shaded stretches; events as bars
    if (m.end < t0 || m.start > t1) continue;
    const x0 = Math.max(x(m.start), left), w = Math.max(Math.min(x(m.end), left + width) - x0, 2);
    if (m.kind === "autoencoder") { g.fillStyle = "rgba(142, 36, 170, .16)"; g.fillRect(x0, top, w, fhrH); continue; }
    if (NOT_FETAL_LABEL[m.kind]) {
      g.fillStyle = "rgba(107, 114, 128, .22)"; g.fillRect(x0, top, w, fhrH);
      if (!opts.small) { g.fillStyle = "#374151"; g.fillText(NOT_FETAL_LABEL[m.kind], x0 + 3, top + 22); }
      continue;
    }
    g.fillStyle = m.kind === "acceleration" ? "#2e7d32" : m.kind === "contraction" ? "#1565c0" : "#e0561b";
    g.fillRect(x0, m.kind === "contraction" ? ucTop - 6 : top, w, opts.small ? 3 : 5);
    if (!opts.small && m.kind.endsWith("deceleration")) {
      const label = words(m.kind).replace(" deceleration", " decel");
      if (x0 >= labelEnd + 4) { g.fillText(label, x0, top + 14); labelEnd = x0 + g.measureText(label).width; }
    }
  }
  const nf = (opts.marks || []).filter((m) => NOT_FETAL_LABEL[m.kind]);
  const notFetal = (t) => nf.some((m) => t >= m.start && t < m.end);
  const perPx = Math.max(1, Math.round((t1 - t0) / width));  // about one point per pixel
  const line = (vals, y, color, w, keep = () => true) => {
    if (!vals || !vals.length) return;
    g.strokeStyle = color; g.lineWidth = w; g.beginPath(); let pen = false;
    const first = Math.max(0, Math.floor(t0 - data.t0)), last = Math.min(vals.length, Math.ceil(t1 - data.t0));
    for (let i = first; i < last; i += perPx) {
      const v = vals[i], t = data.t0 + i;
      if (v == null || v <= 0 || !keep(t, v)) { pen = false; continue; }
      pen ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v)); pen = true;
    }
    g.stroke();
  };
  const onPaper = (t, v) => v >= FHR_LO && v <= FHR_HI;
  line(data.mhr, yF, "#9e9e9e", 1, onPaper);
  line(data.fhr, yF, "#9ca3af", 1.3, (t, v) => onPaper(t, v) && notFetal(t));
  line(data.fhr, yF, "#111827", opts.small ? 1.1 : 1.4, (t, v) => onPaper(t, v) && !notFetal(t));
  line(data.uc, yU, "#1565c0", 1.1);
  if (opts.baseline) { g.setLineDash([6, 4]); g.strokeStyle = "#607d8b"; g.beginPath(); g.moveTo(left, yF(opts.baseline)); g.lineTo(left + width, yF(opts.baseline)); g.stroke(); g.setLineDash([]); }
}
const NOT_FETAL_LABEL = { maternal_hr_capture: "maternal HR?", halving_doubling: "halved/doubled?", false_signal: "not fetal (model)" };

// ---- one maternal observation as a table row, each reading in its MEOWS band (colour and word) ----
// Blood pressure is one cell banded by the worse of systolic and diastolic (the server's "blood_pressure"
// band), and says which one set it.
function vitalsRow(p, when) {
  const cell = (k, text) => {
    const band = p.bands[k];
    const by = (p.banded_by || {})[k];
    return `<td class="${band ? `band-${band}` : ""}">${text ?? "—"}${band ? ` <span class="band-word">${band.toUpperCase()}${by ? ` (${by})` : ""}</span>` : ""}</td>`;
  };
  const v = p.values;
  const bp = v.systolic_bp != null || v.diastolic_bp != null ? `${v.systolic_bp ?? "—"}/${v.diastolic_bp ?? "—"}` : null;
  return `<tr><td>${when}</td>${cell("heart_rate", v.heart_rate)}${cell("blood_pressure", bp)}
    ${cell("respiratory_rate", v.respiratory_rate)}${cell("spo2", v.spo2)}${cell("temperature_c", v.temperature_c)}${cell("avpu", v.avpu)}</tr>`;
}

// ---- open alarms, updated in place (a row keeps its place; a button never moves under the cursor) ----
const ACTIONS = ["acknowledge", "escalate", "resolve"];
async function act(id, action, reason = "") {
  const note = $("#action-note");
  try { await post(`/api/alerts/${id}/${action}`, { reason }); if (note) note.textContent = ""; }
  catch (e) { if (note) note.textContent = `${action} failed: ${e.message}`; }
}

function newAlertRow(a) {
  const tr = document.createElement("tr");
  tr.dataset.alert = a.id;
  tr.innerHTML = `<td class="bed"></td><td class="sev"></td><td class="status"></td><td class="kind"></td>
    <td class="evidence"></td><td class="raised"></td>
    <td class="actions">${ACTIONS.map((x) => `<button type="button" data-action="${x}">${x}</button>`).join(" ")}
      <form class="reason" hidden><input maxlength="500" aria-label="reason"><button type="submit">confirm</button>
      <button type="button" class="cancel">cancel</button></form></td>`;
  const form = $("form.reason", tr);
  for (const b of tr.querySelectorAll("button[data-action]")) {
    b.onclick = () => {
      if (b.dataset.action === "acknowledge") { act(a.id, "acknowledge"); return; }
      form.hidden = false; form.dataset.action = b.dataset.action;  // escalate and resolve ask for a reason in the row
      $("input", form).placeholder = b.dataset.action === "resolve" ? "reason for resolving (required)" : "reason for escalating";
      $("input", form).required = b.dataset.action === "resolve";
      $("input", form).focus();
    };
  }
  form.onsubmit = (e) => { e.preventDefault(); form.hidden = true; act(a.id, form.dataset.action, $("input", form).value); };
  $(".cancel", form).onclick = () => { form.hidden = true; };
  return tr;
}

function fillAlertRow(tr, a) {
  tr.dataset.kind = a.kind; tr.dataset.priority = a.priority;
  $(".bed", tr).innerHTML = `<a href="/beds/${encodeURIComponent(a.bed_id)}">${esc(a.bed_id)}</a><br><span class="muted small">${esc(a.patient_id)}</span>`;
  const sev = $(".sev", tr);
  sev.className = `sev ${a.priority}`;
  sev.innerHTML = `<span aria-hidden="true">${CONCERN[a.priority].shape}</span> ${esc(a.priority)} priority`;
  $(".status", tr).innerHTML = `${esc(a.status)}${a.ack_by ? `<br><span class="small muted">by ${esc(a.ack_by)}</span>` : ""}`;
  $(".kind", tr).innerHTML = `${esc(words(a.kind))}${a.origin === "models" ? " <span class='pill'>model</span>" : ""}`;
  const reasons = (a.reasons || []).length > 1 ? `<ul class="reasons">${a.reasons.map((r) => `<li>${esc(r)}</li>`).join("")}</ul>` : esc(a.sentence);
  $(".evidence", tr).innerHTML = `${reasons}<br><span class="small muted">${esc(a.rule)}</span>`;
  $(".raised", tr).textContent = clock(a.raised_at);
  for (const b of tr.querySelectorAll("button[data-action]")) b.disabled = !me.may.includes(b.dataset.action);
}

// alarms: most urgent first (priority, then oldest), the order the list keeps while rows exist
function sortAlarms(alerts) {
  return alerts.slice().sort((a, b) => PRIORITY_RANK[b.priority] - PRIORITY_RANK[a.priority] || a.raised_at - b.raised_at);
}

function renderAlerts(body, alerts) {
  const wanted = new Set(alerts.map((a) => a.id));
  for (const tr of [...body.rows]) if (!wanted.has(tr.dataset.alert)) tr.remove();
  const rank = new Map(alerts.map((a, i) => [a.id, i]));
  for (const a of alerts) {
    let tr = body.querySelector(`tr[data-alert="${CSS.escape(a.id)}"]`);
    if (!tr) {
      tr = newAlertRow(a);
      const after = [...body.rows].find((r) => rank.get(r.dataset.alert) > rank.get(a.id));
      body.insertBefore(tr, after || null);
    }
    fillAlertRow(tr, a);
  }
}

// ---- alarm sounds, priority-coded after IEC 60601-1-8 ----
// High: a burst of 10 pulses (3 + 2, twice) every 8 s; medium: 3 pulses every 20 s; low: 2 soft pulses,
// once per new alarm. Sound plays only after a user enabled it (browsers require a gesture); an alarm
// sounds while unacknowledged (raised or escalated) and not covered by the ward's audio pause.
// Notices never sound.
const Sound = {
  ctx: null, enabled: false, sounding: null, bursts: 0, timer: null, lowHeard: new Set(), pause: null,
  PATTERNS: {
    high: { hz: 880, pulse: 0.15, at: [0, 0.25, 0.5, 1.0, 1.25, 2.3, 2.55, 2.8, 3.3, 3.55], every: 8 },
    medium: { hz: 660, pulse: 0.2, at: [0, 0.35, 0.7], every: 20 },
    low: { hz: 440, pulse: 0.25, at: [0, 0.4], every: null },
  },
  enable() {
    this.ctx = this.ctx || new (window.AudioContext || window.webkitAudioContext)();
    this.ctx.resume(); this.enabled = true; this.update(this.alarms || []);
  },
  disable() { this.enabled = false; this.stop(); this.show(); },
  stop() { clearTimeout(this.timer); this.timer = null; this.sounding = null; },
  burst(level) {
    const p = this.PATTERNS[level]; const now = this.ctx.currentTime;
    for (const at of p.at) {
      const o = this.ctx.createOscillator(), gain = this.ctx.createGain();
      o.type = "triangle"; o.frequency.value = p.hz;  // harmonics make the pulse easy to place in a room
      gain.gain.setValueAtTime(0, now + at); gain.gain.linearRampToValueAtTime(0.3, now + at + 0.02);
      gain.gain.setValueAtTime(0.3, now + at + p.pulse - 0.03); gain.gain.linearRampToValueAtTime(0, now + at + p.pulse);
      o.connect(gain).connect(this.ctx.destination); o.start(now + at); o.stop(now + at + p.pulse + 0.01);
    }
    this.bursts += 1;
  },
  // Called with the ward's open alarms and audio pause on every snapshot.
  update(alarms, pause = this.pause) {
    this.alarms = alarms; this.pause = pause;
    const pausedAt = pause && pause.until > Date.now() / 1000 ? pause.at : null;
    const due = alarms.filter((a) => (a.status === "raised" || a.status === "escalated")
      && (pausedAt == null || Math.max(a.raised_at, a.escalated_at || 0) > pausedAt));
    const level = due.map((a) => a.priority).sort((a, b) => PRIORITY_RANK[b] - PRIORITY_RANK[a])[0] || null;
    if (!this.enabled) { this.sounding = null; this.show(level); return; }
    const newLow = due.filter((a) => a.priority === "low" && !this.lowHeard.has(a.id));
    newLow.forEach((a) => this.lowHeard.add(a.id));
    if (level !== this.sounding) {
      this.stop();
      if (level === "high" || level === "medium") {
        this.sounding = level;
        const loop = () => { this.burst(level); this.timer = setTimeout(loop, this.PATTERNS[level].every * 1000); };
        loop();
      } else if (level === "low" && newLow.length) { this.burst("low"); }
    } else if (level === "low" && newLow.length) { this.burst("low"); }
    this.show(level);
  },
  show(level = null) {
    const el = $("#sound"); if (!el) return;
    const pause = this.pause && this.pause.until > Date.now() / 1000 ? this.pause : null;
    el.className = `sound ${this.enabled ? "on" : "off"}${pause ? " paused" : ""}`;
    el.dataset.sounding = this.sounding || "";
    const waiting = level ? ` — ${level} priority alarm unacknowledged` : "";
    el.textContent = !this.enabled ? `Sound OFF${waiting} (click to enable)`
      : pause ? `Audio paused by ${pause.by} until ${hhmm(pause.until)}${this.sounding ? ` — sounding ${this.sounding}` : ""}`
        : this.sounding ? `Sounding: ${this.sounding} priority alarm` : "Sound on";
  },
};

// ---- technical conditions of the monitoring itself, named by their cause on every screen ----
// (IEC 60601-1-8: technical, apart from the patients' conditions; stream/station/schemas.py Outage)
const STATION_SILENT_MS = 10000;  // no message from the station this long: this screen is not being updated
const OUTAGE_WORDS = {
  redis_unreachable: "the alert store (Redis) is unreachable", broker_unreachable: "the message broker is unreachable",
  worker_silent: "the stream worker is silent", models_degraded: "models degraded",
  broker_log_lost: "the message broker's log was lost",
};
function stationSilentLine(sinceMs) {
  return `No contact with the station since ${clock(sinceMs / 1000)}: this screen is not being updated. `
    + "Watch the monitors at the bedside and call IT.";
}
function showOutages(el, outages, extra = [], extraCause = "station_unreachable") {
  const lines = [...extra, ...(outages || []).map((o) => `${o.since ? `Since ${clock(o.since)}: ` : ""}${o.sentence}`)];
  el.hidden = lines.length === 0;
  el.innerHTML = lines.map((l) => `<div>${esc(l)}</div>`).join("");
  el.dataset.causes = [...(extra.length ? [extraCause] : []), ...(outages || []).map((o) => o.cause)].join(" ");
}
function interruptedText(tile, short = false) {
  const since = `since ${clock(tile.last_packet_at)}`;
  if (tile.interrupted_by) return `${short ? "NO DATA" : "No data"} ${since}: ${OUTAGE_WORDS[tile.interrupted_by] || tile.interrupted_by}, not this bed's monitor`;
  return short ? `MONITORING INTERRUPTED ${since} — no data from the monitor`
    : `Monitoring interrupted ${since}: no data from this bed's monitor.`;
}
