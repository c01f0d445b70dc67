// Offline reloads: network first (so an updated model or page is always used when the server is up), and the
// cached copy when the network fails. The page tells this worker which files it loaded (its own resource
// timing), once its model is ready; nothing from another origin is ever fetched or cached.
const CACHE = "aulunet-web";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("message", (event) => {
  if (event.data?.type !== "cache") return;
  const urls = [...new Set(event.data.urls)].filter((u) => new URL(u).origin === self.location.origin);
  event.waitUntil(caches.open(CACHE)
    .then((cache) => cache.addAll(urls))
    .then(() => event.source?.postMessage({ type: "cached", count: urls.length }),
          (err) => event.source?.postMessage({ type: "cache-failed", message: String(err) })));
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET" || new URL(req.url).origin !== self.location.origin) return;
  event.respondWith(fetch(req).catch(() =>
    caches.match(req, { ignoreSearch: req.mode === "navigate" }).then((hit) => hit || Response.error())));
});
