// The device check on its own, days before the consultation (templates/device_check.html):
// the call page's check of camera, microphone and speaker, with nothing to join.

import { DeviceCheck } from "./call/device-check.js";
import { LocalMedia } from "./call/media.js";

const $ = (id) => document.getElementById(id);
const root = $("device-check");
if (root) start();

function start() {
  const T = JSON.parse($("device-text").textContent);
  if (!navigator.mediaDevices || !window.RTCPeerConnection) {
    $("device-error").textContent = T.unsupported;
    $("device-error").hidden = false;
    root.dataset.state = "unsupported";
    return;
  }
  const media = new LocalMedia();
  const devices = new DeviceCheck(media, T);
  const open = () => devices.open().then(() => { root.dataset.state = "ready"; }).catch(console.error);
  for (const gesture of ["pointerdown", "keydown"]) document.addEventListener(gesture, () => media.resumeLevel());
  $("speaker-test").addEventListener("click", () => devices.testSound().catch(console.error));
  $("camera-select").addEventListener("change", open);
  $("microphone-select").addEventListener("change", open);
  window.addEventListener("pagehide", () => media.stop());
  open();
}
