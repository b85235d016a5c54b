/* The recognition WebSocket (docs/WEBSOCKET.md): opens it with the key, numbers messages as the
 * server does, keeps track of the frames in flight, sends settings, reconnects with back-off, and
 * turns refusals (close codes) into errors in the Connect form. What the page does with a reply is
 * up to the handlers given to initSocket. */
import { currentCredentials } from "./api.js";
import { clearConnectErrors, connectError, keyError, setConnectedView } from "./connect.js";
import { clearMessage, setConnectionState, showMessage } from "./messages.js";

const CLOSE = {
  BAD_REQUEST: 4400, UNAUTHORIZED: 4401, FORBIDDEN: 4403, REVOKED: 4410, SCOPE_DENIED: 4433, BUSY: 4503,
};
// One frame in flight: the next is captured when the answer arrives, so boxes lag the face by one
// frame's processing, never by a queue. (The server also drops stale frames for other clients.)
const MAX_IN_FLIGHT = 1;
const MAX_RECONNECT_DELAY_MS = 15000;

let handlers = { onReady() {}, onResult() {}, onClosed() {}, onRefused() {} };
let socket = null;
let ready = false;
let wantConnected = false;
let reconnectDelay = 1000;
let reconnectTimer = null;
let closingError = null; // an {"type": "error"} the server sent just before closing, if any
let seq = 0; // every message sent on this socket; the server numbers them the same way
let pendingFrames = []; // seqs of frames not yet answered (answers arrive in order)
const sentAt = new Map();
let targetFps = 15;
let settingsTimer = null;

/* onReady(reply), onResult(result, {latencyMs, receivedAt}), onClosed() on any close, and
 * onRefused() when the server refused the connection and the page stops retrying. */
export function initSocket(next) {
  handlers = next;
}

export const isReady = () => ready;
export const wantsConnection = () => wantConnected;
export const frameRate = () => targetFps;

function socketUrl() {
  const c = currentCredentials();
  const query = new URLSearchParams({
    token: c.key, organization: c.organization, user: c.user, api_key_name: c.apiKeyName,
  });
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/recognize?${query}`;
}

function openSocket() {
  clearTimeout(reconnectTimer);
  const opened = new WebSocket(socketUrl());
  opened.binaryType = "arraybuffer";
  socket = opened;
  ready = false;
  closingError = null;
  seq = 0;
  pendingFrames = [];
  sentAt.clear();
  setConnectionState("wait", "Connecting…");
  opened.addEventListener("message", (event) => {
    if (opened !== socket) return;
    let reply;
    try { reply = JSON.parse(event.data); } catch (err) { return; }
    handleReply(reply);
  });
  opened.addEventListener("close", (event) => handleClose(opened, event));
}

/* (Re)connect with the credentials in use, dropping any socket already open. */
export function connect() {
  if (socket) {
    const old = socket;
    socket = null;
    old.close(1000);
  }
  wantConnected = true;
  reconnectDelay = 1000;
  clearMessage("connection");
  openSocket();
}

export function disconnect() {
  wantConnected = false;
  clearTimeout(reconnectTimer);
  if (socket) socket.close(1000);
  else setConnectionState("idle", "Not connected");
}

function sendJson(message) {
  seq += 1;
  socket.send(JSON.stringify(message));
  return seq;
}

/* An override threshold for the frames that follow, or null to let the organisation's false-match
 * rate decide again; sent shortly after the last change. */
export function sendSettings(threshold) {
  clearTimeout(settingsTimer);
  settingsTimer = setTimeout(() => {
    if (ready && socket && socket.readyState === WebSocket.OPEN) {
      sendJson({ type: "settings", threshold });
    }
  }, 150);
}

/* Room for one more frame on the socket open now, or null. The slot's send() does nothing if that
 * socket has since closed or been replaced (a frame is encoded in between). */
export function frameSlot() {
  const target = socket;
  if (!ready || !target || target.readyState !== WebSocket.OPEN) return null;
  if (pendingFrames.length >= MAX_IN_FLIGHT) return null;
  const usable = () => target === socket && target.readyState === WebSocket.OPEN;
  return {
    usable,
    send(buffer) {
      if (!usable()) return;
      seq += 1;
      pendingFrames.push(seq);
      sentAt.set(seq, performance.now());
      target.send(buffer);
    },
  };
}

function acknowledge(answered) {
  if (typeof answered !== "number") return;
  while (pendingFrames.length && pendingFrames[0] <= answered) {
    const done = pendingFrames.shift();
    if (done !== answered) sentAt.delete(done); // skipped by the server as stale
  }
}

function handleReply(reply) {
  switch (reply.type) {
    case "ready":
      ready = true;
      reconnectDelay = 1000;
      targetFps = Math.min(15, reply.limits ? reply.limits.max_fps : 15);
      setConnectionState("ok", `Live · ${reply.organization}`);
      clearMessage("connection");
      clearConnectErrors();
      setConnectedView(true);
      handlers.onReady(reply);
      break;
    case "result":
      onResult(reply);
      break;
    case "error":
      if (typeof reply.seq !== "number") {
        // Not about a frame: the server says why it is about to close the connection.
        closingError = reply.error || null;
        break;
      }
      acknowledge(reply.seq);
      onFrameError(reply.error);
      break;
    case "settings":
      break;
    default:
      break;
  }
}

function onResult(result) {
  const receivedAt = performance.now();
  const sent = sentAt.get(result.seq);
  acknowledge(result.seq);
  sentAt.delete(result.seq);
  handlers.onResult(result, { latencyMs: sent === undefined ? null : receivedAt - sent, receivedAt });
}

function onFrameError(error) {
  if (!error) return;
  if (error.code === "rate_limited") {
    targetFps = Math.max(2, targetFps * 0.7);
    showMessage("frames", "warning", "Server busy: sending fewer frames.", { autoHideMs: 4000 });
  } else if (error.code === "api_key_revoked") {
    // The close that follows says so.
  } else {
    showMessage("frames", "warning", `A frame was refused: ${error.message}`, { autoHideMs: 5000 });
  }
}

function handleClose(closed, event) {
  if (closed !== socket) return;
  socket = null;
  ready = false;
  handlers.onClosed();
  setConnectedView(false);
  const serverSays = closingError && closingError.message ? closingError.message : "";
  // Refusals are shown in the Connect form, next to the field concerned, not under the video.
  const stop = (show) => {
    wantConnected = false;
    setConnectionState("bad", "Disconnected");
    clearMessage("connection");
    show();
    handlers.onRefused();
  };
  switch (event.code) {
    case CLOSE.BAD_REQUEST:
      stop(() => connectError(serverSays || "Fill in the organisation, user, API key name and key, then connect."));
      return;
    case CLOSE.UNAUTHORIZED:
      stop(() => keyError("The API key was refused: it is unknown, mistyped, expired or revoked."));
      return;
    case CLOSE.SCOPE_DENIED:
      stop(() => keyError(
        (serverSays || "This API key may not use live recognition.")
        + " Ask staff for a key with the 'recognize' scope.",
      ));
      return;
    case CLOSE.FORBIDDEN:
      stop(() => connectError(
        "This key does not belong to that organisation, or the user and API key name do not match it.",
        ["organization", "user", "api_key_name"],
      ));
      return;
    case CLOSE.REVOKED:
      stop(() => keyError("The API key was revoked or expired while connected. Ask for a new key."));
      return;
    default:
      if (event.code >= 4400 && event.code < 4500) { // any other refusal: retrying would not help
        stop(() => connectError(serverSays || event.reason || "The server refused the connection."));
        return;
      }
      break;
  }
  if (!wantConnected) {
    setConnectionState("idle", "Not connected");
    return;
  }
  const seconds = Math.round(reconnectDelay / 1000);
  if (event.code === CLOSE.BUSY) {
    showMessage("connection", "warning", `Server busy: it has too many live connections. Retrying in ${seconds} s…`);
  } else {
    showMessage("connection", "warning", `Connection lost. Reconnecting in ${seconds} s…`);
  }
  setConnectionState("wait", "Reconnecting…");
  reconnectTimer = setTimeout(() => { if (wantConnected) openSocket(); }, reconnectDelay);
  reconnectDelay = Math.min(MAX_RECONNECT_DELAY_MS, reconnectDelay * 2);
}
