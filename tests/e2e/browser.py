"""Headless Chromium for end-to-end tests: a page server of the tests' own (tests/browser: the test
page and the JsSIP bundle built from npm by scripts/install-deps.sh), and a browser started on one
of its pages with a WAV file as its fake microphone. The page posts back what it heard (a WAV) and
its log lines. Loopback only; the browser is stopped by its PID."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "browser")


def have_chromium():
    return shutil.which("chromium") is not None and os.path.exists(
        os.path.join(ROOT, "dist", "jssip.js"))


class PageServer:
    """Serves tests/browser on 127.0.0.1 and collects what pages post back."""

    def __init__(self):
        self.results = []
        self.logs = []
        self.got = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = urllib.parse.urlparse(self.path).path.lstrip("/") or "call.html"
                full = os.path.realpath(os.path.join(ROOT, path))
                if not full.startswith(ROOT + os.sep) or not os.path.isfile(full):
                    self.send_error(404)
                    return
                body = open(full, "rb").read()
                self.send_response(200)
                kind = "text/html" if full.endswith(".html") else "application/javascript"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                url = urllib.parse.urlparse(self.path)
                with outer.got:
                    if url.path == "/log":
                        outer.logs.append(body.decode("utf-8", "replace"))
                    else:
                        info = dict(urllib.parse.parse_qsl(url.query))
                        outer.results.append((info, body))
                    outer.got.notify_all()
                self.send_response(204)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, **query):
        return f"http://127.0.0.1:{self.port}/call.html?" + urllib.parse.urlencode(query)

    def wait_result(self, timeout):
        with self.got:
            self.got.wait_for(lambda: self.results, timeout)
            return self.results[0] if self.results else None

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser:
    """One headless Chromium on a page, its microphone a WAV file (looped)."""

    def __init__(self, url, mic_wav, log_path):
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={self.profile}",
             "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={mic_wav}",
             "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
             url],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
