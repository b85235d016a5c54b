/* The People card: the organisation's people with their face crops (fetched with the key), a
 * Refresh button, and a two-click delete. */
import { api, currentCredentials, fetchWithKey, orgPath } from "./api.js";
import { el, make } from "./dom.js";
import { clearMessage, showMessage } from "./messages.js";

const thumbnailCache = new Map(); // face thumbnail URL -> object URL (fetched with the key)

async function faceThumbnail(url) {
  if (thumbnailCache.has(url)) return thumbnailCache.get(url);
  const response = await fetchWithKey(url);
  if (!response || !response.ok) return null;
  const objectUrl = URL.createObjectURL(await response.blob());
  thumbnailCache.set(url, objectUrl);
  return objectUrl;
}

export async function loadPeople() {
  if (!currentCredentials()) return;
  const answer = await api("GET", `/orgs/${orgPath()}/people?page_size=200`);
  if (!answer.ok) {
    showMessage("people", "error", `Could not load people: ${answer.error}`, { autoHideMs: 6000 });
    return;
  }
  clearMessage("people");
  renderPeople(answer.body.results || [], answer.body.count);
}

function renderPeople(people, count) {
  el.peopleCount.textContent = count ? `(${count})` : "";
  if (!people.length) {
    el.people.replaceChildren(make("li", {
      className: "empty", textContent: "No one registered yet. Register someone from the camera.",
    }));
    return;
  }
  el.people.replaceChildren(...people.map((person) => {
    const item = document.createElement("li");
    item.dataset.person = person.id;
    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.textContent = person.name.split(/\s+/).map((part) => part[0] || "").join("").slice(0, 2).toUpperCase();
    if (person.thumbnail_url) { // the person's face crop; initials until it arrives (or if it cannot)
      faceThumbnail(person.thumbnail_url).then((src) => {
        if (!src) return;
        const img = document.createElement("img");
        img.src = src;
        img.alt = person.name;
        avatar.replaceChildren(img);
      });
    }
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = person.name;
    const faces = document.createElement("span");
    faces.className = "faces";
    faces.textContent = `${person.face_count} face${person.face_count === 1 ? "" : "s"}`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "btn btn-small btn-danger";
    remove.textContent = "Delete";
    remove.addEventListener("click", () => deletePerson(person, remove));
    item.append(avatar, name, faces, remove);
    return item;
  }));
}

async function deletePerson(person, button) {
  // Two clicks instead of a modal dialog: "Delete" arms, "Confirm" deletes.
  if (!button.dataset.armed) {
    button.dataset.armed = "1";
    button.textContent = "Confirm";
    setTimeout(() => { delete button.dataset.armed; button.textContent = "Delete"; }, 3000);
    return;
  }
  button.disabled = true;
  const answer = await api("DELETE", `/orgs/${orgPath()}/people/${person.id}`);
  if (!answer.ok && answer.status !== 404) {
    button.disabled = false;
    showMessage("people", "error", `Could not delete ${person.name}: ${answer.error}`, { autoHideMs: 6000 });
    return;
  }
  showMessage("people", "success", `Deleted ${person.name}.`, { autoHideMs: 3000 });
  loadPeople();
}

export function initPeople() {
  el.peopleRefresh.addEventListener("click", loadPeople);
}
