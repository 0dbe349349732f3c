"""The deliverables: the 自评表 (附件1, XLSX and DOCX) and the 评价报告 (附件3, DOCX).

Why here: documents are rendering for people, like the report page and the chat summaries, so
they live in ``bot``; ``scoring`` stays a pure engine that knows nothing of Word or Excel, and
``store`` only loads what they need. Every document is drawn from one ``DocumentData``
(``bot.documents.data``): the project's latest stored score result — the same one the summaries
and the report page show — with its definition, the narrative people wrote, and the ledger.

Renderers are plain functions ``DocumentData -> bytes``; run them off the event loop
(``asyncio.to_thread``) — python-docx and openpyxl are CPU work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.documents.data import DocumentData, load_document_data

__all__ = ["DOCUMENTS", "Document", "DocumentData", "document", "load_document_data", "render"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True)
class Document:
    """One downloadable document: ``name`` is its file name in URLs (``zipingbiao.xlsx``)."""

    name: str
    kind: str
    format: str
    media_type: str
    title: str
    render: Callable[[DocumentData], bytes]

    def filename(self, code: str, year: int) -> str:
        return f"{code}-{year}-{self.kind}.{self.format}"


def _zipingbiao_xlsx(data: DocumentData) -> bytes:
    from bot.documents.zipingbiao import zipingbiao_xlsx

    return zipingbiao_xlsx(data)


def _zipingbiao_docx(data: DocumentData) -> bytes:
    from bot.documents.zipingbiao import zipingbiao_docx

    return zipingbiao_docx(data)


def _baogao_docx(data: DocumentData) -> bytes:
    from bot.documents.baogao import baogao_docx

    return baogao_docx(data)


#: Every document by its URL name.
DOCUMENTS: dict[str, Document] = {
    d.name: d
    for d in (
        Document(
            "zipingbiao.xlsx", "zipingbiao", "xlsx", XLSX, "项目支出绩效自评表（XLSX）", _zipingbiao_xlsx
        ),
        Document(
            "zipingbiao.docx", "zipingbiao", "docx", DOCX, "项目支出绩效自评表（DOCX）", _zipingbiao_docx
        ),
        Document("baogao.docx", "baogao", "docx", DOCX, "绩效评价报告（DOCX）", _baogao_docx),
    )
}


def document(kind: str, fmt: str) -> Document | None:
    """The document ``kind`` (zipingbiao, baogao) in format ``fmt`` (xlsx, docx), if it exists."""
    return DOCUMENTS.get(f"{kind}.{fmt}")


def render(name: str, data: DocumentData) -> bytes:
    """Render document ``name`` (a key of :data:`DOCUMENTS`) from ``data``."""
    return DOCUMENTS[name].render(data)
