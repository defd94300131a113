/* gate: once per page view, the third-party URLs this page contacted (host, path, a loader's id; nothing
   about the visitor), with the page's token; gate counts which tags really fired. */
(function () {
  "use strict";
  var P = window.performance, own = location.hostname, seen = {}, sent = false;
  var me = document.currentScript, meta = document.querySelector('meta[name="gate-token"]');
  var token = (me && me.getAttribute("data-token")) || (meta && meta.content) || "";
  if (!navigator.sendBeacon || !P || !P.getEntriesByType) return;
  function add(entries) {
    for (var i = 0; i < entries.length; i++) {
      var m = /^https?:\/\/([^\/?#:@]+)(?::\d+)?([^?#]*)(\?[^#]*)?/i.exec(entries[i].name);
      if (!m || m[1] === own) continue;
      var id = /[?&]id=([A-Za-z0-9_-]{1,40})(?:&|$)/.exec(m[3] || "");
      var path = (m[2] || "/").slice(0, 100).replace(/[^A-Za-z0-9._~%!$&'()*+,;=:@\/-]/g, "");
      seen["//" + m[1].toLowerCase() + path + (id ? "?id=" + id[1] : "")] = 1;
    }
  }
  add(P.getEntriesByType("resource"));
  try {
    new PerformanceObserver(function (list) { add(list.getEntries()); })
      .observe({type: "resource", buffered: true});
  } catch (e) { /* older browsers: the entries read at hide time are enough */ }
  function send() {
    if (sent) return;
    sent = true;
    add(P.getEntriesByType("resource"));
    var urls = [], all = Object.keys(seen), size = 60 + location.pathname.length;
    for (var i = 0; i < all.length && urls.length < 64; i++) {
      size += all[i].length + 3;
      if (size > 4000) break;  /* gate takes at most 4 KB */
      urls.push(all[i]);
    }
    /* absolute: a relative URL would follow the base href */
    navigator.sendBeacon(location.protocol + "//" + location.host + "/_gate/beacon?t=" + encodeURIComponent(token), JSON.stringify({v: 2, page: location.pathname, urls: urls}));
  }
  addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") send(); });
  addEventListener("pagehide", send);
})();
