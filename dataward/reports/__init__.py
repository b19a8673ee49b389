"""Compliance reports: the document (every figure as JSON), its HTML and PDF renderings,
the compliance mapping and the nightly digest.

Public surface::

    build_document(ctx, ref, policy, run_id=None) -> dict  # report.json
    render_html(doc) -> str                            # self-contained report.html
    render_pdf(html) -> bytes                          # report.pdf (WeasyPrint)
    build_digest(ctx, since, until) / render_digest_html(digest, ...)
"""

from dataward.reports.digest import build_digest, render_digest_html
from dataward.reports.document import build_document, report_dir
from dataward.reports.render import render_html, render_pdf

__all__ = ["build_document", "build_digest", "render_digest_html", "render_html", "render_pdf",
           "report_dir"]
