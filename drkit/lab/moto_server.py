"""moto, served over plain HTTP and over TLS by one process, so both share one cloud.

moto keeps its state in the process: two ``moto.server`` processes would be
two clouds. Here one WSGI application (moto's own dispatcher) is served on the
plain port that boto3, Terraform and Ansible use and on a TLS port with the
lab's certificate (drkit.lab.tls) for clients that only speak TLS (pgBackRest).

S3 requests to the TLS name (``--s3-name s3.cloud.lab``) are path-style: moto
otherwise reads the first label of any dotted host as a bucket name
(virtual-host style), and "s3" is no bucket.

moto's backends are not thread-safe, and werkzeug serves each request in a
thread: Terraform's parallel AuthorizeSecurityGroupIngress calls on one group
once failed a lab.up with InvalidPermission.Duplicate for a rule that did not
exist yet. Requests are therefore handled one at a time, except S3's, which
touch distinct objects and are the large, slow ones (pgBackRest's uploads must
not hold up the reconciler's and the failover's EC2 and Route53 calls).

A request retried with the same ClientToken (EC2's idempotency token) gets the
first one's answer, as from AWS; moto ignores the token and created a second
resource or refused the retry. The AWS provider sends one with every
CreateLaunchTemplate so that a retry after a lost answer is safe: under load a
CI run's retry failed with "Launch template name already in use" for the
template its own first attempt had created (see ``Idempotent``).

The same loss hits requests without a token, about once per lab.up even on an
idle machine (seen in moto's log: the same AuthorizeSecurityGroupIngress body
twice, 97 ms apart, from two connections). A resend whose first copy succeeded
then fails: InvalidGroup.Duplicate for the group the first CreateSecurityGroup
made, InvalidSubnet.Conflict for the subnet the first CreateSubnet made,
InvalidPermission.NotFound for the rule the first revocation removed. AWS would
not have lost the answer; so a mutating EC2 request whose body repeats, within a
minute, one that succeeded, and that moto now refuses, gets the first answer
(see ``Idempotent``). Deletes are left as they are: a repeated delete's NotFound
is how AWS answers it, and what clients take for "deleted already".

A regional API outage (``drkit lab.chaos api-outage --region R [--service S]``)
is the lab's chaos file listing ``cloud-region/service``: requests signed for it
get 503 ServiceUnavailable, as a client sees a cloud region's API fail, while
other regions answer.

Two details a TLS client notices, both as a real endpoint behaves:
- connections end with a TLS close_notify (werkzeug closes the socket without
  one, which OpenSSL 3 clients report as "unexpected eof while reading");
- TCP_NODELAY on every connection (without it a request/response pair waits on
  delayed ACKs: ~14 ms per S3 request, a pgBackRest backup of a small cluster's
  ~1000 files took 54 s instead of 7 s).

    python -m drkit.lab.moto_server --host H --port 5000 \
        [--tls-port 443 --cert C --key K --s3-name s3.cloud.lab]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import ThreadedWSGIServer


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server with TCP_NODELAY and a clean TLS shutdown."""

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            with contextlib.suppress(OSError, ValueError):
                request.unwrap()
        super().shutdown_request(request)


_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/([^/]+)/aws4_request")


def scope_of(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(region, service) a request signs for (SigV4 credential scope), if any."""
    found = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return (found.group(1), found.group(2)) if found else None


def service_of(environ: dict[str, Any]) -> str | None:
    """The AWS service a request signs for, if any."""
    scope = scope_of(environ)
    return scope[1] if scope else None


class ApiOutages:
    """WSGI middleware: requests signed for a region's API that the lab's chaos file
    lists as down (``api_down``: ``region/service`` or ``region/*``) get 503
    ServiceUnavailable; the file is re-read when it changes."""

    def __init__(self, app: Callable[..., Iterable[bytes]], chaos_file: str | None) -> None:
        self.app = app
        self.path = chaos_file
        self._seen: tuple[float, set[str]] = (-1.0, set())

    def down(self) -> set[str]:
        try:
            mtime = os.stat(self.path).st_mtime if self.path else -1.0
        except FileNotFoundError:
            return set()
        if mtime != self._seen[0]:
            try:
                with open(self.path or "", encoding="utf-8") as handle:
                    entries = set(json.load(handle).get("api_down", []))
            except (OSError, ValueError):
                entries = set()
            self._seen = (mtime, entries)
        return self._seen[1]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        scope = scope_of(environ)
        down = self.down() if scope else set()
        if scope and ({f"{scope[0]}/{scope[1]}", f"{scope[0]}/*"} & down):
            body = json.dumps({"__type": "ServiceUnavailableException",
                               "message": f"lab chaos: {scope[1]} in {scope[0]} is down"})
            start_response("503 Service Unavailable", [("Content-Type", "application/json"),
                                                       ("Content-Length", str(len(body)))])
            return [body.encode()]
        return self.app(environ, start_response)


class Idempotent:
    """WSGI middleware: an EC2 request that carries a ClientToken is answered once.

    The first successful answer to (region, Action, ClientToken) is kept and
    replayed to a repeat with the same body; a repeat with other parameters gets
    AWS's IdempotentParameterMismatch. Run it under ``Serialized``, so a repeat
    that arrives while the first is still being answered waits for it. The last
    ``keep`` answers are kept (AWS keeps tokens for hours; a lab run's retries
    come within seconds)."""

    #: How long a mutating request's success is kept for a resent copy of it.
    RESENT_WITHIN_S = 60.0

    def __init__(self, app: Callable[..., Iterable[bytes]], keep: int = 2048) -> None:
        self.app = app
        self.keep = keep
        self.answers: OrderedDict[tuple[str, str, str], tuple[str, str, list, bytes]] = \
            OrderedDict()
        #: (region, body digest) -> (when, status, headers, answer) of mutating successes
        self.recent: OrderedDict[tuple[str, str], tuple[float, str, list, bytes]] = \
            OrderedDict()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        scope = scope_of(environ)
        length = environ.get("CONTENT_LENGTH") or ""
        if not scope or scope[1] != "ec2" or environ.get("REQUEST_METHOD") != "POST" \
                or not length.isdigit():
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)
        params = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        token = (params.get("ClientToken") or [""])[0]
        action = (params.get("Action") or [""])[0]
        digest = hashlib.sha256(body).hexdigest()
        if not token:
            if action.startswith(_READS):
                return self.app(environ, start_response)
            return self._resent(scope[0], action, digest, environ, start_response)
        key = (scope[0], action, token)
        if key in self.answers:
            kept_digest, status, headers, answer = self.answers[key]
            if kept_digest != digest:
                status, headers, answer = _ec2_error(
                    "IdempotentParameterMismatch",
                    f"the client token {token} was used with other parameters")
            start_response(status, headers)
            return [answer]
        seen: list[tuple[str, list]] = []

        def keep_start(status: str, headers: list, exc_info: Any = None) -> Any:
            seen.append((status, headers))
            return start_response(status, headers, exc_info) if exc_info \
                else start_response(status, headers)

        answer = b"".join(self.app(environ, keep_start))
        if seen and seen[-1][0].startswith("2"):
            self.answers[key] = (digest, seen[-1][0], seen[-1][1], answer)
            while len(self.answers) > self.keep:
                self.answers.popitem(last=False)
        return [answer]


    def _resent(self, region: str, action: str, digest: str, environ: dict[str, Any],
                start_response: Callable[..., Any]) -> Iterable[bytes]:
        """A mutating request without a token: moto's answer, except that a resent
        copy of a recent success that moto refuses gets that success (not a delete)."""
        now = time.monotonic()
        while self.recent and now - next(iter(self.recent.values()))[0] > self.RESENT_WITHIN_S:
            self.recent.popitem(last=False)
        seen: list[tuple[str, list]] = []
        answer = b"".join(self.app(environ, lambda status, headers, exc_info=None:
                                   seen.append((status, headers))))
        status, headers = seen[-1] if seen else ("500 Internal Server Error", [])
        kept = self.recent.get((region, digest))
        if kept and status.startswith("4") and not action.startswith("Delete"):
            _, status, headers, answer = kept
        elif status.startswith("2"):
            self.recent[(region, digest)] = (now, status, headers, answer)
            self.recent.move_to_end((region, digest))
        start_response(status, headers)
        return [answer]


#: EC2 actions that change nothing (never resent-checked, never kept).
_READS = ("Describe", "Get", "List", "Search")


def _ec2_error(code: str, message: str) -> tuple[str, list, bytes]:
    """An EC2 Query API error answer: (status, headers, body)."""
    body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>"
            f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{uuid.uuid4()}</RequestID></Response>").encode()
    return "400 Bad Request", [("Content-Type", "text/xml"),
                               ("Content-Length", str(len(body)))], body


class Serialized:
    """WSGI middleware: one request at a time through ``app``, S3's excepted."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if service_of(environ) == "s3":
            return self.app(environ, start_response)
        with self.lock:  # the body is produced inside the lock too
            return list(self.app(environ, start_response))


def serve(host: str, port: int, tls_port: int | None = None, cert: str | None = None,
          key: str | None = None, chaos_file: str | None = None) -> None:
    """Serve moto until killed; the TLS listener runs in a thread beside the plain one."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    from drkit.lab import moto_fixes

    moto_fixes.apply()
    app = ApiOutages(Serialized(Idempotent(DomainDispatcherApplication(create_backend_app))),
                     chaos_file)
    plain = _Server(host, port, app)
    if tls_port:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        tls = _Server(host, tls_port, app, ssl_context=context)
        threading.Thread(target=tls.serve_forever, name="moto-tls", daemon=True).start()
    plain.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto on a plain and a TLS port, one state")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--chaos-file", help="the lab's chaos.json (api_down: regional "
                        "APIs that answer 503)")
    parser.add_argument("--s3-name", action="append", default=[],
                        help="a host name S3 clients use path-style (repeatable)")
    args = parser.parse_args(argv)
    if args.tls_port and not (args.cert and args.key):
        parser.error("--tls-port needs --cert and --key")
    if args.s3_name:  # read by moto when it is imported (serve imports it)
        os.environ["MOTO_S3_CUSTOM_ENDPOINTS"] = ",".join(
            f"https://{name}" for name in args.s3_name)
    serve(args.host, args.port, args.tls_port or None, args.cert, args.key, args.chaos_file)


if __name__ == "__main__":
    main()
