/* Who gets a name, as the server states it in `ready` and in every result: the organisation's
 * false-match rate, turned into a threshold for the people enrolled now. The visitor may override
 * it with a fixed similarity; that is off by default, and until it is switched on the page never
 * sends a threshold. While it is on, every answer says so (threshold_source "request"). */
import { decisionText } from "../decision.js";
import { el } from "./dom.js";
import { sendSettings } from "./socket.js";

let sliderMoved = false; // once moved, the slider keeps the visitor's value

export const overriding = () => el.thresholdOverride.checked;

function showSliderValue() {
  el.thresholdValue.textContent = Number(el.threshold.value).toFixed(3);
}

/* `answer`: a `ready` message or a result; both carry threshold and threshold_source, and, when
 * the calibration decides, false_match_rate and gallery_size. */
export function showDecision(answer) {
  if (typeof answer.threshold !== "number") return;
  const source = answer.threshold_source;
  el.decision.textContent = decisionText(answer);
  el.decision.dataset.source = source;
  el.decision.classList.toggle("override", source === "request");
  if (!overriding() && !sliderMoved) { // an override would start from the threshold in force
    el.threshold.value = String(answer.threshold);
    el.thresholdValue.textContent = answer.threshold.toFixed(3); // the slider's steps would round it
  }
}

/* On (re)connecting: a new connection has no threshold of its own, so only an override is sent. */
export function resendOverride() {
  if (overriding()) sendSettings(Number(el.threshold.value));
}

export function initDecision() {
  el.threshold.disabled = !overriding();
  el.thresholdOverride.addEventListener("change", () => {
    el.threshold.disabled = !overriding();
    sendSettings(overriding() ? Number(el.threshold.value) : null); // null: back to the false-match rate
  });
  el.threshold.addEventListener("input", () => {
    sliderMoved = true;
    showSliderValue();
    if (overriding()) sendSettings(Number(el.threshold.value));
  });
}
