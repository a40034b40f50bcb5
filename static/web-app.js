// Registers the web app's service worker (it keeps only the offline page and its
// static files, see templates/service-worker.js) and offers "install" where the browser
// supports a prompt (Chromium on Android and the desktop).
"use strict";
(() => {
  const script = document.currentScript;
  if ("serviceWorker" in navigator && window.isSecureContext) {
    const worker = new URL(script.dataset.worker, location.href);
    worker.searchParams.set("lang", document.documentElement.lang || "de");
    navigator.serviceWorker.register(worker.href, { scope: script.dataset.scope })
      .catch((error) => console.warn("The service worker was not registered:", error.message));
  }
  let prompt = null;
  window.addEventListener("beforeinstallprompt", (event) => {
    event.preventDefault();
    prompt = event;
    for (const button of document.querySelectorAll("[data-install]")) button.hidden = false;
  });
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-install]");
    if (!button || !prompt) return;
    prompt.prompt();
    await prompt.userChoice;
    prompt = null;
    button.hidden = true;
  });
})();
