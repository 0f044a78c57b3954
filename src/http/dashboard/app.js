// The dashboard: lists the server's accounts and switches between them, logs one in
// by QR or pairing code (a pairing shows at once through the `ws` socket), shows who
// is logged in, and sends every form on the page to
// its API route for the chosen account (X-Device-Id), showing the envelope that comes
// back. Every URL is relative, so the page also works behind a reverse proxy under a
// path prefix.
"use strict";

const POLL_WAITING_MS = 2000; // while a QR is shown: notice the scan quickly
const POLL_IDLE_MS = 10000;
const QR_RETRY_MS = 10000;

/** The accounts (GET devices) and the one the page acts on. */
const accounts = { list: [], selected: localStorage.getItem("account") || "" };

/** Calls the API for the chosen account; never throws. A string body is sent as
 * JSON. Resolves to {ok, status, message, body}. */
async function api(method, url, body) {
  const headers = { Accept: "application/json" };
  if (accounts.selected) headers["X-Device-Id"] = accounts.selected;
  if (typeof body === "string") headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(url, { method, body, headers });
  } catch (err) {
    return { ok: false, status: 0, message: `The server cannot be reached (${err.message}).`, body: null };
  }
  let json = null;
  try {
    json = await res.json();
  } catch {
    // Not JSON: a proxy's error page, say. The status line is all we have.
  }
  const message = json && typeof json.message === "string" ? json.message : `HTTP ${res.status} ${res.statusText}`;
  return { ok: res.ok, status: res.status, message, body: json };
}

/** Shows an API reply in a `.result` box: the message, then the JSON. */
function showResult(box, reply) {
  box.hidden = false;
  box.classList.toggle("ok", reply.ok);
  box.classList.toggle("error", !reply.ok);
  box.replaceChildren();
  const line = document.createElement("p");
  line.className = "result-message";
  line.textContent = reply.status ? `${reply.status} · ${reply.message}` : reply.message;
  box.append(line);
  if (reply.body) {
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(reply.body, null, 2);
    box.append(pre);
  }
}

function showPending(box, text) {
  box.hidden = false;
  box.classList.remove("ok", "error");
  box.replaceChildren(Object.assign(document.createElement("p"), { textContent: text }));
}

// ---- Session: status, QR login, logout, reconnect --------------------------------

const el = (id) => document.getElementById(id);
const session = {
  state: null, // "none" (no account) | "logged-out" | "disconnected" | "connected"
  pollTimer: 0,
  qrTimer: 0,
  qrRetryTimer: 0,
  qrExpiresAt: 0,
  qrLoading: false,
};

/** Live events (`ws`): a pairing or a logout shows at once. Polling stays, slower
 * while the socket is open, in case it cannot be (a proxy without WebSockets). */
const live = { open: false };

function connectLive() {
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  let socket;
  try {
    socket = new WebSocket(url);
  } catch {
    return;
  }
  socket.onopen = () => {
    live.open = true;
  };
  socket.onmessage = (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame && frame.code !== "LIST_DEVICES") refreshStatus();
  };
  socket.onclose = () => {
    live.open = false;
    setTimeout(connectLive, QR_RETRY_MS);
  };
}

function schedulePoll(ms) {
  clearTimeout(session.pollTimer);
  session.pollTimer = setTimeout(refreshStatus, ms);
}

const STATES = { logged_in: "logged in", connected: "pairing", connecting: "connecting", disconnected: "not connected" };

/** Reads the account list into the selector; keeps the choice when it still exists. */
async function refreshAccounts() {
  const reply = await api("GET", "devices");
  if (!reply.ok || !reply.body || !Array.isArray(reply.body.results)) return;
  accounts.list = reply.body.results;
  if (!accounts.list.some((d) => d.id === accounts.selected)) {
    selectAccount(accounts.list.length ? accounts.list[0].id : "");
  }
  const select = el("account-select");
  select.replaceChildren(
    ...accounts.list.map((d) => {
      const who = d.jid ? ` · ${phoneOf(d.jid)}` : "";
      const option = new Option(`${d.id}${who} · ${STATES[d.state] || d.state}`, d.id);
      option.selected = d.id === accounts.selected;
      return option;
    }),
  );
  select.disabled = accounts.list.length === 0;
  el("account-remove").disabled = accounts.list.length === 0;
}

function selectAccount(id) {
  accounts.selected = id;
  if (id) localStorage.setItem("account", id);
  else localStorage.removeItem("account");
}

/** Another account chosen: its session replaces the one shown. */
function switchAccount(id) {
  selectAccount(id);
  stopQr();
  session.state = null;
  for (const box of document.querySelectorAll(".result")) box.hidden = true;
  refreshStatus();
}

async function addAccount() {
  const id = window.prompt("Name of the new account (letters, digits and . _ - : @ +; empty for a generated one):", "");
  if (id === null) return;
  const box = el("session-result");
  showPending(box, "Adding the account…");
  const reply = await api("POST", "devices", JSON.stringify(id.trim() ? { device_id: id.trim() } : {}));
  if (reply.ok) switchAccount(reply.body.results.id);
  showResult(box, reply);
}

async function removeAccount() {
  const id = accounts.selected;
  if (!id || !window.confirm(`Remove the account ${id}? It is logged out and everything it stored here is deleted.`)) return;
  const box = el("session-result");
  showPending(box, "Removing the account…");
  const reply = await api("DELETE", `devices/${encodeURIComponent(id)}`);
  if (reply.ok) switchAccount("");
  showResult(box, reply);
}

async function refreshStatus() {
  await refreshAccounts();
  if (accounts.list.length === 0) {
    // No account: nothing is made until the user adds one.
    renderSession("none", null);
    schedulePoll(POLL_IDLE_MS);
    return;
  }
  const reply = await api("GET", "app/status");
  if (!reply.ok || !reply.body || !reply.body.results) {
    setBadge("error", `Cannot read the session status: ${reply.message}`);
    schedulePoll(POLL_IDLE_MS);
    return;
  }
  const s = reply.body.results;
  const state = s.is_connected ? "connected" : s.is_logged_in ? "disconnected" : "logged-out";
  // The later dialect's device_id is the slot; the JID is in jid.
  renderSession(state, s.jid || s.device_id);
  schedulePoll(state === "logged-out" && !live.open ? POLL_WAITING_MS : POLL_IDLE_MS);
}

function setBadge(kind, text) {
  const badge = el("badge");
  badge.className = `badge ${kind}`;
  badge.textContent = text;
}

/** "6289685028000:7@s.whatsapp.net" → "+6289685028000". */
function phoneOf(deviceId) {
  const user = String(deviceId || "").split("@")[0].split(":")[0];
  return /^\d+$/.test(user) ? `+${user}` : user;
}

function renderSession(state, deviceId) {
  const changed = state !== session.state;
  session.state = state;
  el("no-account").hidden = state !== "none";
  el("login").hidden = state !== "logged-out";
  el("account").hidden = state === "logged-out" || state === "none";
  if (state === "none") {
    stopQr();
    setBadge("warn", "No account");
    return;
  }
  if (state === "logged-out") {
    setBadge("warn", "Not logged in");
    if (changed || (!session.qrLoading && !session.qrTimer && !session.qrRetryTimer)) {
      requestQr();
    }
    return;
  }
  stopQr();
  const who = deviceId ? `${phoneOf(deviceId)} (${deviceId})` : "this account";
  if (state === "connected") {
    setBadge("ok", `Logged in as ${phoneOf(deviceId)}`);
    el("account-text").textContent = `Logged in as ${who}.`;
  } else {
    setBadge("warn", "Logged in, not connected");
    el("account-text").textContent = `Logged in as ${who}, but not connected to WhatsApp. It reconnects by itself; Reconnect forces it.`;
  }
}

function stopQr() {
  clearInterval(session.qrTimer);
  clearTimeout(session.qrRetryTimer);
  session.qrTimer = 0;
  session.qrRetryTimer = 0;
  el("qr-image").hidden = true;
  el("qr-retry").hidden = true;
}

async function requestQr() {
  if (session.qrLoading) return;
  stopQr();
  session.qrLoading = true;
  el("qr-caption").textContent = "Asking WhatsApp for a QR code…";
  const reply = await api("GET", "app/login");
  session.qrLoading = false;
  if (session.state !== "logged-out") return;
  if (!reply.ok) {
    el("qr-caption").textContent = `No QR code: ${reply.message}`;
    el("qr-retry").hidden = false;
    session.qrRetryTimer = setTimeout(() => {
      session.qrRetryTimer = 0;
      requestQr();
    }, QR_RETRY_MS);
    // "already logged in" and the like: the status tells what is going on.
    refreshStatus();
    return;
  }
  const { qr_link: link, qr_duration: seconds } = reply.body.results;
  // Same origin, whatever host name the server put in the link.
  const url = new URL(link, document.baseURI);
  const img = el("qr-image");
  // Relative to the page: under --base-path the link carries the page's own folder,
  // behind a proxy that strips a prefix it does not.
  const folder = new URL(".", document.baseURI).pathname;
  const path = url.pathname.startsWith(folder)
    ? url.pathname.slice(folder.length)
    : url.pathname.replace(/^\//, "");
  img.src = path + url.search;
  img.hidden = false;
  session.qrExpiresAt = Date.now() + Math.max(1, seconds) * 1000;
  tickQr();
  session.qrTimer = setInterval(tickQr, 1000);
}

function tickQr() {
  const left = Math.ceil((session.qrExpiresAt - Date.now()) / 1000);
  if (left <= 0) {
    clearInterval(session.qrTimer);
    session.qrTimer = 0;
    el("qr-caption").textContent = "This QR code has expired; getting a new one…";
    requestQr();
    return;
  }
  el("qr-caption").textContent = `This QR code expires in ${left} s.`;
}

async function sessionAction(question, url, pending) {
  if (!window.confirm(question)) return;
  const box = el("session-result");
  showPending(box, pending);
  showResult(box, await api("GET", url));
  refreshStatus();
}

// ---- Forms: one per route ---------------------------------------------------------

/** The form's fields as the API reads them: checkboxes as true/false, blanks left out. */
function formFields(form) {
  const data = new FormData(form);
  for (const box of form.querySelectorAll("input[type=checkbox]")) {
    data.set(box.name, box.checked ? "true" : "false");
  }
  for (const [name, value] of Array.from(data.entries())) {
    const blank = value instanceof File ? value.name === "" && value.size === 0 : value.trim() === "";
    if (blank) data.delete(name);
  }
  return data;
}

async function submitForm(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = event.submitter || form.querySelector("button[type=submit]");
  const action = (button && button.getAttribute("formaction")) || form.getAttribute("action");
  const box = form.querySelector(".result");
  const data = formFields(form);
  let reply;
  showPending(box, "Working…");
  for (const b of form.querySelectorAll("button")) b.disabled = true;
  try {
    if (form.method.toLowerCase() === "get") {
      const query = new URLSearchParams(Array.from(data.entries())).toString();
      reply = await api("GET", query ? `${action}?${query}` : action);
    } else {
      reply = await api("POST", action, data);
    }
  } finally {
    for (const b of form.querySelectorAll("button")) b.disabled = false;
  }
  showResult(box, reply);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("main form")) {
    form.addEventListener("submit", submitForm);
  }
  el("qr-retry").addEventListener("click", requestQr);
  el("account-select").addEventListener("change", (e) => switchAccount(e.target.value));
  el("account-add").addEventListener("click", addAccount);
  el("account-remove").addEventListener("click", removeAccount);
  el("qr-image").addEventListener("error", () => {
    if (el("qr-image").hidden) return;
    stopQr();
    el("qr-caption").textContent = "The QR image could not be loaded.";
    el("qr-retry").hidden = false;
  });
  el("logout").addEventListener("click", () =>
    sessionAction("Log out? This unlinks the server from the phone and deletes the stored session.", "app/logout", "Logging out…"),
  );
  el("reconnect").addEventListener("click", () =>
    sessionAction("Reconnect to WhatsApp now?", "app/reconnect", "Reconnecting…"),
  );
  refreshStatus();
  connectLive();
});
