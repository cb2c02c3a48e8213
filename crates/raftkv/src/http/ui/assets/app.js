// raftkv dashboard: reads the node's feed (/v1/ui/events, Server-Sent Events read with fetch
// so that a token can go with it), draws the members, the charts and the events, and sends
// the administration actions to the API's own routes after a confirmation.
"use strict";

const TOKEN_KEY = "raftkv-dashboard-token";
// A frame comes every second: none for this long means the node is gone; reconnect.
const SILENCE_MS = 4000;
const EVENTS_SHOWN = 100;

const $ = (id) => document.getElementById(id);
const state = {
  latest: null,
  samples: [],
  events: [],
  historySeconds: 300,
};

// ---- token ---------------------------------------------------------------------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function headers(extra) {
  const all = Object.assign({}, extra || {});
  if (token()) all["Authorization"] = "Bearer " + token();
  return all;
}

let tokenWaiters = [];
function askToken(reason) {
  const dialog = $("token-dialog");
  if (reason) $("token-reason").textContent = reason;
  $("token-input").value = token();
  if (!dialog.open) dialog.showModal();
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

function setupTokenDialog() {
  const dialog = $("token-dialog");
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "save") {
      sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    } else if (dialog.returnValue === "forget") {
      sessionStorage.removeItem(TOKEN_KEY);
    }
    const waiters = tokenWaiters;
    tokenWaiters = [];
    waiters.forEach((resolve) => resolve());
  });
  $("token-button").addEventListener("click", () => askToken().then(reconnect));
}

// ---- the feed ------------------------------------------------------------------------------

let feed = null; // { controller, timer }

function setConnection(text, stateName) {
  const badge = $("connection");
  badge.textContent = text;
  badge.dataset.state = stateName;
}

function reconnect() {
  if (feed) feed.controller.abort();
  feed = null;
  connect();
}

async function connect() {
  const controller = new AbortController();
  const current = { controller, timer: null };
  feed = current;
  const watchdog = () => {
    clearTimeout(current.timer);
    current.timer = setTimeout(() => controller.abort(), SILENCE_MS);
  };
  setConnection("connecting", "connecting");
  let retryMs = 1000;
  try {
    watchdog();
    const response = await fetch("/v1/ui/events", {
      headers: headers({ Accept: "text/event-stream" }),
      cache: "no-store",
      signal: controller.signal,
    });
    if (response.status === 401 || response.status === 403) {
      clearTimeout(current.timer);
      setConnection("token needed", "refused");
      await askToken(response.status === 401
        ? "This cluster needs a token to be watched (read-only is enough)."
        : "This token may not read the cluster: give one with the read role.");
      if (feed === current) reconnect();
      return;
    }
    if (!response.ok || !response.body) throw new Error("status " + response.status);
    setConnection("live", "live");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      watchdog();
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        handleMessage(message);
      }
    }
  } catch (error) {
    retryMs = 1500;
  }
  clearTimeout(current.timer);
  if (feed !== current) return; // Replaced meanwhile.
  setConnection("disconnected: retrying", "down");
  markAllUnknown();
  setTimeout(() => { if (feed === current) connect(); }, retryMs);
}

function handleMessage(message) {
  let event = "message";
  const data = [];
  for (const line of message.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (event !== "cluster" || data.length === 0) return;
  let frame;
  try {
    frame = JSON.parse(data.join("\n"));
  } catch (error) {
    return;
  }
  applyFrame(frame);
}

function applyFrame(frame) {
  state.latest = frame;
  state.historySeconds = frame.history_seconds || 300;
  state.samples.push(...frame.samples);
  const oldest = frame.at_ms - state.historySeconds * 1000;
  state.samples = state.samples.filter((sample) => sample.at_ms >= oldest);
  state.events.push(...frame.events);
  if (state.events.length > EVENTS_SHOWN) state.events.splice(0, state.events.length - EVENTS_SHOWN);
  renderSummary(frame);
  renderMembers(frame);
  renderEvents();
  drawCharts();
}

// ---- rendering -----------------------------------------------------------------------------

function show(value, unit) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number" && !Number.isInteger(value)) {
    value = value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
  }
  return unit ? value + " " + unit : String(value);
}

function renderSummary(frame) {
  $("leader").textContent = frame.leader ? "node " + frame.leader : "none";
  $("leader").dataset.leader = frame.leader || "";
  $("term").textContent = frame.term;
  const last = state.samples[state.samples.length - 1];
  const commit = last ? last.commit_index : null;
  $("commit").textContent = show(commit);
  $("commit").dataset.value = commit === null ? "" : commit;
  $("writes-now").textContent = last ? show(last.writes_per_second) : "–";
  $("writes-now").dataset.value = last ? last.writes_per_second : "";
  $("reads-now").textContent = last ? show(last.reads_per_second) : "–";
  $("served-by").textContent = "node " + frame.served_by;
  $("membership-change").hidden = !frame.change_in_progress;
  $("store-revision").textContent =
    "Store revision " + frame.revision + ", history kept from revision " + frame.compact_revision + ".";
  $("store-revision").dataset.compactRevision = frame.compact_revision;
}

function cell(row, label, text, className) {
  const td = document.createElement("td");
  td.dataset.label = label;
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function actionButton(container, label, action, member) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "small";
  button.textContent = label;
  button.dataset.action = action;
  button.dataset.target = member.id;
  button.addEventListener("click", () => ACTIONS[action](member));
  container.appendChild(button);
}

function healthOf(member) {
  if (!member.reachable) return "down";
  if (member.recovering) return "recovering";
  return "up";
}

function renderMembers(frame) {
  const body = $("members").tBodies[0];
  body.replaceChildren();
  for (const member of frame.members) {
    const row = document.createElement("tr");
    const health = healthOf(member);
    row.dataset.member = member.id;
    row.dataset.role = member.role || "unknown";
    row.dataset.health = health;
    row.dataset.membership = member.membership;
    row.dataset.lag = member.lag === null ? "" : member.lag;
    cell(row, "Node", member.id + (member.id === frame.served_by ? " (this page)" : ""));
    cell(row, "Address", member.http_address || "unknown");
    cell(row, "Membership", member.membership);
    cell(row, "Role", member.role || "–", member.role === "leader" ? "role-leader" : "");
    const healthCell = cell(row, "Health", "");
    const healthText = document.createElement("span");
    healthText.className = "health";
    healthText.dataset.health = health;
    healthText.textContent =
      health === "down" ? "unreachable" : health === "recovering" ? "recovering: " + member.recovering : "up";
    healthCell.appendChild(healthText);
    if (member.unreachable_reason) healthCell.title = member.unreachable_reason;
    cell(row, "Term", show(member.term), "num");
    cell(row, "Commit", show(member.commit_index), "num");
    cell(row, "Applied", show(member.applied_index), "num");
    cell(row, "Last", show(member.last_log_index), "num");
    cell(row, "Snapshot", show(member.snapshot_index), "num");
    cell(row, "Lag", show(member.lag), "num");
    cell(row, "fsync p99", show(member.fsync_p99_ms, "ms"), "num");
    const buttons = cell(row, "Actions", "", "buttons");
    if (member.membership === "voter" && member.role !== "leader" && member.reachable && frame.leader) {
      actionButton(buttons, "Make leader", "transfer", member);
    }
    if (member.membership === "learner") actionButton(buttons, "Promote", "promote", member);
    actionButton(buttons, "Remove", "remove", member);
    body.appendChild(row);
  }
}

function markAllUnknown() {
  for (const row of $("members").tBodies[0].rows) row.dataset.health = "unknown";
}

function renderEvents() {
  const list = $("events");
  list.replaceChildren();
  for (const event of state.events.slice().reverse()) {
    const item = document.createElement("li");
    item.dataset.kind = event.kind;
    const time = document.createElement("time");
    time.dateTime = new Date(event.at_ms).toISOString();
    time.textContent = new Date(event.at_ms).toLocaleTimeString();
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = event.text;
    item.append(time, what);
    list.appendChild(item);
  }
}

// ---- charts --------------------------------------------------------------------------------

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

// A scale at or above `value` that reads well on an axis: 1, 2 or 5 times a power of ten,
// with its number of divisions (so that every grid line falls on a round number).
function niceScale(value) {
  if (!(value > 0)) return { max: 1, divisions: 5 };
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const [step, divisions] of [[1, 5], [2, 4], [5, 5], [10, 5]]) {
    if (value <= step * power * (1 + 1e-9)) return { max: step * power, divisions };
  }
  return { max: 10 * power, divisions: 5 };
}

function axisLabel(value) {
  if (value === 0) return "0";
  if (value >= 10) return value.toFixed(0);
  return String(Number(value.toPrecision(2)));
}

// The time the charts span: what the samples cover, at least 30 s, at most the history.
function chartSpanMs() {
  const now = state.latest ? state.latest.at_ms : Date.now();
  const oldest = state.samples.length ? state.samples[0].at_ms : now;
  return Math.min(state.historySeconds * 1000, Math.max(30000, now - oldest));
}

function spanLabel(spanMs) {
  const seconds = Math.round(spanMs / 1000);
  return seconds % 60 === 0 ? "-" + seconds / 60 + " min" : "-" + seconds + " s";
}

function drawChart(canvas, series) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (width === 0 || height === 0) return;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  const left = 44, right = 8, top = 18, bottom = 18;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const now = state.latest ? state.latest.at_ms : Date.now();
  const spanMs = chartSpanMs();
  const start = now - spanMs;
  let max = 0;
  for (const line of series) {
    for (const sample of state.samples) {
      const value = line.value(sample);
      if (value !== null && value !== undefined && value > max) max = value;
    }
  }
  const scale = niceScale(max);
  max = scale.max;
  const x = (at) => left + ((at - start) / (now - start)) * plotWidth;
  const y = (value) => top + plotHeight - (value / max) * plotHeight;
  context.font = "11px system-ui, 'DejaVu Sans', sans-serif";
  context.strokeStyle = cssColor("--line");
  context.fillStyle = cssColor("--muted");
  context.lineWidth = 1;
  context.textAlign = "right";
  context.textBaseline = "middle";
  for (let step = 0; step <= scale.divisions; step++) {
    const value = (max * step) / scale.divisions;
    const at = y(value);
    context.beginPath();
    context.moveTo(left, at);
    context.lineTo(width - right, at);
    context.stroke();
    context.fillText(axisLabel(value), left - 4, at);
  }
  context.textAlign = "left";
  context.textBaseline = "alphabetic";
  context.fillText(spanLabel(spanMs), left, height - 4);
  context.textAlign = "right";
  context.fillText("now", width - right, height - 4);
  let legendX = left;
  for (const line of series) {
    const color = cssColor(line.color);
    context.strokeStyle = color;
    context.lineWidth = 1.6;
    context.beginPath();
    let drawing = false;
    for (const sample of state.samples) {
      const value = line.value(sample);
      if (value === null || value === undefined || sample.at_ms < start) { drawing = false; continue; }
      if (drawing) context.lineTo(x(sample.at_ms), y(value));
      else context.moveTo(x(sample.at_ms), y(value));
      drawing = true;
    }
    context.stroke();
    context.fillStyle = color;
    context.textAlign = "left";
    context.fillRect(legendX, 5, 10, 3);
    context.fillText(line.label, legendX + 14, 11);
    legendX += 24 + context.measureText(line.label).width;
  }
}

function drawCharts() {
  drawChart($("chart-throughput"), [
    { label: "writes", color: "--write", value: (s) => s.writes_per_second },
    { label: "reads", color: "--read", value: (s) => s.reads_per_second },
  ]);
  drawChart($("chart-latency"), [
    { label: "write p99", color: "--write", value: (s) => s.write_p99_ms },
    { label: "read p99", color: "--read", value: (s) => s.read_p99_ms },
  ]);
  drawChart($("chart-fsync"), [
    { label: "fsync p99", color: "--fsync", value: (s) => s.fsync_p99_ms },
  ]);
}

// ---- administration ------------------------------------------------------------------------

// Asks for confirmation; resolves to the fields' values, or null when cancelled.
function confirmAction(title, text, confirmLabel, fields) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = confirmLabel;
  const container = $("confirm-fields");
  container.replaceChildren();
  const inputs = {};
  for (const field of fields || []) {
    const label = document.createElement("label");
    label.textContent = field.label;
    const input = document.createElement("input");
    input.name = field.name;
    input.value = field.value || "";
    input.placeholder = field.placeholder || "";
    input.required = true;
    label.appendChild(input);
    container.appendChild(label);
    inputs[field.name] = input;
  }
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "ok") return resolve(null);
      const values = {};
      for (const name in inputs) values[name] = inputs[name].value.trim();
      resolve(values);
    }, { once: true });
  });
}

function report(text, outcome) {
  const result = $("action-result");
  result.textContent = text;
  result.dataset.outcome = outcome;
}

async function send(method, path, body, what) {
  for (let attempt = 0; attempt < 2; attempt++) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      return report(what + ": the node did not answer (" + error.message + ")", "error");
    }
    if ((response.status === 401 || response.status === 403) && attempt === 0) {
      await askToken(response.status === 401
        ? "This action needs a token with the admin role."
        : "This token's role may not do that: give an admin token.");
      continue;
    }
    if (response.ok) return report(what + ": done", "ok");
    let message = "status " + response.status;
    try {
      const error = await response.json();
      if (error && error.error) message = error.error;
    } catch (ignored) { /* not JSON */ }
    return report(what + ": refused: " + message, "error");
  }
}

const ACTIONS = {
  async transfer(member) {
    const leader = state.latest && state.latest.leader;
    const ok = await confirmAction("Transfer leadership",
      "Hand leadership from node " + leader + " to node " + member.id + "? Writes pause briefly.",
      "Transfer", []);
    if (ok) send("POST", "/v1/leader/transfer", { to: member.id }, "Transfer to node " + member.id);
  },
  async promote(member) {
    const ok = await confirmAction("Promote a learner",
      "Make node " + member.id + " a voter? It must have caught up with the log.", "Promote", []);
    if (ok) send("POST", "/v1/members/" + member.id + "/promote", undefined, "Promote node " + member.id);
  },
  async remove(member) {
    const ok = await confirmAction("Remove a member",
      "Remove node " + member.id + " from the cluster? It stops receiving the log.", "Remove", []);
    if (ok) send("DELETE", "/v1/members/" + member.id, undefined, "Remove node " + member.id);
  },
};

async function addMember() {
  const values = await confirmAction("Add a member",
    "The new node joins as a learner; promote it once it has caught up.", "Add", [
      { name: "id", label: "Node id", placeholder: "4" },
      { name: "raft_address", label: "Raft address", placeholder: "10.0.0.4:7000" },
    ]);
  if (!values) return;
  const id = Number(values.id);
  if (!Number.isInteger(id) || id < 1) return report("Add a member: the id must be a whole number of at least 1", "error");
  send("POST", "/v1/members", { id, raft_address: values.raft_address }, "Add node " + id);
}

async function compact() {
  const revision = state.latest ? state.latest.revision : 1;
  const values = await confirmAction("Compact the history",
    "Forget the versions of keys older than this revision; reads and watches before it fail.",
    "Compact", [{ name: "revision", label: "Revision", value: String(revision) }]);
  if (!values) return;
  const target = Number(values.revision);
  if (!Number.isInteger(target) || target < 1) return report("Compact: the revision must be a whole number of at least 1", "error");
  send("POST", "/v1/compact", { revision: target }, "Compact to revision " + target);
}

// ---- start ---------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  setupTokenDialog();
  $("add-member").addEventListener("click", addMember);
  $("compact").addEventListener("click", compact);
  window.addEventListener("resize", drawCharts);
  connect();
});
