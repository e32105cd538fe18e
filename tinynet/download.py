"""HTTP(S) download of one file to a path the caller owns, and checks of what arrived.

Only the standard library (urllib). Every failure is a one-line TinynetError: ``OfflineError`` when the
server cannot be reached at all, ``DownloadError`` for everything else (HTTP status, a connection that
drops mid-file, fewer bytes than announced, a digest that does not match). The caller deletes the
partial file; nothing here decides where files live.
"""
import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from tinynet.errors import TinynetError

CHUNK = 1 << 16
TIMEOUT_SECONDS = 30  # per socket operation
DEADLINE_SECONDS = 30 * 60  # the whole transfer: a server trickling bytes cannot hold a pull forever
MAX_DOWNLOAD_BYTES = 1 << 30  # no published MobileNet file comes near 1 GB
SCHEMES = ("http", "https")  # file:, data:, ftp: would read local files or bypass the checks below


class DownloadError(TinynetError):
    """The download started or was refused but did not deliver the expected file."""


class OfflineError(DownloadError):
    """The server could not be reached (no network, DNS failure, connection refused, timeout)."""


def fetch(url, dest, progress=None, max_bytes=MAX_DOWNLOAD_BYTES, deadline_seconds=DEADLINE_SECONDS):
    """Write the body of ``url`` to the file ``dest`` (flushed to disk); returns the number of bytes written.

    ``progress`` (tinynet.progress.Progress or None) is started with the announced size and updated
    per chunk. A body shorter than its Content-Length raises DownloadError; bytes past Content-Length
    are never read (http.client stops at the announced length). Only http/https URLs; a body over
    ``max_bytes`` or a transfer longer than ``deadline_seconds`` is refused.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower() if isinstance(url, str) else None
    if scheme not in SCHEMES:
        raise DownloadError(f"{url!r}: only http and https URLs are downloaded")
    give_up_at = time.monotonic() + deadline_seconds
    request = urllib.request.Request(url, headers={"User-Agent": "tinynet"})
    try:
        response = _opener().open(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{url}: server answered HTTP {e.code} {_printable(e.reason)}") from None
    except http.client.HTTPException as e:  # bad status line, too many or too long headers
        raise DownloadError(f"{url}: malformed response from the server ({type(e).__name__})") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise OfflineError(f"cannot reach {url} ({_describe(reason)})") from None
    written = 0
    with response:
        announced = response.headers.get("Content-Length")
        if announced is not None and not (announced.strip().isascii() and announced.strip().isdigit()):
            raise DownloadError(f"{url}: malformed response from the server (Content-Length {announced[:20]!r})")
        announced = int(announced) if announced is not None else None
        if announced is not None and announced > max_bytes:
            raise DownloadError(f"{url}: announces {announced} bytes, more than the {max_bytes} allowed")
        if progress:
            progress.start(announced)
        try:
            with open(dest, "wb") as out:
                while chunk := response.read1(CHUNK):  # what arrived: read() would wait for a whole chunk
                    out.write(chunk)
                    written += len(chunk)
                    if written > max_bytes:
                        raise DownloadError(f"{url}: more than the {max_bytes} bytes allowed")
                    if time.monotonic() > give_up_at:
                        raise DownloadError(f"{url}: not complete after {deadline_seconds:g} s "
                                            f"({written} bytes received)")
                    if progress:
                        progress.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())  # the caller renames it into place: its bytes must be on disk first
        except (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as e:
            raise DownloadError(f"{url}: connection lost after {written} bytes ({_describe(e)})") from None
    if announced is not None and written != announced:
        raise DownloadError(f"{url}: connection lost after {written} of {announced} bytes")
    return written


def _opener():
    """urllib without its file:, ftp: and data: handlers, so a redirect cannot lead there either."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler, urllib.request.HTTPHandler, urllib.request.HTTPSHandler,
                    urllib.request.HTTPDefaultErrorHandler, urllib.request.HTTPRedirectHandler,
                    urllib.request.HTTPErrorProcessor):
        opener.add_handler(handler())
    return opener


def _printable(text):
    return "".join(c if c.isprintable() else "?" for c in str(text))


def sha256_of(path):
    """Hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify(path, sha256=None, sha256_prefix=None, what=None):
    """Raise DownloadError unless the file's sha256 equals ``sha256`` / starts with ``sha256_prefix``
    (each checked when given)."""
    if not (sha256 or sha256_prefix):
        return
    actual = sha256_of(path)
    expected = (sha256 or sha256_prefix).lower()
    if not actual.startswith(expected):
        raise DownloadError(f"{what or path}: sha256 {actual[:16]}... does not match the published "
                            f"{expected[:16]}{'...' if len(expected) > 16 else ''}: corrupted or tampered download")


def _describe(reason):
    """A few words for a socket-level failure, without Python exception names."""
    if isinstance(reason, socket.gaierror):
        return "host name not found: no network?"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, http.client.IncompleteRead):
        return "incomplete read"
    text = getattr(reason, "strerror", None) or str(reason)
    return text or type(reason).__name__
