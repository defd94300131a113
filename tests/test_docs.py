"""The README and docs/ hold together: every relative link names a file that exists, and every #anchor a
heading of that file (GitHub's anchor rules), so moving a section cannot leave a reader at a dead link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "deploy" / "README.md",
    ROOT / "bench" / "README.md",
]
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", path.read_text(encoding="utf-8"))
    out = set()
    for heading in re.findall(r"(?m)^#+ (.+)$", text):
        out.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(doc: Path) -> None:
    text = re.sub(r"(?ms)^```.*?^```", "", doc.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans: `fbq(…)` is not a link
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(target)
    assert not broken, f"{doc.name}: dead links {broken}"


def test_readme_is_short_enough_to_read_in_ten_minutes() -> None:
    """About 2,000 words of prose (tables and code are looked up, not read): the quick start, the
    walk-through, what the visitor sees, how consent follows the site; the rest lives in docs/."""
    text = re.sub(r"(?ms)^```.*?^```", "", (ROOT / "README.md").read_text(encoding="utf-8"))
    prose = " ".join(line for line in text.splitlines() if not line.startswith("|"))
    assert len(prose.split()) < 2000, len(prose.split())
