/* Register from camera: capture a short burst of frames while prompting the person to turn
 * slightly, send them to POST /register/{org} with keep_best, and show each capture as the face it
 * contributed (or dimmed, with the reason it was not kept). The server picks the best frames: the
 * same gates as every registration decide, not the page. Asks first when several faces, or a face
 * already named otherwise, are in view. */
import { api, orgPath } from "./api.js";
import { cameraLive, cameraOn, drawFrame } from "./camera.js";
import { el } from "./dom.js";
import { facesInView } from "./overlay.js";
import { loadPeople } from "./people.js";
import { isReady } from "./socket.js";

// Several photos of a person name them far more often than one (docs/OPEN_SET.md); a slight turn
// between frames gives the three kept ones different views, not three copies of one.
const REGISTER_FRAMES = 8;
const REGISTER_GAP_MS = 300;
const KEEP_BEST = 3;
const PROMPTS = ["Look at the camera…", "Turn your head slightly to one side…", "…and slightly to the other side…",
  "Back to the camera…"];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function register(event) {
  event.preventDefault();
  const name = el.registerName.value.trim();
  if (!name) return;
  if (!cameraLive()) {
    el.registerResult.className = "result bad";
    el.registerResult.textContent = "Start the camera first.";
    return;
  }
  const inView = facesInView();
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
  const images = [];
  for (let i = 0; i < REGISTER_FRAMES; i += 1) {
    el.registerResult.textContent = PROMPTS[Math.floor((i * PROMPTS.length) / REGISTER_FRAMES)];
    const dataUri = drawFrame(1024).toDataURL("image/jpeg", 0.9);
    images.push(dataUri);
    const thumb = document.createElement("img");
    thumb.src = dataUri;
    thumb.alt = `Capture ${i + 1}`;
    el.captures.append(thumb);
    await sleep(REGISTER_GAP_MS);
  }
  el.registerResult.textContent = "Registering…";
  const answer = await api("POST", `/register/${orgPath()}`, {
    name, images, allow_duplicate: allowDuplicate, keep_best: KEEP_BEST,
  });
  el.registerButton.disabled = !(isReady() && cameraOn());
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
      thumb.dataset.code = outcome.code || "";
      thumb.title = outcome.reason || "not used";
      return;
    }
    // Show the face that was used, not the whole frame.
    thumb.src = await faceCrop(images[outcome.index], outcome.box);
    thumb.classList.add("used");
    thumb.title = `Face used (detection confidence ${outcome.detection_confidence})`;
  }));
  el.registerResult.className = "result ok";
  const kept = answer.body.faces_added;
  el.registerResult.textContent = `${answer.body.created ? "Registered" : "Added faces to"} ${answer.body.person.name}: `
    + `${kept} face${kept === 1 ? "" : "s"} kept from ${images.length} frames.`
    + (kept < KEEP_BEST ? " Register again, turning slightly, to add more views." : "");
  el.registerName.value = "";
  loadPeople();
}

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

export function initRegister() {
  el.registerForm.addEventListener("submit", register);
}
