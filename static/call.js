// The call page: device check, then the call over the signalling protocol of
// docs/signalling.md. Two people connect peer to peer; otherwise everyone sends to the
// server's relay once (the "publish" connection) and receives the others on a second
// connection that is made afresh when the set of senders changes.
"use strict";
(function () {
  const root = document.getElementById("call");
  if (!root) return;
  const T = JSON.parse(document.getElementById("call-text").textContent);
  const $ = (id) => document.getElementById(id);
  const PROTOCOL_VERSION = 1;
  // Chromium reports a direct path as failed only after about 30 s; a call should not wait that long.
  const P2P_CONNECT_MS = 15000;
  const RELAY_GATHER_MS = 3000;

  const call = {
    socket: null, me: null, session: null, iceServers: [], iceTimer: null,
    topology: null, peers: new Map(), closedForGood: false, attempts: 0, inbox: Promise.resolve(),
    retry: null, quality: null, lastSources: [],
    local: new MediaStream(), screen: null, audioOn: true, videoOn: true,
    link: null, // peer to peer: {peer, session, pc, polite, makingOffer, ignoreOffer, connected, timer}
    publish: null, receive: null, receiveKey: "", receivePending: false, nextSources: null, layout: [],
  };
  let levelContext = null;

  // ---- Device check -----------------------------------------------------------------

  function deviceMessage(error) {
    if (!error) return "";
    if (error.name === "NotAllowedError" || error.name === "SecurityError") return T.denied;
    if (error.name === "NotFoundError" || error.name === "OverconstrainedError") return T.no_device;
    if (error.name === "NotReadableError") return T.device_busy;
    return T.device_failed;
  }

  async function openDevices() {
    const camera = $("camera-select").value, microphone = $("microphone-select").value;
    const video = camera ? { deviceId: { exact: camera }, width: 640, height: 480 } : { width: 640, height: 480 };
    const audio = microphone ? { deviceId: { exact: microphone } } : true;
    let stream = null, problem = null;
    // Phones open one camera at a time: let go of the old one before asking for the next.
    call.local.getTracks().forEach((track) => { track.stop(); call.local.removeTrack(track); });
    for (const wanted of [{ audio, video }, { audio }, { video }]) {
      try {
        stream = await navigator.mediaDevices.getUserMedia(wanted);
        break;
      } catch (error) {
        problem = problem || error;
        if (error.name === "NotAllowedError") break;
      }
    }
    if (stream) stream.getTracks().forEach((track) => call.local.addTrack(track));
    const missing = !stream || !stream.getAudioTracks().length || !stream.getVideoTracks().length;
    $("device-error").textContent = missing ? deviceMessage(problem || { name: "NotFoundError" }) : "";
    $("device-error").hidden = !missing;
    $("preview").srcObject = call.local;
    $("own-video").srcObject = call.local;
    watchLevel();
    await listDevices();
  }

  async function listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, current) => {
      select.replaceChildren();
      devices.filter((d) => d.kind === kind).forEach((device, index) => {
        const option = new Option(device.label || `${T.default_device} ${index + 1}`, device.deviceId);
        option.selected = device.deviceId === current;
        select.append(option);
      });
    };
    const track = (kind) => call.local.getTracks().find((t) => t.kind === kind);
    fill($("camera-select"), "videoinput", track("video")?.getSettings().deviceId);
    fill($("microphone-select"), "audioinput", track("audio")?.getSettings().deviceId);
    const speakers = "setSinkId" in HTMLMediaElement.prototype;
    document.querySelectorAll(".speaker").forEach((el) => { el.hidden = !speakers; });
    if (speakers) fill($("speaker-select"), "audiooutput", $("speaker-select").value);
  }

  function watchLevel() {
    const track = call.local.getAudioTracks()[0];
    if (!track) return;
    closeLevel();
    levelContext = new AudioContext();
    const analyser = levelContext.createAnalyser();
    levelContext.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const context = levelContext;
    (function tick() {
      if (context.state === "closed") return;
      if ($("device-check").hidden) { setTimeout(tick, 500); return; }
      analyser.getFloatTimeDomainData(samples);
      const power = samples.reduce((sum, v) => sum + v * v, 0) / samples.length;
      $("mic-level").value = Math.min(1, Math.sqrt(power) * 4);
      requestAnimationFrame(tick);
    })();
  }

  function closeLevel() {
    if (levelContext && levelContext.state !== "closed") levelContext.close();
  }

  async function testSound() {
    const audio = new Audio();
    const context = new AudioContext();
    const destination = context.createMediaStreamDestination();
    const tone = context.createOscillator();
    tone.frequency.value = 440;
    tone.connect(destination);
    audio.srcObject = destination.stream;
    if ($("speaker-select").value && audio.setSinkId) await audio.setSinkId($("speaker-select").value);
    tone.start();
    await audio.play();
    setTimeout(() => { tone.stop(); context.close(); audio.srcObject = null; }, 700);
  }

  // ---- Signalling ---------------------------------------------------------------------

  function send(message) {
    if (call.socket && call.socket.readyState === WebSocket.OPEN) call.socket.send(JSON.stringify(message));
  }

  function status(text) {
    $("status").textContent = text;
  }

  function connect() {
    if (call.closedForGood) return;
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = call.socket = new WebSocket(scheme + window.location.host + root.dataset.socket);
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      if (call.closedForGood) socket.close(); else send({ type: "join", version: PROTOCOL_VERSION });
    });
    // One message at a time, in order: a candidate must not overtake the offer it belongs to.
    socket.addEventListener("message", (event) => {
      call.inbox = call.inbox.then(() => handle(JSON.parse(event.data))).catch(console.error);
    });
    socket.addEventListener("close", async (event) => {
      if (socket !== call.socket || call.closedForGood) return;
      if (event.code === 4001 || event.code === 4002) { window.location.reload(); return; }
      if (event.code === 4000) { replaced(); return; }
      root.dataset.state = "reconnecting";
      status(T.reconnecting);
      // Refused before the upgrade (ended, no longer admitted, logged out): the page says why.
      if (!opened && await refused()) { window.location.reload(); return; }
      call.attempts += 1;
      call.retry = setTimeout(connect, Math.min(500 * 2 ** call.attempts, 10000));
    });
  }

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

  async function handle(message) {
    switch (message.type) {
      case "welcome": return welcome(message);
      case "participants": return participants(message);
      case "offer": case "answer": return description(message);
      case "candidate": return candidate(message);
      case "relay_answer": return relayAnswer(message);
      case "relay_sources": return relaySources(message.publishers);
      case "mute": return muted(message);
      case "chat": return chat(message);
      case "ice_servers": return newIceServers(message);
      case "replaced": return replaced();
      case "error": return failed(message);
      default:
        return undefined;
    }
  }

  function replaced() {
    hangUp(false);
    $("left").querySelector("h1").textContent = T.replaced;
  }

  function failed(message) {
    if (message.code.startsWith("consultation_")) { window.location.reload(); return; }
    // A signal to someone who just left is a harmless race, not news for the user.
    if (message.code !== "unknown_peer") status(message.message);
    if (message.about !== "relay_offer" || call.topology !== "relay") return;
    // Try again in a moment with a fresh connection.
    if (message.purpose === "publish") {
      if (call.publish) call.publish.close();
      call.publish = null;
      setTimeout(() => { if (call.topology === "relay" && !call.publish && !call.closedForGood) publishToRelay(); }, 2000);
    } else {
      call.receiveKey = "";
      receiveDone();
      setTimeout(() => relaySources(call.lastSources), 2000);
    }
  }

  function welcome(message) {
    call.attempts = 0;
    closeAll();
    call.me = message.id;
    call.session = message.session;
    call.topology = null;
    setIceServers(message);
    root.dataset.state = "in_call";
    sendMute();
  }

  function sendMute() {
    send({ type: "mute", audio: call.audioOn, video: call.videoOn || Boolean(call.screen) });
  }

  function setIceServers(message) {
    call.iceServers = message.ice_servers;
    clearTimeout(call.iceTimer);
    // Fresh TURN credentials well before the old ones run out.
    call.iceTimer = setTimeout(() => send({ type: "refresh_ice" }), message.ice_ttl_seconds * 800);
  }

  function newIceServers(message) {
    setIceServers(message);
    // Used from the next ICE restart on; a working path needs no new credentials.
    for (const pc of connections()) pc.setConfiguration({ iceServers: call.iceServers });
  }

  function participants(message) {
    call.peers = new Map(message.participants.map((p) => [p.id, p]));
    const others = message.participants.filter((p) => p.id !== call.me);
    renderTiles(others);
    status(others.length ? T.in_call : T.alone);
    if (message.topology !== call.topology) {
      closeAll();
      call.topology = message.topology;
      root.dataset.topology = message.topology;
      $("topology").textContent = T[message.topology];
    }
    if (call.topology === "p2p") {
      const other = others[0];
      if (call.link && (!other || other.id !== call.link.peer || other.session !== call.link.session)) closeLink();
      if (other && !call.link && other.state === "connected") openLink(other.id, other.session);
    } else if (!call.publish && outgoing().length) {
      publishToRelay();
    }
  }

  function outgoing() {
    // While the screen is shared it takes the camera's place in every new connection.
    const video = call.screen ? call.screen.getVideoTracks() : call.local.getVideoTracks();
    return [...call.local.getAudioTracks(), ...video];
  }

  // ---- Peer to peer ("perfect negotiation": the polite peer yields when offers cross) ---

  function openLink(peer, session) {
    const pc = new RTCPeerConnection({ iceServers: call.iceServers });
    const link = call.link = { peer, session, pc, polite: call.me > peer, makingOffer: false, ignoreOffer: false,
                               negotiated: false, connected: false };
    outgoing().forEach((track) => pc.addTrack(track, call.local));
    if (!link.polite) {
      // The impolite peer makes the first offer, so it must offer to receive what it does not send.
      for (const kind of ["audio", "video"]) {
        if (!outgoing().some((t) => t.kind === kind)) pc.addTransceiver(kind, { direction: "recvonly" });
      }
    }
    pc.addEventListener("negotiationneeded", async () => {
      // The first offer comes from the impolite peer only: crossing first offers make
      // Chromium roll back a fresh transport, which then sometimes never gathers.
      if (link.polite && !link.negotiated) return;
      try {
        link.makingOffer = true;
        await pc.setLocalDescription();
        send({ type: pc.localDescription.type, to: peer, to_session: session, sdp: pc.localDescription.sdp });
      } finally {
        link.makingOffer = false;
      }
    });
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate) send({ type: "candidate", to: peer, to_session: session, candidate: event.candidate.toJSON() });
    });
    pc.addEventListener("track", (event) => showTrack(peer, event.track));
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") {
        link.connected = true;
        link.restarted = false;
        setTileState(peer, "connected");
      } else if (pc.connectionState === "disconnected") {
        setTileState(peer, "reconnecting");
      } else if (pc.connectionState === "failed") {
        // One ICE restart for a path that worked (a new network); then the relay.
        if (link.connected && !link.restarted) {
          link.restarted = true;
          pc.restartIce();
        } else {
          send({ type: "p2p_failed" });
        }
      }
    });
    link.timer = setTimeout(() => { if (!link.connected && call.link === link) send({ type: "p2p_failed" }); }, P2P_CONNECT_MS);
    return link;
  }

  function closeLink() {
    if (!call.link) return;
    clearTimeout(call.link.timer);
    call.link.pc.close();
    call.link = null;
  }

  async function description(message) {
    if (call.topology !== "p2p") return;
    let link = call.link;
    if (message.type === "offer" && (!link || link.peer !== message.from || link.session !== message.session)) {
      closeLink();  // a new session of the other side: start over with it
      link = openLink(message.from, message.session);
    }
    if (!link || link.peer !== message.from || link.session !== message.session) return;
    const collision = message.type === "offer" && (link.makingOffer || link.pc.signalingState !== "stable");
    link.ignoreOffer = !link.polite && collision;
    if (link.ignoreOffer) return;
    await link.pc.setRemoteDescription({ type: message.type, sdp: message.sdp });
    link.negotiated = true;
    if (message.type === "offer") {
      await link.pc.setLocalDescription();
      send({ type: "answer", to: link.peer, to_session: link.session, sdp: link.pc.localDescription.sdp });
    }
  }

  async function candidate(message) {
    const link = call.link;
    if (!link || link.peer !== message.from || link.session !== message.session || !message.candidate) return;
    try {
      await link.pc.addIceCandidate(message.candidate);
    } catch (error) {
      if (!link.ignoreOffer) throw error;
    }
  }

  // ---- Through the relay -------------------------------------------------------------

  async function offerToRelay(pc, purpose, receiveFrom) {
    await pc.setLocalDescription(await pc.createOffer());
    // The relay takes complete offers: wait for the candidates (host ones come at once).
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") { resolve(); return; }
      pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
      setTimeout(resolve, RELAY_GATHER_MS);
    });
    send({ type: "relay_offer", purpose, sdp: pc.localDescription.sdp, receive_from: receiveFrom });
  }

  function relayConnection(onFailed) {
    const pc = new RTCPeerConnection({ iceServers: call.iceServers });
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "failed") onFailed();
      if (pc.connectionState === "disconnected") status(T.reconnecting);
      if (pc.connectionState === "connected") status(call.peers.size > 1 ? T.in_call : T.alone);
    });
    return pc;
  }

  function publishToRelay() {
    if (call.publish) call.publish.close();
    // aiortc cannot restart ICE: a broken connection is replaced by a new one.
    const pc = call.publish = relayConnection(() => { if (call.publish === pc) publishToRelay(); });
    outgoing().forEach((track) => pc.addTransceiver(track, { direction: "sendonly", streams: [call.local] }));
    offerToRelay(pc, "publish", []).catch(console.error);
  }

  function relaySources(publishers) {
    call.lastSources = publishers;
    if (call.topology !== "relay") return;
    // One receiving offer at a time: an answer must meet the connection that asked.
    if (call.receivePending) { call.nextSources = publishers; return; }
    const others = publishers.filter((p) => p.id !== call.me);
    const key = JSON.stringify(others);
    if (key === call.receiveKey) return;
    call.receiveKey = key;
    if (call.receive) call.receive.close();
    call.receive = null;
    if (!others.length) return;
    const pc = call.receive = relayConnection(() => { if (call.receive === pc) { call.receiveKey = ""; relaySources(publishers); } });
    call.layout = [];
    for (const publisher of others) {
      for (const kind of publisher.kinds) {
        call.layout.push({ transceiver: pc.addTransceiver(kind, { direction: "recvonly" }), peer: publisher.id });
      }
    }
    pc.addEventListener("track", (event) => {
      const entry = call.layout.find((e) => e.transceiver === event.transceiver);
      if (entry) showTrack(entry.peer, event.track);
    });
    call.receivePending = true;
    pc.receiveFrom = JSON.stringify(others.map((p) => p.id));
    offerToRelay(pc, "receive", others.map((p) => p.id)).catch(console.error);
  }

  async function relayAnswer(message) {
    const pc = message.purpose === "publish" ? call.publish : call.receive;
    try {
      // An answer meets only the connection whose offer it answers.
      const current = message.purpose === "publish" || pc.receiveFrom === JSON.stringify(message.receive_from);
      if (pc && current && pc.signalingState === "have-local-offer") {
        await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
      }
    } finally {
      if (message.purpose === "receive") receiveDone();
    }
  }

  function receiveDone() {
    call.receivePending = false;
    const next = call.nextSources;
    call.nextSources = null;
    if (next) relaySources(next);
  }

  function connections() {
    return [call.link && call.link.pc, call.publish, call.receive].filter(Boolean);
  }

  function closeAll() {
    closeLink();
    for (const pc of [call.publish, call.receive]) if (pc) pc.close();
    call.publish = call.receive = null;
    call.receiveKey = "";
    call.receivePending = false;
    call.nextSources = null;
    call.layout = [];
  }

  // ---- Tiles, quality, controls ------------------------------------------------------

  function tile(peer) {
    let figure = document.querySelector(`.tile[data-peer="${CSS.escape(peer)}"]`);
    if (!figure) {
      figure = document.createElement("figure");
      figure.className = "tile";
      figure.dataset.peer = peer;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.srcObject = new MediaStream();
      const caption = document.createElement("figcaption");
      caption.innerHTML = '<span class="name"></span><span class="flags"></span><span class="quality"></span>';
      figure.append(video, caption);
      $("tiles").append(figure);
    }
    return figure;
  }

  function renderTiles(others) {
    const present = new Set(others.map((p) => p.id));
    document.querySelectorAll(".tile[data-peer]").forEach((figure) => { if (!present.has(figure.dataset.peer)) figure.remove(); });
    for (const person of others) {
      const figure = tile(person.id);
      figure.querySelector(".name").textContent = person.name || T.participant;
      setTileState(person.id, person.state);
      muted({ from: person.id, audio: person.audio, video: person.video });
    }
    $("own-tile").querySelector(".name").textContent = T.you;
  }

  function setTileState(peer, state) {
    const figure = document.querySelector(`.tile[data-peer="${CSS.escape(peer)}"]`);
    if (!figure) return;
    figure.dataset.state = state;
    figure.querySelector(".quality").textContent = state === "reconnecting" ? T.peer_reconnecting : figure.dataset.quality || "";
  }

  function showTrack(peer, track) {
    const video = tile(peer).querySelector("video");
    const stream = video.srcObject;
    stream.getTracks().filter((t) => t.kind === track.kind).forEach((t) => stream.removeTrack(t));
    stream.addTrack(track);
    const sink = $("speaker-select").value;
    if (sink && video.setSinkId) video.setSinkId(sink).catch(() => {});
    video.play().catch(() => {});
  }

  function muted(message) {
    const figure = document.querySelector(`.tile[data-peer="${CSS.escape(message.from)}"]`);
    if (!figure) return;
    const flags = [];
    if (!message.audio) flags.push(T.muted);
    if (!message.video) flags.push(T.camera_off);
    figure.querySelector(".flags").textContent = flags.join(" · ");
    figure.classList.toggle("no-video", !message.video);
  }

  async function measureQuality() {
    for (const figure of document.querySelectorAll(".tile[data-peer]")) {
      const peer = figure.dataset.peer;
      const pc = call.topology === "p2p" ? call.link && call.link.pc : call.receive;
      if (!pc) continue;
      const mids = call.topology === "p2p" ? null : new Set(call.layout.filter((e) => e.peer === peer).map((e) => e.transceiver.mid));
      const report = await pc.getStats();
      let lost = 0, received = 0, rtt = 0;
      report.forEach((s) => {
        if (s.type === "inbound-rtp" && (!mids || mids.has(s.mid))) { lost += s.packetsLost || 0; received += s.packetsReceived || 0; }
        if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime) rtt = s.currentRoundTripTime;
      });
      const previous = JSON.parse(figure.dataset.counts || "[0,0]");
      const lossRate = (lost - previous[0]) / Math.max(1, (lost - previous[0]) + (received - previous[1]));
      figure.dataset.counts = JSON.stringify([lost, received]);
      const quality = lossRate < 0.02 && rtt < 0.3 ? "good" : lossRate < 0.08 && rtt < 0.6 ? "fair" : "poor";
      figure.dataset.quality = T["quality_" + quality];
      figure.classList.remove("good", "fair", "poor");
      figure.classList.add(quality);
      if (figure.dataset.state !== "reconnecting") figure.querySelector(".quality").textContent = figure.dataset.quality;
    }
  }

  function senders(kind) {
    return connections().flatMap((pc) => pc.getSenders()).filter((sender) => sender.track && sender.track.kind === kind);
  }

  function labelControls() {
    $("toggle-audio").textContent = call.audioOn ? T.mute : T.unmute;
    $("toggle-audio").setAttribute("aria-pressed", String(!call.audioOn));
    $("toggle-video").textContent = call.videoOn ? T.camera_stop : T.camera_start;
    $("toggle-video").setAttribute("aria-pressed", String(!call.videoOn));
    $("toggle-screen").textContent = call.screen ? T.stop_share : T.share;
    $("toggle-screen").hidden = !navigator.mediaDevices.getDisplayMedia || !call.local.getVideoTracks().length;
    $("own-tile").querySelector(".flags").textContent = [!call.audioOn && T.muted, !call.videoOn && T.camera_off].filter(Boolean).join(" · ");
  }

  async function toggleVideo() {
    const current = call.local.getVideoTracks()[0];
    call.videoOn = !call.videoOn;
    // A disabled track sends black frames and lets the browser turn the camera off.
    if (current) current.enabled = call.videoOn;
    labelControls();
    sendMute();
  }

  function toggleAudio() {
    call.audioOn = !call.audioOn;
    call.local.getAudioTracks().forEach((track) => { track.enabled = call.audioOn; });
    labelControls();
    sendMute();
  }

  async function toggleScreen() {
    const camera = call.local.getVideoTracks()[0];
    if (call.screen) {
      call.screen.getTracks().forEach((t) => t.stop());
      call.screen = null;
      await swapVideo(camera);
    } else {
      call.screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
      const track = call.screen.getVideoTracks()[0];
      track.addEventListener("ended", () => { if (call.screen) toggleScreen(); });
      await swapVideo(track);
    }
    labelControls();
    sendMute();
  }

  async function swapVideo(track) {
    for (const sender of senders("video")) await sender.replaceTrack(track);
    $("own-video").srcObject = track ? new MediaStream([track]) : call.local;
  }

  async function switchDevice() {
    // A new camera or microphone goes into the running connections without renegotiation.
    await openDevices();
    for (const kind of call.screen ? ["audio"] : ["audio", "video"]) {
      const next = call.local.getTracks().find((t) => t.kind === kind);
      for (const sender of senders(kind)) if (next) await sender.replaceTrack(next);
    }
    call.local.getAudioTracks().forEach((t) => { t.enabled = call.audioOn; });
    call.local.getVideoTracks().forEach((t) => { t.enabled = call.videoOn; });
  }

  function chat(message) {
    const item = document.createElement("li");
    const time = new Date(message.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const who = document.createElement("strong");
    who.textContent = `${message.from === call.me ? T.you : message.name || T.participant} (${time}): `;
    item.append(who, document.createTextNode(message.text));
    $("chat-log").append(item);
    if ($("chat").hidden && message.from !== call.me) $("toggle-chat").classList.add("unread");
  }

  function hangUp(tellServer) {
    call.closedForGood = true;
    clearTimeout(call.retry);
    clearTimeout(call.iceTimer);
    clearInterval(call.quality);
    if (tellServer) send({ type: "leave" });
    closeAll();
    call.local.getTracks().forEach((t) => t.stop());
    if (call.screen) call.screen.getTracks().forEach((t) => t.stop());
    closeLevel();
    root.dataset.state = "left";
    $("stage").hidden = true;
    $("left").hidden = false;
  }

  function join() {
    $("device-check").hidden = true;
    $("join").hidden = true;
    $("stage").hidden = false;
    root.dataset.state = "connecting";
    labelControls();
    connect();
    call.quality = setInterval(() => measureQuality().catch(() => {}), 2000);
  }

  $("join").addEventListener("click", join);
  $("toggle-devices").addEventListener("click", () => {
    $("device-check").hidden = !$("device-check").hidden;
    $("toggle-devices").setAttribute("aria-expanded", String(!$("device-check").hidden));
  });
  // Browsers start audio only after a gesture; until then the level meter would stay flat.
  for (const gesture of ["pointerdown", "keydown"]) {
    document.addEventListener(gesture, () => { if (levelContext) levelContext.resume(); });
  }
  const endForAll = document.querySelector("#end-for-all form");
  if (endForAll) {
    endForAll.addEventListener("submit", (event) => {
      if (!window.confirm(T.end_confirm)) { event.preventDefault(); return; }
      hangUp(false);
    });
  }
  $("speaker-test").addEventListener("click", () => testSound().catch(console.error));
  $("camera-select").addEventListener("change", () => switchDevice().catch(console.error));
  $("microphone-select").addEventListener("change", () => switchDevice().catch(console.error));
  $("toggle-audio").addEventListener("click", toggleAudio);
  $("toggle-video").addEventListener("click", () => toggleVideo().catch(console.error));
  $("toggle-screen").addEventListener("click", () => toggleScreen().catch(console.error));
  $("hang-up").addEventListener("click", () => hangUp(true));
  $("toggle-chat").addEventListener("click", () => {
    $("chat").hidden = !$("chat").hidden;
    $("toggle-chat").setAttribute("aria-expanded", String(!$("chat").hidden));
    $("toggle-chat").classList.remove("unread");
  });
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("chat-text").value.trim();
    if (text) send({ type: "chat", text });
    $("chat-text").value = "";
  });
  // For diagnostics in the browser's console (and the browser tests): the live connections.
  window.smartpracticeCall = { connections, topology: () => call.topology };

  if (!navigator.mediaDevices || !window.RTCPeerConnection) {
    $("device-error").textContent = T.device_failed;
    $("device-error").hidden = false;
    $("join").disabled = true;
    return;
  }
  openDevices().then(() => { root.dataset.state = "ready"; }).catch(console.error);
})();
