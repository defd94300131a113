/* gate's runtime guard. gate/guard.py minifies this at load and injects it inline, first in <head>,
   called with this visitor's refusals:
     c.h  one regex alternation of refused "host/" and "host/path" entries, matched by whole labels
          ("facebook\.net/" stops connect.facebook.net, never notfacebook.net); "" when none
     c.p  url_patterns (regex sources) of refused tags on hosts an accepted tag shares, matched
          against "//host/path?query" as on the server (gtag.js?id=AW-... while ?id=G-... passes)
     c.a  where the site strips undeclared hosts: an alternation of the declared ones (vendors', the
          site's allow_hosts); any other host but the page's own and its subdomains is stopped too; ""
          when undeclared hosts are only reported
   It stops scripts, images, frames, link preloads, beacons, fetches and XHRs to those hosts that the
   page's own code starts after the server gated the HTML (a tag manager injecting a pixel), counts
   them in window.__gateGuard = {stopped, hosts} and reports them to /_gate/csp-report as CSP
   violations (application/reports+json, sourceFile "gate-guard", the URL without its query).
   The minifier is gate's own, not a general one: every statement ends with a semicolon, regex
   literals hold neither quotes nor spaces, and names are kept short by hand. */
(function (c) {
  var w = window, d = document, E = w.Element && Element.prototype, N = w.Node && Node.prototype;
  if (!E || !N || w.__gateGuard) {
    return;
  }
  var U = c.h && new RegExp('^//(?:[\\w-]+\\.)*(?:' + c.h + ')', 'i'), P = [];
  var A = c.a && new RegExp('^(?:[\\w-]+\\.)*(?:' + c.a + ')$', 'i'), L = location.hostname;
  c.p.forEach(function (s) {
    try {
      P.push(new RegExp(s, 'i'));
    } catch (e) {}
  });
  var g = w.__gateGuard = {stopped: 0, hosts: []}, q = [], sent = 0;
  var B = w.Navigator && Navigator.prototype, beacon = B && B.sendBeacon, removeAttr = E.removeAttribute;

  // The refused host that URL u would contact, or "".
  function refused(u) {
    try {
      u = new URL(String(u), d.baseURI);
    } catch (e) {
      return '';
    }
    var h = u.hostname.replace(/\.$/, ''), k = '//' + h + u.pathname;
    return /^(https?|wss?):$/.test(u.protocol) && ((U && U.test(k)) || P.some(function (r) {
      return r.test(k + u.search);
    }) || (A && h != L && ('.' + h).slice(-L.length - 1) != '.' + L && !A.test(h))) ? h : '';
  }

  // Count it; report it (at most 20 a page, batched into one beacon per task), with the token gate
  // gave this page: reports without it are not counted.
  function stop(h, u, what) {
    g.stopped++;
    if (g.hosts.indexOf(h) < 0) {
      g.hosts.push(h);
    }
    if (beacon && sent++ < 20) {
      u = new URL(String(u), d.baseURI);
      q.push({type: 'csp-violation', url: location.href,
        body: {blockedURL: u.origin + u.pathname, effectiveDirective: what, sourceFile: 'gate-guard'}});
      if (q.length < 2) {
        /* Absolute on the page origin: a relative URL would follow the base href of the page. */
        setTimeout(function () {
          var m = d.querySelector('meta[name="gate-token"]');
          beacon.call(navigator, location.protocol + '//' + location.host + '/_gate/csp-report' +
            (m ? '?t=' + encodeURIComponent(m.content) : ''),
            new Blob([JSON.stringify(q.splice(0))], {type: 'application/reports+json'}));
        });
      }
    }
  }

  // Nodes about to be inserted: a refused src (link: href) is taken off before it can load.
  function check(el) {
    var a = el.tagName == 'LINK' ? 'href' : 'src', u = el.getAttribute(a), h = u && refused(u);
    if (h) {
      removeAttr.call(el, a);
      stop(h, u, el.tagName);
    }
  }
  function scan(n) {
    if (n && n.nodeType == 1) {
      check(n);
    }
    if (n && n.firstElementChild && n.querySelectorAll) {
      [].forEach.call(n.querySelectorAll('[src],link[href]'), check);
    }
  }
  function wrap(o, names, f) {
    names.split(' ').forEach(function (m) {
      var orig = o && o[m];
      if (orig) {
        o[m] = f(orig);
      }
    });
  }
  function inserting(orig) {
    return function () {
      [].forEach.call(arguments, scan);
      return orig.apply(this, arguments);
    };
  }
  wrap(N, 'appendChild insertBefore replaceChild', inserting);
  wrap(E, 'append prepend before after replaceWith insertAdjacentElement', inserting);

  // Setting a URL: refused ones are never set.
  [w.HTMLScriptElement, w.HTMLImageElement, w.HTMLIFrameElement].forEach(function (C) {
    var p = C && C.prototype, s = p && Object.getOwnPropertyDescriptor(p, 'src');
    if (s && s.set) {
      Object.defineProperty(p, 'src', {configurable: true, get: s.get, set: function (v) {
        var h = refused(v);
        return h ? stop(h, v, this.tagName) : s.set.call(this, v);
      }});
    }
  });
  wrap(E, 'setAttribute', function (orig) {
    return function (n, v) {
      var a = String(n).toLowerCase(), h = (a == 'src' || (a == 'href' && this.tagName == 'LINK')) && refused(v);
      return h ? stop(h, v, this.tagName) : orig.apply(this, arguments);
    };
  });

  // HTML strings. document.write with a refused src= is dropped whole; innerHTML is set, then cleaned
  // before the images it made start fetching (they wait for a microtask).
  function inHtml(s) {
    var re = new RegExp('[\\s/]src\\s*=\\s*["\']?([^"\'\\s>]+)', 'gi'), m, h;
    while ((m = re.exec(s))) {
      if ((h = refused(m[1]))) {
        return stop(h, m[1], 'document.write') || 1;
      }
    }
  }
  wrap(w.Document && Document.prototype, 'write writeln', function (orig) {
    return function () {
      if (!inHtml([].join.call(arguments, ''))) {
        return orig.apply(this, arguments);
      }
    };
  });
  var inner = Object.getOwnPropertyDescriptor(E, 'innerHTML');
  if (inner && inner.set) {
    Object.defineProperty(E, 'innerHTML', {configurable: true, get: inner.get, set: function (v) {
      inner.set.call(this, v);
      scan(this);
    }});
  }

  // Requests made from script.
  wrap(B, 'sendBeacon', function (orig) {
    return function (u) {
      var h = refused(u);
      return h ? !stop(h, u, 'beacon') : orig.apply(this, arguments);
    };
  });
  wrap(w, 'fetch', function (orig) {
    return function (r) {
      var u = r && r.url || r, h = refused(u);
      return h ? (stop(h, u, 'fetch'), Promise.reject(new TypeError('Failed to fetch'))) : orig.apply(this, arguments);
    };
  });
  var X = w.XMLHttpRequest && XMLHttpRequest.prototype;
  wrap(X, 'open', function (orig) {
    return function (m, u) {
      if ((this.__gate = refused(u))) {
        stop(this.__gate, u, 'xhr');
      }
      return orig.apply(this, arguments);
    };
  });
  wrap(X, 'send', function (orig) {
    return function () {
      if (!this.__gate) {
        return orig.apply(this, arguments);
      }
    };
  });
})
