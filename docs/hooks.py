"""MkDocs hook: docstrings name objects with Sphinx roles (``:class:`Policy```);
the rendered page shows the name alone, as code."""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj):(?=<code>)")


def on_page_content(html: str, **kwargs: Any) -> str:
    return _ROLE.sub("", html)
