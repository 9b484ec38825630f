// Hotline operations page: draws the snapshot and keeps it live from /ops/events.
// Every piece of text goes through textContent: transcripts are what callers said.
"use strict";
(function () {
  const STATES = ["on_call", "reserved", "wrap_up", "available", "paused", "offline"];
  const STATE_LABEL = { available: "Available", reserved: "Ringing", on_call: "On call", wrap_up: "Wrap-up",
                        paused: "Paused", offline: "Offline" };
  const STEP_LABEL = { greeting: "Greeting", listening: "Listening", understanding: "Understanding",
                       routing: "Routing", queued: "Waiting", connecting: "Ringing agent",
                       connected: "With agent" };
  const $ = (id) => document.getElementById(id);
  const BASE = location.pathname.replace(/\/?$/, "/"); // "/ops/"

  let snap = null;
  let clockOffset = 0;          // server time - browser time, seconds
  let filter = null;            // agent state shown alone, or null
  let search = "";
  let rulesVersion = null;
  const agentNodes = new Map(); // id -> element
  const callNodes = new Map();  // sid -> element

  // --- small helpers --------------------------------------------------------------
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function now() { return Date.now() / 1000 + clockOffset; }
  function dur(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(r).padStart(2, "0");
  }
  function pct(share) { return share === null || share === undefined ? "–" : (share * 100).toFixed(share < 0.1 && share > 0 ? 1 : 0) + "%"; }
  function clockTime(t) { return t ? new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "–"; }
  function dateTime(t) { return t ? new Date(t * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" }) : "–"; }
  function setText(node, text) { const t = String(text); if (node.textContent !== t) node.textContent = t; }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  // --- today's figures ----------------------------------------------------------------
  function renderKpis(s) {
    const t = s.today, box = $("kpis");
    const tiles = [
      ["Calls today", t.calls, t.answered + " answered"],
      ["Answered within target", pct(t.answered_within_target_share),
        t.answered_measured ? t.answered_within_target + " of " + t.answered_measured + " answered" : "no answered calls yet"],
      ["Abandoned", t.abandoned, pct(t.abandoned_share) + " of calls", t.abandoned > 0 && t.abandoned_share > 0.1],
      ["Average handling", t.average_handle_s === null ? "–" : dur(t.average_handle_s),
        t.average_wait_s === null ? "talk time per call" : "average wait " + dur(t.average_wait_s)],
      ["Routed first try", pct(t.routed_first_utterance_share), t.routed_first_utterance + " calls"],
      ["Re-prompt rate", pct(t.reprompt_rate), t.reprompts + " re-prompts"],
      ["Fallback rate", pct(t.fallback_rate),
        t.fallback + " not understood · " + t.fallback_number + " to a fallback number", t.fallback_rate > 0.1],
      ["Waiting now", s.waiting, longestWait(s), s.waiting > 0],
    ];
    if (box.children.length !== tiles.length) {
      clear(box);
      for (let i = 0; i < tiles.length; i++) {
        const tile = el("div", "kpi");
        tile.append(el("div", "kpi-label"), el("div", "kpi-value"), el("div", "kpi-sub"));
        box.append(tile);
      }
    }
    tiles.forEach(([label, value, sub, alert], i) => {
      const tile = box.children[i];
      tile.classList.toggle("alert", !!alert);
      setText(tile.children[0], label);
      setText(tile.children[1], value);
      setText(tile.children[2], sub);
    });
  }
  function longestWait(s) {
    const longest = Math.max(0, ...s.queues.map((q) => q.longest_wait_s || 0));
    return s.waiting ? "longest " + dur(longest) : "nobody in line";
  }

  // --- queues -----------------------------------------------------------------------
  function renderQueues(s) {
    const body = $("queues").tBodies[0];
    clear(body);
    for (const q of s.queues) {
      const tr = el("tr");
      tr.dataset.queue = q.name;
      if (q.waiting) tr.className = q.over_service_level ? "late" : "busy";
      const name = el("td");
      name.append(el("span", "queue-name", q.name));
      if (!q.open) name.append(el("span", "tag closed", "closed"));
      const waiting = el("td", "num waiting" + (q.waiting ? " strong" : ""), q.waiting);
      if (q.callbacks) waiting.append(el("span", "conf", "(" + q.callbacks + " callback)"));
      tr.append(name, waiting,
        el("td", "num", q.waiting ? dur(q.longest_wait_s) : "–"),
        el("td", "num", q.waiting || !q.agents_available ? dur(q.expected_wait_s) : "none"),
        el("td", "num", q.agents_available + " / " + q.agents_staffed),
        el("td", "num" + (q.over_service_level ? " bad" : ""), q.over_service_level),
        el("td", "num", q.abandoned_today));
      body.append(tr);
    }
    const staffed = s.queues.filter((q) => q.agents_staffed > 0).length;
    setText($("queues-sum"), s.waiting + " waiting · " + staffed + " of " + s.queues.length + " queues staffed");
  }

  // --- calls in progress ------------------------------------------------------------------
  function callRow(sid) {
    const tr = el("tr");
    tr.dataset.sid = sid;
    const time = el("td", "num call-time");
    const line = el("td", "call-line");
    const step = el("td");
    step.append(el("span", "step"));
    const said = el("td");
    said.append(el("div", "said"));
    const cat = el("td", "call-category");
    const where = el("td", "call-where");
    tr.append(time, line, step, said, cat, where);
    return tr;
  }
  function fillCall(tr, c) {
    const [time, line, step, said, cat, where] = tr.children;
    time.dataset.since = c.started_at || "";
    setText(time, c.started_at ? dur(now() - c.started_at) : "–");
    setText(line, c.hotline && c.language && c.language !== c.hotline ? c.hotline + " · " + c.language : c.hotline || c.language || "–");
    const badge = step.firstChild;
    badge.dataset.state = c.state || "";
    setText(badge, STEP_LABEL[c.state] || c.state || "–");
    const text = said.firstChild;
    const final = c.transcript || "";
    const partial = c.partial || "";
    const shown = final || partial;
    text.className = "said" + (final ? "" : partial ? " partial" : " none");
    setText(text, shown || (c.state === "greeting" ? "hearing the greeting" : "nothing heard yet"));
    clear(cat);
    if (c.category) {
      cat.append(document.createTextNode(String(c.category).replace(/_/g, " ")));
      if (c.confidence) cat.append(el("span", "conf", Math.round(c.confidence * 100) + "%"));
    } else {
      cat.append(el("span", "muted", "–"));
    }
    const bits = [c.queue, c.agent].filter(Boolean);
    setText(where, bits.length ? bits.join(" · ") : "–");
  }
  function renderCalls(s) {
    const body = $("calls").tBodies[0];
    const seen = new Set();
    for (const c of s.calls) {
      seen.add(c.sid);
      let tr = callNodes.get(c.sid);
      if (!tr) { tr = callRow(c.sid); callNodes.set(c.sid, tr); }
      fillCall(tr, c);
      body.append(tr); // keeps the server's order (oldest first)
    }
    for (const [sid, tr] of callNodes) if (!seen.has(sid)) { tr.remove(); callNodes.delete(sid); }
    callsSummary(s.calls_total);
  }
  function callsSummary(total) {
    $("calls-empty").hidden = callNodes.size > 0;
    const shown = callNodes.size;
    setText($("calls-sum"), total > shown ? shown + " shown of " + total : shown + (shown === 1 ? " call" : " calls"));
  }
  function applyCall(d) {
    if (!snap) return;
    let c = snap.calls.find((x) => x.sid === d.sid);
    if (d.state === "ended") {
      snap.calls = snap.calls.filter((x) => x.sid !== d.sid);
      const tr = callNodes.get(d.sid);
      if (tr) { tr.remove(); callNodes.delete(d.sid); }
      callsSummary(snap.calls.length);
      return;
    }
    if (!c) { c = { sid: d.sid }; snap.calls.push(c); }
    Object.assign(c, d);
    let tr = callNodes.get(d.sid);
    if (!tr) { tr = callRow(d.sid); callNodes.set(d.sid, tr); $("calls").tBodies[0].append(tr); }
    fillCall(tr, c);
    callsSummary(Math.max(snap.calls_total || 0, snap.calls.length));
  }

  // --- agents --------------------------------------------------------------------------
  function agentTile(a) {
    const node = el("article", "agent");
    node.dataset.id = a.id;
    const top = el("div", "agent-top");
    top.append(el("span", "agent-name"), el("span", "tnum agent-time"));
    const state = el("div", "agent-state");
    state.append(el("span", "agent-state-label"), el("span", "agent-why"));
    node.append(top, state, el("div", "agent-meta"));
    return node;
  }
  function why(a) {
    const reason = (a.reason || "").split(";")[0];
    if (a.state === "paused") return [reason || "paused", a.until ? "back in " + dur(a.until - now()) : ""].filter(Boolean).join(" · ");
    if (a.state === "wrap_up") return a.until ? "free in " + dur(a.until - now()) : "";
    if (a.state === "on_call" || a.state === "reserved") return a.call ? "call …" + String(a.call).slice(-6) : "";
    return reason;
  }
  function fillAgent(node, a) {
    node.dataset.state = a.state;
    node.classList.toggle("offline", a.state === "offline");
    node.title = a.name + " (" + a.id + ")" + (a.reason ? ": " + a.reason : "");
    const [top, state, meta] = node.children;
    setText(top.children[0], a.name);
    top.children[1].dataset.since = a.since || "";
    setText(top.children[1], a.since ? dur(now() - a.since) : "");
    setText(state.children[0], STATE_LABEL[a.state] || a.state);
    const text = why(a);
    setText(state.children[1], text ? " · " + text : "");
    state.children[1].className = "agent-why" + (a.state === "paused" || (a.state === "offline" && a.reason) ? " warn" : "");
    setText(meta, a.calls_today + (a.calls_today === 1 ? " call" : " calls") + " · talk " + dur(a.talk_today_s) +
      (a.misses ? " · " + a.misses + " missed" : ""));
    node.hidden = !visible(a);
  }
  function visible(a) {
    if (filter && a.state !== filter) return false;
    if (search && !(a.name + " " + a.id).toLowerCase().includes(search)) return false;
    return true;
  }
  function renderAgents(s) {
    const box = $("agents");
    const seen = new Set();
    let index = 0;
    for (const a of s.agents) {
      seen.add(a.id);
      let node = agentNodes.get(a.id);
      if (!node) { node = agentTile(a); agentNodes.set(a.id, node); }
      fillAgent(node, a);
      if (box.children[index] !== node) box.insertBefore(node, box.children[index] || null);
      index++;
    }
    for (const [id, node] of agentNodes) if (!seen.has(id)) { node.remove(); agentNodes.delete(id); }
    renderChips(s.agent_counts);
  }
  function renderChips(counts) {
    const box = $("agent-chips");
    if (!box.children.length) {
      for (const st of STATES) {
        const chip = el("button", "chip");
        chip.type = "button";
        chip.dataset.filter = st;
        const sw = el("span", "swatch");
        sw.dataset.state = st;
        chip.append(sw, el("span"), el("span", "strong"));
        chip.addEventListener("click", () => { filter = filter === st ? null : st; refilter(); });
        box.append(chip);
      }
    }
    for (const chip of box.children) {
      const st = chip.dataset.filter;
      setText(chip.children[1], STATE_LABEL[st]);
      setText(chip.children[2], counts[st] || 0);
      chip.setAttribute("aria-pressed", filter === st ? "true" : "false");
    }
  }
  function refilter() {
    if (!snap) return;
    for (const a of snap.agents) { const n = agentNodes.get(a.id); if (n) n.hidden = !visible(a); }
    renderChips(snap.agent_counts);
  }
  function applyAgent(d) {
    if (!snap) return;
    const a = snap.agents.find((x) => x.id === d.id);
    if (!a) return;
    if (a.state !== d.state) {
      snap.agent_counts[a.state] = Math.max(0, (snap.agent_counts[a.state] || 0) - 1);
      snap.agent_counts[d.state] = (snap.agent_counts[d.state] || 0) + 1;
    }
    Object.assign(a, { state: d.state, since: d.since, reason: d.reason, call: d.call, until: null });
    const node = agentNodes.get(a.id);
    if (node) fillAgent(node, a);
    renderChips(snap.agent_counts);
  }

  // --- rules ----------------------------------------------------------------------------
  function renderRules(s) {
    const r = s.rules;
    const facts = $("rules-facts");
    clear(facts);
    const rows = [
      ["Version", r.in_force || r.version || "–"],
      ["Loaded", r.loaded_at ? dateTime(r.loaded_at) + " (" + dur(now() - r.loaded_at) + " ago)" : "–"],
      ["Loaded by", r.loaded_by || "–"],
      ["Rules file", r.rules_file || "–"],
      ["Roster file", r.agents_file || "–"],
      ["Agents on roster", r.agents_on_roster],
      ["Time zone", r.timezone || "–"],
    ];
    for (const [k, v] of rows) facts.append(el("dt", "", k), el("dd", "", v));
    const refused = !!r.refused;
    $("rules-refused").hidden = !refused;
    if (refused) {
      setText($("rules-refused-text"), r.refused);
      setText($("rules-refused-at"), r.refused_at ? "at " + dateTime(r.refused_at) + " · the version above stays in force" : "");
    }
    setText($("rules-sum"), refused ? "last edit refused" : "all edits accepted");
    const body = $("rules-queues").tBodies[0];
    clear(body);
    for (const q of r.queues) {
      const skills = Object.entries(q.skills).map(([k, v]) => k + " ≥ " + v).join(", ");
      body.append(rowOf([q.name, q.strategy.replace(/_/g, " "), skills || "–", q.hours, dur(q.service_level_s),
        dur(q.wrap_up_s), q.overflow || "–", q.max_wait_s ? dur(q.max_wait_s) + " then " + q.after_max_wait : "–"], [4, 5]));
    }
    const cats = $("rules-categories");
    clear(cats);
    cats.append(el("span", "muted", "Categories → queue: "));
    for (const c of r.categories) {
      cats.append(el("span", "tag", c.name.replace(/_/g, " ") + " → " + c.queue + (c.priority ? " · p" + c.priority : "") +
        (c.promise_s ? " · within " + dur(c.promise_s) : "")));
    }
    if (r.in_force && r.in_force !== rulesVersion) {
      rulesVersion = r.in_force;
      if ($("rules-text").open) loadRulesText();
    }
  }
  function rowOf(cells, numeric) {
    const tr = el("tr");
    cells.forEach((v, i) => tr.append(el("td", numeric.includes(i) ? "num" : "", v)));
    return tr;
  }
  function loadRulesText() {
    fetch(BASE + "rules.json", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((d) => { setText($("rules-yaml"), d.rules_yaml); setText($("agents-yaml"), d.agents_yaml); })
      .catch((e) => setText($("rules-yaml"), "could not load the files (" + e + ")"));
  }

  // --- the whole snapshot ------------------------------------------------------------------
  function render(s) {
    snap = s;
    clockOffset = s.now - Date.now() / 1000;
    renderKpis(s);
    renderQueues(s);
    renderCalls(s);
    renderAgents(s);
    renderRules(s);
    const problems = Object.entries(s.problems || {});
    $("problems").hidden = !problems.length;
    setText($("problems"), problems.map(([k, v]) => k + ": " + v).join(" · "));
    setText($("updated"), "Updated " + clockTime(s.now) + " · " + s.day);
  }
  function tick() {
    if (!snap) return;
    const t = now();
    for (const node of document.querySelectorAll("[data-since]")) {
      const since = parseFloat(node.dataset.since);
      if (since) setText(node, dur(t - since));
    }
  }

  // --- staying live ------------------------------------------------------------------------
  function status(mode, text) { $("status").dataset.mode = mode; setText($("status-text"), text); }
  let pollTimer = null;
  function poll() {
    fetch(BASE + "snapshot.json", { credentials: "same-origin" })
      .then((r) => {
        if (r.status === 401) { location.reload(); return null; }
        return r.ok ? r.json() : Promise.reject(r.status);
      })
      .then((s) => { if (s) { render(s); status("polling", "Live (polling)"); } })
      .catch(() => status("lost", "Connection lost; retrying"));
  }
  function connect() {
    const source = new EventSource(BASE + "events");
    source.addEventListener("open", () => {
      status("live", "Live");
      if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    });
    source.addEventListener("snapshot", (e) => { render(JSON.parse(e.data)); status("live", "Live"); });
    source.addEventListener("delta", (e) => {
      for (const d of JSON.parse(e.data)) {
        if (d.type === "call") applyCall(d);
        else if (d.type === "agent") applyAgent(d);
      }
    });
    source.addEventListener("problem", (e) => {
      $("problems").hidden = false;
      setText($("problems"), JSON.parse(e.data).error);
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (over the stream cap, or signed out): poll, and try the stream again later.
        status("polling", "Live (polling)");
        if (!pollTimer) pollTimer = setInterval(poll, 5000);
        poll();
        setTimeout(connect, 30000);
      } else {
        status("lost", "Reconnecting…");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("agent-search").addEventListener("input", (e) => { search = e.target.value.trim().toLowerCase(); refilter(); });
    $("rules-text").addEventListener("toggle", (e) => { if (e.target.open) loadRulesText(); });
    const initial = $("initial-snapshot");
    if (initial && initial.textContent.trim()) render(JSON.parse(initial.textContent));
    setInterval(tick, 1000);
    connect();
  });
})();
