"""What every sink relies on (bot.outside): which links may be links, one line of text, and
stored JSON read without letting a hostile value crash the reader."""

from __future__ import annotations

import json

import pytest

from bot.outside import Unreadable, clip, load_json, nesting, one_line, safe_url, why_not_url

HOSTILE_LINKS = [
    'javascript:alert(1)//" onmouseover="alert(2)"',
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "vbscript:msgbox(1)",
    "//evil.example/x",  # scheme-relative: not absolute
    "/incidents/abc",
    "https://",  # no host
    "https://status.example/\nSet-Cookie: x",
    "https://status.example/ x",
    "https://status.example/\u202etxt.exe",
    "https://status.example/" + "a" * 3000,
    "",
]


@pytest.mark.parametrize("url", HOSTILE_LINKS)
def test_only_absolute_http_links_survive(url: str) -> None:
    assert safe_url(url) is None
    assert why_not_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://status.claude.com/incidents/x1y2",
        "http://127.0.0.1:9000/p?q=1#f",
        "HTTPS://A.EXAMPLE/",
    ],
)
def test_ordinary_links_are_kept_as_they_are(url: str) -> None:
    assert safe_url(url) == url


def test_a_non_string_is_never_a_link() -> None:
    assert safe_url(None) is None
    assert safe_url(["https://a.example"]) is None
    assert why_not_url(42) == "not a string (int)"


def test_one_line_removes_what_forges_lines_or_reverses_text() -> None:
    assert one_line("Elevated\r\nerrors\x00 on\u202e the\tAPI ") == "Elevated errors on the API"
    assert one_line(None) == ""
    assert one_line("x" * 50, limit=10) == "x" * 9 + "…"
    assert clip("abc", 3) == "abc"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested 100000 deep"),
        ('{"a":' * 70 + "1" + "}" * 70, "nested 70 deep"),
        (b"\xff\xfe{}", "not UTF-8"),
        ("{not json", "not JSON"),
        ("x" * 100, "100 bytes"),
        (None, "no value"),
    ],
)
def test_stored_json_that_tocsin_did_not_write_is_refused_cleanly(
    raw: str | None, why: str
) -> None:
    with pytest.raises(Unreadable, match=why):
        load_json(raw, limit=99 if why == "100 bytes" else 4 * 1024 * 1024)


def test_stored_json_that_tocsin_wrote_is_read() -> None:
    document = {"a": [1, {"b": "[[[{{{ brackets in a string }}}]]]"}], "c": '\\"'}
    assert load_json(json.dumps(document)) == document
    assert nesting(json.dumps(document)) == 3
