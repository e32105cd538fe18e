"""Preparing the next batches of images in threads while the model runs the current one."""
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tinynet.errors import ImageError
from tinynet.preprocess import to_array


def prefetched(chunks, prepare, workers):
    """Yield ``(chunk, prepare(chunk))`` for each chunk, in order, with ``workers`` threads preparing that many
    chunks ahead of the one the caller is working on (0: no threads, each chunk prepared when it is reached).
    Decoding and resizing images release the GIL in Pillow, so they overlap the kernels."""
    if workers == 0:
        for chunk in chunks:
            yield chunk, prepare(chunk)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        for chunk in chunks:
            pending.append((chunk, pool.submit(prepare, chunk)))
            if len(pending) > workers:
                ready, future = pending.popleft()
                yield ready, future.result()
        while pending:
            ready, future = pending.popleft()
            yield ready, future.result()


def image_batches(items, transform, size, workers=1, image_of=lambda item: item):
    """``(chunk, x, errors)`` for each batch of ``size`` items, in order: ``errors[j]`` is None when ``chunk[j]``'s
    image (``image_of(item)``: a path by default) was read, else why not; ``x`` (n, H, W, 3) float32 holds the
    read ones in chunk order, prepared by ``transform`` (tinynet.preprocess), or is None when none was read.
    ``workers`` threads prepare that many batches ahead. The one batching path of ``tinynet classify`` and
    tinynet.evaluate, so both skip unreadable images the same way."""

    def prepare(chunk):
        arrays, errors = [], []
        for item in chunk:
            try:
                arrays.append(to_array(image_of(item), transform))
                errors.append(None)
            except ImageError as e:
                errors.append(str(e))
        return (np.stack(arrays) if arrays else None), errors

    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    return ((chunk, x, errors) for chunk, (x, errors) in prefetched(chunks, prepare, workers))
