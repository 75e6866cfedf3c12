// The run page: graph (from agent.asl.json), timeline, conversation, files, preview, tokens and
// cost, kept live by the run's server-sent events. Model output is only ever set as text.
"use strict";

(() => {
  const { el, api, seconds, dollars, count, statusBadge, foldable, pretty } = pixie;
  const SVG = "http://www.w3.org/2000/svg";
  const runId = decodeURIComponent(window.location.pathname.split("/").pop());
  const GRAPH_PAD = 48;  // room on the left for loops back up

  // --- the timeline model, built from Step Functions history events -------------------------
  const model = {
    startedAt: null,   // ms
    endedAt: null,
    steps: [],         // {name, label, type, enteredAt, exitedAt, input, output, attempts: [{error, cause}], scheduled, depth}
    open: new Map(),   // state name -> its step still running
    visits: new Map(), // state name -> times entered
    depth: 0,
    failed: new Set(),
  };

  function details(event) {
    for (const [key, value] of Object.entries(event)) {
      if (key.endsWith("EventDetails") && value && typeof value === "object") return value;
    }
    return {};
  }

  function parse(text) {
    try { return JSON.parse(text); } catch (_) { return null; }
  }

  function stepLabel(name, input) {
    const value = parse(input) || {};
    if (name === "AgentTurn" && typeof value.iteration === "number") return `AgentTurn · turn ${value.iteration + 1}`;
    if (name === "RunTool" && value.name !== undefined) return `RunTool · ${value.name}`;
    return name;
  }

  let lastTaskStep = null;

  function onHistory(event) {
    const type = event.type || "";
    const info = details(event);
    const at = Date.parse(event.timestamp);
    if (type === "ExecutionStarted") model.startedAt = at;
    if (model.startedAt === null && !Number.isNaN(at)) model.startedAt = at;
    if (type.endsWith("StateEntered")) {
      const name = info.name;
      const step = {
        name, label: stepLabel(name, info.input), type: type.replace("StateEntered", ""),
        enteredAt: at, exitedAt: null, input: info.input, output: null, attempts: [], scheduled: 0,
        depth: model.depth, toolCallId: name === "RunTool" ? (parse(info.input) || {}).toolCallId : undefined,
      };
      model.steps.push(step);
      model.open.set(name, step);
      model.visits.set(name, (model.visits.get(name) || 0) + 1);
      if (type === "MapStateEntered") model.depth += 1;
      if (type === "TaskStateEntered") lastTaskStep = step;
      if (name === "AgentTurn") clearLive();
    } else if (type.endsWith("StateExited")) {
      const step = model.open.get(info.name);
      if (step) {
        step.exitedAt = at;
        step.output = info.output;
        model.open.delete(info.name);
      }
      if (type === "MapStateExited") model.depth = Math.max(0, model.depth - 1);
      if (["AgentTurn", "RunTool", "CheckResult", "GetSandboxUrl", "CreateSandbox", "CleanupSandbox", "AwaitApproval"].includes(info.name)) scheduleRecord();
    } else if (type === "TaskSubmitted") {
      scheduleRecord();  // a wait for approval began: its calls are in the record now
    } else if (type === "TaskScheduled" && lastTaskStep) {
      lastTaskStep.scheduled += 1;
    } else if ((type === "TaskFailed" || type === "TaskTimedOut" || type === "LambdaFunctionFailed") && lastTaskStep) {
      lastTaskStep.attempts.push({ error: info.error, cause: info.cause });
      model.failed.add(lastTaskStep.name);
    } else if (type.startsWith("Execution") && type !== "ExecutionStarted") {
      model.endedAt = at;
      for (const step of model.open.values()) if (step.exitedAt === null) step.exitedAt = at;
      model.open.clear();
      scheduleRecord();
    }
    scheduleDraw();
  }

  // --- graph ----------------------------------------------------------------------------------
  const graphNodes = new Map();  // state name -> {group, badge}

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function edgePath(from, to, back) {
    const fx = from.x + GRAPH_PAD, tx = to.x + GRAPH_PAD;
    if (back) {
      const sy = from.y + from.h / 2, ty = to.y + to.h / 2;
      const out = Math.min(fx, tx) - 40;
      return { d: `M ${fx} ${sy} C ${out} ${sy}, ${out} ${ty}, ${tx} ${ty}`, mid: [out + 10, (sy + ty) / 2] };
    }
    const sx = fx + from.w / 2, sy = from.y + from.h, ex = tx + to.w / 2, ey = to.y;
    const bend = Math.max(20, (ey - sy) / 2);
    // Labels sit near the target, where edges leaving the same state have spread apart.
    return { d: `M ${sx} ${sy} C ${sx} ${sy + bend}, ${ex} ${ey - bend}, ${ex} ${ey}`, mid: [sx + (ex - sx) * 0.8, sy + (ey - sy) * 0.72] };
  }

  function drawGraph(graph) {
    const byId = new Map(graph.nodes.map((n) => [n.id, n]));
    const root = svg("svg", { viewBox: `0 0 ${graph.width + GRAPH_PAD} ${graph.height}`, width: graph.width + GRAPH_PAD, role: "img", "aria-label": "State machine graph" });
    const defs = svg("defs");
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }));
    defs.append(marker);
    root.append(defs);
    for (const edge of graph.edges) {
      const from = byId.get(edge.from), to = byId.get(edge.to);
      if (!from || !to || from.parent || to.parent) continue;
      const { d, mid } = edgePath(from, to, edge.back);
      root.append(svg("path", { d, class: `edge edge-${edge.kind}`, "marker-end": "url(#arrow)" }));
      if (edge.label && edge.kind !== "catch") root.append(svg("text", { x: mid[0] + 4, y: mid[1], class: "edge-label" }, edge.label));
    }
    for (const node of graph.nodes) {
      const group = svg("g", { class: `node node-${String(node.type).toLowerCase()}`, "data-state": node.id });
      const title = svg("title", {}, node.comment ? `${node.id}: ${node.comment}` : node.id);
      group.append(title, svg("rect", { x: node.x + GRAPH_PAD, y: node.y, width: node.w, height: node.h, rx: node.type === "Choice" ? 16 : 6 }));
      const labelY = node.y + (node.parent || !graph.nodes.some((n) => n.parent === node.id) ? node.h / 2 + 4 : 22);
      group.append(svg("text", { x: node.x + GRAPH_PAD + 10, y: labelY, class: "node-label" }, node.id));
      const badge = svg("text", { x: node.x + GRAPH_PAD + node.w - 8, y: labelY, class: "visits", "text-anchor": "end" }, "");
      group.append(badge);
      group.addEventListener("click", () => {
        const step = [...model.steps].reverse().find((s) => s.name === node.id);
        if (step) showStep(step);
      });
      root.append(group);
      graphNodes.set(node.id, { group, badge });
    }
    document.getElementById("graph").replaceChildren(root);
  }

  function paintGraph() {
    for (const [name, { group, badge }] of graphNodes) {
      const visits = model.visits.get(name) || 0;
      group.classList.toggle("visited", visits > 0);
      group.classList.toggle("active", model.open.has(name));
      group.classList.toggle("failed", model.failed.has(name));
      badge.textContent = visits ? `×${visits}` : "";
      group.dataset.visits = String(visits);
    }
  }

  // --- timeline -------------------------------------------------------------------------------
  function drawTimeline() {
    const box = document.getElementById("timeline");
    if (!model.startedAt) return;
    const end = model.endedAt || Date.now();
    const total = Math.max(end - model.startedAt, 1);
    const rows = model.steps.map((step, index) => {
      const offset = (step.enteredAt - model.startedAt) / 1000;
      const stop = step.exitedAt || end;
      const duration = (stop - step.enteredAt) / 1000;
      const left = ((step.enteredAt - model.startedAt) / total) * 100;
      const width = Math.max(((stop - step.enteredAt) / total) * 100, 0.4);
      const retries = step.scheduled > 1 ? `${step.scheduled} attempts` : "";
      const classes = ["step", step.exitedAt ? "" : "running", step.attempts.length ? "had-errors" : ""].join(" ");
      return el("div", { class: classes, role: "button", tabindex: 0, dataset: { state: step.name, index: String(index) },
                          onclick: () => showStep(step), onkeydown: (e) => { if (e.key === "Enter") showStep(step); } },
        el("span", { class: "step-name", style: { paddingLeft: `${step.depth * 14}px` }, text: step.label }),
        el("span", { class: "step-bar-track" }, el("span", { class: "step-bar", style: { left: `${left}%`, width: `${width}%` } })),
        el("span", { class: "step-offset", text: `+${offset.toFixed(2)} s` }),
        el("span", { class: "step-duration", text: step.exitedAt ? seconds(duration) : "running" }),
        el("span", { class: "step-attempts", text: retries }),
        touchedFiles(step),
        step.attempts.length ? el("div", { class: "step-errors" }, step.attempts.map((a, i) =>
          el("div", { class: "error small", text: `attempt ${i + 1}: ${a.error || "error"}${a.cause ? ": " + String(a.cause).slice(0, 200) : ""}` }))) : null);
    });
    box.replaceChildren(...rows);
  }

  // What each tool call did to the files (the record's fileChanges), by tool call id.
  const fileChanges = new Map();
  function touchedFiles(step) {
    const changes = step.toolCallId !== undefined ? fileChanges.get(step.toolCallId) : null;
    if (!changes) return null;
    const parts = [["+", changes.created], ["~", changes.changed], ["−", changes.deleted]]
      .flatMap(([mark, paths]) => (paths || []).map((path) => `${mark}${path}`));
    return el("div", { class: "step-files muted small", text: parts.join("  ") });
  }

  function showStep(step) {
    document.getElementById("step").hidden = false;
    document.getElementById("step-title").textContent = step.label;
    document.getElementById("step-attempts").replaceChildren(
      el("p", { class: "muted", text: `${step.type} · ${step.scheduled || 1} attempt(s) · ${step.exitedAt ? seconds((step.exitedAt - step.enteredAt) / 1000) : "running"}` }),
      ...step.attempts.map((a, i) => el("p", { class: "error", text: `Attempt ${i + 1} failed: ${a.error}: ${a.cause || ""}` })));
    document.getElementById("step-input").textContent = pretty(step.input);
    document.getElementById("step-output").textContent = step.output === null ? "(not yet)" : pretty(step.output);
    document.querySelectorAll(".step.selected").forEach((n) => n.classList.remove("selected"));
    const index = model.steps.indexOf(step);
    const row = document.querySelector(`.step[data-index="${index}"]`);
    if (row) row.classList.add("selected");
  }

  let drawPending = false;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => { drawPending = false; paintGraph(); drawTimeline(); });
  }

  // --- the record: conversation, files, preview, usage ----------------------------------------
  function renderConversation(messages) {
    const results = new Map();
    for (const m of messages) if (m.role === "tool") results.set(m.tool_call_id, m.content);
    const shown = new Set();
    let turn = 0;
    const items = [];
    for (const message of messages) {
      if (message.role === "user") {
        items.push(el("div", { class: "msg msg-user" }, el("div", { class: "who", text: "Prompt" }), foldable(message.content)));
      } else if (message.role === "assistant") {
        turn += 1;
        const calls = (message.tool_calls || []).map((call) => {
          const fn = call.function || {};
          shown.add(call.id);
          const result = results.get(call.id);
          const failed = typeof result === "string" && result.startsWith("Error:");
          return el("div", { class: "tool-call", dataset: { tool: String(fn.name ?? "") } },
            el("div", {}, el("span", { class: "tool-name", text: String(fn.name ?? "") }), el("span", { class: "muted small", text: `  ${call.id}` })),
            el("div", { class: "label", text: "arguments" }), foldable(pretty(fn.arguments), { class: "args" }),
            el("div", { class: "label", text: "result" }),
            result === undefined ? el("p", { class: "muted", text: "(no result yet)" }) : foldable(result, { class: failed ? "result result-error" : "result" }));
        });
        items.push(el("div", { class: "msg msg-assistant" }, el("div", { class: "who", text: `Assistant · turn ${turn}` }),
          message.content ? foldable(message.content, { class: "assistant-text" }) : null, ...calls));
      } else if (message.role === "tool" && !shown.has(message.tool_call_id)) {
        items.push(el("div", { class: "msg msg-tool" }, el("div", { class: "who", text: `Tool result ${message.tool_call_id}` }), foldable(message.content)));
      }
    }
    document.getElementById("conversation").replaceChildren(...items);
  }

  function renderFiles(files) {
    const paths = Object.keys(files || {}).sort();
    const box = document.getElementById("files");
    if (!paths.length) { box.replaceChildren(el("p", { class: "muted", text: "No files yet." })); return; }
    const openBefore = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.path));
    box.replaceChildren(...paths.map((path) => el("details", { class: "file", dataset: { path }, open: openBefore.has(path) },
      el("summary", {}, el("span", { class: "file-path", text: path }), el("span", { class: "muted small", text: `  ${String(files[path]).length.toLocaleString("en-US")} characters` })),
      el("pre", { text: files[path] }))));
  }

  let changesShown = null;
  async function loadChanges(record) {
    if (record.status === "RUNNING" || changesShown === record.status) return;
    changesShown = record.status;
    const box = document.getElementById("changes");
    let diff;
    try {
      diff = await api(`/api/runs/${encodeURIComponent(runId)}/diff`);
    } catch (error) {
      box.replaceChildren(el("p", { class: "muted", text: "No kept version of this run." }));
      return;
    }
    document.getElementById("changes-against").textContent = diff.against ? `against run ${diff.against}` : "against the starting template";
    document.getElementById("open-version").hidden = false;
    if (!diff.files.length) { box.replaceChildren(el("p", { class: "muted", text: "No files changed." })); return; }
    box.replaceChildren(...diff.files.map((change) => el("details", { class: "file change", dataset: { path: change.path } },
      el("summary", {}, el("span", { class: "file-path", text: `${change.status} ${change.path}` }),
        el("span", { class: "muted small", text: change.patch === null ? `  ${change.note}` : `  +${change.additions} −${change.deletions}` })),
      el("pre", { class: "diff", text: change.patch === null ? change.note : change.patch }))));
  }

  function setUpOpenVersion() {
    document.getElementById("open-version").addEventListener("click", async () => {
      const answer = await api(`/api/runs/${encodeURIComponent(runId)}/open-version`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
      const link = document.getElementById("version-link");
      if (typeof answer.url === "string" && /^https?:\/\//.test(answer.url)) {
        link.href = answer.url;
        link.hidden = false;
        renderPreview(answer.url);
      }
    });
  }

  function renderUsage(record) {
    const body = document.querySelector("#usage tbody");
    body.replaceChildren(...(record.turns || []).map((t) => el("tr", {},
      el("td", { text: t.turn }), el("td", { text: count(t.inputTokens) }), el("td", { text: count(t.cachedInputTokens || 0) }),
      el("td", { text: count(t.outputTokens) }), el("td", { text: dollars(t.costUsd) }))));
    const tokens = record.tokens || {};
    document.querySelector("#usage tfoot").replaceChildren(el("tr", {},
      el("th", { text: "Total" }), el("th", { text: count(tokens.input) }), el("th", { text: count(tokens.cachedInput || 0) }),
      el("th", { text: count(tokens.output) }), el("th", { text: dollars(record.costUsd) })));
  }

  // What the run's commands asked the allow-list proxy for (record.egress, newest last).
  const EGRESS_SHOWN = 200;
  function renderEgress(record) {
    const audit = record.egressAudit || {};
    const entries = Array.isArray(record.egress) ? record.egress : [];
    const summary = document.getElementById("egress-summary");
    const table = document.getElementById("egress");
    if (!audit.recorded) {
      summary.textContent = `Not recorded: ${audit.note || "no audit for this run"}.`;
      table.hidden = true;
      return;
    }
    if (!entries.length) {
      summary.textContent = "No network requests through the allow-list proxy (without --allow-host a command has no network at all).";
      table.hidden = true;
      return;
    }
    const shown = entries.slice(-EGRESS_SHOWN);
    summary.textContent = `${count(entries.length)} requests: ${count(audit.allowed)} allowed, ${count(audit.refused)} refused` +
      (shown.length < entries.length ? ` (the last ${shown.length} here; all in pixie show --json)` : "");
    const text = (value) => (value === null || value === undefined ? "—" : String(value));
    table.querySelector("tbody").replaceChildren(...shown.map((entry) => el("tr", { class: `egress-${text(entry.verdict)}` },
      el("td", { text: text(entry.time) }), el("td", { text: text(entry.verdict) }), el("td", { text: text(entry.method) }),
      el("td", { text: entry.port === null || entry.port === undefined ? text(entry.host) : `${text(entry.host)}:${text(entry.port)}` }),
      el("td", { text: count(entry.bytes) }), el("td", { text: text(entry.reason) }))));
    table.hidden = false;
  }

  function renderPreview(url) {
    const frame = document.getElementById("preview");
    const safe = typeof url === "string" && /^https?:\/\//.test(url);
    document.getElementById("preview-none").hidden = safe;
    const link = document.getElementById("preview-link");
    link.hidden = !safe;
    frame.hidden = !safe;
    if (safe && frame.getAttribute("src") !== url) {
      // The app keeps its own origin (its own port, or E2B's host), so localStorage, IndexedDB
      // and cookies work in it (a cross-site frame would get no storage in Chromium); that origin
      // is never the console's, which refuses every request from another origin. Should a
      // preview ever share the console's origin, it runs opaque.
      const ownOrigin = new URL(url, window.location.href).origin === window.location.origin;
      frame.setAttribute("sandbox", `allow-scripts allow-forms allow-modals${ownOrigin ? "" : " allow-same-origin"}`);
      frame.setAttribute("src", url);
      link.href = url;
    }
  }

  function renderHead(record) {
    const title = record.title || record.prompt || record.runId;
    document.getElementById("title").textContent = title;
    document.title = `${title} · pixie`;
    document.getElementById("status").replaceWith(Object.assign(statusBadge(record.status), { id: "status" }));
    const parts = [record.model, record.runId, record.durationS !== null && record.durationS !== undefined ? seconds(record.durationS) : null,
      `${record.iterations || 0} turn(s)`, record.tokens ? `${count(record.tokens.input)} in${record.tokens.cachedInput ? ` (${count(record.tokens.cachedInput)} cached)` : ""} / ${count(record.tokens.output)} out tokens` : null,
      dollars(record.costUsd),
      record.budgetUsd !== null && record.budgetUsd !== undefined ? `budget ${dollars(record.budgetUsd)}` : null,
      record.maxTokens ? `budget ${count(record.maxTokens)} tokens` : null].filter(Boolean);
    document.getElementById("meta").textContent = parts.join(" · ");
    document.getElementById("prompt").textContent = record.prompt || "";
    const failure = document.getElementById("failure");
    failure.hidden = !record.error;
    failure.textContent = record.error ? `${record.error}: ${record.cause || ""}` : "";
    const aws = document.getElementById("aws-link");
    if (record.consoleUrl) { aws.href = record.consoleUrl; aws.hidden = false; }
    document.getElementById("stop").hidden = record.status !== "RUNNING";
    document.getElementById("rerun").hidden = record.status === "RUNNING" || !canRerun;
    // A follow-up builds on a run that succeeded, with that run's model (as `pixie run --continue`).
    parentModel = record.model || null;
    document.getElementById("follow-up").hidden = !(canContinue && record.status === "SUCCEEDED");
  }

  let canContinue = false;
  let canRerun = false;
  let parentModel = null;

  function setUpRerun(config) {
    canRerun = Boolean(config && config.mode === "local");
    const button = document.getElementById("rerun");
    button.addEventListener("click", async () => {
      const error = document.getElementById("stop-error");
      error.textContent = "";
      try {
        const { runId: next } = await api("/api/runs", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ rerunOf: runId }),
        });
        window.location.assign(`/runs/${encodeURIComponent(next)}`);
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
  }

  function setUpStop() {
    const button = document.getElementById("stop");
    button.addEventListener("click", async () => {
      const error = document.getElementById("stop-error");
      error.textContent = "";
      button.disabled = true;
      try {
        await api(`/api/runs/${encodeURIComponent(runId)}/stop`, { method: "POST" });
      } catch (failure) {
        error.textContent = failure.message;
      } finally {
        button.disabled = false;
        loadRecord();
      }
    });
  }

  // --- approvals: the calls a run waits on (--approve), approved or denied here ------------------
  let shownTurn = null;
  function renderApproval(record) {
    const pending = record.status === "RUNNING" ? record.pendingApproval : null;
    const section = document.getElementById("approval");
    section.hidden = !pending;
    if (!pending) return;
    shownTurn = pending.iteration;  // a decision names the turn whose calls are on screen
    const calls = pending.calls || [];
    const hours = (pending.timeoutSeconds || 0) / 3600;
    document.getElementById("approval-note").textContent =
      `Turn ${pending.iteration} asks to run ${calls.length} tool call(s). Without a decision within ${hours >= 1 ? `${hours.toFixed(hours % 1 ? 1 : 0)} h` : `${pending.timeoutSeconds} s`} they count as denied.`;
    document.getElementById("approval-calls").replaceChildren(...calls.map((call) =>
      el("li", {}, el("code", { text: call.name }), el("pre", { class: "call-arguments", text: call.arguments }))));
  }

  function setUpApproval() {
    for (const verdict of ["approve", "deny"]) {
      const button = document.getElementById(verdict);
      button.addEventListener("click", async () => {
        const error = document.getElementById("approval-error");
        error.textContent = "";
        button.disabled = true;
        try {
          const reason = document.getElementById("deny-reason").value.trim();
          await api(`/api/runs/${encodeURIComponent(runId)}/${verdict}`, {
            method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify(verdict === "deny" && reason ? { reason, iteration: shownTurn } : { iteration: shownTurn }),
          });
          document.getElementById("approval").hidden = true;
        } catch (failure) {
          error.textContent = failure.message;
        } finally {
          button.disabled = false;
          loadRecord();
        }
      });
    }
  }

  let recordTimer = null;
  let recordBusy = false;
  function scheduleRecord() {
    clearTimeout(recordTimer);
    recordTimer = setTimeout(loadRecord, 250);
  }

  async function loadRecord() {
    if (recordBusy) { scheduleRecord(); return; }
    recordBusy = true;
    try {
      const record = await api(`/api/runs/${encodeURIComponent(runId)}`);
      renderHead(record);
      renderApproval(record);
      renderConversation(record.conversation || []);
      fileChanges.clear();
      for (const change of record.fileChanges || []) fileChanges.set(change.toolCallId, change);
      scheduleDraw();
      renderFiles(record.files);
      renderUsage(record);
      renderEgress(record);
      if (!document.getElementById("version-link").href) renderPreview(record.previewUrl || record.url);
      document.body.dataset.status = record.status;
      loadChanges(record);
    } catch (error) {
      document.getElementById("title").textContent = `Run ${runId}: ${error.message}`;
    } finally {
      recordBusy = false;
    }
  }

  // --- live progress (streamed model text, the running command) -------------------------------
  function clearLive() {
    document.getElementById("live-text").textContent = "";
    document.getElementById("live").hidden = true;
  }

  function onProgress(data) {
    const box = document.getElementById("live-text");
    document.getElementById("live").hidden = false;
    const kind = data.kind;
    let text = "";
    if (kind === "model.text") text = data.text || "";
    else if (kind === "model.tool_call") text = data.name ? `\n→ ${data.name}(` : (data.arguments || "");
    else if (kind === "command.start") text = `\n$ ${data.command}\n`;
    else if (kind === "command.output") text = data.text || "";
    else if (kind === "command.end") text = `\n[exit ${data.exitCode}${data.timedOut ? ", timed out" : ""}]\n`;
    else if (kind === "approval.pending") { text = `\n[waiting for your approval of ${(data.calls || []).length} tool call(s)]\n`; scheduleRecord(); }
    else text = `\n[${kind}] ${JSON.stringify(data)}\n`;
    box.append(document.createTextNode(text));
    if (box.textContent.length > 200000) box.textContent = box.textContent.slice(-100000);
    box.scrollTop = box.scrollHeight;
  }

  // --- wiring ---------------------------------------------------------------------------------
  function follow() {
    const source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/events`);
    source.addEventListener("history", (e) => onHistory(JSON.parse(e.data)));
    source.addEventListener("progress", (e) => onProgress(JSON.parse(e.data)));
    source.addEventListener("end", (e) => {
      const data = JSON.parse(e.data);
      source.close();
      document.body.dataset.ended = data.status;
      if (!model.endedAt) model.endedAt = Date.now();
      clearInterval(ticker);
      scheduleDraw();
      loadRecord();
    });
    const ticker = setInterval(() => { if (!model.endedAt) scheduleDraw(); }, 500);
  }

  function setUpFollowUp(config) {
    const form = document.getElementById("follow-up");
    if (!config || !config.continue) return;  // shown once this pixie can continue a run that succeeded
    canContinue = true;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = document.getElementById("follow-up-error");
      error.textContent = "";
      try {
        const { runId: next } = await api("/api/runs", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ prompt: document.getElementById("follow-up-prompt").value, continueFrom: runId,
                                 ...(parentModel ? { model: parentModel } : {}) }),
        });
        window.location.assign(`/runs/${encodeURIComponent(next)}`);
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const [config, graph] = await Promise.all([pixie.showMode(), api("/api/graph").catch(() => null)]);
    if (graph) drawGraph(graph);
    setUpFollowUp(config);
    setUpStop();
    setUpApproval();
    setUpRerun(config);
    setUpOpenVersion();
    await loadRecord();
    follow();
  });
})();
