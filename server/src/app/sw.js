// The resident app's service worker: keeps the shell (the page, its script, style and icon)
// so the app opens with no network. Data is the page script's business (IndexedDB).
// VERSION and SHELL are written above this line by the server.
'use strict';
const CACHE = 'lianxin-app-' + VERSION;

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('lianxin-app-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

// The shell and the hashed assets come from the cache first: they never change under their
// name, and a new shell arrives with a new worker. API calls go to the network untouched.
self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== self.location.origin) return;
  const shell = url.pathname === '/app/' || url.pathname === '/app';
  if (!shell && !SHELL.includes(url.pathname)) return;
  e.respondWith(
    caches.open(CACHE)
      .then((c) => c.match(shell ? '/app/' : e.request))
      .then((hit) => hit || fetch(e.request))
  );
});
