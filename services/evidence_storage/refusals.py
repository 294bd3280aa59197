"""Why an upload is refused: a stable code, an HTTP status and a message in Chinese and English."""

from __future__ import annotations

from shared.http import ApiError

MIB = 1024 * 1024


class Refusal(Exception):
    """The upload cannot become evidence; nothing of it may be kept."""

    def __init__(self, status: int, code: str, message: str, message_en: str) -> None:
        super().__init__(message_en)
        self.status, self.code, self.message, self.message_en = status, code, message, message_en

    def as_api_error(self) -> ApiError:
        """The bilingual HTTP error for this refusal."""
        return ApiError(self.status, self.code, self.message, self.message_en)


def _size(n: int) -> str:
    return f"{n / MIB:.0f} MB" if n >= MIB else f"{n} B"


def empty_file() -> Refusal:
    """An upload with no bytes."""
    return Refusal(400, "empty_file", "文件为空", "the file is empty")


def invalid_filename(reason: str, reason_en: str) -> Refusal:
    """A filename that tries to be a path or carries control characters."""
    return Refusal(400, "invalid_filename", f"文件名不合法：{reason}", f"invalid filename: {reason_en}")


def unsupported_type(allowed: str, allowed_en: str) -> Refusal:
    """Bytes that are none of the allowed kinds, whatever the name or Content-Type say."""
    return Refusal(
        415,
        "unsupported_media_type",
        f"不支持的文件类型：仅接受 {allowed}（按文件内容识别，与文件名和声明的类型无关）",
        f"unsupported file type: only {allowed_en} are accepted (judged by content, not by name or declared type)",
    )


def too_large(label: str, limit: int) -> Refusal:
    """A file past its kind's size limit."""
    return Refusal(
        413,
        "too_large",
        f"{label} 文件超过大小上限（{_size(limit)}）".strip(),
        f"{label} file exceeds the size limit ({_size(limit)})".strip(),
    )


def damaged(label: str, detail: str = "") -> Refusal:
    """A file whose structure is broken or cut short."""
    suffix = f": {detail}" if detail else ""
    return Refusal(
        422,
        "damaged_file",
        f"{label} 文件已损坏或不完整（可能上传被截断），请重新上传",
        f"the {label} file is damaged or incomplete (possibly truncated){suffix}",
    )


def undecodable_video(label: str, detail: str) -> Refusal:
    """A video in which ffmpeg finds no frame it can decode (no movie header, unknown codec, cut short)."""
    return Refusal(
        422,
        "video_undecodable",
        f"{label} 视频无法解码（没有可播放的画面，可能文件不完整或编码不受支持），请重新上传",
        f"the {label} video cannot be decoded (no playable frame; incomplete file or unsupported codec): {detail}",
    )


def too_many_pixels(width: int | None, height: int | None, limit: int) -> Refusal:
    """An image whose declared pixel count would flood memory when decoded."""
    size, size_en = (f"（{width}×{height}）", f" ({width}x{height})") if width and height else ("", "")
    return Refusal(
        422,
        "too_many_pixels",
        f"图片像素过多{size}，上限为 {limit} 像素（疑似像素炸弹）",
        f"image has too many pixels{size_en}; the limit is {limit} pixels (suspected pixel flood)",
    )


def trailing_data(label: str, extra: int) -> Refusal:
    """An image with bytes after its end marker (a polyglot: an archive or a script appended)."""
    return Refusal(
        422,
        "trailing_data",
        f"{label} 图片结束标记之后还有 {extra} 字节其他数据（可能附带了压缩包、视频或脚本），已拒绝；"
        "请将照片另存或导出为普通图片后再上传",
        f"the {label} image has {extra} bytes after its end marker (an appended archive, video or script); "
        "save or export it as a plain image and upload again",
    )


def malformed_boxes(label: str, detail: str) -> Refusal:
    """An MP4/MOV/HEIF whose boxes do not nest properly."""
    return Refusal(
        422,
        "damaged_file",
        f"{label} 文件结构异常（数据块大小与所在位置不符），已拒绝",
        f"the {label} file's boxes do not nest properly: {detail}",
    )


def unplayable_video(label: str) -> Refusal:
    """A video without a movie header: no player can play it."""
    return Refusal(
        422,
        "unplayable_video",
        f"{label} 视频缺少影片头（moov），无法播放；请用相机或剪辑软件重新导出后上传",
        f"the {label} video has no movie header (moov box) and cannot be played; export it again",
    )


def active_pdf(what: str) -> Refusal:
    """A PDF carrying JavaScript or a launch action."""
    return Refusal(
        422,
        "pdf_active_content",
        "PDF 含有 JavaScript 脚本或启动外部程序的动作，存在安全风险，已拒绝；请用“打印为 PDF”另存后再上传",
        f"the PDF carries active content ({what}); print it to a new PDF and upload that",
    )


def zip_bomb(detail: str) -> Refusal:
    """An office file whose parts would expand far beyond its size."""
    return Refusal(
        422,
        "zip_bomb",
        "文档解压后体积异常（疑似压缩炸弹），已拒绝",
        f"the document would expand to an abnormal size (suspected zip bomb): {detail}",
    )


def not_office() -> Refusal:
    """A ZIP that is not a plain Word or Excel document."""
    return Refusal(
        415,
        "unsupported_media_type",
        "压缩文件仅接受 Word（DOCX）或 Excel（XLSX）文档",
        "ZIP-based files are accepted only as Word (DOCX) or Excel (XLSX) documents",
    )


def macros() -> Refusal:
    """A macro-enabled office document."""
    return Refusal(
        415,
        "macros_not_allowed",
        "不接受含宏的文档，请另存为普通 DOCX 或 XLSX",
        "macro-enabled documents are not accepted; save as a plain DOCX or XLSX",
    )


def type_mismatch(declared: str, found: str) -> Refusal:
    """The declared Content-Type of a presigned upload is not what the bytes are."""
    return Refusal(
        422,
        "type_mismatch",
        f"声明的文件类型（{declared}）与文件内容（{found}）不符",
        f"declared type {declared} does not match the content ({found})",
    )


def size_mismatch(declared: int, actual: int) -> Refusal:
    """The stored size is not the declared size."""
    return Refusal(
        422,
        "size_mismatch",
        f"文件大小（{actual} 字节）与声明的大小（{declared} 字节）不符",
        f"file size {actual} does not match the declared size {declared}",
    )


def checksum_mismatch() -> Refusal:
    """The stored bytes do not hash to the declared SHA-256."""
    return Refusal(
        422,
        "checksum_mismatch",
        "文件校验值（SHA-256）与声明的不符，文件可能在传输中损坏",
        "the file's SHA-256 does not match the declared one; it may have been damaged in transit",
    )


def submission_closed() -> Refusal:
    """The submission was decided or withdrawn meanwhile."""
    return Refusal(
        409,
        "submission_closed",
        "该报送材料已审核完毕或已撤回，不能再上传佐证资料",
        "submission is already decided or withdrawn; no more uploads",
    )


def store_unavailable() -> ApiError:
    """The object store could not be reached; nothing was kept, the client may retry."""
    return ApiError(
        503,
        "store_unavailable",
        "存储服务暂时不可用，本次上传未保存，请稍后重试",
        "evidence store unavailable; nothing was saved, retry later",
    )


def upload_lost() -> Refusal:
    """The store no longer holds a session's multipart upload (aborted by a bucket rule or an operator)."""
    return Refusal(
        410,
        "upload_lost",
        "对象存储中已找不到本次上传的分片（上传已被取消或清理），请重新上传",
        "the store no longer holds this upload's parts (the upload was aborted or cleaned up); upload the file again",
    )


def parts_changed() -> Refusal:
    """A part in the store is not the one recorded: the same offset was sent twice at once with other bytes."""
    return Refusal(
        409,
        "upload_parts_changed",
        "同一位置的分片被同时发送了两次且内容不同，存储中的分片与记录不符，请重新上传",
        "a chunk was sent twice at once at the same offset with different bytes, so the stored parts no longer "
        "match the record; upload the file again",
    )
