/* The live statistics in the picture's corner: replies per second (last 3 s), round-trip latency
 * and server time (medians of the last 20), faces, and frames the server skipped as stale. */
import { el } from "./dom.js";

const replyTimes = [];
const latencies = [];
const serverTimes = [];

function pushWindow(list, value, size) {
  list.push(value);
  if (list.length > size) list.shift();
}

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export function recordReply(result, { latencyMs, receivedAt }) {
  if (latencyMs !== null) pushWindow(latencies, latencyMs, 20);
  if (result.timings_ms && typeof result.timings_ms.server === "number") {
    pushWindow(serverTimes, result.timings_ms.server, 20);
  }
  pushWindow(replyTimes, receivedAt, 30);
}

export function renderStats(result) {
  const times = replyTimes.filter((t) => performance.now() - t < 3000);
  const fps = times.length > 1 ? (times.length - 1) / ((times[times.length - 1] - times[0]) / 1000) : null;
  el.fps.textContent = fps ? fps.toFixed(1) : "–";
  const latency = median(latencies);
  el.latency.textContent = latency === null ? "–" : Math.round(latency);
  const server = median(serverTimes);
  el.server.textContent = server === null ? "–" : Math.round(server);
  el.faces.textContent = result.faces.length;
  el.dropped.textContent = result.counters ? result.counters.dropped_stale : 0;
}
