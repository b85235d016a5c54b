/* The API key and the REST calls made with it. The key lives in this module's memory only: never
 * stored, never in a page URL (the WebSocket query string, which the protocol requires, aside). */
let credentials = null; // {organization, user, apiKeyName, key}

export function useCredentials(next) {
  credentials = next;
}

export function currentCredentials() {
  return credentials;
}

export const orgPath = () => encodeURIComponent(credentials.organization);

/* A JSON call with the key as Bearer: {ok, status, body} or {ok: false, status, error, code, body},
 * `error` being a sentence for the visitor. */
export async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${credentials.key}`, "Content-Type": "application/json", Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch (err) {
    return { ok: false, status: 0, error: "Cannot reach the server. Check the connection and try again." };
  }
  let payload = null;
  if (response.status !== 204) {
    try { payload = await response.json(); } catch (err) { payload = null; }
  }
  if (response.ok) return { ok: true, status: response.status, body: payload };
  let error = payload && payload.error ? payload.error.message : `The server answered HTTP ${response.status}.`;
  if (response.status === 401) error = "The API key was refused (unknown, mistyped or revoked).";
  else if (response.status === 403) error = "This key may not access that organisation.";
  else if (response.status === 429) error = "Server busy: too many requests. Wait a moment and try again.";
  else if (response.status >= 500) error = "The server had a problem; try again shortly.";
  return { ok: false, status: response.status, error, code: payload && payload.error ? payload.error.code : null, body: payload };
}

/* A GET of a protected file (a face thumbnail) with the key; null when the server cannot be reached. */
export async function fetchWithKey(url) {
  try {
    return await fetch(url, {
      headers: { Authorization: `Bearer ${credentials.key}` },
      credentials: "omit", referrerPolicy: "no-referrer",
    });
  } catch (err) {
    return null;
  }
}
