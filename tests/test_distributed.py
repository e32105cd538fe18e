"""tinynet on a Dask cluster (tinynet.distributed): results equal single-process `tinynet classify --json`, one row per
input, broken images as error rows, and neither a killed worker nor a resumed job loses or repeats a row."""
import json
import os
import signal
import threading
import time

import pytest

distributed = pytest.importorskip("distributed", reason="the [distributed] extra (dask[distributed]) is not installed")
pq = pytest.importorskip("pyarrow.parquet", reason="the [distributed] extra (pyarrow) is not installed")

import tinynet
from tinynet.distributed import classify_files
from tinynet.io import save

from conftest import run_cli, shared_path

IMAGES = 200
PARTITION = 32


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small seeded MobileNet V3 with 1000 classes (ImageNet labels), quick on 2 cores."""
    path = tmp_path_factory.mktemp("model") / "small.safetensors"
    save(tinynet.create("mobilenet_v3_small", width=0.5, num_classes=1000, seed=7), path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of ~200 real photos plus a truncated JPEG and a text file named .jpg: (folder, broken names)."""
    source = sorted(p for p in shared_path("images", "imagenet_val_1300", "data").rglob("*") if p.is_file())[:IMAGES]
    folder = tmp_path_factory.mktemp("photos")
    for p in source:
        (folder / p.name).symlink_to(p)
    (folder / "zz_truncated.jpg").write_bytes(source[0].read_bytes()[:600])
    (folder / "zz_text.jpg").write_text("not an image\n")
    return folder, {"zz_truncated.jpg", "zz_text.jpg"}


def rows(out):
    return pq.read_table(out).to_pylist()


def test_cluster_rows_equal_single_process_json(model_file, photos, tmp_path):
    folder, broken = photos
    single = run_cli("classify", folder, "--model", model_file, "--json", "--top", "5")
    assert single.returncode == 1, single.stderr  # the broken files make it fail at the end
    records = [json.loads(line) for line in single.stdout.splitlines()]
    expected = {r["image"]: r["predictions"] for r in records if "predictions" in r}
    out = tmp_path / "predictions.parquet"
    result = run_cli("classify", "--distributed", "--workers", "2", "--out", out, "--model", model_file, folder)
    assert result.returncode == 0, result.stderr
    assert "images/s" in result.stderr
    got = rows(out)
    assert len(got) == len({r["path"] for r in got}) == len(expected) + len(broken)
    by_name = {os.path.basename(r["path"]): r for r in got}
    for name in broken:
        assert by_name[name]["error"] and by_name[name]["labels"] == []
    for image, predictions in expected.items():
        row = by_name[os.path.basename(image)]
        assert row["error"] is None
        assert row["labels"] == [p["label"] for p in predictions]
        assert [round(p, 6) for p in row["probabilities"]] == [p["probability"] for p in predictions]
        assert len(row["class_ids"]) == len(predictions) == 5


class SlowTasks(distributed.WorkerPlugin):
    """Makes each partition take a while, so that a worker can be killed in the middle of the job."""

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing":
            time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def test_killed_worker_loses_and_repeats_no_row(model_file, photos, cluster, tmp_path):
    import cloudpickle
    import sys
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    folder, broken = photos
    out = tmp_path / "out"
    with distributed.Client(cluster) as client:
        client.register_plugin(SlowTasks(), name="slow")
        pids = list(client.run(os.getpid).values())

        def kill_one_worker_midway():
            while not out.exists() or not any(out.glob("part-*.parquet")):
                time.sleep(0.05)
            os.kill(pids[0], signal.SIGKILL)

        killer = threading.Thread(target=kill_one_worker_midway, daemon=True)
        killer.start()
        result = classify_files([folder], model_file, out, scheduler=cluster.scheduler_address,
                                batch_size=PARTITION, progress=False)
        killer.join(timeout=1)
        assert not killer.is_alive()
        client.unregister_worker_plugin("slow")
    paths = [r["path"] for r in rows(out)]
    assert len(paths) == len(set(paths)) == IMAGES + len(broken) == result["images"]
    assert pids[0] not in client_pids(cluster)


def client_pids(cluster):
    with distributed.Client(cluster) as client:
        return set(client.run(os.getpid).values())


def test_resume_keeps_written_partitions_and_writes_the_rest(model_file, photos, cluster, tmp_path):
    folder, broken = photos
    out = tmp_path / "out"
    first = classify_files([folder], model_file, out, scheduler=cluster.scheduler_address, batch_size=PARTITION,
                           progress=False)
    parts = sorted(out.glob("part-*.parquet"))
    assert first["partitions"] == len(parts) == -(-(IMAGES + len(broken)) // PARTITION)
    kept = parts[0].stat().st_mtime_ns
    parts[1].unlink()
    again = classify_files([folder], model_file, out, scheduler=cluster.scheduler_address, batch_size=PARTITION,
                           resume=True, progress=False)
    assert (again["partitions"], again["skipped"]) == (1, len(parts) - 1)
    assert parts[0].stat().st_mtime_ns == kept
    paths = [r["path"] for r in rows(out)]
    assert len(paths) == len(set(paths)) == IMAGES + len(broken)
