/* FacePortal webcam page (templates/recognition/webcam.html): camera frames over the recognition
 * WebSocket, names drawn over faces. Plain ES modules, no build step; this entry module only wires
 * the ones in webcam/ together and owns which controls are enabled and the mirror setting
 * (webcam/decision.js owns the threshold override). Nothing is put on window. */
import { useCredentials } from "./webcam/api.js";
import { cameraOn, initCamera } from "./webcam/camera.js";
import { initConnectForm, setConnectedView } from "./webcam/connect.js";
import { initDecision, resendOverride, showDecision } from "./webcam/decision.js";
import { el } from "./webcam/dom.js";
import { startFrameLoop } from "./webcam/frames.js";
import { clearBoxes, initOverlay, layoutOverlay, renderFaces, showResult } from "./webcam/overlay.js";
import { initPeople, loadPeople } from "./webcam/people.js";
import { initRegister } from "./webcam/register.js";
import { connect, disconnect, initSocket, isReady, wantsConnection } from "./webcam/socket.js";
import { recordReply, renderStats } from "./webcam/stats.js";
import { initUnknowns, showKeeping, stopUnknowns } from "./webcam/unknowns.js";

function setControlsEnabled(connected) {
  el.registerButton.disabled = !(connected && cameraOn());
  el.peopleRefresh.disabled = !connected;
  el.disconnectButton.disabled = !wantsConnection();
}

initSocket({
  onReady(reply) {
    showDecision(reply);
    showKeeping(reply);
    resendOverride();
    setControlsEnabled(true);
    loadPeople();
  },
  onResult(result, timing) {
    recordReply(result, timing);
    showDecision(result);
    renderStats(result);
    showKeeping(result);
    // Last, so the labels are placed in the page as these texts leave it.
    showResult(result);
  },
  onClosed() {
    clearBoxes();
    stopUnknowns();
  },
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
initUnknowns({ named: loadPeople });
initDecision();

el.stage.classList.toggle("mirrored", el.mirror.checked);
startFrameLoop();
