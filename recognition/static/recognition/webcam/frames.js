/* The frame loop: at the pace the server allows, draw the camera's picture, encode it as JPEG and
 * send it whenever the socket has room for a frame. */
import { cameraLive, drawFrame } from "./camera.js";
import { frameRate, frameSlot } from "./socket.js";

const FRAME_MAX_SIDE = 640; // detection works on <= 800 px anyway; smaller frames travel faster
const JPEG_QUALITY = 0.8;

let encoding = false;

function frameTick() {
  setTimeout(frameTick, 1000 / frameRate());
  const slot = frameSlot();
  if (!slot || !cameraLive() || encoding) return;
  encoding = true;
  drawFrame(FRAME_MAX_SIDE).toBlob(async (blob) => {
    try {
      if (!blob || !slot.usable()) return;
      const buffer = await blob.arrayBuffer();
      slot.send(buffer);
    } finally {
      encoding = false;
    }
  }, "image/jpeg", JPEG_QUALITY);
}

export function startFrameLoop() {
  frameTick();
}
