// The Atoll status page: reads the admin API with the token kept in this
// tab's sessionStorage, and redraws every 2 seconds.
"use strict";

const refreshMs = 2000;
const maxSites = 50; // sites whose deploys, stats and certificates are read
const maxLag = 10; // entries behind the leader's commit shown as a problem: atoll status's default --max-lag
const key = "atoll-admin-token";
const $ = (id) => document.getElementById(id);
let previous = {}; // site -> {requests, at}: for the request rates

function token() { return sessionStorage.getItem(key) || ""; }

async function api(path) {
  const resp = await fetch(path, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
  if (resp.status === 401 || resp.status === 403) {
    sessionStorage.removeItem(key);
    throw new Error("the admin token was refused: enter it again");
  }
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) { throw new Error(path + ": " + (body.error || resp.status)); }
  return body;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) { td.className = cls; }
  tr.appendChild(td);
  return td;
}

function fill(id, rows, render) {
  const tbody = $(id).tBodies[0];
  tbody.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    render(tr, r);
    tbody.appendChild(tr);
  }
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function drawNodes(st) {
  const down = st.nodes.filter((n) => n.raft_state === "unreachable").length;
  $("summary").textContent = st.nodes.length + " nodes, leader " + (st.leader_id || "none") +
    (down ? ", " + down + " unreachable" : ", all reachable") + "; " + st.sites + " sites";
  fill("nodes", st.nodes, (tr, n) => {
    tr.dataset.node = n.id;
    cell(tr, n.id + (n.id === st.leader_id ? " (leader)" : ""), n.id === st.leader_id ? "leader" : "");
    cell(tr, n.role);
    const unreachable = n.raft_state === "unreachable";
    cell(tr, unreachable ? "unreachable" + (n.last_seen ? " for " + n.last_seen : "") : n.raft_state || "?", unreachable ? "bad state" : "good state");
    cell(tr, n.lag < 0 ? "?" : String(n.lag), n.lag > maxLag ? "bad" : "");
    cell(tr, n.disk_low ? "low: " + n.disk_low : "ok", n.disk_low ? "bad" : "");
    cell(tr, String(n.blobs));
    cell(tr, bytes(n.bytes));
  });
  const r = st.repair;
  $("repair").textContent = r
    ? r.referenced + " blobs referenced, " + r.under_replicated + " under-replicated, " + r.missing + " missing (census " +
      new Date(r.at).toLocaleTimeString() + ", took " + r.took + ")"
    : "no repair census yet";
  $("repair").className = r && (r.under_replicated > 0 || r.missing > 0) ? "bad" : "";
}

async function drawSites() {
  const sites = (await api("/v1/sites")).sites.slice(0, maxSites);
  const now = Date.now();
  const details = await Promise.all(sites.map(async (s) => {
    const p = encodeURIComponent(s.name);
    const [stats, deploys, certs] = await Promise.all([
      api("/v1/sites/" + p + "/stats").catch(() => null),
      api("/v1/sites/" + p + "/deploys").catch(() => ({ deploys: [] })),
      api("/v1/sites/" + p + "/certs").catch(() => ({ certs: [] })),
    ]);
    return { site: s, stats, deploys: deploys.deploys || [], certs: certs.certs || [] };
  }));
  fill("sites", details, (tr, d) => {
    cell(tr, d.site.name);
    cell(tr, d.site.published || "-");
    const req = d.stats ? d.stats.requests : null;
    cell(tr, req === null ? "?" : String(req));
    const prev = previous[d.site.name];
    const rate = prev && req !== null ? (req - prev.requests) / ((now - prev.at) / 1000) : null;
    cell(tr, rate === null ? "-" : rate.toFixed(1));
    if (req !== null) { previous[d.site.name] = { requests: req, at: now }; }
  });
  const deploys = details.flatMap((d) => d.deploys)
    .sort((a, b) => Date.parse(b.created) - Date.parse(a.created)).slice(0, 10);
  fill("deploys", deploys, (tr, d) => {
    cell(tr, d.id);
    cell(tr, d.site);
    cell(tr, d.state, d.state === "failed" ? "bad" : "");
    cell(tr, new Date(d.created).toLocaleString());
  });
  const certs = details.flatMap((d) => d.certs).sort((a, b) => Date.parse(a.not_after) - Date.parse(b.not_after));
  fill("certs", certs, (tr, c) => {
    const days = (Date.parse(c.not_after) - now) / 86400000;
    cell(tr, c.domain);
    cell(tr, c.site);
    cell(tr, new Date(c.not_after).toLocaleDateString() + " (" + Math.floor(days) + " days)", days < 14 ? "bad" : "");
  });
}

async function refresh() {
  if (!token()) { show(false); return; }
  try {
    drawNodes(await api("/v1/status"));
    await drawSites();
    $("error").hidden = true;
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    show(true);
  } catch (err) {
    $("error").textContent = err.message;
    $("error").hidden = false;
    if (!token()) { show(false); }
  }
}

function show(loggedIn) {
  $("login").hidden = loggedIn;
  $("page").hidden = !loggedIn;
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(key, $("token").value.trim());
  $("token").value = "";
  refresh();
});
$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(key);
  show(false);
});

refresh();
setInterval(refresh, refreshMs);
