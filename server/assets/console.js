// Live updates for the staff console. Pages work without this file; with it, every element
// that listens for `lx:inbox` (a queue, a room, a receipt report) reloads itself through htmx
// when the signed-in user's inbox stream brings something new.
(function () {
  "use strict";
  var url = document.body && document.body.getAttribute("data-live");
  if (!url || !window.EventSource) return;
  var source = null;
  var timer = null;
  var retry = 1000;

  function refresh() {
    // Several notifications in a burst (one action can raise a few) cost one reload.
    if (timer) return;
    timer = setTimeout(function () {
      timer = null;
      document.body.dispatchEvent(new CustomEvent("lx:inbox"));
    }, 250);
  }

  function connect() {
    source = new EventSource(url);
    source.addEventListener("open", function () {
      // After a renewal, catch up on whatever came while no stream was open.
      if (retry > 1000) refresh();
      retry = 1000;
    });
    source.addEventListener("notification", refresh);
    // The access token ran out or was revoked: a plain request renews the session cookies
    // (or, if the session is over, the next navigation goes to sign-in); then listen again.
    source.addEventListener("end", function () {
      source.close();
      fetch("/session", { credentials: "same-origin" }).finally(function () {
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 60000);
      });
    });
  }

  connect();
  window.addEventListener("pagehide", function () { if (source) source.close(); });
})();
