/* FacePortal webcam page (templates/recognition/webcam.html): camera frames over the recognition
 * WebSocket, names drawn over faces. Plain ES modules, no build step; this entry module only wires
 * the ones in webcam/ together and owns which controls are enabled and the threshold and mirror
 * settings. Nothing is put on window. */
import { useCredentials } from "./webcam/api.js";
import { cameraOn, initCamera } from "./webcam/camera.js";
import { initConnectForm, setConnectedView } from "./webcam/connect.js";
import { el } from "./webcam/dom.js";
import { startFrameLoop } from "./webcam/frames.js";
import { clearBoxes, initOverlay, layoutOverlay, renderFaces, showResult } from "./webcam/overlay.js";
import { initPeople, loadPeople } from "./webcam/people.js";
import { initRegister } from "./webcam/register.js";
import { connect, disconnect, initSocket, isReady, sendSettings, wantsConnection } from "./webcam/socket.js";
import { recordReply, renderStats } from "./webcam/stats.js";

let thresholdTouched = false; // once the visitor moves the slider, the server's default no longer applies

function setControlsEnabled(connected) {
  el.registerButton.disabled = !(connected && cameraOn());
  el.peopleRefresh.disabled = !connected;
  el.disconnectButton.disabled = !wantsConnection();
}

function setThreshold(value) {
  el.threshold.value = String(value);
  el.thresholdValue.textContent = Number(el.threshold.value).toFixed(3);
  renderFaces();
  sendSettings(Number(el.threshold.value));
}

initSocket({
  onReady(reply) {
    if (!thresholdTouched && typeof reply.default_threshold === "number") {
      setThreshold(reply.default_threshold);
    } else {
      sendSettings(Number(el.threshold.value));
    }
    setControlsEnabled(true);
    loadPeople();
  },
  onResult(result, timing) {
    recordReply(result, timing);
    showResult(result);
    renderStats(result);
  },
  onClosed: clearBoxes,
  onRefused() {
    setControlsEnabled(false);
  },
});

initConnectForm({
  onConnect(credentials) {
    useCredentials(credentials);
    connect();
    setControlsEnabled(false);
  },
  onDisconnect() {
    setConnectedView(false);
    disconnect();
    setControlsEnabled(false);
  },
});

el.threshold.addEventListener("input", () => {
  thresholdTouched = true;
  setThreshold(el.threshold.value);
});

el.mirror.addEventListener("change", () => {
  el.stage.classList.toggle("mirrored", el.mirror.checked);
  renderFaces();
});

initOverlay();
initCamera({
  onStarted() {
    layoutOverlay();
    setControlsEnabled(isReady());
  },
  onStopped() {
    clearBoxes();
    setControlsEnabled(isReady());
  },
});
initRegister();
initPeople();

el.stage.classList.toggle("mirrored", el.mirror.checked);
el.thresholdValue.textContent = Number(el.threshold.value).toFixed(3);
startFrameLoop();
