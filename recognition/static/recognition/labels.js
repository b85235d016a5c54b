/* Place name labels next to face boxes so that no two labels overlap (an ES module shared by the
 * webcam page and the admin "try it" page). Each label goes above its box, else below it, else
 * slides down past whatever label is in the way; it is clamped inside the picture horizontally. */
const GAP = 4;

export function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/* items: [{label: Element, box: {x, y, w, h}}] in pixels of the overlay; bounds: {w, h}.
 * Labels are positioned absolutely; their offset parent is the box when `relativeToBox`. */
export function placeLabels(items, bounds, { relativeToBox = false, border = 0 } = {}) {
  const placed = [];
  const ordered = [...items].sort((a, b) => a.box.y - b.box.y || a.box.x - b.box.x);
  for (const item of ordered) {
    const w = item.label.offsetWidth;
    const h = item.label.offsetHeight;
    const x = Math.min(Math.max(0, item.box.x), Math.max(0, bounds.w - w));
    const free = (y) => !placed.some((other) => overlaps({ x, y, w, h }, other));
    const above = item.box.y - h - GAP;
    const below = item.box.y + item.box.h + GAP;
    let y;
    if (above >= 0 && free(above)) y = above;
    else if (below + h <= bounds.h && free(below)) y = below;
    else {
      y = Math.max(0, above);
      for (let guard = 0; guard < items.length + 1; guard += 1) {
        const blocker = placed.find((other) => overlaps({ x, y, w, h }, other));
        if (!blocker) break;
        y = blocker.y + blocker.h + GAP;
      }
    }
    const rect = { x, y, w, h };
    placed.push(rect);
    // A child of the box is placed from the box's padding edge, inside its border.
    const left = relativeToBox ? x - item.box.x - border : x;
    const top = relativeToBox ? y - item.box.y - border : y;
    Object.assign(item.label.style, { left: `${left}px`, top: `${top}px`, bottom: "auto", margin: "0" });
  }
  return placed;
}
