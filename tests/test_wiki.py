"""The Wikipedia extract as plain text: each markup rule of ``data.wiki`` on its own, the
articles of the XML export, the whole cleaned corpus, and the doctests of word2vec's modules."""

import doctest
import importlib
import re

import pytest

from rnnkit.data.skipgram import sentences
from rnnkit.data.wiki import articles, strip_markup, wiki_text


@pytest.mark.parametrize("wikitext, prose", [
    ("a<!-- hidden\nnote -->b", "ab"),
    ("Paris.<ref name=x>Smith, p. 3</ref> It", "Paris. It"),
    ("Paris.<ref name=x /> It", "Paris. It"),
    ("x {{Infobox city|name={{lang|fr|Paris}}|pop=2}} y", "x y"),
    ("{| class=wikitable\n|-\n| a || b\n|}\nafter", "after"),
    ("[[File:Eiffel.jpg|thumb|The [[Eiffel Tower]] at night]] Paris", "Paris"),
    ("in [[Category:Cities]] [[fr:Paris]]France", "in France"),
    ("the [[Seine|river Seine]] and [[Louvre]]", "the river Seine and Louvre"),
    ("see [http://example.org the site] or http://x.org/y now", "see the site or now"),
    ("'''Paris''' is ''the'' capital", "Paris is the capital"),
    ("== History ==\ntext", "History\n\ntext"),
    ("* one\n# two\n: three", "one\n\ntwo\n\nthree"),
    ("a&nbsp;b &amp; c &amp;ndash; d <span style='x'>e</span>", "a b & c – d e"),
    ("E = mc<math>^2</math>!", "E = mc!"),
])
def test_each_markup_rule(wikitext, prose):
    assert strip_markup(wikitext) == prose


def test_articles_keep_namespace_zero_without_redirects():
    xml = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
      <page><title>A</title><ns>0</ns><revision><text>first</text></revision></page>
      <page><title>B</title><ns>0</ns><redirect title="A" />
            <revision><text>#REDIRECT [[A]]</text></revision></page>
      <page><title>Talk:A</title><ns>1</ns><revision><text>chat</text></revision></page>
      <page><title>C</title><ns>0</ns><revision><text /></revision></page>
    </mediawiki>"""
    assert articles(xml) == [("A", "first"), ("C", "")]


@pytest.mark.slow  # reads and cleans the 6 MB extract: ~5 s
def test_the_extract_is_clean_prose():
    text = wiki_text()
    corpus = sentences(text)
    words = sum(map(len, corpus))
    assert 400_000 < words < 600_000 and len(corpus) > 5_000
    for markup in ("{{", "}}", "<ref", "&amp;", "&nbsp;", "'''", "[http"):
        assert text.count(markup) == 0, markup
    assert text.count("[[") < 5 and text.count("|") < 50  # a few stray pieces of broken markup
    assert text.startswith("Anarchism\n\nAnarchism is a political philosophy")
    common = {w for s in corpus[:2000] for w in s}
    assert {"the", "of", "political", "philosophy"} <= common
    assert not re.search(r"\bthumb\b", text[:200_000])


@pytest.mark.parametrize("module", ["rnnkit.data.wiki", "rnnkit.data.skipgram",
                                    "rnnkit.data.vectors", "rnnkit.data.wordsets",
                                    "rnnkit.embeddings", "rnnkit.models.word2vec"])
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module), verbose=False)
    assert result.failed == 0 and result.attempted > 0
