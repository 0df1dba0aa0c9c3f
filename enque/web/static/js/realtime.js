// The /v1/realtime socket: authenticates with the first message, keeps its subscriptions
// across reconnects, drops duplicate events and fans them out to listeners.

import { session } from "./api.js";

const listeners = new Map(); // type -> Set(fn)
const channels = new Set(["tickets", "notifications"]);
const seen = [];
let socket = null;
let attempts = 0;
let stopped = true;
let timer = null;
let state = "offline";
let everOpened = false;
const stateListeners = new Set();

function setState(next) {
  state = next;
  stateListeners.forEach((fn) => fn(state));
}

export function onState(fn) {
  stateListeners.add(fn);
  fn(state);
  return () => stateListeners.delete(fn);
}

export function on(type, fn) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(fn);
  return () => listeners.get(type).delete(fn);
}

function emit(type, payload, message) {
  (listeners.get(type) || []).forEach((fn) => {
    try {
      fn(payload, message);
    } catch (e) {
      console.error(e);
    }
  });
}

export function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN && state === "live") {
    socket.send(JSON.stringify(message));
    return true;
  }
  return false;
}

export function subscribe(channel) {
  channels.add(channel);
  send({ type: "subscribe", channel });
}

export function unsubscribe(channel) {
  channels.delete(channel);
  send({ type: "unsubscribe", channel });
}

export function presence(ticketId, presenceState) {
  send({ type: "presence", ticketId, state: presenceState });
}

export function connect() {
  stopped = false;
  if (socket || !session.token) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/realtime`);
  socket = ws;
  setState("connecting");
  let opened = false;
  ws.addEventListener("open", () => {
    opened = true;
    ws.send(JSON.stringify({ type: "auth", token: session.token }));
  });
  // The server answers the auth message with `ready`: only then subscribe and go live.
  const ready = () => {
    setState("live");
    attempts = 0;
    channels.forEach((channel) => ws.send(JSON.stringify({ type: "subscribe", channel })));
    emit("open", { reconnect: everOpened });
    everOpened = true;
  };
  ws.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.id) {
      if (seen.includes(message.id)) return;
      seen.push(message.id);
      if (seen.length > 500) seen.shift();
    }
    if (message.type === "ready") ready();
    else if (message.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
    emit(message.type, message.payload || {}, message);
  });
  ws.addEventListener("close", (event) => {
    socket = null;
    setState("offline");
    if (stopped) return;
    if (event.code === 4401) {
      emit("unauthorized", {});
      return;
    }
    attempts += 1;
    // A server without the socket refuses the upgrade: back off hard instead of hammering.
    const delay = Math.min(60000, (opened ? 1000 : 5000) * 2 ** Math.min(attempts, 5));
    timer = setTimeout(connect, delay);
  });
}

export function disconnect() {
  stopped = true;
  clearTimeout(timer);
  if (socket) socket.close(1000);
  socket = null;
  setState("offline");
}
