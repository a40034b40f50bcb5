// The call page: device check, then the call over the signalling protocol of
// docs/signalling.md. Two people connect peer to peer; otherwise everyone sends to the
// server's relay once and receives the others on a second connection. This module owns the
// page and wires the parts together; the parts themselves never touch it.

import { Arrivals } from "./arrivals.js";
import { Chat } from "./chat.js";
import { Connections } from "./connections.js";
import { DeviceCheck } from "./device-check.js";
import { Encryption, encodedTransformsAvailable } from "./encryption.js";
import { keepAlive } from "./keepalive.js";
import { LocalMedia } from "./media.js";
import { CallProtocol } from "./protocol.js";
import { Tiles } from "./tiles.js";

const $ = (id) => document.getElementById(id);
const root = $("call");
if (root) start();

function start() {
  const T = JSON.parse($("call-text").textContent);
  const status = (text) => { $("status").textContent = text; };
  const reload = () => window.location.reload();
  keepAlive({ url: root.dataset.alive, seconds: Number(root.dataset.aliveSeconds), csrf: root.dataset.csrf }, reload);

  // A browser without WebRTC (Debian's WebKitGTK, for one) or without camera access cannot
  // take part; it is told which browsers can. An insecure page (http) has no camera
  // access in any browser, which is no reason to change browsers.
  const unsupported = !window.RTCPeerConnection || (window.isSecureContext && !navigator.mediaDevices);
  if (unsupported || !navigator.mediaDevices) {
    $("device-error").textContent = unsupported ? T.unsupported : T.device_failed;
    $("device-error").hidden = false;
    $("join").disabled = true;
    root.dataset.state = "unsupported";
    return;
  }

  const allowTransport = root.dataset.e2ee === "allow_transport";
  if (!encodedTransformsAvailable() && !allowTransport) {
    // The practice wants every call end-to-end encrypted; this browser cannot.
    $("device-error").textContent = T.e2ee_unsupported;
    $("device-error").hidden = false;
    $("join").disabled = true;
    return;
  }

  const media = new LocalMedia();
  const devices = new DeviceCheck(media, T);
  const tiles = new Tiles($("tiles"), T);
  const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  const protocol = new CallProtocol(scheme + window.location.host + root.dataset.socket, { refused });
  let others = [];
  const encryption = new Encryption({
    signals: protocol, allowTransport, onChange: showEncryption, onSendingKey: () => sendMute().catch(console.error),
  });
  const ready = encryption.start();
  const connectedStatus = () => status(others.length ? T.in_call : T.alone);
  const connections = new Connections({
    signals: protocol,
    media,
    onTrack: (peer, track) => {
      encryption.expect(track, peer);
      tiles.showTrack(peer, track, devices.speaker);
    },
    onPeerState: (peer, state) => tiles.setState(peer, state),
    onRelayState: (state) => {
      if (state === "disconnected") status(T.reconnecting);
      if (state === "connected") connectedStatus();
    },
  });
  const chat = new Chat(T, { send: (text) => sendChat(text).catch(console.error), me: () => protocol.me });
  let quality = null;

  async function refused() {
    // A browser does not learn why a WebSocket handshake failed; the page itself tells
    // refused (a redirect or an error page) from offline (no answer: keep trying).
    try {
      const page = await fetch(window.location.href, { redirect: "manual", cache: "no-store" });
      return page.type === "opaqueredirect" || !page.ok;
    } catch (error) {
      return false;
    }
  }

  async function sendChat(text) {
    const message = await encryption.outgoingChat(text);
    if (!message) status(T.e2ee_chat_wait);
    else if (message.sealed) protocol.sendSealedChat(message.sealed);
    else protocol.sendChat(message.text);
  }

  // The mute state goes out sealed whenever this page seals under a new key, so that a
  // newcomer (who cannot open what went before) learns it too.
  async function sendMute() {
    const message = await encryption.outgoingMute(media.muteState());
    if (message && message.sealed) protocol.sendSealedMute(message.sealed);
    else if (message) protocol.sendMute(message.state);
  }

  async function showMute(message) {
    const state = await encryption.incomingMute(message);
    if (state) tiles.showMute(state);
  }

  async function showChat(message) {
    const text = await encryption.incomingChat(message);
    chat.show({ ...message, text: text === null ? T.e2ee_chat_unreadable : text });
  }

  // Always in sight: whether the call is end-to-end encrypted, and the code to compare.
  function showEncryption({ code, changed }) {
    const e2ee = encryption.mode === "e2ee";
    $("e2ee").dataset.mode = encryption.mode;
    $("e2ee-mode").textContent = e2ee ? T.e2ee_on : T.e2ee_transport;
    $("e2ee-code").textContent = e2ee ? code || T.e2ee_code_waiting : "";
    $("e2ee-compare").hidden = !e2ee || !code;
    if (changed) {
      $("e2ee-notice").textContent = T.e2ee_code_changed;
      $("e2ee-notice").hidden = false;
    }
  }

  protocol
    .on("welcome", () => {
      encryption.reset();
      connections.reset();
      root.dataset.state = "in_call";
      return sendMute();
    })
    .on("participants", (message) => {
      others = message.participants.filter((p) => p.id !== protocol.me);
      tiles.render(others);
      $("own-tile").querySelector(".name").textContent = T.you;
      connectedStatus();
      root.dataset.topology = message.topology;
      $("topology").textContent = T[message.topology];
      return encryption.participants(message.participants, protocol.me).then(() => connections.participants(message));
    })
    .on("public-key", (message) => encryption.publicKey(message))
    .on("wrapped-key", (message) => encryption.wrappedKey(message))
    .on("key-ack", (message) => encryption.keyAck(message))
    .on("description", (message) => connections.description(message))
    .on("candidate", (message) => connections.candidate(message))
    .on("relay-answer", (message) => connections.relayAnswer(message))
    .on("relay-sources", (sources) => connections.relaySources(sources))
    .on("relay-moved", () => connections.relayMoved())
    .on("ice-servers", (iceServers) => connections.useIceServers(iceServers))
    .on("mute", (message) => showMute(message))
    .on("chat", (message) => showChat(message))
    .on("error", (message) => {
      if (message.code.startsWith("consultation_")) { reload(); return; }
      // A signal to someone who just left is a harmless race, not news for the user.
      if (message.code !== "unknown_peer") status(message.message);
      if (message.about === "relay_offer") connections.retryRelay(message.purpose);
    })
    .on("reconnecting", () => {
      root.dataset.state = "reconnecting";
      status(T.reconnecting);
    })
    .on("replaced", () => {
      hangUp(false);
      $("left").querySelector("h1").textContent = T.replaced;
    })
    // The reloaded page says why: the consultation ended, access was withdrawn, or the
    // server speaks a newer protocol than this page.
    .on("ended", reload)
    .on("refused", reload)
    .on("outdated", reload)
    .on("fault", (error) => console.error(error));

  function showOwnVideo() {
    $("own-video").srcObject = media.screen || media.stream;
  }

  function labelControls() {
    $("toggle-audio").textContent = media.audioOn ? T.mute : T.unmute;
    $("toggle-audio").setAttribute("aria-pressed", String(!media.audioOn));
    $("toggle-video").textContent = media.videoOn ? T.camera_stop : T.camera_start;
    $("toggle-video").setAttribute("aria-pressed", String(!media.videoOn));
    $("toggle-screen").textContent = media.screen ? T.stop_share : T.share;
    $("toggle-screen").hidden = !navigator.mediaDevices.getDisplayMedia || !media.track("video");
    $("own-tile").querySelector(".flags").textContent = [!media.audioOn && T.muted, !media.videoOn && T.camera_off].filter(Boolean).join(" · ");
  }

  // What the others see of this side changed: the controls and the mute message follow.
  function announce() {
    labelControls();
    sendMute().catch(console.error);
  }

  async function toggleScreen() {
    const track = media.screen ? media.stopScreen() : await media.shareScreen(() => toggleScreen().catch(console.error));
    await connections.replaceTrack("video", track);
    showOwnVideo();
    announce();
  }

  async function switchDevice() {
    await devices.open();
    showOwnVideo();
    // The shared screen keeps its place; the new camera goes out when sharing stops.
    for (const kind of media.screen ? ["audio"] : ["audio", "video"]) {
      const next = media.track(kind);
      if (next) await connections.replaceTrack(kind, next);
    }
  }

  const arriving = new Arrivals();

  async function measureQuality() {
    for (const peer of tiles.peers()) {
      const received = await connections.receivedFrom(peer);
      if (!received) continue;
      tiles.showQuality(peer, received);
      // A peer's packets stopped coming: this side's line may have dropped, and the socket
      // with it (protocol.js, probe).
      if (arriving.stopped(peer, received.received)) protocol.probe();
    }
  }

  function hangUp(tellServer) {
    if (tellServer) protocol.leave(); else protocol.stop();
    clearInterval(quality);
    connections.close();
    media.stop();
    root.dataset.state = "left";
    $("stage").hidden = true;
    $("left").hidden = false;
  }

  async function join() {
    await ready;
    showEncryption({ code: encryption.code, changed: false });
    $("device-check").hidden = true;
    $("join").hidden = true;
    $("stage").hidden = false;
    root.dataset.state = "connecting";
    labelControls();
    protocol.join();
    quality = setInterval(() => measureQuality().catch(() => {}), 2000);
  }

  $("join").addEventListener("click", () => join().catch(console.error));
  $("toggle-devices").addEventListener("click", () => {
    $("device-check").hidden = !$("device-check").hidden;
    $("toggle-devices").setAttribute("aria-expanded", String(!$("device-check").hidden));
  });
  for (const gesture of ["pointerdown", "keydown"]) document.addEventListener(gesture, () => media.resumeLevel());
  const endForAll = document.querySelector("#end-for-all form");
  if (endForAll) {
    endForAll.addEventListener("submit", (event) => {
      if (!window.confirm(T.end_confirm)) { event.preventDefault(); return; }
      hangUp(false);
    });
  }
  $("speaker-test").addEventListener("click", () => devices.testSound().catch(console.error));
  $("camera-select").addEventListener("change", () => switchDevice().catch(console.error));
  $("microphone-select").addEventListener("change", () => switchDevice().catch(console.error));
  $("toggle-audio").addEventListener("click", () => { media.toggleAudio(); announce(); });
  $("toggle-video").addEventListener("click", () => { media.toggleVideo(); announce(); });
  $("toggle-screen").addEventListener("click", () => toggleScreen().catch(console.error));
  $("hang-up").addEventListener("click", () => hangUp(true));
  // For diagnostics in the browser's console (and the browser tests): the live connections.
  window.smartpracticeCall = {
    connections: () => connections.all(), topology: () => connections.topology, encryption: () => encryption.state(),
  };

  devices.open().then(() => { showOwnVideo(); root.dataset.state = "ready"; }).catch(console.error);
}
