"""Classify large image collections on a Dask cluster (the optional extra ``tinynet-mobilenet[distributed]``).

The inputs are split, in a fixed order, into partitions of ``batch_size`` images; each partition is one Dask task that
writes its own Parquet file ``part-NNNNN.parquet`` in the output folder (a Parquet dataset), under a temporary name
renamed into place once complete. A lost worker's task is simply run again and rewrites the same file, so rows are
never lost or repeated, and ``resume=True`` skips partitions whose file already exists.
"""
import os
import sys
import time
import uuid
from pathlib import Path

from tinynet.errors import TinynetError
from tinynet.inputs import image_files

INSTALL_HINT = 'pip install "tinynet-mobilenet[distributed]"'
_models = {}  # per worker process: model path or store name -> (model, labels, transform)


def _require_dask():
    try:
        import distributed  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        raise TinynetError(f"--distributed needs Dask and pyarrow: {INSTALL_HINT}") from None


def partition_name(index):
    return f"part-{index:05d}.parquet"


def _loaded(model_name, threads):
    """This process's copy of the model, loaded on first use; kernels limited to this worker's threads."""
    if model_name not in _models:
        import tinynet
        from tinynet import preprocess
        from tinynet.labels import labels_for
        model = tinynet.load(model_name)
        _models[model_name] = (model, labels_for(model), preprocess.for_model(model))
    model = _models[model_name][0]
    model.threads = threads  # Numba ignores OMP_NUM_THREADS: without this every worker would use every core
    return _models[model_name]


def _worker_threads():
    from distributed import get_worker
    try:
        return get_worker().state.nthreads
    except ValueError:  # not on a worker (called directly)
        return 1


def classify_partition(index, paths, model_name, out, top):
    """Classify one partition and write it as ``out/part-INDEX.parquet``; returns its number of rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tinynet import preprocess

    model, names, transform = _loaded(model_name, _worker_threads())
    arrays, good, errors = [], [], {}
    for i, path in enumerate(paths):
        try:
            arrays.append(preprocess.to_array(path, transform))
            good.append(i)
        except Exception as e:  # any unreadable image is a row with an error, never a failed job
            errors[i] = str(e) or type(e).__name__
    ids = [[] for _ in paths]
    probabilities = [[] for _ in paths]
    if arrays:
        p = model.probabilities(np.stack(arrays))
        k = max(1, min(top, p.shape[1]))
        order = np.argsort(-p, axis=1, kind="stable")[:, :k]  # the order tinynet.model.top_labels uses
        for row, i in enumerate(good):
            ids[i] = [int(c) for c in order[row]]
            probabilities[i] = [float(p[row, c]) for c in order[row]]
    table = pa.table({
        "path": pa.array([str(p) for p in paths], pa.string()),
        "class_ids": pa.array(ids, pa.list_(pa.int64())),
        "labels": pa.array([[names[c] for c in row] for row in ids], pa.list_(pa.string())),
        "probabilities": pa.array(probabilities, pa.list_(pa.float64())),
        "error": pa.array([errors.get(i) for i in range(len(paths))], pa.string()),
    })
    final = Path(out) / partition_name(index)
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")  # unique: a rerun may overlap a slow copy
    pq.write_table(table, temporary)
    os.replace(temporary, final)
    return len(paths)


def classify_files(paths, model, out, scheduler=None, workers=None, batch_size=64, top=5, resume=False,
                   progress=True):
    """Classify the images ``paths`` names (files, folders, globs) with ``model`` (a weight file or store name every
    worker can read) on Dask; writes the Parquet dataset folder ``out``. ``scheduler``: the address of a running
    cluster; otherwise a LocalCluster of ``workers`` processes (default 2) with one thread each. Returns
    ``{"images", "partitions", "skipped", "seconds", "images_per_second"}`` (skipped: partitions kept by resume)."""
    _require_dask()
    from distributed import Client, LocalCluster, progress as dask_progress, wait

    files, missing = image_files(paths)
    if not files:
        raise TinynetError("no images to classify" + (" (no path given exists)" if missing else ""))
    model = str(model)
    if Path(model).exists():
        model = str(Path(model).resolve())  # workers may run in another directory
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    partitions = [[str(Path(f).resolve()) for f in files[i:i + batch_size]] for i in range(0, len(files), batch_size)]
    todo = [i for i in range(len(partitions)) if not (resume and (out / partition_name(i)).exists())]
    started = time.monotonic()
    cluster = None
    if scheduler is None:
        # Spawned worker processes (never forked after Numba's OpenMP started), one thread each.
        import dask
        dask.config.set({"distributed.worker.multiprocessing-method": "spawn"})
        cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    try:
        with Client(scheduler or cluster) as client:
            futures = [client.submit(classify_partition, i, partitions[i], model, str(out), top,
                                     key=f"tinynet-partition-{i}-{uuid.uuid4().hex}", pure=False, retries=2)
                       for i in todo]
            if progress and futures:
                dask_progress(futures)
            wait(futures)
            done = sum(f.result() for f in futures)
    finally:
        if cluster is not None:
            cluster.close()
    seconds = time.monotonic() - started
    return {"images": done, "partitions": len(todo), "skipped": len(partitions) - len(todo), "seconds": seconds,
            "images_per_second": done / seconds if seconds > 0 else 0.0}


def run_from_cli(args):
    """``tinynet classify --distributed``: returns the exit code."""
    _require_dask()
    if not args.out:
        raise TinynetError("--distributed needs --out PREDICTIONS.parquet (the folder to write)")
    if args.scheduler and args.workers:
        raise TinynetError("give --scheduler (an existing cluster) or --workers (a local one), not both")
    from tinynet import store
    model = args.model or store.default_name()
    result = classify_files(args.images, model, args.out, scheduler=args.scheduler, workers=args.workers,
                            top=args.top,
                            resume=args.resume, progress=sys.stderr.isatty())
    print(f"tinynet: {result['images']} images in {result['partitions']} partitions "
          f"({result['skipped']} kept from before) in {result['seconds']:.1f} s, "
          f"{result['images_per_second']:.1f} images/s -> {args.out}", file=sys.stderr)
    return 0
