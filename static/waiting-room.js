// The clinician's live waiting room: who waits for which consultation and since when,
// pushed over a WebSocket (the waiting room's protocol in docs/signalling.md). A sound and a notification repeat while anyone waits, because
// a single chime is easily missed in a busy practice.
"use strict";
(function () {
  const panel = document.getElementById("waiting-room");
  if (!panel) return;
  const list = document.getElementById("waiting-list");
  const empty = document.getElementById("waiting-empty");
  const alertsButton = document.getElementById("waiting-alerts");
  const text = panel.dataset;
  const REPEAT_MS = 15000;
  const PROTOCOL_VERSION = 1;
  let socket = null;
  let people = [];
  let audio = null;
  let repeat = null;

  function minutesSince(iso) {
    return Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 60000));
  }

  function button(label, onClick) {
    const element = document.createElement("button");
    element.type = "button";
    element.textContent = label;
    element.addEventListener("click", onClick);
    return element;
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function render() {
    list.replaceChildren();
    empty.hidden = people.length > 0;
    for (const person of people) {
      const item = document.createElement("li");
      item.className = "waiting-person";
      const who = document.createElement("strong");
      who.textContent = person.name;
      const what = document.createElement("span");
      what.className = "hint";
      what.textContent = " " + person.title + " · " + text.since.replace("{minutes}", minutesSince(person.since));
      item.append(who, what, " ");
      item.append(button(text.admit, () => send({ type: "admit", consultation: person.consultation, participant: person.participant })));
      item.append(button(text.admitAll, () => send({ type: "admit_all", consultation: person.consultation })));
      item.append(button(text.write, () => {
        const words = window.prompt(text.writePrompt, text.writeDefault);
        if (words) send({ type: "message", consultation: person.consultation, participant: person.participant, text: words });
      }));
      list.append(item);
    }
    document.title = (people.length ? "(" + people.length + ") " : "") + document.title.replace(/^\(\d+\) /, "");
  }

  function chime() {
    if (!audio) return;
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 660;
    gain.gain.setValueAtTime(0.2, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.6);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.6);
  }

  function notify() {
    if (!people.length) return;
    chime();
    if (window.Notification && Notification.permission === "granted" && document.hidden) {
      new Notification(text.notifyTitle, { body: people.map((p) => p.name).join(", "), tag: "waiting-room", renotify: true });
    }
  }

  function alertWhileWaiting(arrived) {
    if (arrived) notify();
    if (people.length && !repeat) repeat = setInterval(notify, REPEAT_MS);
    if (!people.length && repeat) { clearInterval(repeat); repeat = null; }
  }

  alertsButton.addEventListener("click", () => {
    audio = audio || new AudioContext();
    if (window.Notification && Notification.permission === "default") Notification.requestPermission();
    alertsButton.hidden = true;
    chime();
  });

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + panel.dataset.socket);
    socket.addEventListener("open", () => send({ type: "join", version: PROTOCOL_VERSION }));
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "waiting") {
        const before = new Set(people.map((p) => p.consultation + ":" + p.participant));
        people = message.people;
        render();
        alertWhileWaiting(people.some((p) => !before.has(p.consultation + ":" + p.participant)));
        panel.dataset.state = "live";
      } else if (message.type === "error" && message.code === "version_unsupported") {
        window.location.reload();  // a newer server: the reloaded page speaks its version
      } else if (message.type === "error") {
        window.alert(message.message);
      }
    });
    socket.addEventListener("close", (event) => {
      panel.dataset.state = "reconnecting";
      // 1012: this server is stopping, another one answers at once.
      setTimeout(connect, event.code === 1012 ? 100 : 2000);
    });
  }
  setInterval(render, 60000);
  connect();
})();
