#!/usr/bin/python3
"""Stand-in for mailpit: SMTP on 1025 into memory, a JSON API on 8025 in mailpit's shapes.

`mailpit` serves; `mailpit readyz` exits 0 when the server answers, as the real binary does.
"""

import email
import email.policy
import json
import signal
import sys
import threading
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MESSAGES: list[dict] = []
LOCK = threading.Lock()


def _addresses(header) -> list[dict]:
    return [{"Name": a.display_name, "Address": a.addr_spec} for a in (header.addresses if header else ())]


class Sink:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        record = {
            "ID": uuid.uuid4().hex,
            "Subject": str(message.get("Subject", "")),
            "From": (_addresses(message.get("From")) or [{"Name": "", "Address": envelope.mail_from}])[0],
            "To": _addresses(message.get("To")),
            "Text": text.get_content() if text else "",
            "HTML": html.get_content() if html else "",
            "Attachments": [{"FileName": part.get_filename()} for part in message.iter_attachments()],
        }
        with LOCK:
            MESSAGES.insert(0, record)
        return "250 Message accepted for delivery"


class Api(BaseHTTPRequestHandler):
    def _send(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        with LOCK:
            messages = list(MESSAGES)
        if path in ("/readyz", "/livez"):
            self._send(200, "ok")
        elif path == "/api/v1/messages":
            summaries = [{k: v for k, v in m.items() if k not in ("Text", "HTML")} for m in messages]
            self._send(200, {"total": len(messages), "messages_count": len(messages), "messages": summaries})
        elif path.startswith("/api/v1/message/"):
            found = [m for m in messages if m["ID"] == path.rsplit("/", 1)[1]]
            self._send(200 if found else 404, found[0] if found else "message not found")
        else:
            self._send(404, "not found")

    def log_message(self, format, *args):  # noqa: A002 (http.server's name)
        pass


def main() -> int:
    if sys.argv[1:] == ["readyz"]:
        try:
            with urllib.request.urlopen("http://127.0.0.1:8025/readyz", timeout=5) as response:
                return 0 if response.status == 200 else 1
        except OSError:
            return 1
    from aiosmtpd.controller import Controller

    # As PID 1 the process gets no default SIGTERM handler: stop at once on `docker-compose down`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    controller = Controller(Sink(), hostname="0.0.0.0", port=1025)
    controller.start()
    print("mailpit stand-in: SMTP on 1025, API on 8025", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8025), Api).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
