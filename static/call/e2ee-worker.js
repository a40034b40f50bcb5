// The transform worker of end-to-end encryption: every encoded frame of every sender and
// receiver of the page passes through here (RTCRtpScriptTransform, or the streams of
// Chromium's older createEncodedStreams handed over by the page). The page gives it keys;
// it tells the page, per transform, which key id it last saw and how many frames opened,
// and when (Date.now()) its first frame came, opened, and opened as a keyframe, beside when the
// first key of its sender came.

import { clearBytes, openFrame, readFrame, sealFrame } from "./frame-cipher.js";

let encrypt = true;
let sending = null;
const receiving = new Map();
const transforms = new Map();
const senders = new Map();
const receivers = new Map();
const expected = new Map();
const keysAt = new Map(); // sender -> when its first key came

// After a change of key or mode the receivers could not use what came before: a keyframe
// lets them start over at once instead of waiting until they ask for one.
function keyframes() {
  for (const transformer of senders.values()) {
    if (transformer.generateKeyFrame) transformer.generateKeyFrame().catch(() => {});
  }
}

// Without a key nothing leaves: a frame is dropped rather than sent readable.
async function send(frame, controller, seen) {
  if (!encrypt || !frame.data.byteLength) { controller.enqueue(frame); return; }
  if (!sending) return;
  const meta = frame.getMetadata ? frame.getMetadata() : {};
  // The clear bytes fit VP8 and Opus only (docs/e2ee.md); another codec is not sent at all.
  if (meta.mimeType && !/^(video\/vp8|audio\/)/i.test(meta.mimeType)) { seen.refused += 1; return; }
  frame.data = (await sealFrame(sending.key, sending.keyId, frame.data, clearBytes(seen.kind, frame.type))).buffer;
  seen.keyId = sending.keyId;
  seen.frames += 1;
  controller.enqueue(frame);
}

// A receiver that opens delta frames but no keyframe yet (frames before it had the key were
// dropped, a keyframe among them) asks the sender for one: a sender without
// generateKeyFrame (createEncodedStreams) sends none on its switch, and the decoder would
// otherwise wait until the browser itself asks.
function askForKeyframe(seen, frame, id) {
  if (seen.kind !== "video" || seen.keyframeAt) return;
  if (frame.type === "key") { seen.keyframeAt = Date.now(); return; }
  const transformer = receivers.get(id);
  if (!transformer || !transformer.sendKeyFrameRequest || Date.now() - seen.askedAt < 500) return;
  seen.askedAt = Date.now();
  seen.asked += 1;
  transformer.sendKeyFrameRequest().catch(() => {});
}

async function receive(frame, controller, seen, id) {
  if (!seen.firstAt) seen.firstAt = Date.now();
  if (!encrypt || !frame.data.byteLength) { controller.enqueue(frame); return; }
  const found = readFrame(frame.data);
  const entry = found && receiving.get(found.keyId);
  if (entry && seen.expected && entry.from !== seen.expected) { seen.failed += 1; return; }
  if (found) seen.keyId = found.keyId;
  try {
    if (!entry) throw new Error("no key for this frame");
    frame.data = (await openFrame(entry.key, frame.data)).buffer;
  } catch (error) {
    seen.failed += 1; // never shown: a frame this page cannot open is dropped
    return;
  }
  seen.from = entry.from;
  seen.frames += 1;
  if (!seen.openedAt) seen.openedAt = Date.now();
  seen.keyAt = keysAt.get(entry.from);
  askForKeyframe(seen, frame, id);
  controller.enqueue(frame);
}

function pipe(readable, writable, { side, kind, id }) {
  const seen = {
    side, kind, keyId: null, from: null, expected: expected.get(id) || null, frames: 0, failed: 0, refused: 0,
    firstAt: null, openedAt: null, keyframeAt: null, keyAt: null, askedAt: 0, asked: 0,
  };
  transforms.set(id, seen);
  const step = side === "send" ? send : receive;
  readable
    .pipeThrough(new TransformStream({ transform: (frame, controller) => step(frame, controller, seen, id) }))
    .pipeTo(writable)
    .catch(() => {}) // the connection closed
    .finally(() => { transforms.delete(id); senders.delete(id); receivers.delete(id); expected.delete(id); });
}

self.addEventListener("rtctransform", (event) => {
  const { readable, writable, options } = event.transformer;
  if (options.side === "send" && options.kind === "video") senders.set(options.id, event.transformer);
  if (options.side === "receive" && options.kind === "video") receivers.set(options.id, event.transformer);
  pipe(readable, writable, options);
});

self.addEventListener("message", ({ data }) => {
  switch (data.type) {
    case "encrypt": encrypt = data.on; keyframes(); break;
    case "send-key": sending = { keyId: data.keyId, key: data.key }; keyframes(); break;
    case "receive-key":
      receiving.set(data.keyId, { from: data.from, key: data.key });
      if (!keysAt.has(data.from)) keysAt.set(data.from, Date.now());
      break;
    case "drop-key": receiving.delete(data.keyId); break;
    case "expect":
      // The page may know whose a receiver is before or after its frames start.
      expected.set(data.id, data.from);
      if (transforms.has(data.id)) transforms.get(data.id).expected = data.from;
      break;
    case "streams": pipe(data.readable, data.writable, data.options); break;
    case "report": self.postMessage({ type: "report", transforms: Object.fromEntries(transforms) }); break;
    default: break;
  }
});
