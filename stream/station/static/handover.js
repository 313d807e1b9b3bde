// The printable hand-over of one bed (/beds/<bed>/handover): the class history as stretches, every alarm
// of the period with who acknowledged, escalated and resolved it, and the vitals in MEOWS bands.
"use strict";
const bedId = decodeURIComponent(location.pathname.split("/")[2] || "");
const stamp = (t) => (t ? new Date(t * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "—");

function stretches(points) {  // consecutive points of one class, as one row
  const out = [];
  for (const p of points) {
    const last = out[out.length - 1];
    if (last && last.c === p.classification) {
      last.to = p.t; last.baselines.push(p.baseline_bpm); last.vars.push(p.variability_bpm);
      last.decels = Math.max(last.decels, p.decelerations); last.ucs.push(p.contractions_per_10min);
    } else out.push({ c: p.classification, from: p.t - 300, to: p.t, baselines: [p.baseline_bpm], vars: [p.variability_bpm], decels: p.decelerations, ucs: [p.contractions_per_10min] });
  }
  return out;
}

const range = (xs) => {
  const v = xs.filter((x) => x != null);
  if (!v.length) return "—";
  const lo = Math.round(Math.min(...v)), hi = Math.round(Math.max(...v));
  return lo === hi ? `${lo}` : `${lo}–${hi}`;
};

// The "Resolved" column says who resolved an alarm, or that its condition cleared, or that it is still open:
// never the open alarm's status (acknowledged, escalated), which reads as if it were resolved.
function resolvedCell(a) {
  if (a.resolved_by) return `${esc(a.resolved_by)}, ${stamp(a.resolved_at)}: ${esc(a.resolve_reason)}`;
  if (a.status === "resolved") return a.resolved_at ? `condition cleared, ${stamp(a.resolved_at)}` : "condition cleared";
  return `<b>still open</b> (${esc(a.status)})`;
}

async function load() {
  const tile = await api(`/api/beds/${encodeURIComponent(bedId)}`);
  const h = await api(`/api/patients/${encodeURIComponent(tile.patient_id)}/handover?hours=${$("#hours").value}`);
  $("#title").textContent = `Hand-over — ${h.bed_id}, ${h.patient_id}`;
  $("#period").textContent = `${stamp(h.since)} to ${stamp(h.until)} (${$("#hours").value} h)`;
  const s = h.status;
  $("#now").innerHTML = `<p><b>CTG now:</b> ${esc(words(s.classification || "not yet classified"))}, baseline ${s.baseline_bpm ? Math.round(s.baseline_bpm) : "—"} bpm,
    signal ${esc(s.quality || "—")}; ${s.vitals_ts == null ? "no vitals" : `MEOWS ${s.meows_red ?? 0} red / ${s.meows_yellow ?? 0} yellow`}.</p>
    <ul>${(s.reasons || []).map((r) => `<li>${esc(r)}</li>`).join("")}</ul>`;
  $("#classes tbody").innerHTML = stretches(h.trend).map((r) => `<tr class="class-${esc(r.c)}"><td>${stamp(r.from)}</td><td>${stamp(r.to)}</td>
    <td><b>${esc(words(r.c))}</b></td><td>${range(r.baselines)}</td><td>${range(r.vars)}</td><td>${r.decels}</td><td>${range(r.ucs)}</td></tr>`).join("")
    || `<tr><td colspan="7" class="muted">no analysis in this period</td></tr>`;
  $("#alarms tbody").innerHTML = h.alerts.map((a) => `<tr><td>${stamp(a.raised_at)}</td><td>${esc(words(a.kind))}</td>
    <td>${esc(a.priority)}</td><td>${esc(a.sentence)}<br><span class="small muted">${esc(a.rule)}</span></td>
    <td>${a.ack_by ? `${esc(a.ack_by)}, ${stamp(a.ack_at)}` : "—"}</td><td>${a.escalated_at ? `${stamp(a.escalated_at)} (${a.escalations}×)` : "—"}</td>
    <td>${resolvedCell(a)}</td></tr>`).join("")
    || `<tr><td colspan="7" class="muted">no alarm in this period</td></tr>`;
  $("#vitals tbody").innerHTML = h.vitals.map((p) => vitalsRow(p, stamp(p.t))).join("") || `<tr><td colspan="7" class="muted">no observations in this period</td></tr>`;
  $("#printed").textContent = `Printed by ${me.user} at ${stamp(Date.now() / 1000)} from ctgwatch. The CTG paper and the notes remain the record.`;
}

async function main() {
  me = await api("/api/me");
  $("#who").textContent = `${me.user} (${me.role})`;
  $("#bed-link").href = `/beds/${encodeURIComponent(bedId)}`;
  $("#hours").onchange = load;
  $("#print").onclick = () => window.print();
  await load();
}
main();
