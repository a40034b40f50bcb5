// The web app's service worker (smartpractice/web/web_app.py, docs/web-app.md).
//
// It keeps one cache: the offline page and the few static files that page shows, fetched
// when the worker installs. Nothing that passes through it is ever written to a cache:
// pages and API answers carry people's names and appointments, and a phone can be lost
// or shared. Pages always come from the network; when the network fails, the offline
// page stands in. The offline page's static files come from the network and, offline,
// from the cache; other requests pass the worker by.
"use strict";

const CACHE = {{ cache|tojson }};
const OFFLINE = {{ offline|tojson }};
const FILES = {{ files|tojson }};

self.addEventListener("install", (event) => {
  // cache: "reload": the files as the server has them now, not from the HTTP cache.
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(FILES.map((url) => new Request(url, { cache: "reload", credentials: "omit" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    // An older release's cache (or another language's offline page) goes.
    for (const name of await caches.keys()) {
      if (name !== CACHE) await caches.delete(name);
    }
    // The page request starts while the worker wakes up, not after.
    if (self.registration.navigationPreload) await self.registration.navigationPreload.enable();
    await self.clients.claim();
  })());
});

async function page(event) {
  try {
    const preloaded = await event.preloadResponse;
    return preloaded || await fetch(event.request);
  } catch (error) {
    // Only an unreachable server lands here; any answer it gives, errors included, is shown.
    return (await caches.match(OFFLINE)) || Response.error();
  }
}

async function staticFile(request) {
  try {
    return await fetch(request);
  } catch (error) {
    const cached = await caches.match(request, { ignoreVary: true });
    if (cached) return cached;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    event.respondWith(page(event));
  } else if (FILES.includes(url.pathname + url.search)) {
    event.respondWith(staticFile(request));
  }
  // Everything else (the API, the page's own requests, other static files) the browser
  // handles as if there were no worker: a worker that took them on could only fail them
  // (Firefox reports a fetch cut off by the page's next navigation as the worker's error).
});
