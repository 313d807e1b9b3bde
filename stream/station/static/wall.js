// The trace wall: one panel per bed with its live CTG strip, concern, alarms, notices, MEOWS, signal
// quality and 4-h class strip. Fed by /api/wall/events: 'history' once, then 'samples' (only the new
// seconds) every second and 'ward' when the snapshot changed (stream/station/feed.py).
"use strict";
const beds = new Map();  // patient -> {t0, fhr, uc, mhr} at 1 Hz, the last wall_s seconds
let wallS = 1200;
const wardState = { head: null, tiles: new Map(), order: [] };  // the ward as the 'ward' messages built it
const visible = new Set();  // panels on screen: only they are redrawn each second
const dirty = new Set();  // panels off screen with samples not yet drawn
const watcher = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const pid = e.target.dataset.patient;
    if (e.isIntersecting) { visible.add(pid); if (dirty.delete(pid) || !e.target.dataset.lastSecond) drawPanel(e.target, pid); }
    else visible.delete(pid);
  }
});
const DENSE_FROM_BEDS = 9;
let wardOutages = [];  // the ward's technical conditions as the station last sent them
let lastMessageAt = Date.now();  // the station's last message (data or 'alive'): silence means this screen is stale
let stationSilent = false;
function renderBanner() {
  showOutages($("#interrupted"), wardOutages, stationSilent ? [stationSilentLine(lastMessageAt)] : []);
}
const stats = { messages: 0, bytes: 0, renders: [] };  // frame times of the wall update (bench/station_wall.py)
window.wallStats = () => {
  const r = stats.renders.slice().sort((a, b) => a - b);
  const q = (p) => (r.length ? r[Math.min(r.length - 1, Math.floor(p * r.length))] : null);
  return { messages: stats.messages, bytes: stats.bytes, frames: r.length, median_ms: q(0.5), p95_ms: q(0.95), max_ms: r[r.length - 1] ?? null };
};

function append(pid, [first, f, u, m]) {
  let b = beds.get(pid);
  if (!b || first < b.t0 || first > b.t0 + b.fhr.length + wallS) b = { t0: first, fhr: [], uc: [], mhr: [] };
  const at = first - b.t0;
  while (b.fhr.length < at) { b.fhr.push(null); b.uc.push(null); b.mhr.push(null); }  // seconds nobody sent: a gap
  b.fhr.splice(at, f.length, ...f); b.uc.splice(at, u.length, ...u);
  b.mhr.splice(at, f.length, ...(m ? m : f.map(() => null)));
  const over = b.fhr.length - wallS;
  if (over > 0) { b.fhr.splice(0, over); b.uc.splice(0, over); b.mhr.splice(0, over); b.t0 += over; }
  beds.set(pid, b);
}

function panel(tile) {
  const id = `bed-${tile.patient_id}`;
  let el = document.getElementById(id);
  if (!el) {
    el = document.createElement("article");
    el.id = id; el.className = "panel"; el.dataset.patient = tile.patient_id; el.dataset.bed = tile.bed_id;
    el.innerHTML = `<a class="panel-head" href="/beds/${encodeURIComponent(tile.bed_id)}">
        <strong class="bed-name">${esc(tile.bed_id)}</strong><span class="concern-slot"></span></a>
      <div class="trace-box"><canvas width="420" height="170" aria-hidden="true"></canvas>
        <div class="interrupted-overlay" hidden></div></div>
      <div class="numbers"><span class="fhr-now"></span><span class="class-now"></span></div>
      <div class="facts small"></div><ul class="alarms small"></ul><ul class="notices small"></ul>
      <div class="strip" role="img"></div>`;
    $("canvas", el).setAttribute("aria-label", `CTG of ${tile.bed_id}`);
    watcher.observe(el);
  }
  return el;
}

function fillPanel(el, tile) {
  const level = concernOf(tile);
  el.className = `panel concern-${level}${tile.data_interrupted ? " interrupted" : ""}`;
  el.dataset.concern = level;
  $(".concern-slot", el).innerHTML = `${concernBadge(level)} <span class="muted small">${esc(tile.patient_id)}</span>`;
  if (!$(".fhr-now b", el)) $(".fhr-now", el).innerHTML = "FHR <b>—</b> <span class='baseline'></span>";
  $(".fhr-now .baseline", el).textContent = `· baseline ${tile.baseline_bpm ? Math.round(tile.baseline_bpm) : "—"}`;
  $(".class-now", el).textContent = tile.classification ? words(tile.classification) : "not yet classified";
  const meows = tile.vitals_ts == null ? "no vitals"  // a replayed or CTG-only bed: nothing to score, not "no trigger"
    : tile.meows_red ? `MEOWS ${tile.meows_red} red / ${tile.meows_yellow} yellow` : tile.meows_yellow ? `MEOWS ${tile.meows_yellow} yellow` : "MEOWS no trigger";
  $(".facts", el).textContent = `signal ${tile.quality || "—"} · ${meows}${(tile.models || "").startsWith("degraded") ? " · models degraded" : ""}`;
  $(".alarms", el).innerHTML = tile.alerts.map((a) => `<li class="sev ${esc(a.priority)}"><span aria-hidden="true">${CONCERN[a.priority].shape}</span>
    ${esc(words(a.kind))}: ${esc(a.priority)} (${esc(a.status)})</li>`).join("");
  $(".notices", el).innerHTML = (tile.notices || []).map((n) => `<li class="notice" title="${esc(n.sentence)}">notice: ${esc(words(n.kind))}${n.qualifying ? " (watching)" : ""}</li>`).join("");
  const over = $(".interrupted-overlay", el);
  over.hidden = !tile.data_interrupted;
  over.textContent = tile.data_interrupted ? interruptedText(tile, true) : "";
  const strip = $(".strip", el);
  const letter = { normal: "N", suspicious: "S", pathological: "P" };
  strip.innerHTML = tile.strip.map((c) => `<i class="cell ${esc(c.c)}" title="${hhmm(c.t)} ${esc(words(c.c))}">${letter[c.c] || "?"}</i>`).join("");
  strip.setAttribute("aria-label", `CTG class, last 4 h: ${tile.strip.map((c) => words(c.c)).join(", ") || "no analysis yet"}`);
}

function drawPanel(el, pid) {
  const b = beds.get(pid); const c = $("canvas", el); const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  if (!b) return;
  const t1 = b.t0 + b.fhr.length, t0 = t1 - wallS;
  drawCtg(g, { left: 2, top: 2, width: c.width - 4, fhrH: 112, gap: 6, ucH: 46 }, b, t0, t1, { small: true });
  el.dataset.lastSecond = String(t1);
  let i = b.fhr.length - 1;  // the newest heart rate on the strip (the analysis' value is up to 15 s old)
  while (i >= 0 && b.fhr.length - i <= 10 && b.fhr[i] == null) i -= 1;
  const now = i >= 0 && b.fhr.length - i <= 10 ? b.fhr[i] : null;
  const shown = $(".fhr-now b", el);
  if (shown) shown.textContent = now == null ? "—" : String(now);
}

// The ward from a 'ward' message: what changed since the last one (or everything, with 'full').
function applyWard(msg) {
  if (msg.full) wardState.tiles.clear();
  wardState.head = msg.head;
  for (const [pid, tile] of Object.entries(msg.tiles)) wardState.tiles.set(pid, tile);
  for (const pid of msg.removed || []) wardState.tiles.delete(pid);
  if (msg.order) wardState.order = msg.order;
  const patients = wardState.order.map((pid) => wardState.tiles.get(pid)).filter(Boolean);
  renderWard({ ...wardState.head, patients }, msg.full ? null : new Set(Object.keys(msg.tiles)));
}

function renderWard(ward, changed = null) {
  $("#ward").textContent = ward.ward_id;
  wardOutages = ward.outages || [];
  renderBanner();
  const wall = $("#wall");
  // a ward of more than 9 beds gets the dense layout: 16 beds fit one 1920x1080 screen with open alarms
  const dense = ward.patients.length > DENSE_FROM_BEDS;
  wall.classList.toggle("dense", dense);
  document.body.classList.toggle("dense-wall", dense);
  const wanted = new Set(ward.patients.map((t) => `bed-${t.patient_id}`));
  for (const el of [...wall.children]) if (!wanted.has(el.id)) el.remove();
  ward.patients.forEach((tile, i) => {
    const known = document.getElementById(`bed-${tile.patient_id}`);
    const el = panel(tile);
    if (!known || !changed || changed.has(tile.patient_id)) fillPanel(el, tile);
    if (wall.children[i] !== el) wall.insertBefore(el, wall.children[i] || null);
  });
  const alarms = sortAlarms(ward.patients.flatMap((p) => p.alerts));
  $("#alert-count").textContent = alarms.length;
  renderAlerts($("#alerts tbody"), alarms);
  Sound.update(alarms, ward.audio_paused);
  $("#resume-audio").hidden = !ward.audio_paused;
}

function timed(fn) {
  const started = performance.now();
  fn();
  stats.renders.push(performance.now() - started);
  if (stats.renders.length > 5000) stats.renders.shift();
}

function onSamples(msg) {
  for (const [pid, s] of Object.entries(msg.beds)) append(pid, s);
  for (const pid of Object.keys(msg.beds)) {
    const el = document.getElementById(`bed-${pid}`);
    if (el && visible.has(pid)) drawPanel(el, pid);
    else dirty.add(pid);
  }
}

let events = null;
function connect() {
  if (events) events.close();
  events = new EventSource("/api/wall/events");
  const count = (e) => {
    stats.messages += 1; stats.bytes += e.data.length; lastMessageAt = Date.now();
    if (stationSilent) { stationSilent = false; renderBanner(); }
    $("#live").textContent = `live ${clock(Date.now() / 1000)}`;
  };
  events.addEventListener("history", (e) => {
    count(e); const msg = JSON.parse(e.data);
    wallS = msg.wall_s; beds.clear();
    timed(() => {
      for (const [pid, s] of Object.entries(msg.beds)) append(pid, s);
      for (const el of $("#wall").children) (visible.has(el.dataset.patient) ? drawPanel(el, el.dataset.patient) : dirty.add(el.dataset.patient));
    });
  });
  events.addEventListener("samples", (e) => { count(e); timed(() => onSamples(JSON.parse(e.data))); });
  events.addEventListener("ward", (e) => { count(e); timed(() => applyWard(JSON.parse(e.data))); });
  events.addEventListener("alive", (e) => count(e));  // the station is there even when nothing changed
  events.addEventListener("signed_out", () => { events.close(); location.href = "/login"; });  // session ended
  events.onerror = () => { $("#live").textContent = "reconnecting…"; };
}

async function main() {
  me = await api("/api/me");
  $("#who").textContent = `${me.user} (${me.role})`;
  try { renderWard(await api("/api/ward")); }
  catch (err) { showOutages($("#interrupted"), [], [`The station cannot show the ward: ${err.message}`]); }
  connect();
  setInterval(() => {  // the station is silent (or the stream closed): say so on the screen, and reconnect
    const silent = Date.now() - lastMessageAt > STATION_SILENT_MS;
    if (silent !== stationSilent) { stationSilent = silent; renderBanner(); }
    if (silent && (!events || events.readyState === EventSource.CLOSED)) connect();
  }, 1000);
  $("#sound").onclick = () => (Sound.enabled ? Sound.disable() : Sound.enable());
  Sound.show();
  $("#pause-form").onsubmit = async (e) => {
    e.preventDefault();
    try { await post("/api/ward/audio-pause", { minutes: +$("#pause-minutes").value }); $("#action-note").textContent = ""; }
    catch (err) { $("#action-note").textContent = `pause failed: ${err.message}`; }
  };
  $("#resume-audio").onclick = () => api("/api/ward/audio-pause", { method: "DELETE", headers: { "X-CSRF-Token": me.csrf } });
  $("#audio-log-link").onclick = async (e) => {
    e.preventDefault();
    const log = await api("/api/ward/audio-log");
    const el = $("#audio-log"); el.hidden = false;
    el.innerHTML = log.map((x) => `<li>${clock(+x.at)} ${esc(words(x.event))} by ${esc(x.by)}${x.minutes ? ` for ${esc(x.minutes)} min` : ""}</li>`).join("") || "<li>no pause yet</li>";
  };
  setInterval(() => Sound.update(Sound.alarms || [], Sound.pause), 5000);  // a pause that ran out lets alarms sound again
}
main();
