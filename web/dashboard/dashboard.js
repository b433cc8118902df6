// The dashboard of `schakel monitor`: one snapshot a second arrives on
// /events (server-sent events); rates are the difference between
// snapshots. Every figure is a count by organisation, type, service or
// rule: the page never receives anything about a child.
"use strict";
(function () {
  const WINDOW = 300; // seconds of history kept for the plots
  const history = []; // {t, types: {type: total}, edges: {key: total}}
  let plot = null, plotTypes = "", updates = 0, firstHead = null;

  const $ = (id) => document.getElementById(id);
  const text = (id, v) => { $(id).textContent = v; };
  const fmtBytes = (n) => {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + u[i];
  };
  const fmtAge = (s) => s < 120 ? s.toFixed(0) + " s" : s < 7200 ? (s / 60).toFixed(0) + " min" : (s / 3600).toFixed(1) + " h";
  const el = (tag, attrs, content) => {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (content !== undefined) e.textContent = content;
    return e;
  };
  const row = (cells) => {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c.v;
      if (c.cls) td.className = c.cls;
      tr.appendChild(td);
    }
    return tr;
  };
  const fill = (id, rows) => { $(id).replaceChildren(...rows); };

  // rate per second of a total over the last `secs` of history
  function rate(get, secs) {
    if (history.length < 2) return 0;
    const last = history[history.length - 1];
    let i = history.length - 2;
    while (i > 0 && last.t - history[i].t < secs) i--;
    const dt = last.t - history[i].t;
    return dt > 0 ? Math.max(0, (get(last) || 0) - (get(history[i]) || 0)) / dt : 0;
  }

  function broker(s) {
    const b = s.broker;
    text("broker-up", b.up ? "answers" : "does not answer");
    $("broker-up").className = b.up ? "" : "red";
    text("records", b.records.toLocaleString("en"));
    text("log-bytes", fmtBytes(b.log_bytes));
    text("map-use", b.map_bytes ? (100 * b.log_bytes / b.map_bytes).toFixed(1) + " % of " + fmtBytes(b.map_bytes) : "?");
    text("checkpoint-age", b.checkpoint_age_seconds === undefined ? "none yet" : fmtAge(b.checkpoint_age_seconds) + " ago");
    text("alarms", b.alarms);
    text("commits", b.commits === undefined ? "only for the node's operator key" :
      b.commits.toLocaleString("en") + " (mean " + b.commit_mean_ms.toFixed(2) + " ms, " +
      b.group_mean_events.toFixed(1) + " events each)");
    text("active-orgs", b.active_orgs === undefined ? "?" : b.active_orgs);
    text("since", new Date(s.since_ms).toISOString().replace("T", " ").slice(0, 19) + " UTC");
    text("rate", rate((h) => h.total, 10).toFixed(1));
    if (firstHead === null) firstHead = b.records;
    text("records-first", firstHead);
    const h = $("health");
    h.textContent = s.health.ok ? "healthy" : "unhealthy";
    h.className = "badge " + (s.health.ok ? "ok" : "bad");
    text("reasons", s.health.reasons.join("; "));
  }

  function flow(s) {
    const svg = $("flow");
    const orgs = s.orgs.map((o) => o.id);
    for (const e of s.edges) for (const id of [e.a, e.b]) if (!orgs.includes(id)) orgs.push(id);
    for (const id in s.published) if (!orgs.includes(id)) orgs.push(id);
    const W = 900, H = 520, cx = W / 2, cy = H / 2, r = Math.min(cx, cy) - 60;
    const pos = {};
    orgs.forEach((id, i) => {
      const a = (2 * Math.PI * i) / Math.max(orgs.length, 1) - Math.PI / 2;
      pos[id] = [cx + r * Math.cos(a), cy + r * Math.sin(a)];
    });
    const kids = [];
    // what each organisation puts on the log: an edge to the log in the middle
    pos["log"] = [cx, cy];
    for (const id in s.published) {
      if (!pos[id]) continue;
      const rps = rate((h) => h.published[id], 10);
      const [x1, y1] = pos[id];
      const g = el("g", { class: "edge pub" });
      g.appendChild(el("line", { x1, y1, x2: cx, y2: cy, "stroke-width": (1 + Math.min(8, Math.sqrt(rps) * 2)).toFixed(1) }));
      g.appendChild(el("text", { x: ((x1 + cx) / 2).toFixed(0), y: ((y1 + cy) / 2).toFixed(0) }, rps > 0 ? rps.toFixed(1) + "/s" : ""));
      g.appendChild(el("title", {}, id + " published " + s.published[id] + " events on the log"));
      kids.push(g);
    }
    for (const e of s.edges) {
      const key = e.a + ">" + e.b;
      const rps = rate((h) => h.edges[key], 10);
      const [x1, y1] = pos[e.a], [x2, y2] = pos[e.b];
      const g = el("g", { class: "edge" });
      g.appendChild(el("line", { x1, y1, x2, y2, "stroke-width": (1 + Math.min(8, Math.sqrt(rps) * 2)).toFixed(1) }));
      g.appendChild(el("text", { x: (x1 * 0.4 + x2 * 0.6).toFixed(0), y: (y1 * 0.4 + y2 * 0.6).toFixed(0) },
        rps > 0 ? rps.toFixed(1) + "/s" : ""));
      g.appendChild(el("title", {}, e.a + " to " + e.b + ": " + e.n + " on the log"));
      kids.push(g);
    }
    const kinds = {};
    for (const o of s.orgs) kinds[o.id] = o.kind;
    for (const id of orgs) {
      const [x, y] = pos[id];
      const g = el("g", { class: "node" + (kinds[id] === "service" || !kinds[id] ? " svc" : "") });
      g.appendChild(el("circle", { cx: x, cy: y, r: 7 }));
      g.appendChild(el("text", { x: x + 10, y: y + 4 }, id));
      kids.push(g);
    }
    const hub = el("g", { class: "node hub" });
    hub.appendChild(el("circle", { cx, cy, r: 16 }));
    hub.appendChild(el("text", { x: cx - 9, y: cy + 4 }, "log"));
    kids.push(hub);
    svg.replaceChildren(...kids);
  }

  function typesPlot() {
    const types = new Set();
    for (const h of history) for (const k in h.types) types.add(k);
    const names = [...types].sort();
    const xs = [], ys = names.map(() => []);
    for (let i = 1; i < history.length; i++) {
      const a = history[i - 1], b = history[i], dt = b.t - a.t || 1;
      xs.push(b.t);
      names.forEach((n, j) => ys[j].push(Math.max(0, ((b.types[n] || 0) - (a.types[n] || 0)) / dt)));
    }
    const data = [xs, ...ys];
    const key = names.join(",");
    if (!plot || key !== plotTypes) {
      if (plot) plot.destroy();
      const colours = ["#1d3557", "#e63946", "#2a9d8f", "#f4a261", "#6a4c93", "#457b9d", "#8ab17d", "#e76f51"];
      const width = Math.max(400, $("types-plot").clientWidth || 860);
      plot = new uPlot({
        width, height: 220,
        series: [{}, ...names.map((n, j) => ({ label: n, stroke: colours[j % colours.length], width: 2 }))],
        axes: [{}, { label: "events/s" }],
        scales: { x: { time: true } },
      }, data, $("types-plot"));
      plotTypes = key;
    } else {
      plot.setData(data);
    }
  }

  function tables(s) {
    const svc = [];
    for (const name in s.services) {
      const v = s.services[name];
      svc.push(row([{ v: name }, { v: v.lag, cls: "n" + (v.lag > 10000 ? " red" : "") },
        { v: fmtAge(v.oldest_unread_seconds), cls: "n" }, { v: v.alarms, cls: "n" + (v.alarms ? " red" : "") }]));
    }
    fill("services", svc);
    fill("streams", s.orgs.filter((o) => o.kind !== "service" && o.kind !== "admin").map((o) =>
      row([{ v: o.id }, { v: (o.stream_lag_capped ? "≥ " : "") + o.stream_lag, cls: "n" + (o.stream_lag > 1000 ? " red" : "") }])));
    const dec = [];
    for (const [what, m] of [["held", s.held], ["denied", s.denied], ["rejected", s.broker.rejected]])
      for (const code in m || {}) dec.push(row([{ v: what }, { v: code }, { v: m[code], cls: "n" }]));
    // a service's decision the broker refused for good is not on the log: an alarm
    for (const name in s.services)
      for (const code in s.services[name].refused || {})
        dec.push(row([{ v: "refused (" + name + ")" }, { v: code }, { v: s.services[name].refused[code], cls: "n red" }]));
    fill("decisions", dec);
    text("decisions-note", (s.held ? "" : "Held and denied need the node's master key (not readable here). ") +
      (s.broker.rejected ? "" : "Rejected by the broker needs the node's operator key (DIR/keys/broker.key). ") +
      "Refused (service): decisions the broker refused for good, since the service's state was made. " +
      "Adapters' dead letters: their status in /metrics and schakel top.");
    fill("loops", s.orgs.filter((o) => o.loops_open).map((o) =>
      row([{ v: o.id }, { v: o.loops_open, cls: "n" }, { v: o.loops_overdue, cls: "n" + (o.loops_overdue ? " red" : "") },
        { v: (s.escalations || {})[o.id] || 0, cls: "n" }])));
  }

  function update(s) {
    const edges = {};
    for (const e of s.edges) edges[e.a + ">" + e.b] = e.n;
    let total = 0;
    for (const k in s.types) total += s.types[k];
    // while the monitor reads the log before its start the totals jump: no rates from them
    if (s.caught_up) history.push({ t: s.at_ms / 1000, types: s.types, edges, published: s.published, total });
    else history.length = 0;
    while (history.length > WINDOW) history.shift();
    text("catchup", s.caught_up ? "" : " (still reading the log: totals and rates follow)");
    broker(s);
    flow(s);
    typesPlot();
    tables(s);
    updates++;
    text("updates", updates);
  }

  function connect() {
    const source = new EventSource("/events");
    source.addEventListener("snapshot", (ev) => {
      text("live", "live");
      update(JSON.parse(ev.data));
    });
    source.addEventListener("error", () => { text("live", "reconnecting"); });
  }
  // after the page has loaded: an open stream is not part of loading it
  if (document.readyState === "complete") connect();
  else window.addEventListener("load", () => setTimeout(connect, 0));
})();
