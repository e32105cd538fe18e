"""Hostile servers (raw sockets on 127.0.0.1) and URLs: every one is a one-line DownloadError, quickly."""
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from tinynet import download, store
from tinynet.download import DownloadError


class RawServer:
    """Answers every connection with ``reply(conn)``: whatever bytes a hostile server could send."""

    def __init__(self, reply):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/w.pth"
        self.reply, self.done = reply, threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                try:
                    self.reply(conn, self.done)
                except OSError:
                    pass

    def close(self):
        self.done.set()
        self.sock.close()


def send(data):
    return lambda conn, done: conn.sendall(data)


def trickle(conn, done):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    while not done.is_set():
        conn.sendall(b"x")
        time.sleep(0.2)


MALFORMED = {
    "bad status line": send(b"HELLO THERE\r\n\r\n"),
    "150 headers": send(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\nbody"),
    "70 KB header": send(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\nbody"),
    "non-numeric Content-Length": send(b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nbody"),
    "negative Content-Length": send(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nbody"),
    "status with escape": send(b"HTTP/1.1 500 \x1b[2Jfake\r\nContent-Length: 0\r\n\r\n"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_response_is_a_one_line_error(case, tmp_path):
    server = RawServer(MALFORMED[case])
    try:
        with pytest.raises(DownloadError) as e:
            download.fetch(server.url, tmp_path / "out")
    finally:
        server.close()
    assert "\n" not in str(e.value) and "\x1b" not in str(e.value)


def test_trickling_server_hits_the_overall_deadline(tmp_path):
    server = RawServer(trickle)
    start = time.monotonic()
    try:
        with pytest.raises(DownloadError, match="not complete after"):
            download.fetch(server.url, tmp_path / "out", deadline_seconds=1)
    finally:
        server.close()
    assert time.monotonic() - start < 10


def test_body_over_the_size_cap_is_refused(tmp_path):
    server = RawServer(send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 300_000))
    try:
        with pytest.raises(DownloadError, match="allowed"):
            download.fetch(server.url, tmp_path / "out", max_bytes=100_000)
        with pytest.raises(DownloadError, match="announces"):
            announced = RawServer(send(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n"))
            try:
                download.fetch(announced.url, tmp_path / "out", max_bytes=100_000)
            finally:
                announced.close()
    finally:
        server.close()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "data:,hello", "ftp://127.0.0.1/x", "/etc/passwd", 42, None])
def test_only_http_and_https_urls_are_fetched(url, tmp_path):
    with pytest.raises(DownloadError, match="only http and https"):
        download.fetch(url, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_redirect_to_a_file_url_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret")
    server = RawServer(send(f"HTTP/1.1 302 Found\r\nLocation: file://{secret}\r\nContent-Length: 0\r\n\r\n".encode()))
    try:
        with pytest.raises(DownloadError):
            download.fetch(server.url, tmp_path / "out")
    finally:
        server.close()
    assert not (tmp_path / "out").exists() or (tmp_path / "out").read_bytes() != b"secret"


def test_locks_are_per_model(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path))
    store.models_dir().mkdir(parents=True)
    with store._locked("a"):
        acquired = threading.Event()

        def other():
            with store._locked("b"):
                acquired.set()
        threading.Thread(target=other, daemon=True).start()
        assert acquired.wait(5), "a pull of model b waited for the lock of model a"


def test_workdir_of_a_killed_process_is_removed_and_a_live_one_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path))
    folder = store.models_dir()
    folder.mkdir(parents=True)
    code = ("import os, sys, time; from tinynet import store\n"
            "with store._workdir() as w:\n"
            "    (w / 'part').write_bytes(b'x'); print(w, flush=True)\n"
            "    os._exit(0) if sys.argv[1] == 'die' else time.sleep(30)\n")
    env = {**os.environ, "TINYNET_HOME": str(tmp_path)}
    dead = subprocess.run([sys.executable, "-c", code, "die"], env=env, capture_output=True, text=True, check=True)
    dead_dir = dead.stdout.strip()
    assert os.path.isdir(dead_dir)
    live = subprocess.Popen([sys.executable, "-c", code, "live"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        live_dir = live.stdout.readline().strip()
        assert os.path.isdir(live_dir)
        with store._workdir():
            pass
        assert not os.path.exists(dead_dir), "a killed process's scratch folder was left behind"
        assert os.path.isdir(live_dir), "a running pull's scratch folder was removed"
    finally:
        live.kill()
        live.wait()
