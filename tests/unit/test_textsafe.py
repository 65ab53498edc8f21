"""`visible()`: the one function text from outside the program passes before it reaches a terminal."""

from __future__ import annotations

import io
import json
import time

from hypothesis import given
from hypothesis import strategies as st

from opsconsole.textsafe import VisibleStream, visible

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_controls_escapes_and_bidi_are_shown_not_sent():
    assert visible("\x1b]52;c;SGVsbG8=\x07") == "\\x1b]52;c;SGVsbG8=\\x07"
    assert visible("a\x00b\x7f\x9b31m") == "a\\x00b\\x7f\\x9b31m"
    assert visible("\u202eevil\u202c") == "\\u202eevil\\u202c"
    assert all(visible(ch).startswith("\\u") for ch in BIDI)
    assert visible("one\ntwo\r\tthree") == "one\\ntwo\\r three"
    assert visible("[bold red]x[/] [link=") == "[bold red]x[/] [link="  # markup is not ours to parse
    assert visible("naïve ✓ 日本") == "naïve ✓ 日本"


def test_lines_keeps_layout_but_not_controls():
    assert visible("a\nb\tc\x1b[2J\r", lines=True) == "a\nb\tc\\x1b[2J\\r"


def test_a_long_text_is_cut_when_asked_and_fast_either_way():
    big = ("\x1b[2J" + "x" * 96) * 1000  # 100 kB
    t0 = time.perf_counter()
    whole = visible(big)
    assert time.perf_counter() - t0 < 0.5
    assert "\x1b" not in whole and len(whole) == len(big) + 3 * 1000
    cut = visible(big, limit=300)
    assert cut.endswith(f"… ({len(big) - 300} more characters)") and len(cut) < 400


def test_stream_passes_json_unchanged_and_escapes_the_rest():
    buf = io.StringIO()
    stream = VisibleStream(buf)
    doc = json.dumps({"reason": "\x1b]0;pwned\x07\u202e\n"}, indent=2)
    stream.write(doc)
    stream.write("\x1b[2Jdone\n")
    assert buf.getvalue() == doc + "\\x1b[2Jdone\n"


@given(st.text())
def test_property_output_is_printable_and_idempotent(text):
    out = visible(text)
    assert all(ch.isprintable() or ch == " " or ord(ch) > 0x9F for ch in out)
    assert not any(ch in out for ch in BIDI + "\x1b\n\r\x9b")
    assert visible(out) == out
