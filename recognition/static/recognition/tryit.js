/* Admin "try it" page: recognise a dropped or chosen photo against one organisation's gallery,
 * draw boxes and names over it, list candidates, and register the photo under a name. Staff
 * session + CSRF token; no API key involved. An ES module, no build step.
 *
 * The organisation's false-match rate decides, as over `POST /recognize`; a threshold is sent only
 * while "Override threshold" is ticked, and each answer says which decided. */
import { decisionText } from "./decision.js";
import { placeLabels } from "./labels.js";

function startTryIt(app) {
  const $ = (id) => document.getElementById(id);
  const el = {
    drop: $("drop-zone"), file: $("try-file"), stage: $("try-stage"), image: $("try-image"),
    overlay: $("try-overlay"), status: $("try-status"), threshold: $("try-threshold"),
    override: $("try-override"), decision: $("try-decision"), thresholdSource: $("try-threshold-source"),
    thresholdUsed: $("try-threshold-used"), faces: $("try-faces"), faceCount: $("try-face-count"),
    register: $("try-register"), name: $("try-name"), registerButton: $("try-register-button"),
    registerResult: $("try-register-result"),
  };
  const csrf = app.querySelector("input[name=csrfmiddlewaretoken]").value;
  const maxBytes = Number(app.dataset.maxMb || 10) * 1024 * 1024;
  let current = null; // the File shown
  let lastResult = null;

  const percent = (value) => `${(value * 100).toFixed(1)}%`;

  function setStatus(node, kind, text) {
    node.className = `try-status ${kind}`;
    node.textContent = text;
  }

  async function post(url, form) {
    form.append("csrfmiddlewaretoken", csrf);
    let response;
    try {
      response = await fetch(url, { method: "POST", body: form, credentials: "same-origin",
        headers: { "X-CSRFToken": csrf, Accept: "application/json" } });
    } catch (err) {
      return { ok: false, message: "Cannot reach the server." };
    }
    let body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    if (response.ok) return { ok: true, body };
    const message = body && body.error ? body.error.message
      : response.status === 403 ? "Your session expired or lacks permission; reload the page and sign in."
        : `The server answered HTTP ${response.status}.`;
    return { ok: false, message, code: body && body.error ? body.error.code : null };
  }

  function choose(file) {
    if (!file) return;
    if (!file.type.startsWith("image/")) {
      setStatus(el.status, "bad", `${file.name} is not an image.`);
      return;
    }
    if (file.size > maxBytes) {
      setStatus(el.status, "bad", `${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${app.dataset.maxMb} MB.`);
      return;
    }
    current = file;
    if (el.image.src) URL.revokeObjectURL(el.image.src);
    el.image.src = URL.createObjectURL(file);
    el.stage.hidden = false;
    el.overlay.replaceChildren();
    if (el.registerButton) el.registerButton.disabled = false;
    recognize();
  }

  async function recognize() {
    if (!current) return;
    setStatus(el.status, "", "Recognising…");
    const form = new FormData();
    form.append("image", current);
    if (el.override.checked && el.threshold.value !== "") form.append("threshold", el.threshold.value);
    const answer = await post(app.dataset.recognizeUrl, form);
    if (!answer.ok) {
      lastResult = null;
      el.overlay.replaceChildren();
      renderList(null);
      setStatus(el.status, "bad", answer.message);
      return;
    }
    lastResult = answer.body;
    const n = lastResult.faces.length;
    const named = lastResult.faces.filter((face) => face.match).length;
    setStatus(el.status, "ok", n
      ? `${n} face${n === 1 ? "" : "s"} found, ${named} recognised · ${lastResult.timings_ms.total} ms`
      : "No face found in this photo.");
    el.thresholdUsed.textContent = Number(lastResult.threshold).toFixed(3);
    el.thresholdSource.textContent = lastResult.threshold_source;
    el.decision.textContent = decisionText(lastResult);
    el.decision.dataset.source = lastResult.threshold_source;
    el.decision.classList.toggle("override", lastResult.threshold_source === "request");
    draw();
    renderList(lastResult);
  }

  function draw() {
    el.overlay.replaceChildren();
    if (!lastResult || !el.image.complete || !el.image.naturalWidth) return;
    const W = el.overlay.clientWidth;
    const H = el.overlay.clientHeight;
    const sx = W / lastResult.image.width;
    const sy = H / lastResult.image.height;
    const items = lastResult.faces.map((face, index) => {
      const box = { x: face.box.x * sx, y: face.box.y * sy, w: face.box.w * sx, h: face.box.h * sy };
      const node = document.createElement("div");
      node.className = `try-box${face.match ? "" : " unknown"}`;
      Object.assign(node.style, { left: `${box.x}px`, top: `${box.y}px`, width: `${box.w}px`, height: `${box.h}px` });
      const label = document.createElement("div");
      label.className = `try-label${face.match ? "" : " unknown"}`;
      label.dataset.face = String(index);
      const name = document.createElement("span");
      name.className = "try-name";
      name.textContent = `${index + 1}. ${face.match ? face.match.name : "Unknown"}`;
      label.append(name);
      if (face.match) { // an unknown face shows no percentage: it is not a confidence
        const sim = document.createElement("span");
        sim.className = "try-sim";
        sim.textContent = percent(face.match.similarity);
        label.append(sim);
      }
      el.overlay.append(node, label);
      return { label, box };
    });
    placeLabels(items, { w: W, h: H });
  }

  function renderList(result) {
    el.faceCount.textContent = result ? `(${result.faces.length})` : "";
    if (!result || !result.faces.length) {
      const empty = document.createElement("li");
      empty.className = "try-empty";
      empty.textContent = result ? "No face found." : "Choose a photo to see its faces.";
      el.faces.replaceChildren(empty);
      return;
    }
    el.faces.replaceChildren(...result.faces.map((face) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.className = `try-face-name${face.match ? "" : " unknown"}`;
      name.textContent = face.match ? face.match.name : face.decision === "ambiguous"
        ? "Unsure (two people are about equally close)" : "Unknown (no one at or above the threshold)";
      const candidates = document.createElement("ul");
      candidates.className = "try-candidates";
      if (!face.candidates.length) {
        const none = document.createElement("li");
        none.textContent = "No one registered yet.";
        candidates.append(none);
      }
      face.candidates.forEach((candidate) => {
        const row = document.createElement("li");
        row.className = candidate.similarity >= face.threshold ? "" : "below";
        const who = document.createElement("span");
        who.textContent = candidate.name;
        const sim = document.createElement("span");
        sim.className = "try-candidate-sim";
        sim.textContent = `${candidate.similarity.toFixed(4)}${candidate.similarity >= face.threshold ? "" : " (below)"}`;
        row.append(who, sim);
        candidates.append(row);
      });
      item.append(name, candidates);
      return item;
    }));
  }

  el.file.addEventListener("change", () => choose(el.file.files[0]));
  ["dragenter", "dragover"].forEach((type) => el.drop.addEventListener(type, (event) => {
    event.preventDefault();
    el.drop.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => el.drop.addEventListener(type, (event) => {
    event.preventDefault();
    el.drop.classList.remove("dragging");
  }));
  el.drop.addEventListener("drop", (event) => choose(event.dataTransfer.files[0]));
  let thresholdTimer = null;
  el.threshold.addEventListener("input", () => {
    clearTimeout(thresholdTimer);
    thresholdTimer = setTimeout(recognize, 300);
  });
  el.override.addEventListener("change", () => {
    el.threshold.disabled = !el.override.checked;
    recognize();
  });
  el.threshold.disabled = !el.override.checked; // a reload may keep the box ticked
  el.image.addEventListener("load", draw);
  window.addEventListener("resize", draw);

  if (el.register) {
    el.register.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!current) return;
      const name = el.name.value.trim();
      if (!name) {
        setStatus(el.registerResult, "bad", "Type the person's name.");
        el.name.focus();
        return;
      }
      el.registerButton.disabled = true;
      setStatus(el.registerResult, "", "Registering…");
      const form = new FormData();
      form.append("image", current);
      form.append("name", name);
      const answer = await post(app.dataset.registerUrl, form);
      el.registerButton.disabled = false;
      if (!answer.ok) {
        setStatus(el.registerResult, "bad", answer.code === "no_face"
          ? "No usable face in this photo; nothing was stored." : answer.message);
        return;
      }
      const body = answer.body;
      setStatus(el.registerResult, "ok", `${body.created ? "Registered" : "Added a face to"} ${body.person.name}.`);
      const link = document.createElement("a");
      link.href = body.person.url;
      link.textContent = " Open";
      el.registerResult.append(link);
      el.name.value = "";
      recognize();
    });
  }
}

const app = document.getElementById("try-app");
if (app) startTryIt(app);
