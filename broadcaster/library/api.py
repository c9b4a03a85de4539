"""The library's HTTP routes: upload, spoken text, composed bulletins, list, get, delete,
waveform and audio preview."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from audio.compose import Part
from audio.waveform import png
from loa.errors import (
    Conflict,
    FieldError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnsupportedMedia,
)

from ..web.bodies import UUID_RE, Body, ok, path_id, read_json, svc

MAX_TEXT = 5000


class TextIn(Body):
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    title: Annotated[str, Field(max_length=200)] = ""


class PartIn(Body):
    kind: Literal["media", "text", "pause"]
    media_id: Annotated[str, Field(pattern=UUID_RE.pattern)] | None = None
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)] | None = None
    ms: Annotated[int, Field(ge=1, le=60_000)] | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> PartIn:
        needed = {"media": "media_id", "text": "text", "pause": "ms"}[self.kind]
        given = [f for f in ("media_id", "text", "ms") if getattr(self, f) is not None]
        if given != [needed]:
            raise ValueError(f"a {self.kind} part has exactly the field {needed!r}")
        return self

    def part(self) -> Part:
        if self.kind == "media":
            return Part("media", self.media_id or "")
        if self.kind == "text":
            return Part("text", self.text or "")
        return Part("pause", ms=self.ms or 0)


class ComposeIn(Body):
    title: Annotated[str, Field(max_length=200)] = ""
    parts: Annotated[list[PartIn], Field(min_length=1, max_length=30)]
    repeat: Annotated[int, Field(ge=1, le=10)] = 1
    chimes: bool = True


async def media_list(request: Request) -> JSONResponse:
    return ok({"media": svc(request).store.media_list(path_id(request, "commune"))})


async def signals(request: Request) -> JSONResponse:
    return ok({"signals": svc(request).library.signals()})


async def media_get(request: Request) -> JSONResponse:
    media_id = path_id(request, "media", UUID_RE)
    return ok({"media": svc(request).store.media_info(media_id)})


async def media_delete(request: Request) -> JSONResponse:
    s = svc(request)
    media_id = path_id(request, "media", UUID_RE)
    row = s.store.media_row(media_id)
    if row["kind"] == "tone":
        raise Conflict("chimes and sirens are built in and cannot be deleted")
    if s.store.media_in_use(media_id):
        raise Conflict("this item is on the air now; delete it when the broadcast has ended")
    s.library.delete(media_id)
    s.audit("media.delete", media=media_id)
    return ok({"deleted": media_id})


async def media_waveform(request: Request) -> Response:
    media = svc(request).store.media_info(path_id(request, "media", UUID_RE))
    image = png(media["waveform"])
    return Response(image, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


async def media_audio(request: Request) -> Response:
    codec = request.query_params.get("codec", "opus")
    if codec not in ("opus", "mp3", "flac"):
        raise InvalidInput(
            "codec must be opus, mp3 or flac",
            errors=[FieldError("codec", "unknown codec", "enum")],
        )
    path, mime = svc(request).library.file(path_id(request, "media", UUID_RE), codec)
    return FileResponse(path, media_type=mime)


async def media_text(request: Request) -> JSONResponse:
    s = svc(request)
    commune = path_id(request, "commune")
    s.store.require_commune(commune)
    body = await read_json(request, TextIn)
    if not body.text.strip():
        raise InvalidInput(
            "there is no text to speak", errors=[FieldError("text", "type some text", "empty")]
        )
    item = await s.library.add_text(body.text, commune_id=commune, title=body.title)
    s.audit("media.text", commune=commune, media=item["id"])
    return ok({"media": item}, status=201)


async def media_compose(request: Request) -> JSONResponse:
    s = svc(request)
    commune = path_id(request, "commune")
    s.store.require_commune(commune)
    body = await read_json(request, ComposeIn)
    item = await s.library.add_composed(
        [p.part() for p in body.parts],
        commune_id=commune,
        title=body.title,
        repeat=body.repeat,
        chimes=body.chimes,
    )
    s.audit("media.compose", commune=commune, media=item["id"])
    return ok({"media": item}, status=201)


async def media_upload(request: Request) -> JSONResponse:
    commune = path_id(request, "commune")
    svc(request).store.require_commune(commune)
    return await _upload(request, commune)


async def province_media_upload(request: Request) -> JSONResponse:
    """The province's own library (items any of its communes may play)."""
    province = path_id(request, "province")
    if not svc(request).store.query("SELECT 1 FROM provinces WHERE id=?", [province]):
        raise NotFound(f"province {province!r} does not exist")
    return await _upload(request, None)


async def _upload(request: Request, commune: str | None) -> JSONResponse:
    s = svc(request)
    limit = s.settings.audio.max_upload_bytes
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise InvalidInput("send the upload with a Content-Length header")
    if int(length) > limit + 64 * 1024:
        raise PayloadTooLarge(
            f"the upload is over the {limit}-byte limit",
            errors=[FieldError("file", "file too large", "too_large")],
        )
    if "multipart/form-data" not in request.headers.get("content-type", ""):
        raise UnsupportedMedia("upload the file as multipart/form-data with a 'file' field")
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        title = form.get("title", "")
        if not isinstance(upload, UploadFile):
            raise InvalidInput(
                "no file in the upload", errors=[FieldError("file", "choose a file", "required")]
            )
        if not isinstance(title, str) or len(title) > 200:
            raise InvalidInput(
                "title must be text of at most 200 characters",
                errors=[FieldError("title", "too long", "too_long")],
            )
        tmp = s.library.temp_path()
        try:
            size = 0
            with tmp.open("wb") as fh:
                while chunk := await upload.read(1 << 16):
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(
                            f"the upload is over the {limit}-byte limit",
                            errors=[FieldError("file", "file too large", "too_large")],
                        )
                    fh.write(chunk)
            item = await s.library.add_file(
                tmp, commune_id=commune, title=title, filename=upload.filename or "upload"
            )
        finally:
            tmp.unlink(missing_ok=True)
    s.audit("media.upload", commune=commune or "province", media=item["id"])
    return ok({"media": item}, status=201)


routes = [
    Route("/api/communes/{commune}/media", media_list, methods=["GET"]),
    Route("/api/communes/{commune}/media", media_upload, methods=["POST"]),
    Route("/api/communes/{commune}/media/text", media_text, methods=["POST"]),
    Route("/api/provinces/{province}/media", province_media_upload, methods=["POST"]),
    Route("/api/communes/{commune}/media/compose", media_compose, methods=["POST"]),
    Route("/api/signals", signals),
    Route("/api/media/{media}", media_get, methods=["GET"]),
    Route("/api/media/{media}", media_delete, methods=["DELETE"]),
    Route("/api/media/{media}/waveform.png", media_waveform),
    Route("/api/media/{media}/audio", media_audio),
]
