/* gate: the banner's plain form, posted in place. Without this file it still works. */
(function () {
  "use strict";
  // After a decision: the settings link goes into the site's own [data-gate-settings] element when it has
  // one; otherwise it floats at its corner, data-gate-offset pixels from the edges.
  var dock = document.querySelector(".gate-dock[data-gate]"), host = document.querySelector("[data-gate-settings]");
  if (dock && host) {
    while (dock.firstChild) host.appendChild(dock.firstChild);
    dock.parentNode.removeChild(dock);
  } else if (dock && dock.hasAttribute("data-gate-offset")) {
    var o = parseInt(dock.getAttribute("data-gate-offset"), 10) + "px", c = dock.className;
    dock.style[c.indexOf("gate-at-top") >= 0 ? "top" : "bottom"] = o;
    dock.style[/gate-at-\w+-right/.test(c) ? "right" : "left"] = o;
  }
  var d = document.getElementById("gate-banner");
  if (!d || !window.fetch || !window.URLSearchParams) return;
  var f = d.querySelector("form"), panel = document.getElementById("gate-panel"),
      set = document.getElementById("gate-settings"), busy = false;

  // First in the tab order; no focus trap, the page stays usable.
  document.body.insertBefore(d, document.body.firstChild);

  function show(open) {
    panel.hidden = !open;
    set.setAttribute("aria-expanded", open ? "true" : "false");
  }
  set.setAttribute("aria-controls", "gate-panel");
  show(false);
  set.addEventListener("click", function (e) { e.preventDefault(); show(panel.hidden); room(); });
  // The sheet covers the bottom of the window: give the page that much room at its end and keep
  // focused elements clear of it (WCAG 2.4.11), so nothing is reachable only behind the banner.
  var root = document.documentElement, pad = document.body.style.paddingBottom;
  function room() {
    var h = d.offsetHeight + "px";
    root.style.scrollPaddingBottom = h;
    document.body.style.paddingBottom = "calc(" + (pad || "0px") + " + " + h + ")";
  }
  room();
  window.addEventListener("resize", room);
  document.addEventListener("focusin", function (e) {
    if (d.contains(e.target)) return;
    var r = e.target.getBoundingClientRect(), top = window.innerHeight - d.offsetHeight;
    if (r.bottom > top) window.scrollBy(0, r.bottom - top + 8);
  });
  // Escape closes the settings layer; it never answers for the visitor.
  d.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && !panel.hidden) { show(false); set.focus(); }
  });

  f.addEventListener("submit", function (e) {
    var b = e.submitter || document.activeElement;
    if (!b || b.name !== "choice" || b === set) return;
    e.preventDefault();
    if (busy) return;
    busy = true;
    var body = new URLSearchParams(new FormData(f));
    body.set("choice", b.value);
    // The form the browser would send; "manual": do not fetch the page the 303 names.
    fetch(f.action, { method: "POST", body: body, credentials: "same-origin", redirect: "manual" })
      .then(function (r) {
        if (r.type !== "opaqueredirect" && !r.ok) throw new Error(r.status);
        location.reload();
      })
      .catch(function () {
        // Let the browser post it and show the answer.
        var i = document.createElement("input");
        i.type = "hidden"; i.name = "choice"; i.value = b.value; i.setAttribute("data-gate", "");
        f.appendChild(i);
        f.submit();
      });
  });
})();
