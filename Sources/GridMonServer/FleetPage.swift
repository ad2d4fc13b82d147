/// The fleet view at `/` on the admin port (issue #14, item 4): one HTML page, no external
/// resource (it works offline and behind any firewall), that polls `/api/v1/fleet` every
/// 2 seconds and draws every node's state, CPU, memory, disk and score sparkline, and the open
/// and recent incidents.
///
/// The page itself holds no data, so it is served without a token; the API it reads needs one
/// when `--admin-tokens-file` is set: open `/#token=TOKEN` once (kept in the tab's
/// sessionStorage, removed from the address bar) or paste it into the form the page shows on
/// a 401. Every value from agents is put in the page as text (`textContent`), never as HTML,
/// and the Content-Security-Policy allows nothing but this page and same-origin requests.
enum FleetPage {
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"

    static let html = #"""
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>GridMon fleet</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 18px;display:flex;gap:18px;align-items:center}
header h1{font-size:17px;margin:0}#status{opacity:.8;font-size:12px}
main{padding:14px 18px}.chips span{display:inline-block;margin-right:8px;padding:2px 9px;border-radius:10px;background:#e4e7ec}
table{border-collapse:collapse;width:100%;background:#fff;margin:10px 0 22px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceef2;white-space:nowrap}th{font-size:12px;color:#5b6472}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.state{font-weight:600;border-radius:4px;padding:1px 6px}
.incident{background:#fde2e1;color:#a3191b}.silent{background:#e6e6e6;color:#555}.learning{background:#e3edfb;color:#1e4f9c}
.healthy{background:#e1f5e7;color:#1b6b35}.drivers{white-space:normal}
#login{display:none;background:#fff;padding:14px;border:1px solid #ddd;max-width:420px}
</style></head>
<body>
<header><h1>GridMon fleet</h1><span id="status">loading…</span></header>
<main>
<form id="login"><p>This server's admin API needs a bearer token.</p>
<input id="token" type="password" size="40" placeholder="admin token"> <button>Show the fleet</button></form>
<div class="chips" id="chips"></div>
<h2>Open incidents</h2><table id="open"><thead><tr><th>node</th><th>tenant</th><th>since</th><th>peak</th><th>flagged</th><th>what drove it</th></tr></thead><tbody></tbody></table>
<h2>Nodes</h2><table id="nodes"><thead><tr><th>node</th><th>tenant</th><th>state</th><th>CPU %</th><th>memory %</th><th>disk %</th><th>score</th><th>score, last 5 min</th><th>seen</th></tr></thead><tbody></tbody></table>
<h2>Recent incidents</h2><table id="recent"><thead><tr><th>node</th><th>tenant</th><th>started</th><th>lasted</th><th>peak</th><th>what drove it</th></tr></thead><tbody></tbody></table>
</main>
<script>
"use strict";
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.get("token")) { sessionStorage.setItem("gridmon_token", hash.get("token")); history.replaceState(null, "", location.pathname + location.search); }
const svgNS = "http://www.w3.org/2000/svg";
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = String(text); return e; }
function fixed(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d); }
function when(ns) { return new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 19); }
function ago(s) { return s < 90 ? Math.round(s) + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago"; }
function spark(trail) {
  const w = 150, h = 26, svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  const y = v => h - 2 - Math.min(v, 2) / 2 * (h - 4), line = document.createElementNS(svgNS, "line");
  line.setAttribute("x1", 0); line.setAttribute("x2", w); line.setAttribute("y1", y(1)); line.setAttribute("y2", y(1));
  line.setAttribute("stroke", "#e0a0a0"); line.setAttribute("stroke-dasharray", "3 3"); svg.appendChild(line);
  let points = [];
  const flush = () => { if (points.length === 1) { const [x, yv] = points[0].split(","); points.push((Number(x) + 2.5).toFixed(1) + "," + yv); }
    if (points.length) { const p = document.createElementNS(svgNS, "polyline"); p.setAttribute("points", points.join(" "));
    p.setAttribute("fill", "none"); p.setAttribute("stroke", "#3465a4"); p.setAttribute("stroke-width", "1.5"); svg.appendChild(p); points = []; } };
  const offset = 60 - trail.length;  // the newest bucket is always at the right edge
  trail.forEach((v, i) => { if (v === null) { flush(); return; } points.push(((offset + i) * (w - 3) / 59).toFixed(1) + "," + y(v).toFixed(1)); });
  flush(); return svg;
}
function row(cells) { const tr = el("tr"); for (const c of cells) { tr.appendChild(c instanceof Node && c.tagName === "TD" ? c : (() => { const td = el("td"); td.appendChild(c instanceof Node ? c : document.createTextNode(String(c))); return td; })()); } return tr; }
function num(v, d) { return el("td", "num", fixed(v, d)); }
function fill(id, rows) { const body = document.querySelector("#" + id + " tbody"); body.replaceChildren(...rows); }
function render(f) {
  const chips = document.getElementById("chips"); chips.replaceChildren(el("span", "", f.total_nodes + " nodes"));
  for (const s of ["incident", "silent", "learning", "healthy"]) if (f.states[s]) chips.appendChild(el("span", "state " + s, f.states[s] + " " + s));
  fill("open", f.open.map(i => row([i.node, i.tenant, when(i.start_ns), fixed(i.peak_score, 2), i.flagged, el("td", "drivers", i.summary)])));
  fill("nodes", f.nodes.map(n => row([n.node, n.tenant, el("span", "state " + n.state, n.state), num(n.cpu, 1), num(n.memory, 1), num(n.disk, 1),
    num(n.score, 2), spark(n.trail), ago(n.last_seen_seconds_ago)])));
  fill("recent", f.recent.map(i => row([i.node, i.tenant, when(i.start_ns), Math.round(i.duration_s || 0) + " s", fixed(i.peak_score, 2), el("td", "drivers", i.summary)])));
  document.getElementById("status").textContent = "updated " + new Date().toLocaleTimeString() + (f.nodes.length < f.total_nodes ? " · showing " + f.nodes.length + " of " + f.total_nodes : "");
}
async function refresh() {
  const token = sessionStorage.getItem("gridmon_token");
  try {
    const r = await fetch("/api/v1/fleet" + location.search, { headers: token ? { Authorization: "Bearer " + token } : {} });
    if (r.status === 401 || r.status === 403) { document.getElementById("login").style.display = "block"; document.getElementById("status").textContent = "token needed (" + r.status + ")"; return; }
    if (!r.ok) throw new Error("HTTP " + r.status);
    document.getElementById("login").style.display = "none";
    render(await r.json());
  } catch (e) { document.getElementById("status").textContent = "cannot reach the server: " + e.message; }
}
document.getElementById("login").addEventListener("submit", e => { e.preventDefault(); sessionStorage.setItem("gridmon_token", document.getElementById("token").value); refresh(); });
refresh(); setInterval(refresh, 2000);
</script>
</body></html>
"""#
}
