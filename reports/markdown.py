"""Escaping of user-supplied text (model labels, parameters, dataset, split and metric names,
claims) in the Markdown reports: the leaderboard, the tables, the verdicts and the claims audit.

A name such as ``<script>x</script>|a`` must reach the reader as those characters: not as HTML a
Markdown renderer passes through, not as emphasis or a link, and without its ``|`` splitting a
table cell. Every character that means something to CommonMark / GitHub tables is backslash-escaped
(a backslash before ASCII punctuation always stands for that character), line breaks become
spaces, and an underscore is escaped only where it could open or close emphasis (inside a word,
as in ``normalize_scores``, it cannot), so the usual names stay readable in the raw file.
The page (``reports.site_html``) reads these escapes back.
"""
from __future__ import annotations

import re

_SPECIAL = re.compile(r"[\\`*\[\]<>|&~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_LINE_BREAKS = re.compile(r"[\r\n]+")
_CODE_SPAN = re.compile(r"(`[^`\r\n]+`)")


def markdown_text(value) -> str:
    """``value`` as plain text inside Markdown (a table cell, a heading, a sentence)."""
    return _SPECIAL.sub(lambda found: "\\" + found.group(), _LINE_BREAKS.sub(" ", str(value)))


def markdown_prose(value) -> str:
    """Like :func:`markdown_text`, but ``code spans`` written on purpose (the audit's commands)
    stay code spans; inside them only ``|`` is escaped, as GitHub tables need."""
    parts = _CODE_SPAN.split(_LINE_BREAKS.sub(" ", str(value)))
    return "".join(part.replace("|", "\\|") if index % 2 else markdown_text(part) for index, part in enumerate(parts))
