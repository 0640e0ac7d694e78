"""Word segmenters for corpus n-grams in scripts written without spaces (MetaCLIP 2).

``make_segmenter(lang)`` returns ``text -> [tokens]`` for the languages whose corpus needs a
segmenter, or None (whitespace tokens, MetaCLIP 1's rule, for every other language):

* ``zh``: jieba (its bundled dictionary, precise mode ``jieba.lcut``);
* ``ja``: Janome (pure Python, with its bundled IPAdic dictionary; surface forms);
* ``th``: PyThaiNLP's ``newmm`` (dictionary-based maximal matching, bundled word list).

All three come with the ``worldwide`` extra and need no download at run time.  A segmenter
returns every piece of the text, whitespace and punctuation included; :func:`segment_events`
keeps the word pieces and joins a bigram with a space only where the text had one, so an entry
such as ``東京タワー`` is matchable exactly where it occurred.
"""
from __future__ import annotations

from typing import Callable, Iterator

from clipcurate.balancing.entries import MetadataError

SEGMENTERS = {"zh": "jieba", "ja": "janome", "th": "pythainlp"}
INSTALL_HINT = "pip install 'clipcurate[worldwide]'"


def _jieba() -> Callable[[str], list[str]]:
    import logging

    import jieba
    jieba.setLogLevel(logging.WARNING)  # its dictionary-cache messages
    tok = jieba.Tokenizer()
    return lambda text: tok.lcut(text, HMM=True)


def _janome() -> Callable[[str], list[str]]:
    from janome.tokenizer import Tokenizer
    tok = Tokenizer(wakati=True)
    return lambda text: list(tok.tokenize(text))


def _pythainlp() -> Callable[[str], list[str]]:
    from pythainlp.tokenize import word_tokenize
    return lambda text: word_tokenize(text, engine="newmm", keep_whitespace=True)


_MAKERS = {"jieba": _jieba, "janome": _janome, "pythainlp": _pythainlp}


def make_segmenter(lang: str | None) -> Callable[[str], list[str]] | None:
    """The segmenter for ``lang`` (None: the language is written with spaces)."""
    name = SEGMENTERS.get((lang or "").lower())
    if name is None:
        return None
    try:
        return _MAKERS[name]()
    except ImportError as e:
        raise MetadataError(f"corpus n-grams for {lang!r} need {name}: {INSTALL_HINT} ({e})") from e


def segment_events(text: str, segment: Callable[[str], list[str]], is_word: Callable[[str], bool]
                   ) -> Iterator[tuple[str, object]]:
    """``("u", word)`` per word piece and ``("b", (w1, w2, sep))`` per adjacent word pair of ``text``:
    ``sep`` is " " if whitespace separated the two pieces, else ""; any other piece (punctuation,
    symbols) breaks bigrams."""
    prev, gap = None, False
    for piece in segment(text):
        if not piece:
            continue
        if piece.isspace():
            gap = True
            continue
        word = piece.strip()
        if not is_word(word):
            prev, gap = None, False
            continue
        yield "u", word
        if prev is not None:
            yield "b", (prev, word, " " if gap else "")
        prev, gap = word, False
