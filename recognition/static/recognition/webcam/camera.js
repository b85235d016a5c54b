/* The camera: starts and stops it (getUserMedia), says why it cannot start, and draws its current
 * picture on a canvas, for a frame to recognise or a capture to register. */
import { el } from "./dom.js";
import { clearMessage, showMessage } from "./messages.js";

let stream = null;
let handlers = { onStarted() {}, onStopped() {} };
const captureCanvas = document.createElement("canvas");

export const cameraOn = () => Boolean(stream);

/* On, and showing a picture. */
export function cameraLive() {
  return Boolean(stream) && el.video.readyState >= 2 && el.video.videoWidth > 0;
}

/* The current picture, scaled down to at most maxSide pixels (the canvas is reused). */
export function drawFrame(maxSide) {
  const video = el.video;
  const scale = Math.min(1, maxSide / Math.max(video.videoWidth, video.videoHeight));
  captureCanvas.width = Math.round(video.videoWidth * scale);
  captureCanvas.height = Math.round(video.videoHeight * scale);
  captureCanvas.getContext("2d").drawImage(video, 0, 0, captureCanvas.width, captureCanvas.height);
  return captureCanvas;
}

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showMessage("camera", "error", "This browser cannot use a camera on this page. Open it over https (or on localhost).");
    return;
  }
  el.cameraButton.disabled = true;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
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
  stream.getVideoTracks().forEach((track) => track.addEventListener("ended", () => {
    showMessage("camera", "error", "The camera stopped (unplugged or taken by another application).");
    stopCamera();
  }));
  el.video.srcObject = stream;
  try { await el.video.play(); } catch (err) { /* autoplay of a muted stream is allowed */ }
  el.stage.classList.add("live");
  el.cameraButton.textContent = "Stop camera";
  el.cameraButton.disabled = false;
  handlers.onStarted();
}

function stopCamera() {
  if (stream) stream.getTracks().forEach((track) => track.stop());
  stream = null;
  el.video.srcObject = null;
  el.stage.classList.remove("live");
  el.cameraButton.textContent = "Start camera";
  handlers.onStopped();
}

/* The camera button works from now on: the camera can start before connecting. */
export function initCamera(next) {
  handlers = next;
  el.cameraButton.addEventListener("click", () => (stream ? stopCamera() : startCamera()));
  el.cameraButton.disabled = false;
}
