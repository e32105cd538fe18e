"""``tinynet pull`` against a real HTTP server on 127.0.0.1, serving files built from the shared weights.

Registry entries point at the local server through a JSON registry file ($TINYNET_REGISTRY or the
``registry_file`` argument), the way a mirror would be configured; nothing inside tinynet is patched.
Expected digests are computed here with hashlib, independently of tinynet.
"""
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import tinynet
from tinynet import store
from tinynet.download import DownloadError, OfflineError
from conftest import REPO, run_cli, shared_path
CHECKPOINT = ("golden", "tv_mobilenet_v3_small.pth")  # a real torchvision state dict (seeded weights)


class Server:
    """Serves ``routes[path] = (body, mode)``; mode "ok", "truncate" (drop the connection half way),
    "extra" (send junk past Content-Length), "understate" (announce fewer bytes than sent), "slow" or
    "stall" (half the file, then a pause)."""

    def __init__(self):
        self.routes, self.requests = {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, mode = server.routes[self.path]
                announced = len(body) // 2 if mode == "understate" else len(body)
                self.send_response(200)
                self.send_header("Content-Length", str(announced))
                self.end_headers()
                if mode == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "stall":  # half the file, then nothing for a while
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    time.sleep(3)
                    return
                if mode == "slow":  # long enough for a second client to arrive while this one downloads
                    for i in range(0, len(body), len(body) // 10 + 1):
                        self.wfile.write(body[i:i + len(body) // 10 + 1])
                        time.sleep(0.05)
                    return
                self.wfile.write(body + (b"\0junk past the announced length" * 100 if mode == "extra" else b""))

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty store, and empty foreign caches, for this test only."""
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TINYNET_PROGRESS", "0")
    return tmp_path / "home"


def registry_file(tmp_path, **entry):
    fields = {"name": "tiny_v3", "arch": "mobilenet_v3_small", "file": "tiny_v3-00000000.pth", "license": "test",
              "top1": 1.0, "preprocess": {"preset": "torchvision"}, **entry}
    path = tmp_path / "registry.json"
    path.write_text(json.dumps([fields]))
    return path


def leftovers(home):
    """Everything in the store's folder except the lock file."""
    folder = home / "models"
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".lock")) if folder.exists() else []


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights.pth"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def test_good_download_is_verified_converted_and_works(server, home, tmp_path):
    original = shared_path(*CHECKPOINT)
    body = original.read_bytes()
    server.routes["/tiny.pth"] = (body, "ok")
    registry = registry_file(tmp_path, url=server.url + "/tiny.pth", sha256=sha256(body))
    path, how = store.pull("tiny_v3", registry_file=registry)
    assert how == server.url + "/tiny.pth" and path == home / "models" / "tiny_v3.safetensors"
    assert leftovers(home) == ["tiny_v3.safetensors"]
    x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
    assert np.array_equal(tinynet.load("tiny_v3").forward(x), tinynet.load(original).forward(x))
    assert store.pull("tiny_v3", registry_file=registry)[1] == "present"
    assert server.requests == ["/tiny.pth"]


def test_corrupted_download_is_rejected_and_nothing_is_stored(server, home, tmp_path):
    body = shared_path(*CHECKPOINT).read_bytes()
    damaged = bytearray(body)
    damaged[len(body) // 2] ^= 0xFF
    server.routes["/tiny.pth"] = (bytes(damaged), "ok")
    registry = registry_file(tmp_path, url=server.url + "/tiny.pth", sha256_prefix=sha256(body)[:8])
    with pytest.raises(DownloadError, match="does not match the published") as error:
        store.pull("tiny_v3", registry_file=registry)
    assert "`tinynet pull tiny_v3`" in str(error.value) and "\n" not in str(error.value)
    assert leftovers(home) == []


def test_interrupted_download_is_a_clean_error_and_nothing_is_stored(server, home, tmp_path):
    body = shared_path(*CHECKPOINT).read_bytes()
    server.routes["/tiny.pth"] = (body, "truncate")
    registry = registry_file(tmp_path, url=server.url + "/tiny.pth")  # unverified: only the length catches it
    with pytest.raises(DownloadError, match=f"connection lost after .* of {len(body)} bytes"):
        store.pull("tiny_v3", registry_file=registry)
    assert leftovers(home) == []


def test_bytes_past_content_length_are_ignored(server, home, tmp_path):
    body = shared_path(*CHECKPOINT).read_bytes()
    server.routes["/tiny.pth"] = (body, "extra")
    registry = registry_file(tmp_path, url=server.url + "/tiny.pth", sha256=sha256(body))
    store.pull("tiny_v3", registry_file=registry)
    assert tinynet.load("tiny_v3").arch == "mobilenet_v3_small"


def test_understated_content_length_fails_verification(server, home, tmp_path):
    body = shared_path(*CHECKPOINT).read_bytes()
    server.routes["/tiny.pth"] = (body, "understate")
    registry = registry_file(tmp_path, url=server.url + "/tiny.pth", sha256_prefix=sha256(body)[:8])
    with pytest.raises(DownloadError, match="does not match"):
        store.pull("tiny_v3", registry_file=registry)
    assert leftovers(home) == []


def test_http_error_is_reported(server, home, tmp_path):
    registry = registry_file(tmp_path, url=server.url + "/missing.pth")
    with pytest.raises(DownloadError, match="HTTP 404"):
        store.pull("tiny_v3", registry_file=registry)
    assert leftovers(home) == []


def test_no_network_gives_one_line_with_pull_and_import_commands(tmp_path):
    registry = registry_file(tmp_path, url=closed_port_url())
    env = {"TINYNET_HOME": str(tmp_path / "home"), "TINYNET_REGISTRY": str(registry), "TORCH_HOME": str(tmp_path / "t")}
    result = run_cli("pull", "tiny_v3", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "connection refused" in lines[0]
    assert "`tinynet pull tiny_v3`" in lines[0] and "`tinynet import tiny_v3-00000000.pth --name tiny_v3`" in lines[0]
    assert "Traceback" not in result.stderr


def test_classify_fetches_a_missing_default_model_and_fails_offline_in_one_line(tmp_path):
    registry = registry_file(tmp_path, name="mobilenet_v3_large", arch="mobilenet_v3_large",
                             file="mobilenet_v3_large-5c1a4163.pth", url=closed_port_url())
    env = {"TINYNET_HOME": str(tmp_path / "home"), "TINYNET_REGISTRY": str(registry), "TORCH_HOME": str(tmp_path / "t"),
           "TINYNET_PROGRESS": "0"}
    result = run_cli("classify", shared_path("images", "grace_hopper.jpg"), env=env)
    assert result.returncode == 1 and result.stdout == ""
    error = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error) == 1 and "`tinynet pull mobilenet_v3_large`" in error[0] and "tinynet import" in error[0]


def test_two_processes_pulling_the_same_name_download_once(server, tmp_path):
    body = shared_path(*CHECKPOINT).read_bytes()
    server.routes["/tiny.pth"] = (body, "slow")
    registry = registry_file(tmp_path, url=server.url + "/tiny.pth", sha256=sha256(body))
    env = {**os.environ, "TINYNET_HOME": str(tmp_path / "home"), "TINYNET_REGISTRY": str(registry),
           "TORCH_HOME": str(tmp_path / "t"), "TINYNET_PROGRESS": "0", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tinynet", "pull", "tiny_v3"]
    first = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert server.requests == ["/tiny.pth"]  # the second waited for the first and found the model
    assert leftovers(tmp_path / "home") == ["tiny_v3.safetensors"]
    assert sum("already in the store" in out for out, _ in outputs) == 1


def test_torchvision_cache_is_reused_without_network(home, tmp_path):
    body = shared_path(*CHECKPOINT).read_bytes()
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "tiny_v3-00000000.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(body)
    registry = registry_file(tmp_path, url=closed_port_url(), sha256_prefix=sha256(body)[:8])
    path, how = store.pull("tiny_v3", registry_file=registry)
    assert how == f"cache:{cached}"
    assert tinynet.load("tiny_v3").num_classes == 1000


def test_damaged_cache_file_is_ignored(home, tmp_path):
    body = shared_path(*CHECKPOINT).read_bytes()
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "tiny_v3-00000000.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(body[:-1])
    registry = registry_file(tmp_path, url=closed_port_url(), sha256_prefix=sha256(body)[:8])
    with pytest.raises(OfflineError):
        store.pull("tiny_v3", registry_file=registry)


def test_hugging_face_cache_is_reused(home, tmp_path):
    body = shared_path("golden", "timm_mobilenetv1_100.safetensors").read_bytes()
    repo = tmp_path / "hf" / "hub" / "models--timm--tiny_v1"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123" / "model.safetensors"
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(body)
    registry = registry_file(tmp_path, name="tiny_v1", arch="mobilenet_v1", file="model.safetensors",
                             hf_repo="timm/tiny_v1", url=closed_port_url(), preprocess={"preset": "timm"})
    path, how = store.pull("tiny_v1", registry_file=registry)
    assert how == f"cache:{snapshot}"
    assert tinynet.load("tiny_v1").meta["preprocess"] == {"preset": "timm"}


def tgz_with(member_name, data):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(member_name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_tensorflow_archive_download_extracts_the_tflite_member(server, home, tmp_path):
    tflite = shared_path("weights", "coral_test_data", "mobilenet_v2_1.0_224_quant.tflite").read_bytes()
    server.routes["/v2.tgz"] = (tgz_with("./mobilenet_v2_1.0_224_quant.tflite", tflite), "ok")
    registry = registry_file(tmp_path, name="tiny_tf", arch="mobilenet_v2", file="v2.tgz", url=server.url + "/v2.tgz",
                             member="mobilenet_v2_1.0_224_quant.tflite", preprocess={"preset": "tf"})
    store.pull("tiny_tf", registry_file=registry)
    model = tinynet.load("tiny_tf")
    assert model.classify(str(shared_path("images", "grace_hopper.jpg")), top=1)[0][0] == "military uniform"
    assert leftovers(home) == ["tiny_tf.safetensors"]


def test_archive_without_the_member_is_rejected(server, home, tmp_path):
    server.routes["/v2.tgz"] = (tgz_with("../../outside.tflite", b"not really a model"), "ok")
    registry = registry_file(tmp_path, name="tiny_tf", arch="mobilenet_v2", file="v2.tgz", url=server.url + "/v2.tgz",
                             member="mobilenet_v2_1.0_224.tflite")
    with pytest.raises(tinynet.WeightsError, match="expected mobilenet_v2_1.0_224.tflite in the archive"):
        store.pull("tiny_tf", registry_file=registry)
    assert leftovers(home) == []
    assert not list(tmp_path.rglob("outside.tflite"))


def test_ctrl_c_during_a_download_exits_130_quietly_and_leaves_nothing(server, tmp_path):
    body = shared_path(*CHECKPOINT).read_bytes()
    server.routes["/tiny.pth"] = (body, "stall")
    registry = registry_file(tmp_path, url=server.url + "/tiny.pth")
    env = {**os.environ, "TINYNET_HOME": str(tmp_path / "home"), "TINYNET_REGISTRY": str(registry),
           "TORCH_HOME": str(tmp_path / "t"), "TINYNET_PROGRESS": "0", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "tinynet", "pull", "tiny_v3"], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # inside the stalled read
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err == "" and out == ""
    assert leftovers(tmp_path / "home") == []
