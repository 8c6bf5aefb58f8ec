"""Noticing that a pipeline file breaks or heals: one line and one e-mail each time, never one per parse.

The DAG file must not reach the network at parse (Airflow's best practices), so the alert is not
sent from there. A long-running process looks at the folder every few seconds instead:
`adclick-ops run` next to the Airflow processes it started, and `adclick-ops watch-pipelines` (the
`pipeline-watch` service of the Compose stack). It validates the folder as the DAG file does (same
code, same snapshots), so it says the same thing.

Once per distinct broken content: the sha256 of each broken file's content that was alerted is kept
in `.watch.json` of the snapshot folder (written atomically), so a restart does not alert again, and
an edit that is still broken, but differently, alerts once more. The alert goes to the recipients of
the version that runs (`notify.email.to` of the file's last valid version), through the SMTP
connection that version names, read from the environment as Airflow reads it (AIRFLOW_CONN_<ID>).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from adclick_ops import jsonio
from adclick_ops.config.yamlio import YamlReadError, read_bounded

# pydantic and YAML are imported on first use: `adclick-ops` registers this command at every start

STATE_FILE = ".watch.json"
ALIVE_FILE = ".watch.alive"  # touched at each look of `watch-pipelines`
MAX_ERRORS = 10


@dataclass(frozen=True)
class Change:
    kind: str  # "broken" or "healed"
    file: str
    sha256: str
    errors: tuple[str, ...] = ()
    note: str | None = None  # what runs instead (or why nothing does)
    recipients: tuple[str, ...] = ()
    conn_id: str | None = None

    def line(self) -> str:
        if self.kind == "broken":
            first = f"; {self.errors[0]}" if self.errors else ""
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            return f"{self.file} does not validate{first}{more}. {self.note or ''}".rstrip()
        return f"{self.file} validates again (sha256 {self.sha256[:12]}): its DAGs follow it"

    def subject(self) -> str:
        return f"[adclick-ops] {Path(self.file).name} " + ("does not validate" if self.kind == "broken" else "validates again")

    def body(self) -> str:
        if self.kind == "healed":
            return f"{self.file} validates again (sha256 {self.sha256}). Its DAGs are rendered from it, without the last-good tag.\n"
        errors = "\n".join(self.errors)
        return f"{self.file} does not validate (sha256 {self.sha256}):\n\n{errors}\n\n{self.note or ''}\n\nRun `adclick-ops validate` to see every error.\n"


def _recipients(file: Any) -> tuple[tuple[str, ...], str | None]:
    to: list[str] = []
    conn_id = None
    for dag in file.dags.values():
        if dag.notify is not None:
            to += [str(a) for a in dag.notify.email.to if str(a) not in to]
            conn_id = conn_id or dag.notify.email.conn_id
    return tuple(to), conn_id


def _write_json(path: Path, data: Any) -> None:
    from adclick_ops.artifacts import write_bytes_atomic

    write_bytes_atomic(path, json.dumps(data, indent=1).encode())


class PipelineWatch:
    """Compares the pipelines folder with what was last reported; `check()` returns what changed since."""

    def __init__(self, pipelines: str | os.PathLike[str] | None = None):
        from adclick_ops import lastgood
        from adclick_ops.config import pipelines_dir

        self.folder = pipelines_dir(pipelines)
        self.snapshots = lastgood.snapshot_folder(self.folder)
        self.state_path = self.snapshots / STATE_FILE

    def _state(self) -> dict[str, dict[str, Any]]:
        try:
            data = jsonio.loads(self.state_path.read_bytes())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def check(self) -> list[Change]:
        from adclick_ops import lastgood
        from adclick_ops.config import load_catalog, pipeline_paths, shown_path

        catalog = load_catalog(self.folder)
        decision = lastgood.keep_last_good(catalog, self.snapshots)
        kept = {k.file.path: k for k in decision.kept}
        present = {shown_path(p): p for p in pipeline_paths(self.folder)}
        state = self._state()
        changes: list[Change] = []
        broken_now: set[str] = set()
        for shown, error in catalog.errors.items():
            path = present.get(shown)
            if path is None:
                continue
            broken_now.add(path.name)
            try:
                digest = lastgood.sha256(read_bounded(path, str(path)).decode("utf-8", "replace"))
            except YamlReadError as exc:  # not a regular file, too large: never opened; what it is stands for its content
                digest = lastgood.sha256(f"unreadable: {exc}")
            if state.get(path.name, {}).get("sha256") == digest:
                continue
            recipients, conn_id = _recipients(kept[shown].file) if shown in kept else ((), None)
            errors = tuple(str(i) for i in error.issues[:MAX_ERRORS])
            changes.append(Change("broken", shown, digest, errors, decision.notes.get(shown), recipients, conn_id))
            state[path.name] = {"sha256": digest}
        valid = {Path(f.path).name: f for f in catalog.files}
        for name in [n for n in state if n not in broken_now]:
            del state[name]
            f = valid.get(name)
            if f is None:  # removed, or not validating with its folder: its DAGs went with it
                continue
            recipients, conn_id = _recipients(f)
            changes.append(Change("healed", f.path, lastgood.sha256(f.document.text), (), None, recipients, conn_id))
        if changes:
            _write_json(self.state_path, state)
        return changes


def _connection(conn_id: str, env: dict[str, str]) -> dict[str, Any]:
    """The SMTP connection `conn_id` from AIRFLOW_CONN_<ID> in URI form, as Airflow reads it."""
    uri = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not uri or uri.lstrip().startswith("{"):
        raise ValueError(f"no SMTP connection {conn_id!r} in URI form in the environment (AIRFLOW_CONN_{conn_id.upper()})")
    parts = urlsplit(uri)
    extra = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return {
        "host": parts.hostname or "localhost",
        "port": parts.port,
        "login": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "from_email": extra.get("from_email") or "adclick-ops@localhost",
        "ssl": extra.get("disable_ssl", "false").lower() != "true",
        "starttls": extra.get("disable_tls", "false").lower() != "true",
    }


def send(change: Change, env: dict[str, str], timeout: float = 30) -> bool:
    """E-mail `change` to its recipients; False when it has none. Raises OSError or ValueError when it cannot be sent."""
    if not change.recipients:
        return False
    conn = _connection(change.conn_id or "smtp_default", env)
    message = EmailMessage()
    message["Subject"] = change.subject()
    message["From"] = conn["from_email"]
    message["To"] = ", ".join(change.recipients)
    message.set_content(change.body())
    message.add_alternative(f"<pre>{html.escape(change.body())}</pre>", subtype="html")
    if conn["ssl"]:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(conn["host"], conn["port"] or 465, timeout=timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(conn["host"], conn["port"] or 587, timeout=timeout)
    with smtp:
        if not conn["ssl"] and conn["starttls"]:
            smtp.starttls(context=ssl.create_default_context())
        if conn["login"]:
            smtp.login(conn["login"], conn["password"] or "")
        smtp.send_message(message)
    return True


def tell(watch: PipelineWatch, env: dict[str, str], say: Callable[[str], None]) -> None:
    """Check once: a line for each change, and its e-mail. Never raises for a folder or a mail server in trouble."""
    from adclick_ops.config import ConfigError

    try:
        changes = watch.check()
    except (ConfigError, OSError) as exc:  # the folder itself is gone: the DAG file says so too
        say(f"pipelines: {exc}")
        return
    for change in changes:
        say(f"pipelines: {change.line()}")
        try:
            if send(change, env):
                say(f"pipelines: e-mail to {', '.join(change.recipients)}: {change.subject()}")
        except (OSError, ValueError, smtplib.SMTPException) as exc:
            say(f"pipelines: the e-mail could not be sent: {exc}")


def cmd_watch(args: argparse.Namespace) -> int:
    watch = PipelineWatch(args.pipelines)

    def say(text: str) -> None:
        print(text, flush=True)

    say(f"watching {watch.folder} every {args.interval:g} s (last valid versions in {watch.snapshots})")
    while True:
        tell(watch, dict(os.environ), say)
        try:  # the health check of the Compose service looks at its age
            watch.snapshots.mkdir(parents=True, exist_ok=True)
            (watch.snapshots / ALIVE_FILE).touch()
        except OSError:
            pass
        if args.once:
            return 0
        time.sleep(args.interval)


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "watch-pipelines",
        help="print a line and e-mail the pipeline's recipients when a pipeline file breaks or heals",
        description="Look at the pipelines folder every few seconds, as the DAG file renders it; when a file stops "
        "validating (once per distinct broken content) or validates again, print a line and e-mail the recipients of "
        "its last valid version through the SMTP connection it names (AIRFLOW_CONN_<ID> in URI form).",
    )
    p.add_argument("--pipelines", default=None, help="pipelines folder (default: $ADCLICK_OPS_PIPELINES, else pipelines/)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between two looks (default: 10)")
    p.add_argument("--once", action="store_true", help="look once and exit")
    p.set_defaults(func=cmd_watch)
