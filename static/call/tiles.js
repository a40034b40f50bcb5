// One tile per other person in the call: their video and sound, name, what they muted, and
// how well their media arrives.

export class Tiles {
  #container;
  #T;
  // The latest mute state each person sent: with end-to-end encryption it comes sealed and
  // the server's list says only "all on".
  #mutes = new Map();

  constructor(container, T) {
    this.#container = container;
    this.#T = T;
  }

  peers() {
    return [...this.#container.querySelectorAll(".tile[data-peer]")].map((figure) => figure.dataset.peer);
  }

  render(others) {
    const present = new Set(others.map((p) => p.id));
    this.#container.querySelectorAll(".tile[data-peer]").forEach((figure) => {
      if (!present.has(figure.dataset.peer)) { figure.remove(); this.#mutes.delete(figure.dataset.peer); }
    });
    for (const person of others) {
      this.#tile(person.id).querySelector(".name").textContent = person.name || this.#T.participant;
      this.setState(person.id, person.state);
      this.showMute(this.#mutes.get(person.id) || { from: person.id, audio: person.audio, video: person.video });
    }
  }

  setState(peer, state) {
    const figure = this.#find(peer);
    if (!figure) return;
    figure.dataset.state = state;
    figure.querySelector(".quality").textContent = state === "reconnecting" ? this.#T.peer_reconnecting : figure.dataset.quality || "";
  }

  showTrack(peer, track, speaker) {
    const video = this.#tile(peer).querySelector("video");
    const stream = video.srcObject;
    stream.getTracks().filter((t) => t.kind === track.kind).forEach((t) => stream.removeTrack(t));
    stream.addTrack(track);
    if (speaker && video.setSinkId) video.setSinkId(speaker).catch(() => {});
    video.play().catch(() => {});
  }

  showMute({ from, audio, video }) {
    const figure = this.#find(from);
    if (!figure) return;
    this.#mutes.set(from, { from, audio, video });
    figure.querySelector(".flags").textContent = [!audio && this.#T.muted, !video && this.#T.camera_off].filter(Boolean).join(" · ");
    figure.classList.toggle("no-video", !video);
  }

  // `received`: the counters of Connections.receivedFrom; the rating is over the time since
  // the last call.
  showQuality(peer, { lost, received, rtt }) {
    const figure = this.#find(peer);
    if (!figure) return;
    const previous = JSON.parse(figure.dataset.counts || "[0,0]");
    const lossRate = (lost - previous[0]) / Math.max(1, (lost - previous[0]) + (received - previous[1]));
    figure.dataset.counts = JSON.stringify([lost, received]);
    const quality = lossRate < 0.02 && rtt < 0.3 ? "good" : lossRate < 0.08 && rtt < 0.6 ? "fair" : "poor";
    figure.dataset.quality = this.#T["quality_" + quality];
    figure.classList.remove("good", "fair", "poor");
    figure.classList.add(quality);
    if (figure.dataset.state !== "reconnecting") figure.querySelector(".quality").textContent = figure.dataset.quality;
  }

  #find(peer) {
    return this.#container.querySelector(`.tile[data-peer="${CSS.escape(peer)}"]`);
  }

  #tile(peer) {
    let figure = this.#find(peer);
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
      this.#container.append(figure);
    }
    return figure;
  }
}
