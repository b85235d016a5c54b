/* Boxes and names over the video for the latest result, lined up with the picture as the video
 * element shows it (object-fit: contain; mirrored with it), labels kept apart by ../labels.js. */
import { placeLabels } from "../labels.js";
import { el, make } from "./dom.js";

let lastResult = null;
let boxes = [];

/* The faces of the result drawn now (none once cleared). */
export function facesInView() {
  return lastResult ? lastResult.faces : [];
}

export function layoutOverlay() {
  const video = el.video;
  if (!video.videoWidth) return;
  // The picture inside the element after object-fit: contain.
  const boxWidth = el.stage.clientWidth;
  const boxHeight = el.stage.clientHeight;
  const scale = Math.min(boxWidth / video.videoWidth, boxHeight / video.videoHeight);
  const width = video.videoWidth * scale;
  const height = video.videoHeight * scale;
  Object.assign(el.overlay.style, {
    left: `${(boxWidth - width) / 2}px`, top: `${(boxHeight - height) / 2}px`,
    width: `${width}px`, height: `${height}px`,
  });
}

export function clearBoxes() {
  lastResult = null;
  boxes.forEach((node) => node.remove());
  boxes = [];
}

function boxNode(index) {
  if (!boxes[index]) {
    const label = make("div", { className: "face-label" },
      make("span", { className: "name" }), make("span", { className: "similarity" }));
    const node = make("div", { className: "face-box" }, label);
    el.overlay.append(node);
    boxes[index] = node;
  }
  return boxes[index];
}

export function showResult(result) {
  lastResult = result;
  renderFaces();
}

/* Draws the latest result again: after a new one or a mirror toggle. */
export function renderFaces() {
  const result = lastResult;
  if (!result) return;
  layoutOverlay();
  const mirrored = el.mirror.checked;
  const imageWidth = result.image.width;
  const imageHeight = result.image.height;
  result.faces.forEach((face, index) => {
    const node = boxNode(index);
    const best = face.match;
    // The server decides (the organisation's false-match rate, or the visitor's override).
    const known = face.decision === "match" && Boolean(best);
    const { x, y, w, h } = face.box;
    const left = mirrored ? imageWidth - x - w : x;
    Object.assign(node.style, {
      left: `${(100 * left) / imageWidth}%`, top: `${(100 * y) / imageHeight}%`,
      width: `${(100 * w) / imageWidth}%`, height: `${(100 * h) / imageHeight}%`,
    });
    node.classList.toggle("unknown", !known);
    node.dataset.person = known ? String(best.person) : "";
    const [nameNode, similarityNode] = node.firstChild.childNodes;
    nameNode.textContent = known ? best.name : face.decision === "ambiguous" ? "Unsure" : "Unknown";
    // A percentage next to "Unknown" reads as confidence in someone; only a match shows one.
    similarityNode.textContent = known ? `${(best.similarity * 100).toFixed(1)}%` : "";
    node.title = known ? `Similarity ${(best.similarity * 100).toFixed(1)}% (needed ${(face.threshold * 100).toFixed(1)}%)`
      : face.decision === "ambiguous" ? "Two registered people are about equally close" : "Not anyone registered";
  });
  boxes.splice(result.faces.length).forEach((node) => node.remove());
  placeFaceLabels(result, mirrored);
}

function placeFaceLabels(result, mirrored) {
  const W = el.overlay.clientWidth;
  const H = el.overlay.clientHeight;
  if (!W || !H) return;
  const sx = W / result.image.width;
  const sy = H / result.image.height;
  const items = result.faces.map((face, index) => {
    const { x, y, w, h } = face.box;
    const left = mirrored ? result.image.width - x - w : x;
    return { label: boxes[index].firstChild, box: { x: left * sx, y: y * sy, w: w * sx, h: h * sy } };
  });
  placeLabels(items, { w: W, h: H }, { relativeToBox: true, border: 3 });
}

/* The overlay again, and the labels with it: their offsets are pixels, so a picture that grows or
 * shrinks (a scrollbar appearing, a rotated phone) would otherwise push them into each other. */
function relayout() {
  if (lastResult) renderFaces();
  else layoutOverlay();
}

/* Keeps the overlay over the picture when the video's size or the window changes. */
export function initOverlay() {
  el.video.addEventListener("loadedmetadata", relayout);
  window.addEventListener("resize", relayout);
  if (window.ResizeObserver) new ResizeObserver(relayout).observe(el.stage);
}
