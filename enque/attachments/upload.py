"""Streaming multipart parsing: the `file` part flows to storage chunk by chunk, never
buffered whole; small form fields (`ticketId`) are collected on the way."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from enque.attachments.files import SNIFF_BYTES
from enque.core.errors import ApiError, validation_error

FIELD_LIMIT = 1024
MAX_HEADER_SIZE = 64 * 1024  # a 10,000-character file name fits
FILE_FIELD = "file"


class UploadTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__("PAYLOAD_TOO_LARGE", f"The file exceeds {limit} bytes")


def boundary_of(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise ApiError("UNSUPPORTED_MEDIA_TYPE", "Send the file as multipart/form-data")
    return boundary


class MultipartUpload:
    """Feeds the request body to the parser; `file_chunks()` yields the file's bytes."""

    def __init__(self, body: AsyncIterable[bytes], content_type: str, limit: int) -> None:
        self.body = body.__aiter__()
        self.limit = limit
        self.fields: dict[str, str] = {}
        self.file_name: str | None = None
        self.seen_file = False
        self.size = 0
        self.digest = hashlib.sha256()
        self._pending: list[bytes] = []
        self._header_field = b""
        self._header_value = b""
        self._part_name: str | None = None
        self._part_file_name: str | None = None
        self._part_is_file = False
        self._field_value = bytearray()
        self._ended = False
        callbacks: Any = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        self.parser = MultipartParser(
            boundary_of(content_type), callbacks, max_header_size=MAX_HEADER_SIZE
        )

    # ------------------------------------------------------------ parser callbacks

    def _part_begin(self) -> None:
        self._part_name = None
        self._part_file_name = None
        self._part_is_file = False
        self._field_value = bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            _, options = parse_options_header(self._header_value)
            name = options.get(b"name")
            self._part_name = name.decode("utf-8", "replace") if name is not None else None
            filename = options.get(b"filename")
            if filename is not None:
                self._part_file_name = filename.decode("utf-8", "replace")
        self._header_field = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        self._part_is_file = self._part_name == FILE_FIELD and not self.seen_file
        if self._part_is_file:
            self.seen_file = True
            self.file_name = self._part_file_name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_is_file:
            self.size += end - start
            if self.size > self.limit:
                raise UploadTooLarge(self.limit)
            chunk = bytes(data[start:end])
            self.digest.update(chunk)
            self._pending.append(chunk)
        elif self._part_name is not None and self._part_name != FILE_FIELD:
            if len(self._field_value) + end - start > FIELD_LIMIT:
                raise validation_error(self._part_name, "too long")
            self._field_value += data[start:end]

    def _part_end(self) -> None:
        if self._part_name and self._part_name != FILE_FIELD and not self._part_is_file:
            self.fields[self._part_name] = self._field_value.decode("utf-8", "replace").strip()
        self._part_is_file = False

    # ------------------------------------------------------------ reading

    async def _feed(self) -> bool:
        """Parse the next body chunk; False at the end of the body."""
        if self._ended:
            return False
        try:
            chunk = await self.body.__anext__()
        except StopAsyncIteration:
            self._ended = True
            try:
                self.parser.finalize()
            except MultipartParseError as exc:
                raise ApiError("BAD_REQUEST", f"Malformed multipart body: {exc}") from None
            return False
        try:
            if chunk:
                self.parser.write(chunk)
            elif self._ended:
                self.parser.finalize()
        except MultipartParseError as exc:
            raise ApiError("BAD_REQUEST", f"Malformed multipart body: {exc}") from None
        return True

    async def head(self) -> bytes:
        """The file's first bytes (for sniffing); they are yielded again by `file_chunks`."""
        while sum(len(c) for c in self._pending) < SNIFF_BYTES and (
            not self.seen_file or self._part_is_file
        ):
            if not await self._feed():
                break
        if not self.seen_file:
            raise validation_error(FILE_FIELD, "send the file in a part named 'file'")
        return b"".join(self._pending)[:SNIFF_BYTES]

    async def file_chunks(self) -> AsyncIterator[bytes]:
        while True:
            while self._pending:
                yield self._pending.pop(0)
            if not await self._feed():
                break
        while self._pending:
            yield self._pending.pop(0)

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()
