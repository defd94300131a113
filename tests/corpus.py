"""The adversarial corpus: one trick per case. Each case says which tag it carries and what gate must
do while that tag is refused: "strip" (no live trace of it, as html5lib reads the output) or "keep"
(the page is byte-identical: look-alike hosts and text that is not live). With every tag accepted,
every case must come out byte-identical."""

from __future__ import annotations

import base64
from typing import NamedTuple

FB_JS = "https://connect.facebook.net/en_US/fbevents.js"
FB_PX = "https://www.facebook.com/tr?id=100000000000001&ev=PageView&noscript=1"


class Case(NamedTuple):
    id: str
    html: str
    tag: str  # the tag id the case is about
    expect: str  # "strip" | "keep"
    live_in_input: bool = True  # for "strip": html5lib sees it live in the input (False: other readers do)


def page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head><meta charset=utf-8>{head}</head><body><p>求人</p>{body}</body></html>"


def nested_srcdoc(html: str, depth: int) -> str:
    """``html`` inside ``depth`` iframes, each the srcdoc document of the one around it."""
    for _ in range(depth):
        html = (
            '<iframe srcdoc="' + html.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;") + '"></iframe>'
        )
    return html


P = "facebook.pixel"
CASES = [
    # -- tag and attribute tokenization ------------------------------------------------------------
    Case("script-src", page(f'<script async src="{FB_JS}"></script>'), P, "strip"),
    Case("uppercase-tag-and-attr", page(f'<SCRIPT SRC="{FB_JS}"></SCRIPT>'), P, "strip"),
    Case("slash-separator", page(f'<script/src="{FB_JS}"></script>'), P, "strip"),
    Case("unquoted-value", page(f"<script src={FB_JS}></script>"), P, "strip"),
    Case("single-quoted", page(f"<script src='{FB_JS}'></script>"), P, "strip"),
    Case("no-space-between-attrs", page(f'<script async=""src="{FB_JS}"></script>'), P, "strip"),
    Case("duplicate-first-wins-vendor", page(f'<img src="{FB_PX}" src="/logo.png">'), P, "strip"),
    Case("duplicate-first-wins-benign", page(f'<img src="/logo.png" src="{FB_PX}">'), P, "keep"),
    Case("gt-inside-quoted-value", page(f'<img alt="a>b" src="{FB_PX}">'), P, "strip"),
    Case("unquoted-value-ends-in-slash", page("<img src=https://www.facebook.com/tr/>"), P, "strip"),
    Case("self-closing-script-still-opens", page(f'<script src="{FB_JS}"/>x</script>'), P, "strip"),
    Case(
        "numeric-char-refs",
        page('<script src="https://connect&#46;facebook&#x2e;net/en_US/fbevents.js"></script>'),
        P,
        "strip",
    ),
    Case(
        "named-char-ref",
        page('<script src="https://connect&period;facebook&period;net/en_US/fbevents.js"></script>'),
        P,
        "strip",
    ),
    Case("entity-in-handler", page("<div onmouseover=\"fbq&#40;'init','100000000000001')\">x</div>"), P, "strip"),
    # -- comments, bogus comments, doctype, CDATA --------------------------------------------------
    Case("inside-comment", page(f'<!-- <script src="{FB_JS}"></script> -->'), P, "keep"),
    Case("abrupt-comment", page(f'<!--><script src="{FB_JS}"></script>'), P, "strip"),
    Case("abrupt-comment-dash", page(f'<!---><script src="{FB_JS}"></script>'), P, "strip"),
    Case("comment-bang-end", page(f'<!-- a --!><script src="{FB_JS}"></script>'), P, "strip"),
    Case("comment-nested-open", page(f'<!-- <!-- --><script src="{FB_JS}"></script>'), P, "strip"),
    Case("bogus-comment-swallows", page(f'<!x <script src="{FB_JS}">'), P, "keep"),
    Case("processing-instruction", page(f'<?x <script src="{FB_JS}">'), P, "keep"),
    Case("bogus-end-tag", page(f'</ <script src="{FB_JS}">'), P, "keep"),
    Case("cdata-in-html-is-bogus", page(f"<![CDATA[ x ]]><script src={FB_JS}></script>"), P, "strip"),
    Case("cdata-in-html-swallows", page(f"<![CDATA[ <script src={FB_JS}> ]]>"), P, "keep"),
    Case("cdata-in-svg", page(f'<svg><![CDATA[<img src="{FB_PX}">]]></svg>'), P, "keep"),
    # -- raw text and escapable raw text ---------------------------------------------------------------
    Case("textarea", page(f'<textarea><script src="{FB_JS}"></script></textarea>'), P, "keep"),
    Case("title", page("", f'<title><script src="{FB_JS}"></script></title>'), P, "keep"),
    Case("style-text", page("", f'<style>/* <script src="{FB_JS}"></script> */ p{{color:red}}</style>'), P, "keep"),
    Case("xmp", page(f'<xmp><script src="{FB_JS}"></script></xmp>'), P, "keep"),
    Case("iframe-content", page(f'<iframe src="/map.html"><script src="{FB_JS}"></script></iframe>'), P, "keep"),
    Case("noembed", page(f'<noembed><img src="{FB_PX}"></noembed>'), P, "keep"),
    Case("noframes", page(f'<noframes><img src="{FB_PX}"></noframes>'), P, "keep"),
    Case("plaintext", page(f'<plaintext><script src="{FB_JS}"></script>'), P, "keep"),
    Case("textarea-end-then-live", page(f'<textarea>x</textarea ><img src="{FB_PX}">'), P, "strip"),
    # -- script data states ---------------------------------------------------------------------------
    Case(
        "script-end-needs-delimiter",
        page(f'<script>a="</scripts>";</script><script src="{FB_JS}"></script>'),
        P,
        "strip",
    ),
    Case("script-end-with-attrs", page(f'<script>x=1</script foo=">"><script src="{FB_JS}"></script>'), P, "strip"),
    Case(
        "double-escaped-swallows-next",
        page(f'<script>var a="<!--<script>";</script><script src="{FB_JS}"></script>'),
        P,
        "strip",
    ),
    Case("escaped-comment-is-harmless", page("<script>if(a<!--b)c()</script><p>ok</p>"), P, "keep"),
    Case("benign-script-untouched", page("<script>document.title='求人'</script>"), P, "keep"),
    # -- template, noscript, select ----------------------------------------------------------------------
    Case("template-content", page(f'<template><script src="{FB_JS}"></script></template>'), P, "strip"),
    Case("noscript-pixel", page(f'<noscript><img height="1" width="1" src="{FB_PX}"/></noscript>'), P, "strip"),
    Case(
        "noscript-in-head",
        page(
            "", '<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-DEMO123"></iframe></noscript>'
        ),
        "google.tag_manager",
        "strip",
    ),
    Case(
        "noscript-readings-diverge",
        page(f'<noscript><script></noscript><!--</script><img src="{FB_PX}">-->'),
        P,
        "strip",
    ),
    Case(
        "select-ignores-iframe", page(f'<select><iframe><script src="{FB_JS}"></script></iframe></select>'), P, "strip"
    ),
    # -- foreign content ---------------------------------------------------------------------------------
    Case("svg-script-href", page(f'<svg><script href="{FB_JS}"></script></svg>'), P, "strip"),
    Case("svg-script-xlink", page(f'<svg><script xlink:href="{FB_JS}"></script></svg>'), P, "strip"),
    Case("svg-script-self-closing", page(f'<svg><script href="{FB_JS}"/></svg>'), P, "strip"),
    Case("svg-style-breakout", page(f'<svg><style><img src="{FB_PX}"></style></svg>'), P, "strip"),
    Case("svg-image-href", page(f'<svg><image href="{FB_PX}"/></svg>'), P, "strip"),
    Case("svg-end-p-read-both-ways", page(f'<svg></p><style><img src="{FB_PX}"></style>'), P, "strip"),
    Case("math-text-integration", page(f'<math><mi><style><img src="{FB_PX}"></style></mi></math>'), P, "keep"),
    Case("svg-desc-integration", page(f'<svg><desc><style><img src="{FB_PX}"></style></desc></svg>'), P, "keep"),
    # An element takes its parent's namespace whatever its name: inside <svg>, <math><mi> and
    # <annotation-xml> are SVG elements and no integration point, so <textarea> there is not RCDATA and
    # the <img> after it breaks out as a live HTML img (and likewise the reverse, and MathML's <mglyph>).
    Case(
        "svg-math-mi-is-svg",
        page(f'<svg><math><mi><textarea><img src="{FB_PX}"></textarea></mi></math></svg>'),
        P,
        "strip",
    ),
    Case(
        "math-svg-foreignobject-is-math",
        page(f'<math><svg><foreignObject><textarea><img src="{FB_PX}"></textarea></foreignObject></svg></math>'),
        P,
        "strip",
    ),
    Case(
        "svg-annotation-xml-is-svg",
        page(
            f'<svg><annotation-xml encoding="text/html"><textarea><img src="{FB_PX}"></textarea></annotation-xml></svg>'
        ),
        P,
        "strip",
    ),
    Case(
        "math-mi-mglyph-is-math",
        page(f'<math><mi><mglyph><textarea><img src="{FB_PX}"></textarea></mglyph></mi></math>'),
        P,
        "strip",
    ),
    Case(
        "svg-math-title-integration",
        page(f'<svg><math><title><textarea><img src="{FB_PX}"></textarea></title></math></svg>'),
        P,
        "keep",
    ),
    Case(
        "math-annotation-xml-svg-integration",
        page(
            "<math><annotation-xml><svg><foreignObject><textarea>"
            f'<img src="{FB_PX}"></textarea></foreignObject></svg></annotation-xml></math>'
        ),
        P,
        "keep",
    ),
    # -- other live places ------------------------------------------------------------------------------
    Case("img-src", page(f'<img src="{FB_PX}">'), P, "strip"),
    Case("image-alias", page(f'<image src="{FB_PX}">'), P, "strip"),
    Case("srcset-candidate", page(f'<img src="/a.png" srcset="/a2.png 2x, {FB_PX} 3x">'), P, "strip"),
    Case("picture-source-srcset", page(f'<picture><source srcset="{FB_PX}"><img src="/a.png"></picture>'), P, "strip"),
    Case(
        "iframe-src",
        page('<iframe src="https://www.googletagmanager.com/ns.html?id=GTM-DEMO123"></iframe>'),
        "google.tag_manager",
        "strip",
    ),
    Case(
        "iframe-srcdoc",
        page(f'<iframe srcdoc="&lt;script src=&quot;{FB_JS}&quot;&gt;&lt;/script&gt;&lt;p&gt;x"></iframe>'),
        P,
        "strip",
    ),
    # srcdoc inside srcdoc, deeper than gate reads (rewrite.MAX_DEPTH): the outer iframe goes, uncertain
    Case("iframe-srcdoc-nested-9-deep", page(nested_srcdoc(f'<img src="{FB_PX}">', 9)), P, "strip"),
    # a "<" that is text only because the removed element's "<" follows it must stay text
    Case("lt-before-removed-element", page(f'<<script src="{FB_JS}"></script>img src="{FB_PX}">'), P, "strip"),
    # a scheme-relative URL skips every further slash and backslash before its host
    Case(
        "scheme-relative-four-slashes",
        page('<script src="////connect.facebook.net/en_US/fbevents.js"></script>'),
        P,
        "strip",
    ),
    Case(
        "scheme-relative-mixed-slashes",
        page('<img src="/\\\\www.facebook.com/tr?id=100000000000001&ev=PageView">'),
        P,
        "strip",
    ),
    # "https:/x" after a base of the same scheme is a path on the base's host, not a host "x"
    Case(
        "same-scheme-one-slash-under-vendor-base",
        page('<img src="https:/tr?id=100000000000001&ev=PageView">', head='<base href="https://www.facebook.com/">'),
        P,
        "strip",
    ),
    # a data: document whose host is a character reference: only a reading as HTML finds it
    Case(
        "iframe-data-url-char-ref-host",
        page('<iframe src="data:text/html,%3Cimg%20src%3D%22https://www.&%23102;acebook.com/tr?id=1%22%3E"></iframe>'),
        P,
        "strip",
    ),
    Case(
        "object-data-url-base64",
        page(
            '<object data="data:text/html;base64,'
            + base64.b64encode(b'<img src="https://www.&#102;acebook.com/tr?id=1">').decode()
            + '"></object>'
        ),
        P,
        "strip",
    ),
    Case(
        "iframe-data-url",
        page(
            '<iframe src="data:text/html,%3Cscript%20src%3D%22https%3A//connect.facebook.net/en_US/fbevents.js'
            '%22%3E%3C/script%3E"></iframe>'
        ),
        P,
        "strip",
    ),
    Case("link-preload", page("", f'<link rel="preload" as="script" href="{FB_JS}">'), P, "strip"),
    Case("link-rel-tokens", page("", f'<link rel="Stylesheet  PRELOAD" href="{FB_JS}">'), P, "strip"),
    Case("link-dns-prefetch", page("", '<link rel=dns-prefetch href="//connect.facebook.net">'), P, "strip"),
    Case("object-data", page(f'<object data="{FB_PX}"></object>'), P, "strip"),
    Case("embed-src", page(f'<embed src="{FB_JS}">'), P, "strip"),
    Case("input-image", page(f'<form><input type="image" src="{FB_PX}"></form>'), P, "strip"),
    Case("video-poster", page(f'<video poster="{FB_PX}" src="/v.mp4"></video>'), P, "strip"),
    Case("meta-refresh", page("", f'<meta http-equiv="refresh" content="0; url={FB_PX}">'), P, "strip"),
    Case("a-ping", page(f'<a href="/jobs" ping="{FB_PX}">求人</a>'), P, "strip"),
    Case("onload-handler", page("<img src=\"/a.png\" onload=\"fbq('init','100000000000001')\">"), P, "strip"),
    Case("javascript-url", page("<a href=\"javascript:fbq('init','100000000000001')\">x</a>"), P, "strip"),
    Case("javascript-url-with-tab", page("<a href=\"java&#9;script:fbq('init','100000000000001')\">x</a>"), P, "strip"),
    Case("body-background", f'<html><body background="{FB_PX}"><p>x</p></body></html>', P, "strip"),
    Case("style-attr-url", page(f'<div style="background:url({FB_PX})">x</div>'), P, "strip"),
    Case(
        "style-attr-css-escape",
        page('<div style="background:url(https://www.f\\61 cebook.com/tr)">x</div>'),
        P,
        "strip",
    ),
    Case("style-import", page("", f'<style>@import "{FB_JS}";</style>'), P, "strip"),
    # -- URL parsing ------------------------------------------------------------------------------------
    Case(
        "base-href",
        page('<script src="en_US/fbevents.js"></script>', '<base href="https://connect.facebook.net/">'),
        P,
        "strip",
    ),
    # The browser uses the first <base>; a later one on a refused host is inert, and stripped all the
    # same (a <base> is judged like any tag: gate cannot always tell which one is first).
    Case(
        "first-base-wins",
        page(
            '<script src="en_US/fbevents.js"></script>', '<base href="/x/"><base href="https://connect.facebook.net/">'
        ),
        P,
        "strip",
        live_in_input=False,
    ),
    Case(
        "first-base-wins-kept",
        page('<script src="en_US/fbevents.js"></script>', '<base href="/x/"><base href="https://cdn.example.org/">'),
        P,
        "keep",
    ),
    Case(
        "base-on-vendor-host",
        page('<a href="/jobs">jobs</a>', '<base href="https://connect.facebook.net/">'),
        P,
        "strip",
        live_in_input=False,
    ),
    Case(
        "srcdoc-own-base",
        page(
            "<iframe srcdoc=\"<base href='https://connect.facebook.net/'>"
            "<script src='en_US/fbevents.js'></script>\"></iframe>"
        ),
        P,
        "strip",
    ),
    Case(
        "leading-space-and-c0",
        page('<script src=" \x0c https://connect.facebook.net/en_US/fbevents.js"></script>'),
        P,
        "strip",
    ),
    Case(
        "tab-newline-in-url",
        page('<script src="htt&#9;ps://connect.face&#10;book.net/en_US/fbevents.js"></script>'),
        P,
        "strip",
    ),
    Case("backslashes", page('<script src="https:\\\\connect.facebook.net\\en_US\\fbevents.js"></script>'), P, "strip"),
    Case("protocol-relative", page('<script src="//connect.facebook.net/en_US/fbevents.js"></script>'), P, "strip"),
    Case("uppercase-host", page('<script src="HTTPS://CONNECT.FACEBOOK.NET/en_US/fbevents.js"></script>'), P, "strip"),
    Case("trailing-dot", page('<script src="https://connect.facebook.net./en_US/fbevents.js"></script>'), P, "strip"),
    Case(
        "percent-encoded-host",
        page('<script src="https://connect%2Efacebook%2enet/en_US/fbevents.js"></script>'),
        P,
        "strip",
    ),
    Case(
        "fullwidth-host",
        page('<script src="https://ｃｏｎｎｅｃｔ。ｆａｃｅｂｏｏｋ。ｎｅｔ/en_US/fbevents.js"></script>'),
        P,
        "strip",
    ),
    Case("userinfo", page('<script src="https://gate@connect.facebook.net/en_US/fbevents.js"></script>'), P, "strip"),
    Case("port", page('<script src="https://connect.facebook.net:443/en_US/fbevents.js"></script>'), P, "strip"),
    # -- look-alikes and mentions that must be kept --------------------------------------------------------
    Case("lookalike-prefix", page('<script src="https://notfacebook.net/en_US/fbevents.js"></script>'), P, "keep"),
    Case("lookalike-suffix", page('<script src="https://connect.facebook.net.example.org/x.js"></script>'), P, "keep"),
    Case(
        "vendor-in-query",
        page('<img src="https://img.example.org/p.png?ref=https://connect.facebook.net/">'),
        P,
        "keep",
    ),
    Case("navigation-link", page('<a href="https://www.facebook.com/dentalcareer">Facebook</a>'), P, "keep"),
    Case(
        "json-ld-sameas",
        page('<script type="application/ld+json">{"sameAs":["https://www.facebook.com/dentalcareer"]}</script>'),
        P,
        "keep",
    ),
    Case("text-mention", page("<p>connect.facebook.net と www.google-analytics.com に送信します</p>"), P, "keep"),
    Case(
        "google-recaptcha-kept",
        page('<script src="https://www.google.com/recaptcha/api.js"></script>'),
        "google.ads",
        "keep",
    ),
    # -- each vendor's real shape ---------------------------------------------------------------------------
    Case(
        "gtm-inline-loader",
        page(
            "<script>(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':new Date().getTime(),event:'gtm.js'});"
            "var f=d.getElementsByTagName(s)[0],j=d.createElement(s);j.async=true;j.src='https://www.googletagmanager.com/gtm.js?id='+i;"
            "f.parentNode.insertBefore(j,f);})(window,document,'script','dataLayer','GTM-DEMO123');</script>"
        ),
        "google.tag_manager",
        "strip",
    ),
    Case(
        "ga4-config",
        page(
            "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
            "gtag('js',new Date());gtag('config','G-DEMO12345');</script>"
        ),
        "google.analytics",
        "strip",
    ),
    Case(
        "ads-conversion",
        page("<script>gtag('event','conversion',{'send_to':'AW-100000001/abcDEF'});</script>"),
        "google.ads",
        "strip",
    ),
    Case(
        "yahoo-ytag",
        page('<script async src="https://s.yimg.jp/images/listing/tool/cv/ytag.js"></script>'),
        "yahoo.ads",
        "strip",
    ),
    Case(
        "yahoo-conversion-inline",
        page('<script>ytag({"type":"yss_conversion","config":{"yahoo_conversion_id":"1000000001"}});</script>'),
        "yahoo.ads",
        "strip",
    ),
    Case(
        "criteo-onetag",
        page('<script src="//dynamic.criteo.com/js/ld/ld.js?a=10001" async="true"></script>'),
        "criteo.onetag",
        "strip",
    ),
    Case(
        "criteo-queue",
        page('<script>window.criteo_q=window.criteo_q||[];criteo_q.push({event:"setAccount",account:10001});</script>'),
        "criteo.onetag",
        "strip",
    ),
    Case(
        "adjust-sdk",
        page("<script>Adjust.initSdk({appToken:'demo00000001',environment:'sandbox'});</script>"),
        "adjust.web_sdk",
        "strip",
    ),
    # -- inline calls, read as JavaScript: wherever an engine runs them (issue 10, defects 3 and 6) -------
    Case(
        "fbq-track-in-html-comment",
        page("<script><!--\nfbq('track','ViewContent',{content_ids:['1']});\n//--></script>"),
        P,
        "strip",
    ),
    Case(
        "fbq-track-after-close-comment-line",
        page("<script>var a=1;\n --> legacy\nfbq('track','Lead');</script>"),
        P,
        "strip",
    ),
    Case("fbq-track-after-bom", page("<script>\ufefffbq('track','PageView');</script>"), P, "strip"),
    Case("fbq-track-unicode-escape", page("<script>\\u0066bq('track','Lead');</script>"), P, "strip"),
    Case("fbq-track-by-subscript", page("<script>/* pixel */;window['fbq']('track','Lead')</script>"), P, "strip"),
    Case("fbq-track-in-handler", page("<button onclick=\"fbq('track','Lead')\">応募</button>"), P, "strip"),
    Case("fbq-in-string-kept", page("<script>document.title='fbq(&quot;track&quot;)';</script>"), P, "keep"),
    Case("fbq-in-regex-kept", page("<script>var r=/fbq\\(/g;</script>"), P, "keep"),
    Case(
        "adjust-track-event",
        page("<script>Adjust.trackEvent({ eventToken: 'abc123' });</script>"),
        "adjust.web_sdk",
        "strip",
    ),
    Case(
        "adjust-track-event-window",
        page("<script>window.Adjust?.trackEvent({eventToken:'abc123',revenue:1,currency:'JPY'})</script>"),
        "adjust.web_sdk",
        "strip",
    ),
    Case(
        "criteo-push-without-account",
        page('<script>window.criteo_q.push({event:"viewItem",item:"1"});</script>'),
        "criteo.onetag",
        "strip",
    ),
    Case(
        "gtag-config-id-in-variable",
        page("<script>var AW='AW-100000001';gtag('config',AW);</script>"),
        "google.ads",
        "strip",
    ),
    Case(
        "ytag-retargeting-minified",
        page("<script>ytag({type:'yjad_retargeting',config:{yahoo_retargeting_id:'DEMO000001'}})</script>"),
        "yahoo.retargeting",
        "strip",
    ),
    Case(
        "gtm-noscript-iframe",
        page(
            '<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-DEMO123" height="0" width="0">'
            "</iframe></noscript>"
        ),
        "google.tag_manager",
        "strip",
    ),
]


class ScriptCase(NamedTuple):
    """A vendor's published snippet shape (our own fake ids) or a variant of it, and how gate must read
    it: the tag it calls (None: no vendor's call) and whether it sends personal data."""

    id: str
    script: str
    tag: str | None
    sends: bool = False


FB_BASE = (
    "!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){n.callMethod?n.callMethod.apply(n,arguments)"
    ":n.queue.push(arguments)};if(!f._fbq)f._fbq=n;n.push=n;n.loaded=!0;n.version='2.0';n.queue=[];"
    "t=b.createElement(e);t.async=!0;t.src=v;s=b.getElementsByTagName(e)[0];s.parentNode.insertBefore(t,s)}"
    "(window, document,'script','https://connect.facebook.net/en_US/fbevents.js');\n"
)
CRITEO_ONETAG = """window.criteo_q = window.criteo_q || [];
var deviceType = /iPad/.test(navigator.userAgent) ? "t" : \
/Mobile|iP(hone|od)|Android|BlackBerry|IEMobile|Silk/.test(navigator.userAgent) ? "m" : "d";
window.criteo_q.push(
  { event: "setAccount", account: 10001 },
  { event: "setEmail", email: "", hash_method: "" },
  { event: "setSiteType", type: deviceType },
  { event: "viewItem", item: "dh-001" });"""
GA4 = (
    "window.dataLayer = window.dataLayer || [];\nfunction gtag(){dataLayer.push(arguments);}\ngtag('js', new Date());\n"
)
YTAG = "window.yjDataLayer = window.yjDataLayer || [];\nfunction ytag() { yjDataLayer.push(arguments); }\n"
A = "facebook.pixel"
SCRIPT_CASES = [
    # -- Meta Pixel ---------------------------------------------------------------------------------------
    ScriptCase("fb-base-code", FB_BASE + "fbq('init', '100000000000001');\nfbq('track', 'PageView');", A),
    ScriptCase("fb-track-only", "fbq('track', 'ViewContent', {content_ids: ['dh-001'], content_type: 'product'});", A),
    ScriptCase("fb-html-comment-wrapped", "<!--\nfbq('track','ViewContent',{content_ids:['1']});\n//-->", A),
    ScriptCase("fb-close-comment-line", "var seen = 1;\n  --> old browsers\nfbq('track', 'Lead');", A),
    ScriptCase("fb-close-comment-after-block-comment", "/* a\n*/ --> x\nfbq('track', 'Lead');", A),
    ScriptCase("fb-bom", "\ufefffbq('track', 'PageView');", A),
    ScriptCase("fb-after-comment-and-semicolons", "/* pixel */;;fbq('track','Lead')", A),
    ScriptCase("fb-unicode-escape", "\\u0066bq('track', 'Lead');", A),
    ScriptCase("fb-window-subscript", "window['fbq']('track', 'Lead');", A),
    ScriptCase("fb-call-method", "fbq.call(null, 'track', 'Lead');", A),
    ScriptCase("fb-minified", '!function(){fbq("track","Purchase",{value:1,currency:"JPY"})}();', A),
    ScriptCase("fb-after-regex", "var ok=/['\"]/.test(location.search);fbq('track','Search');", A),
    ScriptCase("fb-in-template-substitution", "var s=`${fbq('track','Lead')}`;", A),
    ScriptCase(
        "fb-advanced-matching-variable",
        "var PIXEL = '100000000000001', h = '5f1d7a';\nfbq('init', PIXEL, {em: h});",
        A,
        True,
    ),
    ScriptCase(
        "fb-advanced-matching-quoted-keys", 'fbq(\'init\',\'100000000000001\',{"em":"5f1d7a","ph":"9b3c"});', A, True
    ),
    ScriptCase("fb-advanced-matching-shorthand", "var em = '5f1d7a';\nfbq('init', '100000000000001', {em});", A, True),
    ScriptCase("fb-advanced-matching-empty", "fbq('init', '100000000000001', {em: '', ph: ''});", A),
    # -- Google ---------------------------------------------------------------------------------------------
    ScriptCase("ga4-snippet", GA4 + "gtag('config', 'G-DEMO12345');", "google.analytics"),
    ScriptCase("ga4-user-id", GA4 + "gtag('config', 'G-DEMO12345', {user_id: 'u-1001'});", "google.analytics", True),
    ScriptCase("ga4-config-id-opaque", GA4 + "gtag('config', window.GATE_DEMO_ID);", "google.analytics"),
    ScriptCase(
        "ads-conversion-quoted",
        'gtag("event","conversion",{"send_to":"AW-100000001/abcDEF","value":1.0,"currency":"JPY"});',
        "google.ads",
    ),
    ScriptCase("ads-config-id-in-variable", "var AW = 'AW-100000001';\ngtag('config', AW);", "google.ads"),
    ScriptCase(
        "ads-user-data-object",
        "var h = '5f1d7a';\ngtag('set', {user_data: {sha256_email_address: h}});",
        "google.ads",
        True,
    ),
    ScriptCase(
        "ads-user-data-string-key", "var h = '5f1d7a';\ngtag('set', 'user_data', {\"email\": h});", "google.ads", True
    ),
    ScriptCase(
        "floodlight-event",
        "gtag('event','conversion',{allow_custom_scripts:true,send_to:'DC-1000001/apply0/apply0+standard'});",
        "google.floodlight",
    ),
    ScriptCase("gtag-js-only", GA4, None),
    ScriptCase("gtag-event-without-id", "gtag('event', 'view_item', {items: [{item_id: 'dh-001'}]});", None),
    # -- Yahoo! JAPAN ----------------------------------------------------------------------------------------
    ScriptCase("ytag-site-general", YTAG + 'ytag({"type":"ycl_cookie"});', "yahoo.ads"),
    ScriptCase(
        "ytag-conversion-minified",
        "ytag({type:'yjad_conversion',config:{yahoo_ydn_conv_io:'DEMOio',yahoo_ydn_conv_label:'DEMOLABEL'}})",
        "yahoo.ads",
    ),
    ScriptCase(
        "ytag-retargeting",
        'ytag({"type":"yss_retargeting","config":{"yahoo_ss_retargeting_id":"1000000001","yahoo_sstag_custom_params":{}}});',
        "yahoo.retargeting",
    ),
    ScriptCase("ytag-config-opaque", "var conf = window.GATE_DEMO_CONF;\nytag(conf);", "yahoo.ads"),
    # -- Criteo ----------------------------------------------------------------------------------------------
    ScriptCase("criteo-onetag-published", CRITEO_ONETAG, "criteo.onetag"),
    ScriptCase(
        "criteo-set-email-quoted",
        'var h = "5f1d7a";\nwindow.criteo_q.push({"event": "setEmail", "email": h});',
        "criteo.onetag",
        True,
    ),
    ScriptCase(
        "criteo-hashed-email", "criteo_q.push({event:'setHashedEmail',email:['5f1d7a']});", "criteo.onetag", True
    ),
    ScriptCase("criteo-customer-id-empty", "criteo_q.push({event:'setCustomerId',id:''});", "criteo.onetag"),
    # -- Adjust ----------------------------------------------------------------------------------------------
    ScriptCase("adjust-init", "Adjust.initSdk({appToken: 'demo00000001', environment: 'sandbox'});", "adjust.web_sdk"),
    ScriptCase("adjust-track-event", "Adjust.trackEvent({ eventToken: 'abc123' });", "adjust.web_sdk"),
    ScriptCase(
        "adjust-track-event-window",
        "window.Adjust.trackEvent({eventToken: 'abc123', revenue: 1, currency: 'JPY'});",
        "adjust.web_sdk",
    ),
    ScriptCase("adjust-optional-call", "Adjust?.trackEvent?.({eventToken: 'abc123'});", "adjust.web_sdk"),
    # -- mentions that call nothing --------------------------------------------------------------------------
    ScriptCase("fbq-in-string", "document.title = 'fbq(\"track\")';", None),
    ScriptCase("fbq-in-line-comment", "// fbq('track', 'Lead')\nconsole.log(1);", None),
    ScriptCase("fbq-in-block-comment", "/* Adjust.trackEvent({}) */ console.log(1);", None),
    ScriptCase("fbq-in-regex", "var r = /fbq\\(/g; r.test(document.body.innerHTML);", None),
    ScriptCase("fbq-in-template-text", "var s = `fbq('track')`;", None),
    ScriptCase("adjust-word-in-name", "function adjustLayout() { return 1; } adjustLayout();", None),
]
