/* "Who's this?": the organisation's most recently seen unknown clusters (GET unknown-clusters with
 * the key), each with a name field that enrols it (POST unknown-clusters/{id}/assign). Shown only
 * while the answers say the organisation keeps unknown faces; refreshed every few seconds while
 * shown. Cards are updated in place, so a name being typed survives a refresh. */
import { api, currentCredentials, fetchWithKey, orgPath } from "./api.js";
import { el, make } from "./dom.js";
import { showMessage } from "./messages.js";

const REFRESH_MS = 3000;
const SHOWN = 8; // clusters in the strip

const crops = new Map(); // thumbnail URL -> object URL (fetched with the key)
let timer = null;
let keeping = false;
let onNamed = () => {};

export function initUnknowns({ named }) {
  onNamed = named;
}

/* From each answer: whether the organisation keeps unknowns. The strip follows it. */
export function showKeeping(result) {
  const keeps = result.keep_unknown_faces === true;
  if (keeps === keeping) return;
  keeping = keeps;
  el.unknownsCard.hidden = !keeps;
  clearInterval(timer);
  timer = null;
  if (keeps) {
    loadUnknowns();
    timer = setInterval(loadUnknowns, REFRESH_MS);
  }
}

export function stopUnknowns() {
  keeping = false;
  clearInterval(timer);
  timer = null;
  el.unknownsCard.hidden = true;
  el.unknowns.replaceChildren();
}

async function crop(url) {
  if (crops.has(url)) return crops.get(url);
  const response = await fetchWithKey(url);
  if (!response || !response.ok) return null;
  const objectUrl = URL.createObjectURL(await response.blob());
  crops.set(url, objectUrl);
  return objectUrl;
}

async function loadUnknowns() {
  if (!currentCredentials() || document.hidden) return;
  const answer = await api("GET", `/orgs/${orgPath()}/unknown-clusters?page_size=${SHOWN}`);
  if (!keeping) return;
  if (!answer.ok) {
    showMessage("unknowns", "error", `Could not load unknown faces: ${answer.error}`, { autoHideMs: 6000 });
    return;
  }
  render(answer.body.results || [], answer.body.count);
}

function seenText(cluster) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(cluster.last_seen)) / 1000));
  const ago = seconds < 60 ? `${seconds} s` : seconds < 3600 ? `${Math.round(seconds / 60)} min`
    : `${Math.round(seconds / 3600)} h`;
  return `${cluster.size} face${cluster.size === 1 ? "" : "s"} · seen ${ago} ago`;
}

function render(clusters, count) {
  el.unknownsCount.textContent = count ? `(${count})` : "";
  if (!clusters.length) {
    el.unknowns.replaceChildren(make("li", { className: "empty", textContent: "Nobody unrecognised seen lately." }));
    return;
  }
  const existing = new Map([...el.unknowns.querySelectorAll("li[data-cluster]")].map((n) => [n.dataset.cluster, n]));
  el.unknowns.replaceChildren(...clusters.map((cluster) => {
    const item = existing.get(String(cluster.id)) || clusterCard(cluster);
    item.dataset.size = cluster.size;
    item.querySelector(".seen").textContent = seenText(cluster);
    const sample = cluster.sample_faces[0];
    if (sample && item.dataset.crop !== sample.thumbnail_url) {
      item.dataset.crop = sample.thumbnail_url;
      crop(sample.thumbnail_url).then((src) => { if (src) item.querySelector(".crop").src = src; });
    }
    return item;
  }));
}

function clusterCard(cluster) {
  const item = make("li", { className: "unknown-cluster" });
  item.dataset.cluster = cluster.id;
  const image = make("img", { className: "crop", alt: "An unrecognised face" });
  const seen = make("span", { className: "seen" });
  const input = make("input", { name: "name", maxLength: 200, required: true, placeholder: "Name" });
  input.setAttribute("aria-label", "Name of this person");
  const button = make("button", { type: "submit", className: "btn btn-primary btn-small", textContent: "Name" });
  const form = make("form", { autocomplete: "off" }, input, button);
  const error = make("p", { className: "error" });
  error.setAttribute("role", "alert");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    name(item, input, button, error);
  });
  item.append(image, seen, form, error);
  return item;
}

async function name(item, input, button, error) {
  const person = input.value.trim();
  error.textContent = "";
  if (!person) {
    error.textContent = "Type a name first.";
    input.focus();
    return;
  }
  button.disabled = true;
  const answer = await api("POST", `/orgs/${orgPath()}/unknown-clusters/${item.dataset.cluster}/assign`, { name: person });
  button.disabled = false;
  if (!answer.ok) {
    error.textContent = answer.status === 404 ? "Already named or dismissed elsewhere." : answer.error;
    if (answer.status === 404) loadUnknowns();
    return;
  }
  const added = answer.body.faces_added;
  showMessage("unknowns", "success",
    `${answer.body.person.name}: ${added} face${added === 1 ? "" : "s"} enrolled${answer.body.created ? " (new person)" : ""}.`,
    { autoHideMs: 4000 });
  item.remove();
  loadUnknowns();
  onNamed();
}
