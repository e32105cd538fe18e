"""Keep libtiff from printing on stderr.

Pillow decodes compressed TIFFs with libtiff, whose default error and warning handlers write their own
lines to the process's stderr ("ZIPDecode: Decoding error at scanline 0, ...") before Pillow raises.
On tinynet's command line that is a stray line beside tinynet's own one-line report of the same image,
and in a JSON-lines run it is not JSON. ``silence`` replaces both handlers with none: the failure still
reaches tinynet as Pillow's exception, which becomes the ImageError naming the file.

libtiff's handlers are process-wide, so this silences libtiff for the whole process. It finds libtiff
among the libraries the process has loaded (Linux: /proc/self/maps); elsewhere it does nothing.
"""
import ctypes
import functools


@functools.cache
def silence():
    """Remove libtiff's stderr handlers once; True if it did (False: libtiff not found, nothing changed)."""
    from PIL import Image  # noqa: F401  (loads Pillow's C core and with it libtiff)

    path = _loaded_libtiff()
    if path is None:
        return False
    try:
        library = ctypes.CDLL(path)  # the copy already loaded: dlopen of a loaded path returns it
        for setter in (library.TIFFSetErrorHandler, library.TIFFSetWarningHandler):
            setter.restype, setter.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
            setter(None)
    except (OSError, AttributeError):
        return False
    return True


def _loaded_libtiff():
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and "libtiff" in fields[-1].rsplit("/", 1)[-1]:
                    return fields[-1]
    except OSError:
        pass
    return None
