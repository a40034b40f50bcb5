// This browser's own media: camera and microphone, the shared screen, what is muted, and the
// microphone's level for the device check. No page: it hands out streams and tracks.

export class LocalMedia {
  stream = new MediaStream();
  screen = null;
  audioOn = true;
  videoOn = true;
  #level = null;

  // Opens the chosen devices (empty: the browser's default); returns what went wrong when
  // the camera or the microphone is missing, else null.
  async open({ camera, microphone }) {
    const video = camera ? { deviceId: { exact: camera }, width: 640, height: 480 } : { width: 640, height: 480 };
    const audio = microphone ? { deviceId: { exact: microphone } } : true;
    let opened = null, problem = null;
    // Phones open one camera at a time: let go of the old one before asking for the next.
    this.stream.getTracks().forEach((track) => { track.stop(); this.stream.removeTrack(track); });
    for (const wanted of [{ audio, video }, { audio }, { video }]) {
      try {
        opened = await navigator.mediaDevices.getUserMedia(wanted);
        break;
      } catch (error) {
        problem = problem || error;
        if (error.name === "NotAllowedError") break;
      }
    }
    if (opened) opened.getTracks().forEach((track) => this.stream.addTrack(track));
    // A device switched during the call stays as muted as the one it replaces.
    this.stream.getAudioTracks().forEach((track) => { track.enabled = this.audioOn; });
    this.stream.getVideoTracks().forEach((track) => { track.enabled = this.videoOn; });
    const missing = !opened || !opened.getAudioTracks().length || !opened.getVideoTracks().length;
    return missing ? problem || { name: "NotFoundError" } : null;
  }

  track(kind) {
    return this.stream.getTracks().find((track) => track.kind === kind);
  }

  // What every new connection sends: while the screen is shared it takes the camera's place.
  outgoing() {
    const video = this.screen ? this.screen.getVideoTracks() : this.stream.getVideoTracks();
    return [...this.stream.getAudioTracks(), ...video];
  }

  // What the others are told (mute message): a shared screen counts as video.
  muteState() {
    return { audio: this.audioOn, video: this.videoOn || Boolean(this.screen) };
  }

  toggleAudio() {
    this.audioOn = !this.audioOn;
    this.stream.getAudioTracks().forEach((track) => { track.enabled = this.audioOn; });
  }

  toggleVideo() {
    this.videoOn = !this.videoOn;
    // A disabled track sends black frames and lets the browser turn the camera off.
    const camera = this.track("video");
    if (camera) camera.enabled = this.videoOn;
  }

  // The screen's video track; `onEnded` runs when the browser's own "stop sharing" ends it.
  async shareScreen(onEnded) {
    const screen = this.screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
    const track = screen.getVideoTracks()[0];
    track.addEventListener("ended", () => { if (this.screen === screen) onEnded(); });
    return track;
  }

  // The camera's track, which goes back where the screen was.
  stopScreen() {
    if (this.screen) this.screen.getTracks().forEach((track) => track.stop());
    this.screen = null;
    return this.track("video");
  }

  // A function that reads the microphone's level (0 to 1), or null once it has stopped.
  watchLevel() {
    this.#closeLevel();
    const track = this.stream.getAudioTracks()[0];
    if (!track) return () => null;
    const context = this.#level = new AudioContext();
    const analyser = context.createAnalyser();
    context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    return () => {
      if (context.state === "closed") return null;
      analyser.getFloatTimeDomainData(samples);
      const power = samples.reduce((sum, v) => sum + v * v, 0) / samples.length;
      return Math.min(1, Math.sqrt(power) * 4);
    };
  }

  // Browsers start audio only after a gesture; until then the level would stay flat.
  resumeLevel() {
    if (this.#level && this.#level.state === "suspended") this.#level.resume();
  }

  #closeLevel() {
    if (this.#level && this.#level.state !== "closed") this.#level.close();
  }

  stop() {
    this.stream.getTracks().forEach((track) => track.stop());
    this.stopScreen();
    this.#closeLevel();
  }
}
