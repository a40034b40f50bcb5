// A participant's waiting-room page: one WebSocket (the waiting room's protocol in
// docs/signalling.md) that says when the practice lets them in, passes on the practice's
// short texts, and tells when the consultation ends.
"use strict";
(function () {
  const room = document.getElementById("room");
  if (!room) return;
  const status = document.getElementById("status");
  const notice = document.getElementById("message");
  const PROTOCOL_VERSION = 1;
  let closedForGood = false;

  // While the page is open its session must not run out for want of requests: a beat
  // well inside the idle timeout. Once the session has ended (401), reloading leads a
  // TAN guest back to their invitation's TAN page.
  const aliveEvery = Number(room.dataset.aliveSeconds || 0) * 1000;
  if (room.dataset.alive && aliveEvery > 0) {
    setInterval(() => {
      fetch(room.dataset.alive, { method: "POST", headers: { "X-CSRF-Token": room.dataset.csrf } })
        .then((answer) => {
          if (answer.status === 401) {
            closedForGood = true;
            window.location.reload();
          }
        })
        .catch(() => {});  // offline for a moment: the next beat tries again
    }, aliveEvery);
  }

  if (room.dataset.opensAt) {
    const wait = Date.parse(room.dataset.opensAt) - Date.now();
    setTimeout(() => window.location.reload(), Math.max(wait, 1000));
    return;
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + room.dataset.socket);
    socket.addEventListener("open", () => socket.send(JSON.stringify({ type: "join", version: PROTOCOL_VERSION })));
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "admitted") {
        closedForGood = true;
        window.location.assign(room.dataset.call);
      } else if (message.type === "message") {
        notice.textContent = message.text;
        notice.hidden = false;
      } else if (message.type === "ended" || message.type === "closed") {
        closedForGood = true;
        window.location.reload();
      } else if (message.type === "waiting") {
        room.dataset.state = message.type;
      } else if (message.type === "error" && message.code === "version_unsupported") {
        closedForGood = true;  // a newer server: the reloaded page speaks its version
        window.location.reload();
      }
    });
    socket.addEventListener("close", (event) => {
      if (closedForGood) return;
      room.dataset.state = "reconnecting";
      status.textContent = room.dataset.lost;
      // 1012: this server is stopping, another one answers at once.
      setTimeout(() => window.location.reload(), event.code === 1012 ? 100 : 2000);
    });
  }
  connect();
})();
