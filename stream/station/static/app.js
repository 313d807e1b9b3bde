// ctgwatch nurse station: live ward over Server-Sent Events, alert actions, CTG bed view.
"use strict";
let me = null;
let openPatient = null;
let lastWard = null;
const $ = (s) => document.querySelector(s);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options });
  if (res.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

async function act(id, action, reason = "") {
  const note = $("#action-note");
  try {
    await api(`/api/alerts/${id}/${action}`, {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf },
      body: JSON.stringify({ reason }),
    });
    note.textContent = "";
  } catch (e) { note.textContent = `${action} failed: ${e.message}`; }
}

// Escalate and resolve ask for a reason in the row itself (no browser pop-up).
function askReason(row, action) {
  const form = row.querySelector("form.reason");
  form.hidden = false;
  form.dataset.action = action;
  form.querySelector("input").placeholder = action === "resolve" ? "reason for resolving (required)" : "reason for escalating";
  form.querySelector("input").focus();
}

const ACTIONS = ["acknowledge", "escalate", "resolve"];

function newAlertRow(a) {
  const tr = document.createElement("tr");
  tr.dataset.alert = a.id;
  tr.innerHTML = `<td class="bed"></td><td class="sev"></td><td class="status"></td><td class="kind"></td>
    <td class="evidence"></td><td class="raised"></td>
    <td class="actions">${ACTIONS.map((x) => `<button type="button" data-action="${x}">${x}</button>`).join(" ")}
      <form class="reason" hidden><input maxlength="500" aria-label="reason"><button type="submit">confirm</button>
      <button type="button" class="cancel">cancel</button></form></td>`;
  for (const b of tr.querySelectorAll("button[data-action]")) {
    b.onclick = () => (b.dataset.action === "acknowledge" ? act(a.id, "acknowledge") : askReason(tr, b.dataset.action));
  }
  const form = tr.querySelector("form.reason");
  form.onsubmit = (e) => { e.preventDefault(); form.hidden = true; act(a.id, form.dataset.action, form.querySelector("input").value); };
  form.querySelector(".cancel").onclick = () => { form.hidden = true; };
  return tr;
}

function fillAlertRow(tr, a) {
  tr.dataset.kind = a.kind;
  tr.querySelector(".bed").innerHTML = `${esc(a.bed_id)}<br><span class="muted small">${esc(a.patient_id)}</span>`;
  const sev = tr.querySelector(".sev");
  sev.className = `sev ${a.severity_name}`;
  sev.textContent = `${a.priority} priority`;
  tr.querySelector(".status").innerHTML = `${esc(a.status)}${a.ack_by ? `<br><span class="small muted">by ${esc(a.ack_by)}</span>` : ""}`;
  tr.querySelector(".kind").innerHTML = `${esc(a.kind.replaceAll("_", " "))}${a.origin === "models" ? " <span class='pill'>model</span>" : ""}`;
  const reasons = (a.reasons || []).length > 1
    ? `<ul class="reasons">${a.reasons.map((r) => `<li>${esc(r)}</li>`).join("")}</ul>` : esc(a.sentence);
  tr.querySelector(".evidence").innerHTML = `${reasons}<br><span class="small muted">${esc(a.rule)}</span>`;
  tr.querySelector(".raised").textContent = clock(a.raised_at);
  for (const b of tr.querySelectorAll("button[data-action]")) b.disabled = !me.may.includes(b.dataset.action);
}

// The alert list is updated in place: rows keep their place while they exist (a button never
// moves under the cursor), new alerts are inserted where their severity puts them, gone ones removed.
function renderAlerts(alerts) {
  const body = $("#alerts tbody");
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

function renderWard(ward) {
  lastWard = ward;
  const banner = $("#interrupted");
  banner.hidden = !ward.monitoring_interrupted;
  banner.textContent = ward.monitoring_interrupted
    ? `Monitoring interrupted: the stream worker has ${ward.worker_silent_s == null ? "not reported" : `not reported for ${ward.worker_silent_s} s`}. `
      + "No alarm is being raised: watch the monitors at the bedside and call IT."
    : "";
  $("#ward").textContent = ward.ward_id;
  $("#tiles").innerHTML = ward.patients.map((p) => `
    <div class="tile ${esc(p.worst)}" data-patient="${esc(p.patient_id)}" data-bed="${esc(p.bed_id)}">
      <div class="row"><strong>${esc(p.bed_id)}</strong><span class="muted">${esc(p.patient_id)}</span></div>
      <div class="row"><span class="fhr">${p.fhr_now ? Math.round(p.fhr_now) : "—"}</span>
        <span>baseline ${p.baseline_bpm ? Math.round(p.baseline_bpm) : "—"}<br>${esc(p.classification || "—")}</span></div>
      <div class="row small"><span>signal ${esc(p.quality || "—")}</span>
        <span>MEOWS ${p.meows_red ?? 0} red / ${p.meows_yellow ?? 0} yellow</span></div>
      <div class="small muted">models ${esc((p.models || "—").split(":")[0])}</div>
      ${p.data_interrupted ? `<div class="interrupted small">monitoring interrupted since ${clock(p.last_packet_at)} (no data)</div>` : ""}
      <ul>${p.alerts.map((a) => `<li class="sev ${esc(a.severity_name)}">${esc(a.kind.replaceAll("_", " "))}: ${esc(a.priority)} (${esc(a.status)})</li>`).join("")}</ul>
      <ul class="notices">${(p.notices || []).map((n) => `<li class="notice" title="${esc(n.sentence)}">notice: ${esc(n.kind.replaceAll("_", " "))}${n.qualifying ? " (watching)" : ""}</li>`).join("")}</ul>
    </div>`).join("");
  for (const t of document.querySelectorAll(".tile")) t.onclick = () => openBed(t.dataset.patient, t.dataset.bed);
  const alerts = ward.patients.flatMap((p) => p.alerts).sort((a, b) => b.severity - a.severity || a.raised_at - b.raised_at);
  $("#alert-count").textContent = alerts.length;
  renderAlerts(alerts);
}

// ---- bed view: FHR 50-210 bpm with the 110-160 band, UC 0-100 below, at 1 or 3 cm/min ----
const PX_PER_CM = 37.8;
async function openBed(patient, bed) {
  openPatient = patient;
  $("#bed").hidden = false;
  $("#bed-title").textContent = `${bed} — ${patient}`;
  await drawBed(true);
  $("#bed").scrollIntoView({ behavior: "smooth" });
}

function riskText(trend) {
  // the acidaemia-risk LSTM: the latest probability and its course over the last 4 h (one point per 5 min)
  if (!trend.length) return "";
  const last = trend[trend.length - 1];
  const pct = (p) => `${Math.round(p * 100)}%`;
  const recent = trend.filter((x) => last.t - x.t <= 4 * 3600);
  const course = recent.length > 1 ? ` (4 h: ${recent.map((x) => pct(x.p)).join(" → ")})` : "";
  return `acidaemia risk, pH < 7.05: ${pct(last.p)}${course} — model evidence, not an alarm`;
}

async function drawBed(scrollToEnd = false) {
  if (!openPatient) return;
  const seconds = +$("#history").value;
  const [tr, vit] = await Promise.all([
    api(`/api/patients/${encodeURIComponent(openPatient)}/trace?seconds=${seconds}`),
    api(`/api/patients/${encodeURIComponent(openPatient)}/vitals`),
  ]);
  $("#bed-class").textContent = tr.classification || "";
  $("#bed-risk").textContent = riskText(tr.risk_trend || []);
  $("#reasons").innerHTML = (tr.reasons || []).map((r) => `<li>${esc(r)}</li>`).join("") || "<li class='muted'>none</li>";
  $("#vitals tbody").innerHTML = vit.slice(-8).reverse().map((o) => {
    const v = (k) => (o[k] ? o[k].value : "—");
    const ts = Math.max(...["heart_rate", "systolic_bp", "respiratory_rate", "spo2", "temperature_c"].map((k) => (o[k] ? o[k].ts : 0)));
    return `<tr><td>${clock(ts)}</td><td>${v("heart_rate")}</td><td>${v("systolic_bp")}/${v("diastolic_bp")}</td>
      <td>${v("respiratory_rate")}</td><td>${v("spo2")}</td><td>${v("temperature_c")}</td></tr>`;
  }).join("");
  drawVitals(vit);
  const pxPerS = (+$("#speed").value * PX_PER_CM) / 60;
  const n = tr.fhr.length;
  const canvas = $("#trace");
  const left = 40, width = Math.max(600, Math.ceil(n * pxPerS));
  canvas.width = left + width + 10;
  const g = canvas.getContext("2d");
  const fhrTop = 10, fhrH = 280, ucTop = 310, ucH = 110;
  const yF = (b) => fhrTop + ((210 - b) / 160) * fhrH;
  const yU = (u) => ucTop + ((100 - u) / 100) * ucH;
  const x = (i) => left + i * pxPerS;
  const xt = (t) => x(t - tr.t0);
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = "#e8f5e9"; g.fillRect(left, yF(160), width, yF(110) - yF(160));  // normal band 110-160
  g.strokeStyle = "#dfe3ea"; g.lineWidth = 1; g.fillStyle = "#6b7280"; g.font = "11px system-ui";
  for (let b = 50; b <= 210; b += 10) { g.beginPath(); g.moveTo(left, yF(b)); g.lineTo(left + width, yF(b)); g.stroke(); if (b % 30 === 0) g.fillText(b, 8, yF(b) + 4); }
  for (let u = 0; u <= 100; u += 25) { g.beginPath(); g.moveTo(left, yU(u)); g.lineTo(left + width, yU(u)); g.stroke(); g.fillText(u, 12, yU(u) + 4); }
  for (let s = 0; s <= n; s += 60) { g.strokeStyle = s % 600 === 0 ? "#b8bfcc" : "#eceff4"; g.beginPath(); g.moveTo(x(s), fhrTop); g.lineTo(x(s), ucTop + ucH); g.stroke(); }
  if (tr.anomaly && tr.anomaly.error) {  // seconds the autoencoder reconstructs badly
    g.fillStyle = "rgba(142, 36, 170, .18)";
    tr.anomaly.error.forEach((e, i) => { if (e > tr.anomaly.threshold) g.fillRect(xt(tr.anomaly.t0 + i), fhrTop, Math.max(pxPerS, 1), fhrH); });
  }
  for (const span of tr.not_fetal || []) {  // judged not to be the fetal heart: left out of the analysis
    g.fillStyle = "rgba(107, 114, 128, .22)";
    g.fillRect(xt(span.start), fhrTop, Math.max(xt(span.end) - xt(span.start), 2), fhrH);
    g.fillStyle = "#374151";
    const label = { maternal_hr_capture: "maternal HR?", halving_doubling: "halved/doubled?", false_signal: "not fetal (model)" };
    g.fillText(label[span.kind] || span.kind, xt(span.start) + 3, fhrTop + 20);
  }
  for (const ev of tr.events) {
    const color = ev.kind === "acceleration" ? "#2e7d32" : ev.kind === "contraction" ? "#1565c0" : "#e0561b";
    g.fillStyle = color;
    const top = ev.kind === "contraction" ? ucTop - 8 : fhrTop;
    g.fillRect(xt(ev.start), top, Math.max(xt(ev.end) - xt(ev.start), 2), 5);
  }
  const line = (vals, y, color, w) => {
    g.strokeStyle = color; g.lineWidth = w; g.beginPath(); let pen = false;
    vals.forEach((v, i) => { if (v == null) { pen = false; return; } pen ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v)); pen = true; });
    g.stroke();
  };
  if (tr.mhr && tr.mhr.length) line(tr.mhr.map((v) => (v && v >= 50 ? v : null)), yF, "#9e9e9e", 1);
  if (tr.baseline_bpm) { g.setLineDash([6, 4]); line(tr.fhr.map(() => tr.baseline_bpm), yF, "#607d8b", 1); g.setLineDash([]); }
  // FHR in black; seconds judged not fetal (maternal HR, halving/doubling) in grey, as the analysis left them out.
  const notFetal = tr.fhr.map((_, i) => (tr.not_fetal || []).some((s) => tr.t0 + i >= s.start && tr.t0 + i < s.end));
  const onPaper = (v) => v && v >= 50 && v <= 210;
  line(tr.fhr.map((v, i) => (onPaper(v) && !notFetal[i] ? v : null)), yF, "#111827", 1.4);
  line(tr.fhr.map((v, i) => (onPaper(v) && notFetal[i] ? v : null)), yF, "#9ca3af", 1.4);
  line(tr.uc, yU, "#1565c0", 1.2);
  if (scrollToEnd) $("#trace-scroll").scrollLeft = canvas.width;
}

// Maternal vitals trend: HR and BP on 40-200, SpO2 on 80-100 % (right axis), over the stored history.
function drawVitals(vit) {
  const c = $("#vitals-chart"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const pts = vit.map((o) => ({
    t: Math.max(...Object.values(o).filter((r) => r && r.ts).map((r) => r.ts)),
    hr: o.heart_rate?.value, sbp: o.systolic_bp?.value, dbp: o.diastolic_bp?.value, spo2: o.spo2?.value,
  })).filter((p) => Number.isFinite(p.t));
  const L = 34, R = c.width - 34, T = 8, B = c.height - 18;
  g.strokeStyle = "#e4e7ee"; g.fillStyle = "#6b7280"; g.font = "10px system-ui";
  for (const v of [40, 80, 120, 160, 200]) { const y = B - ((v - 40) / 160) * (B - T); g.beginPath(); g.moveTo(L, y); g.lineTo(R, y); g.stroke(); g.fillText(v, 6, y + 3); }
  for (const v of [80, 90, 100]) g.fillText(`${v}%`, R + 4, B - ((v - 80) / 20) * (B - T) + 3);
  if (pts.length < 1) { g.fillText("no observations yet", L + 10, (T + B) / 2); return; }
  const t0 = pts[0].t, t1 = Math.max(pts[pts.length - 1].t, t0 + 60);
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (R - L);
  const series = (key, color, scale) => {
    g.strokeStyle = color; g.fillStyle = color; g.lineWidth = 1.5; g.beginPath(); let pen = false;
    for (const p of pts) { if (p[key] == null) continue; const y = scale(p[key]); pen ? g.lineTo(x(p.t), y) : g.moveTo(x(p.t), y); pen = true; }
    g.stroke();
    for (const p of pts) if (p[key] != null) g.fillRect(x(p.t) - 2, scale(p[key]) - 2, 4, 4);
  };
  const left = (v) => B - ((Math.min(Math.max(v, 40), 200) - 40) / 160) * (B - T);
  const right = (v) => B - ((Math.min(Math.max(v, 80), 100) - 80) / 20) * (B - T);
  series("hr", "#c62828", left); series("sbp", "#1565c0", left); series("dbp", "#1565c0", left); series("spo2", "#00897b", right);
  g.fillStyle = "#6b7280"; g.fillText(clock(t0), L, c.height - 4); g.fillText(clock(t1), R - 50, c.height - 4);
}

async function main() {
  me = await api("/api/me");
  $("#who").textContent = `${me.user} (${me.role})`;
  renderWard(await api("/api/ward"));
  const events = new EventSource("/api/events");
  events.addEventListener("ward", (e) => { $("#live").textContent = `live ${clock(Date.now() / 1000)}`; renderWard(JSON.parse(e.data)); });
  events.onerror = () => { $("#live").textContent = "reconnecting…"; };
  $("#close-bed").onclick = () => { openPatient = null; $("#bed").hidden = true; };
  $("#speed").onchange = () => drawBed(true);
  $("#history").onchange = () => drawBed(true);
  setInterval(() => drawBed(false).catch(() => {}), 5000);  // the open bed's trace, every 5 s
}
main();
