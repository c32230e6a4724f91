"""The Wikipedia extract that gensim ships in its test data, as plain text (``--dataset wiki``).

``enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2`` (found through
``gensim.test.utils.datapath``, no download): 6 MB of MediaWiki XML, 206 pages. Its articles
(namespace 0, no redirects) are kept, their wiki markup stripped by ``strip_markup``, a small
set of rules applied in order:

1. comments ``<!-- -->``, references ``<ref>...</ref>`` and other paired tags whose content is
   not prose (``math``, ``gallery``, ``timeline``, ``code``, ``pre`` ...) go whole;
2. templates ``{{...}}`` and tables ``{|...|}`` go whole (nested ones too: innermost first);
3. links: ``[[File:...]]``, ``[[Image:...]]``, ``[[Category:...]]`` and interlanguage links
   go; ``[[target|label]]`` keeps the label, ``[[target]]`` the target; external
   ``[http://x label]`` keeps the label, a bare URL goes;
4. any other HTML tag goes (its text stays), entities are decoded (``&amp;``, ``&nbsp;``);
5. quotes ``'''bold'''`` and ``''italic''`` lose their marks; headings ``== x ==`` keep their
   words; list and indent marks (``*``, ``#``, ``:``, ``;``) at a line's start go, and so do
   the rows of a table left unclosed (lines starting with ``|``, ``!`` or a brace).

A heading, a list item and a paragraph each stay on their own line, with a blank line between
paragraphs so that ``skipgram.sentences`` reads each as a sentence.

Example:
    >>> strip_markup("'''Anarchism''' is a [[political philosophy|philosophy]]"
    ...              "{{sfn|x}}.<ref>a</ref>")
    'Anarchism is a philosophy.'
"""

from __future__ import annotations

import bz2
import html
import re
import xml.etree.ElementTree as ET
from functools import lru_cache

FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_PAIRED = re.compile(r"<(ref|math|gallery|timeline|code|pre|score|syntaxhighlight|source|"
                     r"imagemap|chem|hiero|nowiki)\b[^>]*?(?<!/)>.*?</\1\s*>", re.S | re.I)
_SELF_CLOSING = re.compile(r"<ref\b[^>]*/>", re.I)
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")  # innermost: no braces inside
_TABLE = re.compile(r"\{\|[^{}]*?\|\}", re.S)
_NAMESPACE = r"\s*(?:file|image|category|media|[a-z]{2,3}(?:-[a-z]+)?)\s*:"
_DROP_LINK = re.compile(r"\[\[" + _NAMESPACE + r"[^\[\]]*\]\]", re.I)
_LINK = re.compile(r"\[\[(?!" + _NAMESPACE + r")(?:[^\[\]|]*\|)?([^\[\]]*)\]\]", re.I)
_EXTERNAL = re.compile(r"\[(?:https?|ftp)://[^\s\]]*\s*([^\]]*)\]")
_URL = re.compile(r"(?:https?|ftp)://\S+")
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_QUOTES = re.compile(r"'{2,}")
_HEADING = re.compile(r"^=+\s*(.*?)\s*=+\s*$", re.M)
_LIST = re.compile(r"^[*#:;]+\s*", re.M)
_TABLE_ROW = ("|", "!", "{|", "{", "}")  # a row of a table the rules above left (unclosed)
_SPACES = re.compile(r"[ \t\u00a0]+")


def _until_stable(pattern: re.Pattern, text: str, repl: str = "") -> str:
    """Apply ``pattern`` until nothing changes: nested templates go from the inside out."""
    while True:
        text, n = pattern.subn(repl, text)
        if not n:
            return text


def strip_markup(wikitext: str) -> str:
    """The prose of one article's wikitext (the module doc's rules)."""
    t = _COMMENT.sub("", wikitext)
    t = _PAIRED.sub("", t)
    t = _SELF_CLOSING.sub("", t)
    t = _until_stable(_TEMPLATE, t)
    t = _until_stable(_TABLE, t)
    while True:  # a caption's own links are inside a file's: the innermost go first
        t, kept = _LINK.subn(r"\1", t)
        t, dropped = _DROP_LINK.subn("", t)
        if not kept + dropped:
            break
    t = _EXTERNAL.sub(r"\1", t)
    t = _URL.sub("", t)
    t = _TAG.sub("", t)
    t = html.unescape(html.unescape(t))  # the dump escapes once more: "&amp;nbsp;"
    t = _TAG.sub("", t)  # tags that were escaped in the dump
    t = _QUOTES.sub("", t)
    t = _HEADING.sub(r"\1", t)
    t = _LIST.sub("", t)
    lines = [_SPACES.sub(" ", line).strip() for line in t.splitlines()]
    return "\n\n".join(line for line in lines if line and not line.startswith(_TABLE_ROW))


def articles(xml_text: str) -> list[tuple[str, str]]:
    """(title, wikitext) of each article of a MediaWiki XML export: namespace 0, no redirects."""
    root = ET.fromstring(xml_text)
    ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    out = []
    for page in root.iter(f"{ns}page"):
        if page.findtext(f"{ns}ns") != "0" or page.find(f"{ns}redirect") is not None:
            continue
        text = page.findtext(f"{ns}revision/{ns}text") or ""
        out.append((page.findtext(f"{ns}title") or "", text))
    return out


@lru_cache(maxsize=1)
def wiki_text() -> str:
    """The extract's articles as plain text: each title, then its prose (about 570 k words)."""
    from .wordsets import gensim_data

    with bz2.open(gensim_data(FILE), "rt", encoding="utf-8") as f:
        pages = articles(f.read())
    return "\n\n".join(f"{title}\n\n{strip_markup(text)}" for title, text in pages)
