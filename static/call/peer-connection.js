// Every RTCPeerConnection of the call is made here, and every RTCRtpSender and
// RTCRtpReceiver passes through `frames` exactly once: the one place where an encoded
// transform (RTCRtpScriptTransform for end-to-end encryption of frames) goes in.

let frames = { sender() {}, receiver() {} };
let extra = {};

// `hooks.sender(sender, transceiver)` and `hooks.receiver(receiver, transceiver)`, and what
// the transform needs in the configuration, for the connections made from now on.
export function transformFrames(hooks, configuration = {}) {
  frames = hooks;
  extra = configuration;
}

export function newPeerConnection(iceServers) {
  const pc = new RTCPeerConnection({ iceServers, ...extra });
  const seen = new WeakSet();
  // Receivers made by the other side's offer exist only from here on; "track" comes before
  // the first frame, so the transform is in place in time.
  pc.addEventListener("track", (event) => {
    if (seen.has(event.receiver)) return;
    seen.add(event.receiver);
    frames.receiver(event.receiver, event.transceiver);
  });
  return pc;
}

// Peer to peer, tracks go in with addTrack (negotiated both ways); to the relay, with a
// `direction` ("sendonly").
export function sendTrack(pc, track, stream, direction) {
  if (direction) {
    const transceiver = pc.addTransceiver(track, { direction, streams: [stream] });
    frames.sender(transceiver.sender, transceiver);
    return transceiver.sender;
  }
  const sender = pc.addTrack(track, stream);
  frames.sender(sender, pc.getTransceivers().find((t) => t.sender === sender));
  return sender;
}

export function receiveKind(pc, kind) {
  return pc.addTransceiver(kind, { direction: "recvonly" });
}
