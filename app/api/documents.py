"""The documents API (API key): upload, list, delete, reindex; the work is in app/documents.py.

An upload is `multipart/form-data` with one or more `files` parts. The route reads
the body only after the key is checked, so a client without one cannot make the
server take in an upload-sized body; the body limit for this path is
`server.max_upload_bytes` (main.py), larger than the other routes' limit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from app.api.deps import ApiKey, DocumentsDep
from app.api.errors import ApiError
from app.api.schemas import ErrorBody, check_line
from app.documents import DocumentInFile, DocumentInfo, DocumentNotFound

router = APIRouter(prefix="/v1/admin", tags=["documents"])
UPLOAD_PATH = "/v1/admin/documents"
MAX_FILES = 20
FILE_FIELDS = ("files", "file")
MAX_DOC_ID_CHARS = 512
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 422)}
_MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "maxItems": MAX_FILES,
                            "description": "md, markdown, txt, html, htm, pdf, jsonl, csv",
                        }
                    },
                }
            }
        },
    }
}


DocId = Annotated[
    str,
    Path(min_length=1, max_length=MAX_DOC_ID_CHARS, description="The document id (as listed)."),
    AfterValidator(check_line),
]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class DocumentList(_Out):
    documents: list[DocumentInfo]  # the service's own record: its fields are the reply's
    total: int


class DocumentResultOut(_Out):
    doc_id: str
    title: str
    change: Literal["added", "updated", "unchanged"]
    chunks: int


class FileResultOut(_Out):
    filename: str
    status: Literal["added", "updated", "unchanged", "failed"]
    documents: list[DocumentResultOut]
    chunks_written: int
    error: str | None


class UploadOut(_Out):
    files: list[FileResultOut]
    failed: int
    chunks_written: int
    deleted: list[str]
    seconds: float


class DeleteOut(_Out):
    deleted: list[str]
    chunks_deleted: int
    file_removed: str | None


class FailureOut(_Out):
    path: str
    reason: str


class ReindexOut(_Out):
    files: int
    documents: int
    chunks_written: int
    deleted: list[str]
    bm25_chunks: int
    failures: list[FailureOut]
    seconds: float


def _files(form: FormData) -> list[UploadFile]:
    files = []
    for key, value in form.multi_items():
        if key not in FILE_FIELDS or not isinstance(value, UploadFile):
            raise ApiError(422, "invalid_upload", f"unexpected form field {key!r}: send `files`")
        files.append(value)
    if not files:
        raise ApiError(422, "invalid_upload", "no file: send one or more `files` parts")
    return files


@router.post(
    "/documents",
    response_model=UploadOut,
    responses={**_ERRORS, 413: {"model": ErrorBody}},
    openapi_extra=_MULTIPART,
)
async def upload(_: ApiKey, request: Request, documents: DocumentsDep) -> UploadOut:
    """Keep and ingest uploaded files; each gets its own result (a broken one its error)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(422, "invalid_upload", "send multipart/form-data with `files` parts")
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FILES)
    except HTTPException as exc:  # the parser's 400; a 413 (body limit) passes through
        if exc.status_code != 400:
            raise
        raise ApiError(422, "invalid_upload", f"unreadable multipart body: {exc.detail}") from exc
    try:
        files = [(f.filename or "", f.file) for f in _files(form)]
        report = await run_in_threadpool(documents.upload, files)
    finally:
        await form.close()
    return UploadOut.model_validate(report)


@router.get("/documents", response_model=DocumentList, responses=_ERRORS)
async def list_documents(
    _: ApiKey,
    documents: DocumentsDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentList:
    """The stored documents by id: source, title, language, kind, chunks, content hash."""
    found = await run_in_threadpool(documents.documents)
    return DocumentList(documents=found[offset : offset + limit], total=len(found))


@router.delete(
    "/documents/{doc_id:path}",
    response_model=DeleteOut,
    responses={**_ERRORS, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def delete_document(
    _: ApiKey,
    documents: DocumentsDep,
    doc_id: DocId,
    whole_file: Annotated[
        bool,
        Query(alias="file", description="Delete every document of its uploaded file."),
    ] = False,
) -> DeleteOut:
    """Remove a document from the vector store and BM25 index, and its uploaded file."""
    try:
        report = await run_in_threadpool(documents.delete, doc_id, whole_file=whole_file)
    except DocumentNotFound as exc:
        raise ApiError(404, "document_not_found", f"no document {doc_id!r}") from exc
    except DocumentInFile as exc:
        raise ApiError(409, "document_in_file", str(exc)) from exc
    return DeleteOut.model_validate(report)


@router.post("/reindex", response_model=ReindexOut, responses=_ERRORS)
async def reindex(_: ApiKey, documents: DocumentsDep) -> ReindexOut:
    """Re-read the uploads (re-embedding what changed), rebuild BM25 from the store, and
    make the running server see the store as it is (e.g. after `shopdesk ingest`)."""
    report = await run_in_threadpool(documents.reindex)
    return ReindexOut.model_validate(report)
