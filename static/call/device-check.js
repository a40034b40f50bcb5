// The device check before and during the call: preview, choice of camera, microphone and
// speaker, the microphone's level and a test sound, and what went wrong in plain words.

const $ = (id) => document.getElementById(id);

export class DeviceCheck {
  #media;
  #T;

  constructor(media, T) {
    this.#media = media;
    this.#T = T;
  }

  get speaker() {
    return $("speaker-select").value;
  }

  // Opens the chosen camera and microphone, and says so when one is missing.
  async open() {
    const problem = await this.#media.open({ camera: $("camera-select").value, microphone: $("microphone-select").value });
    this.showProblem(problem);
    $("preview").srcObject = this.#media.stream;
    this.#showLevel(this.#media.watchLevel());
    await this.#listDevices();
  }

  showProblem(error) {
    $("device-error").textContent = this.#message(error);
    $("device-error").hidden = !error;
  }

  async testSound() {
    const audio = new Audio();
    const context = new AudioContext();
    const destination = context.createMediaStreamDestination();
    const tone = context.createOscillator();
    tone.frequency.value = 440;
    tone.connect(destination);
    audio.srcObject = destination.stream;
    if (this.speaker && audio.setSinkId) await audio.setSinkId(this.speaker);
    tone.start();
    await audio.play();
    setTimeout(() => { tone.stop(); context.close(); audio.srcObject = null; }, 700);
  }

  #message(error) {
    const T = this.#T;
    if (!error) return "";
    if (error.name === "NotAllowedError" || error.name === "SecurityError") return T.denied;
    if (error.name === "NotFoundError" || error.name === "OverconstrainedError") return T.no_device;
    if (error.name === "NotReadableError") return T.device_busy;
    return T.device_failed;
  }

  async #listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, current) => {
      select.replaceChildren();
      devices.filter((d) => d.kind === kind).forEach((device, index) => {
        const option = new Option(device.label || `${this.#T.default_device} ${index + 1}`, device.deviceId);
        option.selected = device.deviceId === current;
        select.append(option);
      });
    };
    fill($("camera-select"), "videoinput", this.#media.track("video")?.getSettings().deviceId);
    fill($("microphone-select"), "audioinput", this.#media.track("audio")?.getSettings().deviceId);
    const speakers = "setSinkId" in HTMLMediaElement.prototype;
    document.querySelectorAll(".speaker").forEach((el) => { el.hidden = !speakers; });
    if (speakers) fill($("speaker-select"), "audiooutput", this.speaker);
  }

  #showLevel(level) {
    const tick = () => {
      const value = level();
      if (value === null) return;
      // Hidden during the call: look again now and then rather than on every frame.
      if ($("device-check").hidden) { setTimeout(tick, 500); return; }
      $("mic-level").value = value;
      requestAnimationFrame(tick);
    };
    tick();
  }
}
