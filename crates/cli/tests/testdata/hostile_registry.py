#!/usr/bin/env python3
"""A hostile registry for rbk's tests (issue 20, defect 1).

Listens on 127.0.0.1 (port 0: the kernel picks) and prints the port on its
first line. What each repository does:

  endless/manifests/*   200, chunked, no Content-Length, a body that never ends
  huge404/manifests/*   404 with a 100 MB body
  stall/manifests/*     200 with a Content-Length, then no bytes, ever
  silent/manifests/*    accepts the request and never answers
  stallblob/manifests/* a valid manifest whose config blob stalls mid-body
  norange/*, badrange/* a one-layer image; the layer's first GET is cut
                        after 10,000 bytes; later GETs of it answer a Range
                        with 200 and the whole blob (norange) or with 206
                        and a Content-Range that starts elsewhere (badrange)
  moving/*              the tag names an index of the one-layer image on
                        its first GET and an index of the empty image after;
                        manifests by digest are served as stored
  liar/*                the valid manifest and config, each sent with a
                        Docker-Content-Digest header naming other bytes

  retryafter/*          the manifest's first GET: 503 with Retry-After: 2
                        (seconds); later GETs and blobs as stored.
                        COUNTS["retryafter-gap"]: seconds between the first
                        two GETs
  retrydate/*           the same with an HTTP-date 3 s ahead
  throttled/*           every manifest GET: 429 with Retry-After: 86400
  redirect/*            basic auth required (401 without Authorization);
                        the one-layer image, each blob a 307 to
                        http://localhost:PORT/cdn/DIGEST (another host).
                        COUNTS["cdn-authorization"]: /cdn GETs that carried
                        an Authorization header

Pushes (HEAD of any blob: 404, so every blob is uploaded):

  pushendless      POST of an upload: 500, chunked, an error body that never ends
  pushhuge         POST of an upload: 400 with a 100 MB body
  pushstall        POST: 202; the blob's PUT is read, then never answered
  manifestendless  blobs are taken (202, then 201); the manifest's PUT gets a
                   400 whose chunked body never ends

Every request is counted; GET /counts returns the counts as JSON.
"""

import email.utils
import hashlib
import io
import json
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {}
TIMES = {}
LOCK = threading.Lock()

CONFIG = json.dumps(
    {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
).encode()
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": CONFIG_DIGEST,
            "size": len(CONFIG),
        },
        "layers": [],
    }
).encode()


def layered_image():
    # One uncompressed layer holding 64 KiB of varied bytes.
    data = bytes((i * 7919 + (i >> 8)) % 251 for i in range(65536))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("data")
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    layer = buf.getvalue()
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux",
         "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": len(layer),
            }],
        }
    ).encode()
    return manifest, config, layer, layer_digest


LAYERED, LAYERED_CONFIG, LAYER, LAYER_DIGEST = layered_image()


def index_of(manifest):
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
            "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }).encode()


BY_DIGEST = {
    "sha256:" + hashlib.sha256(doc).hexdigest(): doc
    for doc in (MANIFEST, LAYERED, CONFIG, LAYERED_CONFIG, LAYER)
}
LIE_DIGEST = "sha256:" + hashlib.sha256(b"lie").hexdigest()


def hang():
    # Long enough to outlast any timeout under test; the client hangs up.
    time.sleep(600)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        with LOCK:
            COUNTS[path] = COUNTS.get(path, 0) + 1
        try:
            self.route(path, parts)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route(self, path, parts):
        if path == "/counts":
            with LOCK:
                body = json.dumps(COUNTS).encode()
            return self.send(200, body, "application/json")
        if path in ("/v2", "/v2/"):
            return self.send(200, b"{}", "application/json")
        repo = parts[1] if len(parts) > 2 else ""
        kind = parts[2] if len(parts) > 2 else ""
        if repo == "endless" and kind == "manifests":
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b" " * 65536
            line = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
            while True:
                self.wfile.write(line)
        if repo == "huge404":
            self.send_response(404)
            total = 100 * 1024 * 1024
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(total))
            self.end_headers()
            chunk = b"E" * 65536
            for _ in range(total // len(chunk)):
                self.wfile.write(chunk)
            return
        if repo == "stall" and kind == "manifests":
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"{")
            self.wfile.flush()
            return hang()
        if repo == "silent":
            return hang()
        if repo == "stallblob" and kind == "manifests":
            return self.send(200, MANIFEST, "application/vnd.oci.image.manifest.v1+json")
        if repo == "stallblob" and kind == "blobs":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(CONFIG)))
            self.end_headers()
            self.wfile.write(CONFIG[:10])
            self.wfile.flush()
            return hang()
        if repo in ("norange", "badrange") and kind == "manifests":
            return self.send(200, LAYERED, "application/vnd.oci.image.manifest.v1+json")
        if repo in ("norange", "badrange") and kind == "blobs" and parts[3] != LAYER_DIGEST:
            return self.send(200, LAYERED_CONFIG, "application/octet-stream")
        if repo in ("norange", "badrange") and kind == "blobs":
            with LOCK:
                first = COUNTS[path] == 1
                asked = "Range %s %s" % (repo, self.headers.get("Range"))
                COUNTS[asked] = COUNTS.get(asked, 0) + 1
            if first:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(LAYER)))
                self.end_headers()
                self.wfile.write(LAYER[:10000])
                self.wfile.flush()
                self.close_connection = True
                return
            if repo == "norange" or not self.headers.get("Range"):
                return self.send(200, LAYER, "application/octet-stream")
            self.send_response(206)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Range", "bytes 5000-%d/%d" % (len(LAYER) - 1, len(LAYER)))
            self.send_header("Content-Length", str(len(LAYER) - 5000))
            self.end_headers()
            self.wfile.write(LAYER[5000:])
            return
        if repo == "moving" and kind == "manifests" and parts[3] == "1":
            with LOCK:
                first = COUNTS[path] == 1
            body = index_of(LAYERED if first else MANIFEST)
            return self.send(200, body, "application/vnd.oci.image.index.v1+json")
        if repo == "moving" and parts[3] in BY_DIGEST:
            media = ("application/vnd.oci.image.manifest.v1+json" if kind == "manifests"
                     else "application/octet-stream")
            return self.send(200, BY_DIGEST[parts[3]], media)
        if repo in ("retryafter", "retrydate") and kind == "manifests":
            with LOCK:
                times = TIMES.setdefault(repo, [])
                times.append(time.time())
                first = len(times) == 1
                if len(times) == 2:
                    COUNTS[repo + "-gap"] = times[1] - times[0]
            if first:
                self.send_response(503)
                if repo == "retryafter":
                    self.send_header("Retry-After", "2")
                else:
                    self.send_header("Retry-After",
                                     email.utils.formatdate(time.time() + 3, usegmt=True))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            return self.send(200, MANIFEST, "application/vnd.oci.image.manifest.v1+json")
        if repo in ("retryafter", "retrydate") and kind == "blobs" and parts[3] in BY_DIGEST:
            return self.send(200, BY_DIGEST[parts[3]], "application/octet-stream")
        if repo == "throttled":
            self.send_response(429)
            self.send_header("Retry-After", "86400")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if repo == "redirect" and not self.headers.get("Authorization"):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="hostile"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if repo == "redirect" and kind == "manifests":
            return self.send(200, LAYERED, "application/vnd.oci.image.manifest.v1+json")
        if repo == "redirect" and kind == "blobs":
            self.send_response(307)
            self.send_header("Location", "http://localhost:%d/cdn/%s"
                             % (self.server.server_address[1], parts[3]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts[0] == "cdn" and parts[1] in BY_DIGEST:
            if self.headers.get("Authorization"):
                with LOCK:
                    COUNTS["cdn-authorization"] = COUNTS.get("cdn-authorization", 0) + 1
            return self.send(200, BY_DIGEST[parts[1]], "application/octet-stream")
        if repo == "liar" and kind in ("manifests", "blobs"):
            is_manifest = kind == "manifests"
            body = MANIFEST if is_manifest else CONFIG
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json"
                             if is_manifest else "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Docker-Content-Digest", LIE_DIGEST)
            self.end_headers()
            self.wfile.write(body)
            return
        self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no such repository"}]}',
                  "application/json")

    def count(self):
        path = self.path.split("?")[0]
        with LOCK:
            key = self.command + " " + path
            COUNTS[key] = COUNTS.get(key, 0) + 1
        return path, path.strip("/").split("/")

    def do_HEAD(self):
        _, parts = self.count()
        if parts[1:3] == ["liar", "manifests"]:
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Content-Length", str(len(MANIFEST)))
            self.send_header("Docker-Content-Digest", LIE_DIGEST)
            self.end_headers()
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        path, parts = self.count()
        repo = parts[1] if len(parts) > 2 else ""
        try:
            if repo == "pushendless":
                return self.endless(500)
            if repo == "pushhuge":
                return self.huge(400)
            self.send_response(202)
            self.send_header("Location", "/v2/%s/blobs/uploads/session-1" % repo)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_PUT(self):
        path, parts = self.count()
        repo = parts[1] if len(parts) > 2 else ""
        kind = parts[2] if len(parts) > 2 else ""
        try:
            # Take the whole request body first, as a registry does.
            length = int(self.headers.get("Content-Length") or 0)
            while length > 0:
                got = self.rfile.read(min(length, 1 << 20))
                if not got:
                    return
                length -= len(got)
            if repo == "pushstall":
                return hang()
            if repo == "manifestendless" and kind == "manifests":
                return self.endless(400)
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def endless(self, code):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b" " * 65536
        line = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        while True:
            self.wfile.write(line)

    def huge(self, code):
        self.send_response(code)
        total = 100 * 1024 * 1024
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(total))
        self.end_headers()
        chunk = b"E" * 65536
        for _ in range(total // len(chunk)):
            self.wfile.write(chunk)

    def send(self, code, body, content_type):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
