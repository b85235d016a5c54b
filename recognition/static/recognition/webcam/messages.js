/* Messages under the video (one per key, replaced in place, dismissable) and the connection pill. */
import { el } from "./dom.js";

export function showMessage(key, kind, text, { autoHideMs = 0 } = {}) {
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

export function clearMessage(key) {
  const node = el.messages.querySelector(`[data-key="${key}"]`);
  if (node) node.remove();
}

export function setConnectionState(kind, text) {
  el.state.className = `pill pill-${kind}`;
  el.state.textContent = text;
}
