/* gate: once per page view, tell gate which third-party hosts this page contacted (hosts only: no
   query, no cookie values, nothing about the visitor). gate counts which tags really fired. */
(function () {
  "use strict";
  var P = window.performance, own = location.hostname, hosts = {}, sent = false;
  // The page's token (gate counts a beacon only with the token of a page it served, once).
  var me = document.currentScript, meta = document.querySelector('meta[name="gate-token"]');
  var token = (me && me.getAttribute("data-token")) || (meta && meta.content) || "";
  if (!navigator.sendBeacon || !P || !P.getEntriesByType) return;
  function add(entries) {
    for (var i = 0; i < entries.length; i++) {
      var m = /^https?:\/\/([^\/?#:@]+)/i.exec(entries[i].name);
      if (m && m[1] !== own) hosts[m[1].toLowerCase()] = 1;
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
    var body = JSON.stringify({v: 1, page: location.pathname, hosts: Object.keys(hosts).slice(0, 64)});
    navigator.sendBeacon("/_gate/beacon?t=" + encodeURIComponent(token), body);
  }
  addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") send(); });
  addEventListener("pagehide", send);
})();
