/* The webcam page's elements, by their ids in templates/recognition/webcam.html. */
const $ = (id) => document.getElementById(id);

/** A new element with its properties (className, textContent, ...) and children. */
export function make(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

export const el = {
  state: $("connection-state"), stage: $("stage"), video: $("video"), overlay: $("overlay"),
  messages: $("messages"), cameraButton: $("camera-button"), threshold: $("threshold"),
  thresholdValue: $("threshold-value"), thresholdOverride: $("threshold-override"), decision: $("decision"),
  mirror: $("mirror"), connectForm: $("connect-form"),
  organization: $("organization"), user: $("user"), apiKeyName: $("api-key-name"), apiKey: $("api-key"),
  connectButton: $("connect-button"), disconnectButton: $("disconnect-button"),
  connectError: $("connect-error"), connectedAs: $("connected-as"),
  registerForm: $("register-form"), registerName: $("register-name"), registerButton: $("register-button"),
  registerResult: $("register-result"), captures: $("captures"), people: $("people"),
  peopleCount: $("people-count"), peopleRefresh: $("people-refresh"),
  fps: $("stat-fps"), latency: $("stat-latency"), server: $("stat-server"), faces: $("stat-faces"),
  dropped: $("stat-dropped"), unknownsCard: $("unknowns-card"), unknowns: $("unknowns"),
  unknownsCount: $("unknowns-count"),
};
