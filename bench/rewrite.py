"""Rewrite throughput: gate beside lol-html, selectolax and BeautifulSoup, same pages, same run, one core.

    pip install -r bench/requirements.txt      # only the benchmark needs these
    python bench/rewrite.py [--repeat N] [--json out.json]

Every row turns the page's bytes into the bytes a proxy would send, in the page's own charset; whatever
decoding and encoding a library needs is inside its timing. Each library does the naive job gate's
refusal does properly: drop script / img / iframe / link / noscript elements whose src, href or text
mentions a vendor host from vendors.toml. Repeats are interleaved across rows (row A, row B, …, then
again) so that noise on a shared machine falls on every row alike. MB = 10^6 bytes.

Also measured, each in a fresh child process: gate's memory on a 20 MB page read from a file and fed in
64 KB chunks (tracemalloc's peak; max RSS from getrusage; the peak RSS of the rewrite alone from VmHWM),
and the time to the first output byte on the 1 MB page fed in 16 KB chunks (gate and lol-html).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.metadata
import itertools
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gate import decisions, demo, urls, vendors
from gate.rewrite import PagePlan, PageRewriter

SIZES = ("20k", "100k", "1m", "list")  # "list": 1 MB of job cards, each with its own photo URL
CHARSETS = {"utf-8": ("utf-8", "utf-8"), "sjis": ("cp932", "Shift_JIS")}  # name: (Python codec, label)
PAGES = [(size, cs) for size in SIZES for cs in CHARSETS]
WARMUP = 2
BASE = urls.parse("https://demo.example/jobs")
REGISTRY = vendors.load()
ALL_TAGS = frozenset(REGISTRY.tags)
HOSTS = sorted(
    {h.split("/")[0] for t in REGISTRY.tags.values() for h in t.hosts}
    | {d.split("/")[0] for v in REGISTRY.vendors.values() for d in v.domains},
    key=len,
    reverse=True,
)
VENDOR = re.compile("|".join(map(re.escape, HOSTS)))  # on lower-cased text: re.IGNORECASE is ~10x slower
VENDOR_BYTES = re.compile(b"|".join(re.escape(h.encode()) for h in HOSTS), re.IGNORECASE)
LT = re.compile(rb"<")
CANDIDATES = ["script", "img", "iframe", "link", "noscript"]

Job = Callable[[bytes, str], bytes]  # (page, codec) -> the bytes sent

LIST_TARGET = 1024 * 1024
_AREAS = ("東京都新宿区", "大阪府堺市", "福岡県北九州市", "埼玉県川口市", "神奈川県横浜市", "愛知県名古屋市")
_KINDS = (("歯科衛生士", "正社員"), ("歯科医師", "常勤"), ("歯科助手", "パート"), ("歯科技工士", "非常勤"))


def _list_photo(job: int, area: str) -> str:
    return (
        f'<img src="/photos/{job}.jpg" srcset="/photos/{job}.jpg 1x, /photos/{job}@2x.jpg 2x" '
        f'alt="{area}の歯科医院の写真" width="240" height="160" loading="lazy" decoding="async">'
    )


def _list_card(n: int) -> str:
    """One card of a recruitment search-results page: its own photo (src, srcset), links, Japanese text."""
    job = 100000 + n * 7919 % 900000  # distinct ids, not in order
    kind, employment = _KINDS[n % len(_KINDS)]
    area = _AREAS[(n * 5) % len(_AREAS)]
    return f"""<li class="result" data-job-id="j{job}">
  <a class="photo" href="/jobs/{job}">{_list_photo(job, area)}</a>
  <div class="body"><a href="/jobs/{job}"><span class="badge">{kind}</span><span class="badge">{employment}</span>
  <h2>{area}・駅徒歩{n % 15 + 1}分 {kind}募集(求人番号 {job})</h2></a>
  <p class="lead">週休2日制、残業ほぼなし。ブランクのある方も歓迎します。経験{n % 10}年以上の方は優遇。</p>
  <dl><dt>給与</dt><dd>月給 {22 + n % 9}万円〜{30 + n % 11}万円</dd><dt>勤務地</dt><dd>{area}</dd></dl>
  <p class="actions"><a class="button" href="/apply?job={job}">応募する</a> <a href="/jobs/{job}#map">地図</a></p></div>
</li>"""


def list_page(charset: str) -> bytes:
    """About 1 MB of search results (~1,200 cards), each with a distinct first-party photo URL, inside the
    demo site's layout (its vendor tags included): deterministic."""
    codec = "shift_jis" if charset == "sjis" else "utf-8"

    def page(cards: list[str]) -> bytes:
        main = f'<h1>歯科の求人 検索結果</h1>\n<ul class="results">\n{chr(10).join(cards)}\n</ul>'
        text = demo.render("求人検索", main, criteo_event=demo._list_event(), charset=demo.BENCH_CHARSETS[charset])
        return text.encode(codec, errors="xmlcharrefreplace")

    cards: list[str] = []
    total = len(page(cards))
    while True:
        card = _list_card(len(cards))
        grows = len(card.encode(codec, errors="xmlcharrefreplace")) + 1
        if total + grows / 2 > LIST_TARGET:
            return page(cards)
        cards.append(card)
        total += grows


def bench_page(size: str, charset: str) -> bytes:
    return list_page(charset) if size == "list" else demo.bench_page(size, charset)


def mentions_vendor(text: str) -> bool:
    """The naive test every library row uses: a vendor host appears anywhere in the text."""
    return VENDOR.search(text.lower()) is not None


@dataclass
class Row:
    name: str
    job: Job | None
    note: str = ""
    skipped: str = ""  # why the row was not measured
    times: dict[tuple[str, str], list[float]] = field(default_factory=dict)


# -- the jobs ------------------------------------------------------------------------------------


def copy_page(page: bytes, codec: str) -> bytes:
    return bytearray(page)  # type: ignore[return-value]  # bytes(page) would return page itself: no copy


def scan_page(page: bytes, codec: str) -> bytes:
    for _ in LT.finditer(page):
        pass
    return page


def codec_round_trip(page: bytes, codec: str) -> bytes:
    return page.decode(codec).encode(codec, "xmlcharrefreplace")


def gate_job(allowed: frozenset[str], chunk: int = 0, cold: bool = False, new_url: bool = False) -> Job:
    # The registry remembers decisions (bounded caches, see gate/rewrite.py): every row but the cold
    # one runs as a worker does after its first page. The cold row has a registry of its own, whose
    # remembered decisions (gate.decisions.forget) are emptied before every run, as on the first page
    # a worker sees. The new-URL row reads the page under a URL it has not seen before on every run
    # (/jobs/1, /jobs/2, ...), as a site's next job page: what was decided against the page's URL is
    # decided again.
    registry = vendors.load() if cold else REGISTRY
    plan = PagePlan(registry, allowed, BASE)
    runs = itertools.count(1)

    def run(page: bytes, codec: str) -> bytes:
        if cold:
            decisions.forget(registry)  # as on the first page a worker sees
        page_plan = (
            PagePlan(registry, allowed, urls.parse(f"https://demo.example/jobs/{next(runs)}")) if new_url else plan
        )
        rw = PageRewriter(page_plan, codec)
        if not chunk:
            return rw.feed(page) + rw.close()
        out = [rw.feed(page[i : i + chunk]) for i in range(0, len(page), chunk)]
        out.append(rw.close())
        return b"".join(out)

    return run


def bs4_job(parser: str) -> Job:
    from bs4 import BeautifulSoup

    def run(page: bytes, codec: str) -> bytes:
        soup = BeautifulSoup(page.decode(codec), parser)
        for el in reversed(soup.find_all(CANDIDATES)):  # children before parents: none is touched twice
            text = (el.get("src") or "") + " " + (el.get("href") or "")
            if el.name in ("script", "noscript"):
                text += el.decode_contents()
            if mentions_vendor(text):
                el.decompose()
        label = CHARSETS["sjis"][1] if codec == "cp932" else codec  # keep <meta charset> as written
        return soup.decode(eventual_encoding=label).encode(codec, "xmlcharrefreplace")

    return run


def selectolax_job() -> Job:
    from selectolax.lexbor import LexborHTMLParser

    selector = ", ".join(CANDIDATES)

    def run(page: bytes, codec: str) -> bytes:
        tree = LexborHTMLParser(page.decode(codec))
        for node in reversed(tree.css(selector)):  # children first: a freed node is never read
            attrs = node.attributes
            text = (attrs.get("src") or "") + " " + (attrs.get("href") or "")
            if node.tag == "script":
                text += node.text()
            elif node.tag == "noscript":
                text += node.inner_html or ""
            if mentions_vendor(text):
                node.decompose()
        return (tree.html or "").encode(codec, "xmlcharrefreplace")

    return run


LOLHTML_LIMITS = (
    "python-lolhtml exposes no `encoding` setting (lol-html reads UTF-8 by default): Shift_JIS pages are "
    "transcoded to UTF-8 and back, both inside the timing. It has no end-tag handlers either, so an inline "
    "script or noscript can only be emptied once its text is read, not removed: an empty "
    "<script></script> / <noscript></noscript> stays. lol-html reads noscript as raw text (scripting on), "
    "so vendor tags inside noscript are found by the text handler, not by the element selector."
)


class _VendorElements:
    """lol-html element handler: removes an element whose src or href names a vendor host."""

    def element(self, el) -> None:
        for name in ("src", "href"):
            value = el.get_attribute(name)
            if value and mentions_vendor(value):
                el.remove()
                return


class _VendorText:
    """Holds an element's text back (lol-html streams it in chunks) until it can be judged whole."""

    def __init__(self, raw_html: object) -> None:
        self.parts: list[str] = []
        self.raw_html = raw_html  # lolhtml.ContentType.HTML: put back verbatim, not escaped

    def text(self, chunk) -> None:
        self.parts.append(chunk.text)
        if not chunk.last_in_text_node:
            chunk.remove()
            return
        whole, self.parts = "".join(self.parts), []
        if mentions_vendor(whole):
            chunk.remove()
        else:
            chunk.replace(whole, self.raw_html)


def lolhtml_rewriter(sink: Callable[[bytes], object]):
    """lol-html set up for the naive job: vendor elements by attribute, inline scripts and noscript by text."""
    import lolhtml

    rw = lolhtml.HTMLRewriter(sink)
    rw.on("script[src], img[src], iframe[src], link[href]", _VendorElements())
    rw.on("script:not([src])", _VendorText(lolhtml.ContentType.HTML))
    rw.on("noscript", _VendorText(lolhtml.ContentType.HTML))
    return rw


def lolhtml_job(page: bytes, codec: str) -> bytes:
    utf8 = page if codec == "utf-8" else page.decode(codec).encode("utf-8")
    out = bytearray()
    rw = lolhtml_rewriter(out.extend)
    rw.write(utf8)
    rw.end()
    return bytes(out) if codec == "utf-8" else out.decode("utf-8").encode(codec, "xmlcharrefreplace")


def lolhtml_identity(page: bytes) -> bytes:
    """lol-html with a no-op element handler on every element: does it pass a page through untouched?"""
    import lolhtml

    class Nothing:
        def element(self, el: lolhtml.Element) -> None:
            pass

    out = bytearray()
    rw = lolhtml.HTMLRewriter(out.extend)
    rw.on("*", Nothing())
    rw.write(page)
    rw.end()
    return bytes(out)


def optional(name: str, make: Callable[[], Job], probe: str, note: str = "") -> Row:
    """A row for a third-party library; not measured (and why) when it cannot be imported."""
    try:
        __import__(probe)
        return Row(name, make(), note)
    except (ImportError, OSError) as exc:  # missing, or its compiled extension does not load
        return Row(name, None, skipped=f"{type(exc).__name__}: {exc}")


def build_rows() -> list[Row]:
    return [
        Row("floor: bytearray(page) copy", copy_page),
        Row('floor: re.finditer(rb"<") scan', scan_page),
        Row("floor: decode+encode in charset", codec_round_trip),
        Row("gate, refused everything", gate_job(frozenset())),
        Row("gate, refused, cold caches", gate_job(frozenset(), cold=True)),
        Row("gate, refused, new page URL", gate_job(frozenset(), new_url=True)),
        Row("gate, refused, 16 KB chunks", gate_job(frozenset(), chunk=16 * 1024)),
        Row("gate, accepted everything", gate_job(ALL_TAGS)),
        optional("lol-html (python-lolhtml)", lambda: lolhtml_job, "lolhtml", LOLHTML_LIMITS),
        optional("selectolax (Lexbor)", selectolax_job, "selectolax.lexbor"),
        optional('bs4 + "html.parser"', lambda: bs4_job("html.parser"), "bs4"),
        optional("bs4 + html5lib", lambda: bs4_job("html5lib"), "html5lib"),
    ]


# -- measuring -------------------------------------------------------------------------------------


def pin_one_core() -> int | None:
    """Run on one core (children inherit it): the core numbers are per core, as the targets are."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]  # nearest rank


def check_pages(pages: dict[tuple[str, str], bytes]) -> None:
    """The claims every number rests on: accept-all is the identity, chunking changes nothing.
    Raised, not asserted, so that ``python -O`` checks them too."""
    for (size, cs), page in pages.items():
        codec = CHARSETS[cs][0]
        refused = gate_job(frozenset())(page, codec)
        if gate_job(ALL_TAGS)(page, codec) != page:
            raise AssertionError(f"gate changed the {size} {cs} page with every tag accepted")
        if gate_job(frozenset(), chunk=16 * 1024)(page, codec) != refused:
            raise AssertionError(f"feeding the {size} {cs} page in 16 KB chunks changed gate's output")
        if len(refused) >= len(page):
            raise AssertionError(f"gate stripped nothing from the {size} {cs} page")


def measure(rows: list[Row], pages: dict[tuple[str, str], bytes], repeat: int) -> None:
    live = [r for r in rows if r.job is not None]
    for key, page in pages.items():
        codec = CHARSETS[key[1]][0]
        print(f"  {key[0]:>4} {key[1]:<5} {len(page):>9,} bytes …", end="", flush=True)
        started = time.perf_counter()
        for row in live:
            row.times[key] = []
            for _ in range(WARMUP):
                row.job(page, codec)  # type: ignore[misc]
        for _ in range(repeat):
            for row in live:
                gc.collect()
                t0 = time.perf_counter()
                row.job(page, codec)  # type: ignore[misc]
                row.times[key].append(time.perf_counter() - t0)
        print(f" {time.perf_counter() - started:.1f} s")


def audit(rows: list[Row], pages: dict[tuple[str, str], bytes]) -> list[tuple[str, list[str]]]:
    """What each row left of the vendors on the 100 KB pages (untimed): output size, host mentions."""
    lines = []
    for row in rows:
        if row.job is None or row.name.startswith("floor"):
            continue
        cells = []
        for cs in CHARSETS:
            page = pages[("100k", cs)]
            out = bytes(row.job(page, CHARSETS[cs][0]))
            cells.append(f"{len(out):,} B, {len(VENDOR_BYTES.findall(out))} mentions")
        lines.append((row.name, cells))
    inputs = [pages[("100k", cs)] for cs in CHARSETS]
    lines.append(("(the input page)", [f"{len(p):,} B, {len(VENDOR_BYTES.findall(p))} mentions" for p in inputs]))
    return lines


def identity_checks(pages: dict[tuple[str, str], bytes]) -> list[str]:
    """Does parse + serialize with nothing removed give the input back? (the 100 KB UTF-8 page)"""
    page, found = pages[("100k", "utf-8")], []
    trials: list[tuple[str, str, Callable[[], bytes]]] = [
        ("gate, accepted everything", "gate", lambda: gate_job(ALL_TAGS)(page, "utf-8")),
        ("lol-html, no-op handler on *", "lolhtml", lambda: lolhtml_identity(page)),
        (
            "selectolax parse + .html",
            "selectolax.lexbor",
            lambda: __import__("selectolax.lexbor").lexbor.LexborHTMLParser(page.decode()).html.encode(),
        ),
        (
            'bs4 "html.parser" parse + decode',
            "bs4",
            lambda: str(__import__("bs4").BeautifulSoup(page.decode(), "html.parser")).encode(),
        ),
        (
            "bs4 html5lib parse + decode",
            "html5lib",
            lambda: str(__import__("bs4").BeautifulSoup(page.decode(), "html5lib")).encode(),
        ),
    ]
    for label, probe, run in trials:
        try:
            __import__(probe)
        except (ImportError, OSError) as exc:
            found.append(f"{label}: not measured ({type(exc).__name__})")
            continue
        out = run()
        found.append(f"{label}: " + ("identical" if out == page else f"CHANGED ({len(out):,} B vs {len(page):,} B)"))
    return found


# -- memory and first byte: fresh child processes ---------------------------------------------------


def big_page(target: int = 20 * 1024 * 1024) -> bytes:
    """One HTML document whose body is the 1 MB page's body repeated to about ``target`` bytes."""
    page = demo.bench_page("1m")
    start, end = page.index(b"<body>") + len(b"<body>"), page.rindex(b"</body>")
    body = page[start:end]
    count = -(-(target - len(page) + len(body)) // len(body))
    return b"".join([page[:start]] + [body] * count + [page[end:]])


def proc_status_kb(field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, from /proc; -1 elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def reset_peak_rss() -> bool:
    """Make VmHWM start again from the current RSS (Linux 4.0+), so it shows the rewrite's peak alone."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child_memory(mode: str, path: str) -> dict:
    """Gate refusing everything on the page in ``path``, read and fed in 64 KB chunks as from upstream:
    neither the input nor the output is held, so what the process gains is the rewriter's."""
    gate_job(frozenset())(demo.bench_page("20k"), "utf-8")  # imports and caches, as in a warm worker
    size, chunk = os.path.getsize(path), 64 * 1024
    gc.collect()
    before_max, before_now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, proc_status_kb("VmRSS")
    peak_reset = mode == "hwm" and reset_peak_rss()  # not with getrusage: the reset lowers ru_maxrss too
    if mode == "tracemalloc":
        tracemalloc.start()
    rw, sent = PageRewriter(PagePlan(REGISTRY, frozenset(), BASE), "utf-8"), 0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        for _ in range(0, size, chunk):
            sent += len(rw.feed(f.read(chunk)))
    sent += len(rw.close())
    seconds = time.perf_counter() - t0
    result = {
        "page_bytes": size,
        "sent_bytes": sent,
        "seconds": seconds,
        "stripped": sorted(rw.outcome.stripped),
        "uncertain": rw.outcome.uncertain,
    }
    if mode == "tracemalloc":
        result["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        after_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result.update(
            maxrss_before_kb=before_max,
            maxrss_after_kb=after_max,
            rss_before_kb=before_now,
            hwm_after_kb=proc_status_kb("VmHWM") if peak_reset else -1,
            hwm_reset=peak_reset,
        )
    return result


def child_first_byte(repeat: int) -> dict:
    """Seconds from the first 16 KB chunk's arrival to the first non-empty output, for gate and lol-html."""
    page, chunk = demo.bench_page("1m"), 16 * 1024
    chunks = [page[i : i + chunk] for i in range(0, len(page), chunk)]
    plan = PagePlan(REGISTRY, frozenset(), BASE)

    def gate_once() -> tuple[float, int]:
        t0 = time.perf_counter()
        rw = PageRewriter(plan, "utf-8")
        for n, piece in enumerate(chunks, 1):
            if rw.feed(piece):
                return time.perf_counter() - t0, n
        rw.close()
        return time.perf_counter() - t0, len(chunks) + 1

    def lolhtml_once() -> tuple[float, int]:
        got: list[float] = []

        def sink(data: bytes) -> None:
            if data and not got:
                got.append(time.perf_counter())

        t0 = time.perf_counter()
        rw = lolhtml_rewriter(sink)
        for n, piece in enumerate(chunks, 1):
            rw.write(piece)
            if got:
                return got[0] - t0, n
        rw.end()
        return (got[0] if got else time.perf_counter()) - t0, len(chunks) + 1

    result = {}
    runners = [("gate", gate_once)]
    try:
        import lolhtml  # noqa: F401

        runners.append(("lol-html", lolhtml_once))
    except (ImportError, OSError) as exc:
        result["lol-html"] = {"skipped": f"{type(exc).__name__}: {exc}"}
    for name, once in runners:
        for _ in range(WARMUP):
            once()
        samples = [once() for _ in range(repeat)]
        result[name] = {
            "median_s": statistics.median(s for s, _ in samples),
            "p90_s": p90([s for s, _ in samples]),
            "chunks_fed": samples[0][1],
        }
    return result


def in_child(*args: str) -> dict:
    """Run ``--child args`` in a fresh process, forked by a small shell: on Linux, ru_maxrss carries the
    high-water mark of whatever process forked the exec'd one, and this benchmark's own is large."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    proc = subprocess.run(
        ["/bin/sh", "-c", '"$@"; exit $?', "sh", *command], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout)


# -- printing ----------------------------------------------------------------------------------------


def table(title: str, rows: list[tuple[str, list[str]]], header: list[str]) -> str:
    width = max(len(name) for name, _ in rows + [("", [])])
    cols = [max(len(h), *(len(c[i]) for _, c in rows)) for i, h in enumerate(header)]
    lines = [title, " " * width + "  " + "  ".join(h.rjust(w) for h, w in zip(header, cols, strict=True))]
    lines += [
        name.ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, cols, strict=True))
        for name, cells in rows
    ]
    return "\n".join(lines)


def report(rows: list[Row], pages: dict[tuple[str, str], bytes]) -> str:
    header = [f"{size} {cs}" for size, cs in PAGES]
    mbs, ms = [], []
    for row in rows:
        if row.job is None:
            mbs.append((row.name, ["not run"] * len(PAGES)))
            continue
        mbs.append((row.name, [f"{len(pages[k]) / statistics.median(row.times[k]) / 1e6:,.1f}" for k in PAGES]))
        ms.append(
            (row.name, [f"{statistics.median(row.times[k]) * 1e3:.3f} / {p90(row.times[k]) * 1e3:.3f}" for k in PAGES])
        )
    out = [
        table(
            "Throughput, MB/s (input bytes / median seconds; Shift_JIS: decode/encode of str libraries "
            "and lol-html's transcoding included)",
            mbs,
            header,
        ),
        "",
        table("Time per page, ms: median / p90", ms, header),
    ]
    by_name = {r.name: r for r in rows}
    lol = by_name.get("lol-html (python-lolhtml)")
    if lol is not None and lol.job is not None:
        ratios = []
        for name in (
            "gate, refused everything",
            "gate, refused, cold caches",
            "gate, refused, new page URL",
            "gate, refused, 16 KB chunks",
            "gate, accepted everything",
        ):
            gate = by_name.get(name)
            if gate is None or gate.job is None:
                continue
            ratios.append(
                (name, [f"{statistics.median(lol.times[k]) / statistics.median(gate.times[k]):.2f}" for k in PAGES])
            )
        out += ["", table("gate MB/s ÷ lol-html MB/s (above 1: gate is faster)", ratios, header)]
    return "\n".join(out)


def environment(repeat: int, core: int | None) -> dict:
    versions = {}
    for dist in ("python-lolhtml", "selectolax", "beautifulsoup4", "html5lib"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "pinned_core": core,
        "repeat": repeat,
        "warmup": WARMUP,
        "loadavg_start": os.getloadavg(),
        "versions": versions,
    }


def print_first_byte(first: dict) -> None:
    print(
        "Time to first byte, 1 MB page fed in 16 KB chunks, refused everything: from the first chunk's arrival "
        "(the upstream's first byte) to the first non-empty output, median / p90:"
    )
    for name, res in first.items():
        if "median_s" in res:
            print(
                f"  {name}: {res['median_s'] * 1e3:.3f} ms / {res['p90_s'] * 1e3:.3f} ms "
                f"(first output after chunk {res['chunks_fed']})"
            )
        else:
            print(f"  {name}: not measured: {res.get('skipped') or res.get('error')}")


def print_memory(memory: dict) -> None:
    print(
        "Memory, gate refusing everything on a 20 MB page read from a file and fed in 64 KB chunks "
        "(a fresh process each; neither input nor output held):"
    )
    if any("error" in m for m in memory.values()):
        print("  failed: " + "; ".join(f"{k}: {m['error']}" for k, m in memory.items() if "error" in m))
        return
    rss, hwm, traced, mib = memory["rss"], memory["hwm"], memory["tracemalloc"], 1024
    print(
        f"  page {rss['page_bytes']:,} B -> sent {rss['sent_bytes']:,} B in {rss['seconds']:.2f} s "
        f"({rss['page_bytes'] / rss['seconds'] / 1e6:.1f} MB/s), stripped {len(rss['stripped'])} tags, "
        f"uncertain {rss['uncertain']}"
    )
    print(f"  tracemalloc, peak of traced memory during the rewrite: {traced['tracemalloc_peak_bytes'] / 1e6:.2f} MB")
    before, after = rss["maxrss_before_kb"] / mib, rss["maxrss_after_kb"] / mib
    print(
        f"  max RSS (getrusage): {before:.1f} MiB before the rewrite -> {after:.1f} MiB after, "
        f"delta {after - before:+.1f} MiB (the whole worker: interpreter, gate and its registry)"
    )
    if hwm["hwm_reset"]:
        peak, start = hwm["hwm_after_kb"] / mib, hwm["rss_before_kb"] / mib
        print(
            f"  peak RSS during the rewrite alone (VmHWM reset just before it): {peak:.1f} MiB, "
            f"{peak - start:+.1f} MiB over the {start:.1f} MiB resident when it began"
        )
    else:
        print("  peak RSS during the rewrite alone: not measured (/proc/self/clear_refs not writable)")


def as_json(env: dict, rows: list[Row], pages: dict[tuple[str, str], bytes], extra: dict) -> dict:
    def cell(row: Row, key: tuple[str, str]) -> dict:
        median = statistics.median(row.times[key])
        return {
            "samples_s": row.times[key],
            "median_s": median,
            "p90_s": p90(row.times[key]),
            "mb_s": len(pages[key]) / median / 1e6,
        }

    return {
        "environment": env,
        "pages": {f"{s} {c}": len(p) for (s, c), p in pages.items()},
        "rows": {
            r.name: {
                "skipped": r.skipped,
                "note": r.note,
                "pages": {f"{k[0]} {k[1]}": cell(r, k) for k in PAGES} if r.job else {},
            }
            for r in rows
        },
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=21, help="timed runs per row and page (default 21)")
    ap.add_argument("--json", type=Path, help="also write every sample and figure to this file")
    ap.add_argument("--pages", nargs="+", choices=SIZES, help="only these page sizes (default: all)")
    ap.add_argument("--rows", nargs="+", help="only rows whose name contains one of these words (floors kept)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, arg = args.child
        print(json.dumps(child_first_byte(int(arg)) if kind == "first-byte" else child_memory(kind, arg)))
        return 0
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    if args.pages:
        PAGES[:] = [(size, cs) for size, cs in PAGES if size in args.pages]
    core = pin_one_core()
    env = environment(args.repeat, core)
    print(f"gate rewrite benchmark · {env['date']} · Python {env['python']} · {env['platform']}")
    print(
        f"{env['cpus']} CPUs, pinned to core {core} · {args.repeat} timed runs after {WARMUP} warm-up · "
        f"load {env['loadavg_start'][0]:.2f} · " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    )
    pages = {(size, cs): bench_page(size, cs) for size, cs in PAGES}
    check_pages(pages)
    print(
        f"checked: gate's accept-all output equals the input byte for byte on all {len(pages)} pages; "
        "16 KB chunks give the same output as one chunk"
    )
    rows = build_rows()
    if args.rows:
        rows = [r for r in rows if r.name.startswith("floor") or any(w in r.name for w in args.rows)]
    for row in rows:
        if row.skipped:
            print(f"NOT MEASURED: {row.name}: {row.skipped}")
        elif row.note:
            print(f"note, {row.name}: {row.note}")
    print("measuring:")
    measure(rows, pages, args.repeat)
    print("\n" + report(rows, pages) + "\n")

    left: list = []
    identity: list[str] = []
    first: dict = {}
    memory: dict = {}
    if not (args.pages or args.rows):  # the side measurements need the 100 KB and 1 MB pages and every row
        left = audit(rows, pages)
        print(
            table(
                "What was left on the 100 KB pages: output bytes, vendor-host mentions anywhere in the output "
                "(untimed; gate also strips inline tags by signature, the others only by host)",
                left,
                list(CHARSETS),
            )
        )
        print("\nParse + serialize with nothing removed, 100 KB UTF-8 page:")
        identity = identity_checks(pages)
        print("\n".join("  " + line for line in identity) + "\n")

        first = in_child("first-byte", str(args.repeat))
        print_first_byte(first)
        with tempfile.NamedTemporaryFile(prefix="gate-bench-", suffix=".html") as f:
            f.write(big_page())
            f.flush()
            memory = {mode: in_child(mode, f.name) for mode in ("rss", "hwm", "tracemalloc")}
        print_memory(memory)
    env["loadavg_end"] = os.getloadavg()
    print(f"load average at the end: {env['loadavg_end'][0]:.2f}")

    if args.json:
        extra = {"left_on_100k": dict(left), "identity": identity, "first_byte": first, "memory": memory}
        args.json.write_text(json.dumps(as_json(env, rows, pages, extra), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
