// One bed at its own URL (/beds/<bed>): the whole labour's CTG (archive + the live hour) at 1 or
// 3 cm/min with scrollback, its marks and model evidence, the bed's alarms, the maternal vitals in MEOWS
// bands, and the 4-h / 12-h trends.
"use strict";
const bedId = decodeURIComponent(location.pathname.split("/")[2] || "");
const PX_PER_CM = 37.8;
let patient = null;
let series = null;  // {t0, fhr, uc, mhr} at 1 Hz over the whole record
let marks = [];
let live = null;
let archive = null;
let archiveAt = 0;
let trendSpanH = 4;

function anomalyMarks(a) {  // seconds the autoencoder reconstructed worse than its threshold, as stretches
  if (!a || !a.error) return [];
  const out = []; let start = null;
  a.error.forEach((e, i) => {
    if (e > a.threshold && start == null) start = i;
    if ((e <= a.threshold || i === a.error.length - 1) && start != null) { out.push({ kind: "autoencoder", start: a.t0 + start, end: a.t0 + i + 1 }); start = null; }
  });
  return out;
}

function merge() {  // the archived chart, then the live hour (which wins where both have a second)
  const parts = [archive && archive.t0 != null ? archive : null, live && live.t0 != null ? live : null].filter(Boolean);
  if (!parts.length) { series = null; return; }
  const t0 = Math.floor(parts[0].t0), t1 = Math.ceil(Math.max(...parts.map((p) => p.t0 + p.fhr.length)));
  const n = t1 - t0;
  series = { t0, fhr: new Array(n).fill(null), uc: new Array(n).fill(null), mhr: new Array(n).fill(null) };
  for (const p of parts) {
    const at = Math.round(p.t0 - t0);
    for (const k of ["fhr", "uc", "mhr"]) (p[k] || []).forEach((v, i) => { if (at + i >= 0 && at + i < n) series[k][at + i] = v; });
  }
  const liveStart = live && live.t0 != null ? live.t0 : Infinity;
  marks = [...(archive ? archive.marks.filter((m) => m.start < liveStart) : []),
    ...(live ? [...live.events, ...live.not_fetal, ...anomalyMarks(live.anomaly)] : [])];
}

function pxPerS() { return (+$("#speed").value * PX_PER_CM) / 60; }

function draw() {
  const scroll = $("#trace-scroll"), canvas = $("#trace"), spacer = $("#trace-spacer");
  if (!series) { canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height); return; }
  const left = 34, pps = pxPerS();
  const total = series.fhr.length;
  spacer.style.width = `${Math.max(scroll.clientWidth, left + total * pps + 20)}px`;
  // a short screen (768 px) gets a lower trace, so the alarms' buttons and the vitals fit under it
  const short = window.innerHeight < 900, H = short ? 340 : 450;
  if (canvas.height !== H) { canvas.height = H; spacer.style.height = `${H + 20}px`; }
  canvas.width = scroll.clientWidth;
  const t0 = series.t0 + scroll.scrollLeft / pps, t1 = t0 + (canvas.width - left - 10) / pps;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  drawCtg(g, { left, top: 8, width: canvas.width - left - 10, fhrH: short ? 215 : 290, gap: 14, ucH: short ? 80 : 110 }, series, t0, t1,
    { marks, baseline: live && live.t0 != null && t1 > live.t0 ? live.baseline_bpm : null });
  $("#span-note").textContent = `showing ${hhmm(t0)}–${hhmm(Math.min(t1, series.t0 + total))} of ${hhmm(series.t0)}–${hhmm(series.t0 + total)}`;
  canvas.dataset.newest = String((series.t0 + total - t0) / (t1 - t0));  // where "now" is drawn: 0 left edge, 1 right
}

// "Follow live" keeps the newest minute at the right edge until the user scrolls back (wheel, keys or the
// scroll bar); ticking it again jumps back to now. Our own scrolling is told apart from the user's.
let scrollingToLive = false;
function followLive() {
  if (!$("#follow").checked) return;
  const scroll = $("#trace-scroll");
  scrollingToLive = true;
  scroll.scrollLeft = scroll.scrollWidth - scroll.clientWidth;
  requestAnimationFrame(() => { scrollingToLive = false; });
}
function userScrolled() {
  const scroll = $("#trace-scroll");
  if (scrollingToLive) return;
  if (scroll.scrollLeft < scroll.scrollWidth - scroll.clientWidth - 40) $("#follow").checked = false;
}

function riskText(trend) {
  if (!trend || !trend.length) return "acidaemia-risk LSTM: no score yet (needs an hour of trace)";
  const last = trend[trend.length - 1];
  return `acidaemia-risk LSTM on the last hour (pH < 7.05): ${Math.round(last.p * 100)}% at ${hhmm(last.t)}`;
}

function compromiseText(c) {
  // the stacked risk the compromise_risk alarm reads (models/serving/compromise.py): its value, its thresholds, its reasons
  if (!c || c.status !== "ok") return "compromise risk: not served";
  const pct = (v) => `${Math.round(v * 100)}%`;
  const th = c.threshold || {};
  const limits = th.t1 != null ? ` — alarm at ${pct(th.t1)} held, high priority at ${pct(th.t2)}` : "";
  const why = (c.reasons || []).length ? `; raised most by: ${c.reasons.join("; ")}` : "";
  return `compromise risk, pH < 7.05: ${pct(c.risk_ph_below_7_05)} (pH < 7.15: ${pct(c.risk_ph_below_7_15)})${limits}${why}`;
}

function renderVitals(vit) {
  $("#vitals tbody").innerHTML = vit.slice(-12).reverse().map((p) => vitalsRow(p, clock(p.t))).join("")
    || `<tr><td colspan="7" class="muted">no observations</td></tr>`;
}

// ---- trends: small multiples over 4 h or 12 h ----
function trendCanvas(id, title) {
  let box = document.getElementById(id);
  if (!box) {
    box = document.createElement("figure"); box.id = id; box.className = "trend";
    box.innerHTML = `<figcaption>${esc(title)}</figcaption><canvas width="560" height="120"></canvas>`;
    $("#trend-charts").appendChild(box);
  }
  const c = $("canvas", box); const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  return { c, g, box };
}

function trendChart(id, title, t0, t1, lo, hi, lines, opts = {}) {
  const { c, g, box } = trendCanvas(id, title);
  const L = 40, R = c.width - 8, T = 6, B = c.height - 16;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (R - L);
  const y = (v) => B - ((Math.min(Math.max(v, lo), hi) - lo) / (hi - lo)) * (B - T);
  g.font = "10px system-ui"; g.fillStyle = "#6b7280"; g.strokeStyle = "#eef0f4";
  for (const band of opts.bands || []) { g.fillStyle = band.color; g.fillRect(L, y(band.hi), R - L, y(band.lo) - y(band.hi)); }
  g.fillStyle = "#6b7280";
  for (const v of opts.ticks || [lo, hi]) { g.beginPath(); g.moveTo(L, y(v)); g.lineTo(R, y(v)); g.stroke(); g.fillText(v, 4, y(v) + 3); }
  const every = t1 - t0 > 6 * 3600 ? 7200 : 3600;  // hour lines; every 2 h on the 12-h view
  for (let t = Math.ceil(t0 / every) * every; t < t1; t += every) { g.beginPath(); g.moveTo(x(t), T); g.lineTo(x(t), B); g.stroke(); g.fillText(hhmm(t), x(t) + 2, c.height - 4); }
  for (const s of lines) {
    g.strokeStyle = s.color; g.fillStyle = s.color; g.lineWidth = 1.6;
    if (s.bars) { for (const [t, v] of s.pts) if (v != null) g.fillRect(x(t) - 2, y(v), 4, B - y(v)); continue; }
    g.beginPath(); let pen = false;
    for (const [t, v] of s.pts) { if (v == null) { pen = false; continue; } pen ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v)); pen = true; }
    g.stroke();
    for (const [t, v, colour] of s.pts) if (v != null) { g.fillStyle = colour || s.color; g.fillRect(x(t) - 2, y(v) - 2, 4, 4); }
  }
  const last = lines.map((s) => { const p = s.pts.filter((q) => q[1] != null).pop(); return p ? `${s.name} ${p[1]}` : null; }).filter(Boolean);
  box.dataset.points = String(lines.reduce((n, s) => n + s.pts.length, 0));
  $("figcaption", box).textContent = `${title}${last.length ? ` — latest: ${last.join(", ")}` : " — no data yet"}`;
}

function classStrip(t0, t1, points) {
  const { c, g, box } = trendCanvas("tr-class", "CTG class");
  const L = 40, R = c.width - 8, x = (t) => L + ((t - t0) / (t1 - t0)) * (R - L);
  const level = { normal: 1, suspicious: 2, pathological: 3 }, colour = { normal: "#2e7d32", suspicious: "#e0a800", pathological: "#c4001a" };
  g.font = "10px system-ui";
  let lastLetter = { x: -Infinity, c: null };  // a letter where the class changes, else at most every 30 px
  for (const p of points) {  // height and letter too, so colour is not the only cue
    const h = 22 * (level[p.classification] || 0.5);
    g.fillStyle = colour[p.classification] || "#9ca3af"; g.fillRect(x(p.t - 300), 90 - h, Math.max(x(p.t) - x(p.t - 300) - 1, 2), h);
    const at = x(p.t - 300) + 1;
    if ((p.classification !== lastLetter.c && at >= lastLetter.x + 9) || at >= lastLetter.x + 30) {
      g.fillStyle = "#1d2330"; g.fillText((p.classification || "?")[0].toUpperCase(), at, 102);
      lastLetter = { x: at, c: p.classification };
    }
  }
  g.fillStyle = "#6b7280"; g.fillText("P", 4, 24); g.fillText("S", 4, 46); g.fillText("N", 4, 68);
  box.dataset.points = String(points.length);
  const last = points[points.length - 1];
  $("figcaption", box).textContent = `CTG class (taller = worse; N normal, S suspicious, P pathological)${last ? ` — latest: ${words(last.classification)}` : " — no analysis yet"}`;
}

async function drawTrends() {
  if (!patient) return;
  const hours = trendSpanH;
  const [points, vit] = await Promise.all([
    api(`/api/patients/${encodeURIComponent(patient)}/trends?hours=${hours}`),
    api(`/api/patients/${encodeURIComponent(patient)}/vitals?hours=${hours}`)]);
  // on the patient's recording clock (a replay can lag the wall clock), else now
  const t1 = live && live.t0 != null ? live.t0 + live.fhr.length : Date.now() / 1000, t0 = t1 - hours * 3600;
  const pts = (k) => points.map((p) => [p.t, p[k]]);
  trendChart("tr-baseline", "Baseline (bpm)", t0, t1, 90, 190, [{ name: "baseline", color: "#111827", pts: pts("baseline_bpm") }],
    { bands: [{ lo: 110, hi: 160, color: "#e8f5e9" }], ticks: [100, 110, 160, 180] });
  trendChart("tr-var", "Variability (bpm, bandwidth)", t0, t1, 0, 40, [{ name: "variability", color: "#5b21b6", pts: pts("variability_bpm") }],
    { bands: [{ lo: 5, hi: 25, color: "#e8f5e9" }], ticks: [0, 5, 25, 40] });
  trendChart("tr-decel", "Decelerations per 30 min (bars) and their area (bpm·min, line)", t0, t1, 0, 12, [
    { name: "count", color: "#e0561b", bars: true, pts: pts("decelerations") },
    { name: "area/10", color: "#7c2d12", pts: points.map((p) => [p.t, Math.round(p.deceleration_area) / 10]) }], { ticks: [0, 4, 8, 12] });
  trendChart("tr-uc", "Contractions per 10 min (> 5: tachysystole)", t0, t1, 0, 8, [{ name: "contractions", color: "#1565c0", pts: pts("contractions_per_10min") }],
    { bands: [{ lo: 5, hi: 8, color: "#fdecea" }], ticks: [0, 2, 5, 8] });
  classStrip(t0, t1, points);
  const risk = (live && live.risk_trend) || [];
  trendChart("tr-risk", "Acidaemia risk, pH < 7.05 (%) — model evidence", t0, t1, 0, 100, [{ name: "risk %", color: "#8e24aa", pts: risk.map((r) => [r.t, Math.round(r.p * 100)]) }], { ticks: [0, 25, 50, 100] });
  const band = (p, k) => (p.bands[k] === "red" ? "#c4001a" : p.bands[k] === "yellow" ? "#e0a800" : null);
  const vp = (k) => vit.map((p) => [p.t, p.values[k] ?? null, band(p, k)]);
  trendChart("tr-mhr", "Maternal HR and blood pressure (points in MEOWS red / yellow)", t0, t1, 40, 200,
    [{ name: "HR", color: "#c62828", pts: vp("heart_rate") }, { name: "SBP", color: "#1565c0", pts: vp("systolic_bp") }, { name: "DBP", color: "#64b5f6", pts: vp("diastolic_bp") }],
    { ticks: [40, 80, 120, 160, 200] });
  trendChart("tr-resp", "Maternal SpO₂ (%), respiratory rate, temperature (°C)", t0, t1, 0, 100,
    [{ name: "SpO₂", color: "#00897b", pts: vp("spo2") }, { name: "RR", color: "#6d4c41", pts: vp("respiratory_rate") }, { name: "temp", color: "#ef6c00", pts: vp("temperature_c") }],
    { ticks: [0, 20, 40, 60, 80, 100] });
  renderVitals(vit);
}

let lastContact = Date.now();  // the station's last answer: silence means this page is stale
let traceAt = 0;  // when the trace was last read
const TILE_EVERY_MS = 2000;  // the banner and the alarms: an outage is named within 10 s (worker silent after 8 s)
const TRACE_EVERY_MS = 6000;  // the trace (an hour of samples) is the heavy read: every third answer
async function refresh() {
  let tile;
  try { tile = await api(`/api/beds/${encodeURIComponent(bedId)}`); }
  catch (e) {
    // No answer at all (a TypeError from fetch) is the station away; an answer with an error names its cause
    // (503: Redis unreachable; 404: no patient in this bed).
    const away = e instanceof TypeError;
    if (!away) lastContact = Date.now();
    showOutages($("#interrupted"), [], [away ? stationSilentLine(lastContact) : `${e.message}`],
      away ? "station_unreachable" : /Redis/.test(e.message) ? "redis_unreachable" : "error");
    return;
  }
  lastContact = Date.now();
  $("#not-found").hidden = true;
  if (patient !== tile.patient_id) { patient = tile.patient_id; archiveAt = 0; traceAt = 0; }
  $("#bed-title").innerHTML = `<strong>${esc(tile.bed_id)}</strong> <span class="muted">${esc(tile.patient_id)}</span>`;
  $("#concern").innerHTML = concernBadge(concernOf(tile));
  showOutages($("#interrupted"), tile.outages, tile.data_interrupted ? [interruptedText(tile)] : [], "monitor_silent");
  renderAlerts($("#alerts tbody"), sortAlarms(tile.alerts));
  if (Date.now() - traceAt < TRACE_EVERY_MS - 100) return;
  traceAt = Date.now();
  live = await api(`/api/patients/${encodeURIComponent(patient)}/trace?seconds=3600`);
  if (Date.now() - archiveAt > 300_000 && live.t0 != null) {  // the archive grows by a minute a minute: reread every 5 min
    archive = await api(`/api/patients/${encodeURIComponent(patient)}/chart?start=${live.t0 - 24 * 3600}&end=${live.t0}`);
    archiveAt = Date.now();
  }
  merge();
  $("#bed-class").textContent = live.classification ? `FIGO: ${words(live.classification)}` : "not yet classified";
  $("#reasons").innerHTML = (live.reasons || []).map((r) => `<li>${esc(r)}</li>`).join("") || "<li class='muted'>none</li>";
  const ev = tile.model_evidence || {};
  const fs = ev.ctg_false_signal ? `false-signal model: ${esc(ev.ctg_false_signal.status)}` : "false-signal model: not served";
  const ae = ev.ctg_autoencoder && ev.ctg_autoencoder.status === "ok"
    ? `autoencoder score ${ev.ctg_autoencoder.score} (threshold ${ev.ctg_autoencoder.threshold})` : "autoencoder: no score";
  $("#models").innerHTML = `<strong>${esc(compromiseText(ev.compromise_risk))}</strong><br>${esc(riskText(live.risk_trend))}<br>${fs} · ${esc(ae)} · status ${esc(tile.models || "—")}`;
  draw();
  followLive();
}

async function main() {
  me = await api("/api/me");
  $("#who").textContent = `${me.user} (${me.role})`;
  document.title = `ctgwatch — ${bedId}`;
  $("#handover-link").href = `/beds/${encodeURIComponent(bedId)}/handover`;
  $("#speed").onchange = () => { draw(); followLive(); };
  $("#trace-scroll").addEventListener("scroll", () => { userScrolled(); requestAnimationFrame(draw); }, { passive: true });
  $("#trace-scroll").addEventListener("wheel", () => { $("#follow").checked = false; }, { passive: true });
  $("#trace-scroll").addEventListener("keydown", (e) => {
    const step = { ArrowLeft: -200, ArrowRight: 200, PageUp: -800, PageDown: 800 }[e.key];
    if (step) { $("#follow").checked = false; $("#trace-scroll").scrollLeft += step; e.preventDefault(); }
  });
  $("#follow").onchange = followLive;
  for (const r of document.querySelectorAll("input[name=span]")) r.onchange = () => { trendSpanH = +r.value; drawTrends(); };
  window.addEventListener("resize", () => { draw(); followLive(); });
  // the page keeps asking even when the first answers fail (an outage at load time): it says why meanwhile
  setInterval(() => refresh().catch(() => {}), TILE_EVERY_MS);
  setInterval(() => drawTrends().catch(() => {}), 60000);
  await refresh().catch(() => {});
  await drawTrends().catch(() => {});
}
main();
