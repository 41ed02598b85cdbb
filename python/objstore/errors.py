"""objstore's errors: one exception class per error code (store/error.hpp).

Every class derives from ``ObjstoreError`` and carries ``code`` (the C++
enumerator's name, e.g. ``"not_found"``) and ``message`` (what was wrong:
the URI, the op, the rank). Where a builtin exception means the same, the
class derives from it too (``Timeout`` is a ``TimeoutError``,
``InvalidArgument`` a ``ValueError``), so generic handlers keep working.
"""


class ObjstoreError(Exception):
    """Base of every objstore error."""

    code = "error"

    def __init__(self, message=""):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return f"{self.code}: {self.message}" if self.message else self.code


class InvalidUri(ObjstoreError, ValueError):
    code = "invalid_uri"


class UnsupportedScheme(ObjstoreError):
    code = "unsupported_scheme"


class NotFound(ObjstoreError, LookupError):
    code = "not_found"


class PermissionDenied(ObjstoreError, PermissionError):
    code = "permission_denied"


class CorruptData(ObjstoreError):
    code = "corrupt_data"


class ResourceExhausted(ObjstoreError, MemoryError):
    code = "resource_exhausted"


class OpFailed(ObjstoreError):
    code = "op_failed"


class ObjectLost(ObjstoreError):
    code = "object_lost"


class Timeout(ObjstoreError, TimeoutError):
    code = "timeout"


class Unauthenticated(ObjstoreError):
    code = "unauthenticated"


class InvalidArgument(ObjstoreError, ValueError):
    code = "invalid_argument"


class IoError(ObjstoreError, OSError):
    code = "io_error"


class Cancelled(ObjstoreError):
    code = "cancelled"


class Unsupported(ObjstoreError):
    code = "unsupported"


_BY_CODE = {
    cls.code: cls
    for cls in (InvalidUri, UnsupportedScheme, NotFound, PermissionDenied,
                CorruptData, ResourceExhausted, OpFailed, ObjectLost, Timeout,
                Unauthenticated, InvalidArgument, IoError, Cancelled,
                Unsupported)
}


def from_code(code, message):
    """The exception for error code ``code`` (used by the C++ bindings)."""
    return _BY_CODE.get(code, ObjstoreError)(message)


__all__ = ["ObjstoreError", "from_code"] + [c.__name__ for c in _BY_CODE.values()]
