/* FacePortal webcam page: camera frames over the recognition WebSocket, names drawn over faces.
 * Plain JavaScript, no build step. The API key lives in this closure only (never stored, never in
 * a page URL); the WebSocket query string is the one place the documented protocol requires it. */
(() => {
  "use strict";

  const CLOSE = { BAD_REQUEST: 4400, UNAUTHORIZED: 4401, FORBIDDEN: 4403, REVOKED: 4410, BUSY: 4503 };
  const FRAME_MAX_SIDE = 640; // detection works on <= 800 px anyway; smaller frames travel faster
  const JPEG_QUALITY = 0.8;
  // One frame in flight: the next is captured when the answer arrives, so boxes lag the face by one
  // frame's processing, never by a queue. (The server also drops stale frames for other clients.)
  const MAX_IN_FLIGHT = 1;
  const REGISTER_FRAMES = 5;
  const REGISTER_GAP_MS = 250;
  const MAX_RECONNECT_DELAY_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const el = {
    state: $("connection-state"), stage: $("stage"), video: $("video"), overlay: $("overlay"),
    messages: $("messages"), cameraButton: $("camera-button"), threshold: $("threshold"),
    thresholdValue: $("threshold-value"), mirror: $("mirror"), connectForm: $("connect-form"),
    organization: $("organization"), user: $("user"), apiKeyName: $("api-key-name"), apiKey: $("api-key"),
    connectButton: $("connect-button"), disconnectButton: $("disconnect-button"),
    connectError: $("connect-error"), connectedAs: $("connected-as"),
    registerForm: $("register-form"), registerName: $("register-name"), registerButton: $("register-button"),
    registerResult: $("register-result"), captures: $("captures"), people: $("people"),
    peopleCount: $("people-count"), peopleRefresh: $("people-refresh"),
    fps: $("stat-fps"), latency: $("stat-latency"), server: $("stat-server"), faces: $("stat-faces"),
    dropped: $("stat-dropped"),
  };

  const state = {
    credentials: null, // {organization, user, apiKeyName, key}
    closingError: null, // an {"type": "error"} the server sent just before closing, if any
    socket: null,
    ready: false,
    wantConnected: false,
    reconnectDelay: 1000,
    reconnectTimer: null,
    seq: 0, // every message sent on this socket; the server numbers them the same way
    pendingFrames: [], // seqs of frames not yet answered (answers arrive in order)
    sentAt: new Map(),
    encoding: false,
    targetFps: 15,
    frameTimer: null,
    stream: null,
    lastResult: null,
    thresholdTouched: false,
    settingsTimer: null,
    replyTimes: [],
    latencies: [],
    serverTimes: [],
    boxes: [],
  };

  const captureCanvas = document.createElement("canvas");
  const FIELDS = {
    organization: el.organization, user: el.user, api_key_name: el.apiKeyName, api_key: el.apiKey,
  };

  /* ---------- connect form errors, next to the fields ---------- */

  function fieldError(input, text) {
    const node = document.getElementById(`${input.id}-error`);
    if (node) node.textContent = text || "";
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function connectError(text, fields = []) {
    el.connectError.textContent = text || "";
    fields.forEach((name) => FIELDS[name] && FIELDS[name].setAttribute("aria-invalid", "true"));
  }

  function clearConnectErrors() {
    Object.values(FIELDS).forEach((input) => fieldError(input, ""));
    connectError("");
  }

  Object.values(FIELDS).forEach((input) => input.addEventListener("input", () => {
    fieldError(input, "");
  }));

  function setConnectedView(connected) {
    el.connectForm.classList.toggle("is-connected", connected);
    el.connectedAs.hidden = !connected;
    const c = state.credentials;
    el.connectedAs.textContent = connected && c ? `${c.organization} · ${c.user}/${c.apiKeyName}` : "";
  }

  /* ---------- messages ---------- */

  function showMessage(key, kind, text, { autoHideMs = 0 } = {}) {
    let node = el.messages.querySelector(`[data-key="${key}"]`);
    if (!node) {
      node = document.createElement("div");
      node.dataset.key = key;
      const span = document.createElement("span");
      const close = document.createElement("button");
      close.className = "close";
      close.type = "button";
      close.setAttribute("aria-label", "Dismiss");
      close.textContent = "×";
      close.addEventListener("click", () => node.remove());
      node.append(span, close);
      el.messages.append(node);
    }
    node.className = `message ${kind}`;
    node.firstChild.textContent = text;
    clearTimeout(node._timer);
    if (autoHideMs) node._timer = setTimeout(() => node.remove(), autoHideMs);
  }

  function clearMessage(key) {
    const node = el.messages.querySelector(`[data-key="${key}"]`);
    if (node) node.remove();
  }

  function setConnectionState(kind, text) {
    el.state.className = `pill pill-${kind}`;
    el.state.textContent = text;
  }

  /* ---------- REST ---------- */

  async function api(method, path, body) {
    const c = state.credentials;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: { Authorization: `Bearer ${c.key}`, "Content-Type": "application/json", Accept: "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch (err) {
      return { ok: false, status: 0, error: "Cannot reach the server. Check the connection and try again." };
    }
    let payload = null;
    if (response.status !== 204) {
      try { payload = await response.json(); } catch (err) { payload = null; }
    }
    if (response.ok) return { ok: true, status: response.status, body: payload };
    let error = payload && payload.error ? payload.error.message : `The server answered HTTP ${response.status}.`;
    if (response.status === 401) error = "The API key was refused (unknown, mistyped or revoked).";
    else if (response.status === 403) error = "This key may not access that organisation.";
    else if (response.status === 429) error = "Server busy: too many requests. Wait a moment and try again.";
    else if (response.status >= 500) error = "The server had a problem; try again shortly.";
    return { ok: false, status: response.status, error, code: payload && payload.error ? payload.error.code : null, body: payload };
  }

  const orgPath = () => encodeURIComponent(state.credentials.organization);

  /* ---------- WebSocket ---------- */

  function socketUrl() {
    const c = state.credentials;
    const query = new URLSearchParams({
      token: c.key, organization: c.organization, user: c.user, api_key_name: c.apiKeyName,
    });
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws/recognize?${query}`;
  }

  function openSocket() {
    clearTimeout(state.reconnectTimer);
    const socket = new WebSocket(socketUrl());
    socket.binaryType = "arraybuffer";
    state.socket = socket;
    state.ready = false;
    state.closingError = null;
    state.seq = 0;
    state.pendingFrames = [];
    state.sentAt.clear();
    setConnectionState("wait", "Connecting…");
    socket.addEventListener("message", (event) => {
      if (socket !== state.socket) return;
      let reply;
      try { reply = JSON.parse(event.data); } catch (err) { return; }
      handleReply(reply);
    });
    socket.addEventListener("close", (event) => handleClose(socket, event));
  }

  function sendJson(message) {
    state.seq += 1;
    state.socket.send(JSON.stringify(message));
    return state.seq;
  }

  function acknowledge(seq) {
    if (typeof seq !== "number") return;
    while (state.pendingFrames.length && state.pendingFrames[0] <= seq) {
      const done = state.pendingFrames.shift();
      if (done !== seq) state.sentAt.delete(done); // skipped by the server as stale
    }
  }

  function handleReply(reply) {
    switch (reply.type) {
      case "ready":
        state.ready = true;
        state.reconnectDelay = 1000;
        state.targetFps = Math.min(15, reply.limits ? reply.limits.max_fps : 15);
        setConnectionState("ok", `Live · ${reply.organization}`);
        clearMessage("connection");
        clearConnectErrors();
        setConnectedView(true);
        if (!state.thresholdTouched && typeof reply.default_threshold === "number") {
          setThreshold(reply.default_threshold);
        } else {
          sendSettings();
        }
        setControlsEnabled(true);
        loadPeople();
        break;
      case "result":
        onResult(reply);
        break;
      case "error":
        if (typeof reply.seq !== "number") {
          // Not about a frame: the server says why it is about to close the connection.
          state.closingError = reply.error || null;
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

  function handleClose(socket, event) {
    if (socket !== state.socket) return;
    state.socket = null;
    state.ready = false;
    clearBoxes();
    setConnectedView(false);
    const serverSays = state.closingError && state.closingError.message ? state.closingError.message : "";
    // Refusals are shown in the Connect form, next to the field concerned, not under the video.
    const stop = (show) => {
      state.wantConnected = false;
      setConnectionState("bad", "Disconnected");
      clearMessage("connection");
      show();
      setControlsEnabled(false);
    };
    switch (event.code) {
      case CLOSE.BAD_REQUEST:
        stop(() => connectError(serverSays || "Fill in the organisation, user, API key name and key, then connect."));
        return;
      case CLOSE.UNAUTHORIZED:
        stop(() => fieldError(el.apiKey, "The API key was refused: it is unknown, mistyped or revoked."));
        return;
      case CLOSE.FORBIDDEN:
        stop(() => connectError(
          "This key does not belong to that organisation, or the user and API key name do not match it.",
          ["organization", "user", "api_key_name"],
        ));
        return;
      case CLOSE.REVOKED:
        stop(() => fieldError(el.apiKey, "The API key was revoked while connected. Ask for a new key."));
        return;
      default:
        if (event.code >= 4400 && event.code < 4500) { // any other refusal: retrying would not help
          stop(() => connectError(serverSays || event.reason || "The server refused the connection."));
          return;
        }
        break;
    }
    if (!state.wantConnected) {
      setConnectionState("idle", "Not connected");
      return;
    }
    const seconds = Math.round(state.reconnectDelay / 1000);
    if (event.code === CLOSE.BUSY) {
      showMessage("connection", "warning", `Server busy: it has too many live connections. Retrying in ${seconds} s…`);
    } else {
      showMessage("connection", "warning", `Connection lost. Reconnecting in ${seconds} s…`);
    }
    setConnectionState("wait", "Reconnecting…");
    state.reconnectTimer = setTimeout(() => { if (state.wantConnected) openSocket(); }, state.reconnectDelay);
    state.reconnectDelay = Math.min(MAX_RECONNECT_DELAY_MS, state.reconnectDelay * 2);
  }

  function onFrameError(error) {
    if (!error) return;
    if (error.code === "rate_limited") {
      state.targetFps = Math.max(2, state.targetFps * 0.7);
      showMessage("frames", "warning", "Server busy: sending fewer frames.", { autoHideMs: 4000 });
    } else if (error.code === "api_key_revoked") {
      // The close that follows says so.
    } else {
      showMessage("frames", "warning", `A frame was refused: ${error.message}`, { autoHideMs: 5000 });
    }
  }

  /* ---------- frames ---------- */

  function cameraLive() {
    return Boolean(state.stream) && el.video.readyState >= 2 && el.video.videoWidth > 0;
  }

  function drawFrame(maxSide) {
    const video = el.video;
    const scale = Math.min(1, maxSide / Math.max(video.videoWidth, video.videoHeight));
    captureCanvas.width = Math.round(video.videoWidth * scale);
    captureCanvas.height = Math.round(video.videoHeight * scale);
    captureCanvas.getContext("2d").drawImage(video, 0, 0, captureCanvas.width, captureCanvas.height);
    return captureCanvas;
  }

  function frameTick() {
    state.frameTimer = setTimeout(frameTick, 1000 / state.targetFps);
    const socket = state.socket;
    if (!state.ready || !socket || socket.readyState !== WebSocket.OPEN || !cameraLive()) return;
    if (state.encoding || state.pendingFrames.length >= MAX_IN_FLIGHT) return;
    state.encoding = true;
    drawFrame(FRAME_MAX_SIDE).toBlob(async (blob) => {
      try {
        if (!blob || socket !== state.socket || socket.readyState !== WebSocket.OPEN) return;
        const buffer = await blob.arrayBuffer();
        if (socket !== state.socket || socket.readyState !== WebSocket.OPEN) return;
        state.seq += 1;
        state.pendingFrames.push(state.seq);
        state.sentAt.set(state.seq, performance.now());
        socket.send(buffer);
      } finally {
        state.encoding = false;
      }
    }, "image/jpeg", JPEG_QUALITY);
  }

  function onResult(result) {
    const now = performance.now();
    const sent = state.sentAt.get(result.seq);
    acknowledge(result.seq);
    state.sentAt.delete(result.seq);
    if (sent !== undefined) pushWindow(state.latencies, now - sent, 20);
    if (result.timings_ms && typeof result.timings_ms.server === "number") {
      pushWindow(state.serverTimes, result.timings_ms.server, 20);
    }
    pushWindow(state.replyTimes, now, 30);
    state.lastResult = result;
    renderFaces();
    renderStats(result);
  }

  function pushWindow(list, value, size) {
    list.push(value);
    if (list.length > size) list.shift();
  }

  function median(values) {
    if (!values.length) return null;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  function renderStats(result) {
    const times = state.replyTimes.filter((t) => performance.now() - t < 3000);
    const fps = times.length > 1 ? (times.length - 1) / ((times[times.length - 1] - times[0]) / 1000) : null;
    el.fps.textContent = fps ? fps.toFixed(1) : "–";
    const latency = median(state.latencies);
    el.latency.textContent = latency === null ? "–" : Math.round(latency);
    const server = median(state.serverTimes);
    el.server.textContent = server === null ? "–" : Math.round(server);
    el.faces.textContent = result.faces.length;
    el.dropped.textContent = result.counters ? result.counters.dropped_stale : 0;
  }

  /* ---------- overlay ---------- */

  function layoutOverlay() {
    const video = el.video;
    if (!video.videoWidth) return;
    // The picture inside the element after object-fit: contain.
    const boxWidth = el.stage.clientWidth;
    const boxHeight = el.stage.clientHeight;
    const scale = Math.min(boxWidth / video.videoWidth, boxHeight / video.videoHeight);
    const width = video.videoWidth * scale;
    const height = video.videoHeight * scale;
    Object.assign(el.overlay.style, {
      left: `${(boxWidth - width) / 2}px`, top: `${(boxHeight - height) / 2}px`,
      width: `${width}px`, height: `${height}px`,
    });
  }

  function clearBoxes() {
    state.lastResult = null;
    state.boxes.forEach((node) => node.remove());
    state.boxes = [];
  }

  function boxNode(index) {
    if (!state.boxes[index]) {
      const node = document.createElement("div");
      node.className = "face-box";
      const label = document.createElement("div");
      label.className = "face-label";
      const name = document.createElement("span");
      name.className = "name";
      const similarity = document.createElement("span");
      similarity.className = "similarity";
      label.append(name, similarity);
      node.append(label);
      el.overlay.append(node);
      state.boxes[index] = node;
    }
    return state.boxes[index];
  }

  function renderFaces() {
    const result = state.lastResult;
    if (!result) return;
    layoutOverlay();
    const threshold = Number(el.threshold.value);
    const mirrored = el.mirror.checked;
    const imageWidth = result.image.width;
    const imageHeight = result.image.height;
    result.faces.forEach((face, index) => {
      const node = boxNode(index);
      const best = face.candidates && face.candidates.length ? face.candidates[0] : null;
      // The server decides (calibrated to the gallery, or the slider once moved); older answers lack it.
      const known = face.decision ? face.decision === "match" : best !== null && best.similarity >= threshold;
      const { x, y, w, h } = face.box;
      const left = mirrored ? imageWidth - x - w : x;
      Object.assign(node.style, {
        left: `${(100 * left) / imageWidth}%`, top: `${(100 * y) / imageHeight}%`,
        width: `${(100 * w) / imageWidth}%`, height: `${(100 * h) / imageHeight}%`,
      });
      node.classList.toggle("unknown", !known);
      node.dataset.person = known ? String(best.person) : "";
      const [nameNode, similarityNode] = node.firstChild.childNodes;
      nameNode.textContent = known ? best.name : face.decision === "ambiguous" ? "Unsure" : "Unknown";
      // A percentage next to "Unknown" reads as confidence in someone; only a match shows one.
      similarityNode.textContent = known ? `${(best.similarity * 100).toFixed(1)}%` : "";
      node.title = known ? `Similarity ${(best.similarity * 100).toFixed(1)}% (needed ${(face.threshold * 100).toFixed(1)}%)`
        : face.decision === "ambiguous" ? "Two registered people are about equally close" : "Not anyone registered";
    });
    state.boxes.splice(result.faces.length).forEach((node) => node.remove());
    placeFaceLabels(result, mirrored);
  }

  function placeFaceLabels(result, mirrored) {
    const W = el.overlay.clientWidth;
    const H = el.overlay.clientHeight;
    if (!W || !H) return;
    const sx = W / result.image.width;
    const sy = H / result.image.height;
    const items = result.faces.map((face, index) => {
      const { x, y, w, h } = face.box;
      const left = mirrored ? result.image.width - x - w : x;
      return { label: state.boxes[index].firstChild, box: { x: left * sx, y: y * sy, w: w * sx, h: h * sy } };
    });
    window.FacePortalLabels.placeLabels(items, { w: W, h: H }, { relativeToBox: true, border: 3 });
  }

  /* ---------- threshold and mirror ---------- */

  function setThreshold(value) {
    el.threshold.value = String(value);
    el.thresholdValue.textContent = Number(el.threshold.value).toFixed(3);
    renderFaces();
    sendSettings();
  }

  function sendSettings() {
    clearTimeout(state.settingsTimer);
    state.settingsTimer = setTimeout(() => {
      if (state.ready && state.socket && state.socket.readyState === WebSocket.OPEN) {
        sendJson({ type: "settings", threshold: Number(el.threshold.value) });
      }
    }, 150);
  }

  el.threshold.addEventListener("input", () => {
    state.thresholdTouched = true;
    setThreshold(el.threshold.value);
  });

  el.mirror.addEventListener("change", () => {
    el.stage.classList.toggle("mirrored", el.mirror.checked);
    renderFaces();
  });

  /* ---------- camera ---------- */

  async function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showMessage("camera", "error", "This browser cannot use a camera on this page. Open it over https (or on localhost).");
      return;
    }
    el.cameraButton.disabled = true;
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: "user" },
        audio: false,
      });
    } catch (err) {
      const name = err && err.name;
      let text = `Could not start the camera: ${err && err.message ? err.message : name}`;
      if (name === "NotAllowedError" || name === "SecurityError") {
        text = "Camera access was denied. Allow the camera for this site in the browser's settings, then try again.";
      } else if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
        text = "No camera was found. Connect a camera, then try again.";
      } else if (name === "NotReadableError" || name === "TrackStartError") {
        text = "The camera is busy in another application. Close it there, then try again.";
      }
      showMessage("camera", "error", text);
      el.cameraButton.disabled = false;
      return;
    }
    clearMessage("camera");
    state.stream.getVideoTracks().forEach((track) => track.addEventListener("ended", () => {
      showMessage("camera", "error", "The camera stopped (unplugged or taken by another application).");
      stopCamera();
    }));
    el.video.srcObject = state.stream;
    try { await el.video.play(); } catch (err) { /* autoplay of a muted stream is allowed */ }
    el.stage.classList.add("live");
    el.cameraButton.textContent = "Stop camera";
    el.cameraButton.disabled = false;
    layoutOverlay();
    setControlsEnabled(state.ready);
  }

  function stopCamera() {
    if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
    state.stream = null;
    el.video.srcObject = null;
    el.stage.classList.remove("live");
    el.cameraButton.textContent = "Start camera";
    clearBoxes();
    setControlsEnabled(state.ready);
  }

  el.cameraButton.addEventListener("click", () => (state.stream ? stopCamera() : startCamera()));
  el.video.addEventListener("loadedmetadata", layoutOverlay);
  window.addEventListener("resize", () => { layoutOverlay(); });
  if (window.ResizeObserver) new ResizeObserver(() => layoutOverlay()).observe(el.stage);

  /* ---------- connect ---------- */

  function setControlsEnabled(connected) {
    el.registerButton.disabled = !(connected && state.stream);
    el.peopleRefresh.disabled = !connected;
    el.disconnectButton.disabled = !state.wantConnected;
  }

  el.connectForm.addEventListener("submit", (event) => {
    event.preventDefault(); // never submit: the key must not travel in a form or URL
    const credentials = {
      organization: el.organization.value.trim(),
      user: el.user.value.trim(),
      apiKeyName: el.apiKeyName.value.trim(),
      key: el.apiKey.value.trim(),
    };
    clearConnectErrors();
    const missing = [
      [el.organization, credentials.organization, "Type your organisation, e.g. acme."],
      [el.user, credentials.user, "Type the user the key was issued to."],
      [el.apiKeyName, credentials.apiKeyName, "Type the key's name."],
      [el.apiKey, credentials.key, "Paste the API key (fp_…)."],
    ].filter(([, value]) => !value);
    missing.forEach(([input, , text]) => fieldError(input, text));
    if (!missing.length && !/^fp_[0-9a-f]{12}_\S+$/.test(credentials.key)) {
      missing.push([el.apiKey]);
      fieldError(el.apiKey, "An API key looks like fp_<12 hex characters>_<secret>. Check it was pasted whole.");
    }
    if (missing.length) {
      missing[0][0].focus();
      return;
    }
    if (state.socket) {
      const old = state.socket;
      state.socket = null;
      old.close(1000);
    }
    state.credentials = credentials;
    state.wantConnected = true;
    state.reconnectDelay = 1000;
    clearMessage("connection");
    openSocket();
    setControlsEnabled(false);
  });

  el.disconnectButton.addEventListener("click", () => {
    state.wantConnected = false;
    setConnectedView(false);
    clearTimeout(state.reconnectTimer);
    if (state.socket) state.socket.close(1000);
    else setConnectionState("idle", "Not connected");
    setControlsEnabled(false);
  });

  /* ---------- register ---------- */

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  el.registerForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = el.registerName.value.trim();
    if (!name) return;
    if (!cameraLive()) {
      el.registerResult.className = "result bad";
      el.registerResult.textContent = "Start the camera first.";
      return;
    }
    const inView = state.lastResult ? state.lastResult.faces : [];
    const knownAs = inView.length === 1 && inView[0].decision === "match" ? inView[0].match.name : null;
    if (inView.length >= 2 || (knownAs && knownAs !== name)) {
      const warning = inView.length >= 2
        ? `${inView.length} faces are in view: only ${name} should be in front of the camera. Register anyway?`
        : `This face is already registered as ${knownAs}. Register it as ${name} too?`;
      if (!window.confirm(warning)) return;
    }
    const allowDuplicate = Boolean(knownAs && knownAs !== name);
    el.registerButton.disabled = true;
    el.captures.replaceChildren();
    el.registerResult.className = "result";
    el.registerResult.textContent = "Capturing… look at the camera.";
    const images = [];
    for (let i = 0; i < REGISTER_FRAMES; i += 1) {
      const dataUri = drawFrame(1024).toDataURL("image/jpeg", 0.9);
      images.push(dataUri);
      const thumb = document.createElement("img");
      thumb.src = dataUri;
      thumb.alt = `Capture ${i + 1}`;
      el.captures.append(thumb);
      await sleep(REGISTER_GAP_MS);
    }
    el.registerResult.textContent = "Registering…";
    const answer = await api("POST", `/register/${orgPath()}`, { name, images, allow_duplicate: allowDuplicate });
    el.registerButton.disabled = !(state.ready && state.stream);
    if (!answer.ok) {
      el.registerResult.className = "result bad";
      el.registerResult.textContent = answer.code === "no_face"
        ? "No face was found in any frame. Face the camera in good light and try again."
        : answer.error;
      return;
    }
    const outcomes = answer.body.images || [];
    await Promise.all(outcomes.map(async (outcome) => {
      const thumb = el.captures.children[outcome.index];
      if (!thumb) return;
      if (!outcome.accepted) {
        thumb.classList.add("rejected");
        thumb.title = outcome.reason || "not used";
        return;
      }
      // Show the face that was used, not the whole frame.
      thumb.src = await faceCrop(images[outcome.index], outcome.box);
      thumb.classList.add("used");
      thumb.title = `Face used (detection confidence ${outcome.detection_confidence})`;
    }));
    el.registerResult.className = "result ok";
    el.registerResult.textContent = `${answer.body.created ? "Registered" : "Added faces to"} ${answer.body.person.name}: `
      + `${answer.body.faces_added} of ${images.length} frames used.`;
    el.registerName.value = "";
    loadPeople();
  });

  function faceCrop(dataUri, box) {
    return new Promise((resolve) => {
      if (!box) { resolve(dataUri); return; }
      const image = new Image();
      image.onload = () => {
        // A square around the face with a little context, like the server's stored crop.
        const side = Math.max(box.w, box.h) * 1.4;
        const cx = box.x + box.w / 2;
        const cy = box.y + box.h / 2;
        const canvas = document.createElement("canvas");
        canvas.width = 104;
        canvas.height = 104;
        canvas.getContext("2d").drawImage(image, cx - side / 2, cy - side / 2, side, side, 0, 0, 104, 104);
        resolve(canvas.toDataURL("image/jpeg", 0.85));
      };
      image.onerror = () => resolve(dataUri);
      image.src = dataUri;
    });
  }

  /* ---------- people ---------- */

  const thumbnailCache = new Map(); // face thumbnail URL -> object URL (fetched with the key)

  async function faceThumbnail(url) {
    if (thumbnailCache.has(url)) return thumbnailCache.get(url);
    let response;
    try {
      response = await fetch(url, {
        headers: { Authorization: `Bearer ${state.credentials.key}` },
        credentials: "omit", referrerPolicy: "no-referrer",
      });
    } catch (err) {
      return null;
    }
    if (!response.ok) return null;
    const objectUrl = URL.createObjectURL(await response.blob());
    thumbnailCache.set(url, objectUrl);
    return objectUrl;
  }

  async function loadPeople() {
    if (!state.credentials) return;
    const answer = await api("GET", `/orgs/${orgPath()}/people?page_size=200`);
    if (!answer.ok) {
      showMessage("people", "error", `Could not load people: ${answer.error}`, { autoHideMs: 6000 });
      return;
    }
    clearMessage("people");
    renderPeople(answer.body.results || [], answer.body.count);
  }

  function renderPeople(people, count) {
    el.peopleCount.textContent = count ? `(${count})` : "";
    if (!people.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "No one registered yet. Register someone from the camera.";
      el.people.replaceChildren(empty);
      return;
    }
    el.people.replaceChildren(...people.map((person) => {
      const item = document.createElement("li");
      item.dataset.person = person.id;
      const avatar = document.createElement("span");
      avatar.className = "avatar";
      avatar.textContent = person.name.split(/\s+/).map((part) => part[0] || "").join("").slice(0, 2).toUpperCase();
      if (person.thumbnail_url) { // the person's face crop; initials until it arrives (or if it cannot)
        faceThumbnail(person.thumbnail_url).then((src) => {
          if (!src) return;
          const img = document.createElement("img");
          img.src = src;
          img.alt = person.name;
          avatar.replaceChildren(img);
        });
      }
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = person.name;
      const faces = document.createElement("span");
      faces.className = "faces";
      faces.textContent = `${person.face_count} face${person.face_count === 1 ? "" : "s"}`;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn btn-small btn-danger";
      remove.textContent = "Delete";
      remove.addEventListener("click", () => deletePerson(person, remove));
      item.append(avatar, name, faces, remove);
      return item;
    }));
  }

  async function deletePerson(person, button) {
    // Two clicks instead of a modal dialog: "Delete" arms, "Confirm" deletes.
    if (!button.dataset.armed) {
      button.dataset.armed = "1";
      button.textContent = "Confirm";
      setTimeout(() => { delete button.dataset.armed; button.textContent = "Delete"; }, 3000);
      return;
    }
    button.disabled = true;
    const answer = await api("DELETE", `/orgs/${orgPath()}/people/${person.id}`);
    if (!answer.ok && answer.status !== 404) {
      button.disabled = false;
      showMessage("people", "error", `Could not delete ${person.name}: ${answer.error}`, { autoHideMs: 6000 });
      return;
    }
    showMessage("people", "success", `Deleted ${person.name}.`, { autoHideMs: 3000 });
    loadPeople();
  }

  el.peopleRefresh.addEventListener("click", loadPeople);

  /* ---------- start ---------- */

  el.stage.classList.toggle("mirrored", el.mirror.checked);
  el.thresholdValue.textContent = Number(el.threshold.value).toFixed(3);
  el.cameraButton.disabled = false; // the camera can start before connecting
  frameTick();
})();
