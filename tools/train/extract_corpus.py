#!/usr/bin/env python3
"""Extract the English training corpus of the demo model from Debian documentation packages.

Runs on a Debian 12 (bookworm) machine with apt configured; installs nothing: each package is fetched
with `apt-get download` and unpacked with `dpkg-deb -x` into a work folder. Every document becomes plain
text (HTML through html.parser, man pages through man(1) and col(1), text files as they are), documents
and long paragraphs are deduplicated, each source is capped at a byte budget, and the result is written as

    corpus.jsonl.xz   one JSON object a line: {"source": package, "path": file inside it, "text": ...}
    pairs.jsonl       short (name, summary) pairs from man page NAME sections and Python module titles
    sources.json      package, version, licence of the "Files: *" stanza, documents and bytes kept

Usage: python3 tools/train/extract_corpus.py --work /tmp/coil-corpus --out /tmp/coil-corpus/out
"""
import argparse
import concurrent.futures
import gzip
import hashlib
import html
import html.parser
import json
import lzma
import os
import re
import subprocess
import sys
from pathlib import Path

# package -> byte budget of plain text kept. Budgets keep the corpus near 70 MB,
# with the kernel documentation (the largest source by far) sampled rather than taken whole.
SOURCES = {
    "python3.11-doc": 20_000_000,
    "linux-doc-6.1": 34_000_000,
    "perl-doc": 12_000_000,
    "manpages": 3_000_000,
    "manpages-dev": 6_000_000,
    "debian-reference-en": 2_000_000,
    "debian-handbook": 3_000_000,
    "developers-reference": 1_000_000,
    "maint-guide": 500_000,
    "debmake-doc": 1_000_000,
    "git-doc": 4_000_000,
}

SKIP_CLASSES = {
    "headerlink", "sphinxsidebar", "sphinxsidebarwrapper", "related", "footer", "rst-footer-buttons",
    "navheader", "navfooter", "breadcrumbs", "wy-breadcrumbs", "toc", "docnav", "wy-nav-side", "prev-next",
    "copyright", "legalnotice", "highlight-none-notranslate-skip",
}
SKIP_TAGS = {"script", "style", "head", "nav", "noscript", "svg", "button", "form"}
BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "tr", "dt", "dd", "dl",
    "table", "section", "blockquote", "hr", "article", "main", "caption", "figure", "figcaption",
}
VOID_TAGS = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"}


class HtmlToText(html.parser.HTMLParser):
    """Keeps the readable text of an HTML page: the element with role="main" when the page has one,
    without navigation, side bars, permalink markers, scripts and styles; block elements end lines and
    <pre> keeps its layout."""

    def __init__(self, main_only):
        super().__init__(convert_charrefs=True)
        self.main_only = main_only
        self.stack = []  # (tag, skipping, in_main, in_pre)
        self.skipping = False
        self.in_main = not main_only
        self.in_pre = False
        self.parts = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in VOID_TAGS:
            if tag in ("br", "hr") and self.in_main and not self.skipping:
                self.parts.append("\n")
            return
        self.stack.append((tag, self.skipping, self.in_main, self.in_pre))
        classes = set((attributes.get("class") or "").split())
        if tag in SKIP_TAGS or classes & SKIP_CLASSES or attributes.get("role") == "navigation":
            self.skipping = True
        if attributes.get("role") == "main":
            self.in_main = True
        if tag == "pre":
            self.in_pre = True
        if tag in BLOCK_TAGS and self.in_main and not self.skipping:
            self.parts.append("\n\n" if tag in ("p", "h1", "h2", "h3", "h4", "pre", "table", "dl") else "\n")
            if tag == "li":
                self.parts.append("- ")

    def handle_endtag(self, tag):
        if tag in VOID_TAGS:
            return
        # pop up to and including the matching tag; tolerate unclosed inner elements
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                _, self.skipping, self.in_main, self.in_pre = self.stack[depth]
                del self.stack[depth:]
                break
        else:
            return
        if tag in BLOCK_TAGS and self.in_main and not self.skipping:
            self.parts.append("\n\n" if tag in ("p", "h1", "h2", "h3", "h4", "pre", "table", "dl") else "\n")

    def handle_data(self, data):
        if self.skipping or not self.in_main:
            return
        if self.in_pre:
            self.parts.append(data)
        else:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self):
        return "".join(self.parts)


def html_to_text(raw):
    main_only = 'role="main"' in raw
    parser = HtmlToText(main_only)
    parser.feed(raw)
    parser.close()
    return parser.text()


def tidy(text):
    text = text.replace("\u00b6", "").replace("\u2010", "-").replace("\u00ad", "").replace("\r", "")
    text = text.replace("\u00a0", " ")
    text = re.sub(r"^- *\n+[ \t]*", "- ", text, flags=re.M)  # a list item whose text sits in a <p>
    text = re.sub(r"\n (?=\S)", "\n", text)  # the space left by a collapsed line break in a block
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def man_to_text(path):
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    formatted = subprocess.run(["man", "--no-hyphenation", "--no-justification", "-l", str(path)],
                               capture_output=True, env=env, cwd=path.parent.parent, timeout=60)
    plain = subprocess.run(["col", "-bx"], input=formatted.stdout, capture_output=True, env=env, timeout=60)
    return plain.stdout.decode("utf-8", "replace")


def read_maybe_gz(path):
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    return raw.decode("utf-8", "replace")


def documents_of(package, root):
    """Yields (relative path, plain text) for the English documents of one unpacked package."""
    def walk(sub, pattern):
        base = root / sub
        if not base.is_dir():
            return []
        # links repeat the page they point to under another name
        return sorted(p for p in base.rglob(pattern) if p.is_file() and not p.is_symlink())

    def from_html(paths):
        for p in paths:
            if any(part.startswith("_") for part in p.parts) or p.name in ("genindex.html", "search.html",
                                                                           "py-modindex.html"):
                continue
            yield p, html_to_text(p.read_text("utf-8", "replace"))

    def from_man(paths):
        pages = []
        for p in paths:
            head = gzip.open(p).read(200) if p.suffix == ".gz" else p.read_bytes()[:200]
            if not head.startswith(b".so "):  # else a link to another page
                pages.append(p)
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            yield from zip(pages, pool.map(man_to_text, pages))

    if package == "python3.11-doc":
        items = from_html(walk("usr/share/doc/python3.11/html", "*.html"))
    elif package == "linux-doc-6.1":
        items = from_html(walk("usr/share/doc/linux-doc-6.1/html", "*.html"))
    elif package in ("perl-doc", "manpages", "manpages-dev"):
        items = from_man(walk("usr/share/man", "*.gz"))
    elif package == "debian-reference-en":
        items = from_html(walk("usr/share/debian-reference", "*.en.html"))
    elif package == "debian-handbook":
        items = from_html(walk("usr/share/doc/debian-handbook/html/en-US", "*.html"))
    elif package == "developers-reference":
        items = from_html(p for p in walk("usr/share/doc/developers-reference/docs", "*.html")
                          if p.name != "index.html")
    elif package == "maint-guide":
        items = from_html(walk("usr/share/doc/maint-guide/html", "*.en.html"))
    elif package == "debmake-doc":
        items = ((p, read_maybe_gz(p)) for p in walk("usr/share/doc/debmake-doc", "debmake-doc.en.txt.gz"))
    elif package == "git-doc":
        items = from_html(walk("usr/share/doc/git-doc", "*.html"))
    else:
        raise SystemExit(f"no file selector for package {package}")
    for path, text in items:
        yield str(path.relative_to(root)), tidy(text)


def licence_of(copyright_text):
    """The licence of the "Files: *" stanza of a machine-readable copyright file, else a note."""
    for stanza in re.split(r"\n\s*\n", copyright_text):
        if re.search(r"^Files:\s*\*\s*$", stanza, re.M):
            match = re.search(r"^License:\s*(.+)$", stanza, re.M)
            if match:
                return match.group(1).strip()
    if "PYTHON SOFTWARE FOUNDATION LICENSE" in copyright_text.upper():
        return "PSF-2.0 (Python Software Foundation License Version 2)"
    return "see copyright file (not machine-readable)"


def copyright_of(package, root, roots):
    """The package's copyright file; where its doc folder links to a sibling built from the same source
    (manpages-dev -> manpages), the sibling's file."""
    doc = root / "usr/share/doc" / package
    if doc.is_symlink():
        sibling = os.readlink(doc).rstrip("/").split("/")[-1]
        candidate = roots / sibling / "usr/share/doc" / sibling / "copyright"
        return candidate if candidate.is_file() else None
    candidate = doc / "copyright"
    return candidate if candidate.is_file() else next(iter(sorted(root.glob("usr/share/doc/*/copyright"))), None)


def summary_pairs(package, path, text):
    """(name, summary) pairs: NAME lines of man pages, 'module — title' first lines of the Python library."""
    pairs = []
    if package in ("perl-doc", "manpages", "manpages-dev"):
        match = re.search(r"^NAME\n((?:[ \t]+\S.*\n)+)", text, re.M)
        if match:
            line = " ".join(match.group(1).split())
            if " - " in line:
                name, summary = line.split(" - ", 1)
                if 0 < len(name) <= 60 and 0 < len(summary) <= 160:
                    pairs.append({"kind": "manpage", "name": name.strip(), "summary": summary.strip()})
    elif package == "python3.11-doc" and "/library/" in path:
        first = text.split("\n", 1)[0]
        match = re.match(r"^(\S+) \u2014 (.+)$", first)
        if match and len(match.group(2)) <= 120:
            pairs.append({"kind": "python-module", "name": match.group(1), "summary": match.group(2).strip()})
    return pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for the .deb files and unpacked trees")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--min-chars", type=int, default=200, help="drop documents shorter than this")
    args = parser.parse_args()
    debs = args.work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    missing = [p for p in SOURCES if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)

    seen_documents, seen_paragraphs = set(), set()
    sources, pairs, total = [], [], 0
    with lzma.open(args.out / "corpus.jsonl.xz", "wt", encoding="utf-8", preset=9) as corpus:
        for package, budget in SOURCES.items():
            deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
            version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                                     text=True, check=True).stdout.strip()
            root = args.work / "root" / package
            if not root.is_dir():
                root.mkdir(parents=True)
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            copyright_file = copyright_of(package, root, args.work / "root")
            licence = licence_of(copyright_file.read_text("utf-8", "replace")) if copyright_file else \
                "no copyright file in this package; see the source package's"
            # a stable order that does not follow the directory layout, so a budget samples every part
            documents = sorted(documents_of(package, root), key=lambda d: hashlib.sha1(d[0].encode()).hexdigest())
            kept, kept_bytes = 0, 0
            for path, text in documents:
                digest = hashlib.sha1(text.encode()).digest()
                if digest in seen_documents:
                    continue
                seen_documents.add(digest)
                paragraphs = []
                for paragraph in text.split("\n\n"):
                    if len(paragraph) >= 40:
                        key = hashlib.sha1(paragraph.encode()).digest()
                        if key in seen_paragraphs:
                            continue
                        seen_paragraphs.add(key)
                    paragraphs.append(paragraph)
                text = "\n\n".join(paragraphs).strip() + "\n"
                if len(text) < args.min_chars:
                    continue
                size = len(text.encode())
                if kept_bytes + size > budget:
                    continue
                corpus.write(json.dumps({"source": package, "path": path, "text": text}, ensure_ascii=False) + "\n")
                pairs.extend(summary_pairs(package, path, text))
                kept, kept_bytes = kept + 1, kept_bytes + size
            total += kept_bytes
            sources.append({"package": package, "version": version, "license": licence,
                            "documents": kept, "bytes": kept_bytes})
            print(f"{package:22s} {version:24s} {kept:6d} documents {kept_bytes / 1e6:7.2f} MB  {licence}",
                  flush=True)
    with open(args.out / "pairs.jsonl", "w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps(pair, ensure_ascii=False) + "\n")
    (args.out / "sources.json").write_text(json.dumps(sources, indent=2) + "\n")
    print(f"total {total / 1e6:.2f} MB of text, {len(pairs)} summary pairs -> {args.out}")


if __name__ == "__main__":
    sys.exit(main())
