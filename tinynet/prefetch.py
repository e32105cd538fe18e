"""Preparing the next batches of images in threads while the model runs the current one."""
from collections import deque
from concurrent.futures import ThreadPoolExecutor


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
