/* The Connect form: reads and checks the organisation, user, key name and key, shows errors next
 * to the field concerned, and collapses to "org · user/key name" once connected. */
import { currentCredentials } from "./api.js";
import { el } from "./dom.js";

const FIELDS = {
  organization: el.organization, user: el.user, api_key_name: el.apiKeyName, api_key: el.apiKey,
};

function fieldError(input, text) {
  const node = document.getElementById(`${input.id}-error`);
  if (node) node.textContent = text || "";
  if (text) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

export function keyError(text) {
  fieldError(el.apiKey, text);
}

/* A message for the whole form; `fields` (names in FIELDS) are marked invalid too. */
export function connectError(text, fields = []) {
  el.connectError.textContent = text || "";
  fields.forEach((name) => FIELDS[name] && FIELDS[name].setAttribute("aria-invalid", "true"));
}

export function clearConnectErrors() {
  Object.values(FIELDS).forEach((input) => fieldError(input, ""));
  connectError("");
}

export function setConnectedView(connected) {
  el.connectForm.classList.toggle("is-connected", connected);
  el.connectedAs.hidden = !connected;
  const c = currentCredentials();
  el.connectedAs.textContent = connected && c ? `${c.organization} · ${c.user}/${c.apiKeyName}` : "";
}

/* The typed credentials, or null after marking what is missing or malformed. */
function readCredentials() {
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
    return null;
  }
  return credentials;
}

export function initConnectForm({ onConnect, onDisconnect }) {
  Object.values(FIELDS).forEach((input) => input.addEventListener("input", () => {
    fieldError(input, "");
  }));
  el.connectForm.addEventListener("submit", (event) => {
    event.preventDefault(); // never submit: the key must not travel in a form or URL
    const credentials = readCredentials();
    if (credentials) onConnect(credentials);
  });
  el.disconnectButton.addEventListener("click", onDisconnect);
}
