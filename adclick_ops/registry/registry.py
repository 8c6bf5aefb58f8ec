"""The model registry of one DAG: numbered versions with their model cards, the champion pointer, its history.

Layout under `<model_dir>/registry/<dag_id>/` (a local folder or an object-storage prefix):

    models/<sha256>.onnx      each model once, an ONNX file named by its content
    versions/000001.json      the model card of version 1; creating it claims the number
    champion.json             which version serves, and every change with its time and reason

`champion.json` only ever changes by compare-and-swap, so two runs deciding at once cannot both
win against the same champion: the second one re-reads, re-scores the new champion and decides
again. `<model_dir>/<model_file>` (model/model.sav) is kept a copy of the champion.

A version whose card names an earlier format (`adclick-model/1`, skops) is never read here: it is
refused with the command that converts it, `adclick-ops models migrate` (registry.migrate).
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import logging
import re
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adclick_ops import jsonio
from adclick_ops.artifacts import _is_local, as_path, write_bytes_atomic
from adclick_ops.config.models import Training, TrainingJob
from adclick_ops.config.vocabulary import METRICS
from adclick_ops.registry.serialization import FORMAT, SUFFIX, load_model_bytes
from adclick_ops.registry.serialization import MAX_BYTES as MAX_COPY_BYTES
from adclick_ops.registry.store import LocalStore, ObjectStore, open_store, read_local_file
from adclick_ops.steps.promotion import Comparison

if TYPE_CHECKING:
    from adclick_ops.registry.serialization import OnnxModel
    from adclick_ops.steps.promotion import Gates

# The champion's copy when a caller names only the folder (the monitor's ADCLICK_MODEL_DIR).
DEFAULT_MODEL_FILE: str = Training.model_fields["model_file"].default

log = logging.getLogger(__name__)

POINTER = "champion.json"
MAX_ATTEMPTS = 100
# actions in the history; the first two come from runs, the last two from people
PROMOTED, REJECTED, PROMOTE, ROLLBACK = "promoted", "rejected", "promote", "rollback"
# a run whose model is identical to an existing version's: recorded against that version, no new one
RETRAINED = "retrained"


class RegistryError(RuntimeError):
    """A registry operation that cannot be done as asked; the message says why and what exists."""


class DamagedRegistryError(RegistryError):
    """A registry file that cannot be read as what it should be; the message names the file, what is wrong and the repair.

    `problem`, when known, is what is wrong alone (`not a regular file but a FIFO (named pipe)`), for a message that
    gives another repair."""

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem


POINTER_FIELDS = {"dag_id", "champion", "updated_at", "events"}
CARD_FIELDS = {"version", "dag_id", "created_at", "run_id", "metrics", "dataset", "model", "pipeline", "packages"}
CARD_MODEL_FIELDS = {"file", "sha256", "features"}


def parse_json_object(data: bytes, where: str, repair: str) -> dict[str, Any]:
    """`data` as a JSON object, or a DamagedRegistryError in one line: the file, what is wrong, how to repair it."""
    if not data.strip():
        raise DamagedRegistryError(f"{where}: the file is empty; {repair}")
    try:  # the project's bounded reader: size, nesting and numbers (NaN is kept: a metric may be undefined)
        value = jsonio.loads(data, strict_numbers=False)
    except ValueError as exc:  # JsonLimitError: not UTF-8, not JSON, too deep or too large, said in its message
        raise DamagedRegistryError(f"{where}: {exc}; {repair}") from None
    if not isinstance(value, dict):
        raise DamagedRegistryError(f"{where}: expected a JSON object, found {type(value).__name__}; {repair}")
    return value


_SHA256 = re.compile(r"[0-9a-f]{64}")
# what a card's model.file may name: its model by content, in this format or in the one of earlier versions (.model)
MODEL_SUFFIXES = (SUFFIX, ".model")


def _card_model_problem(model: dict[str, Any]) -> str | None:
    """What is wrong with a card's model fields (sha256, file, features), or None. The file is named by the sha256, so
    a card never makes the registry open a file outside its models folder."""
    digest, name, features = model["sha256"], model["file"], model["features"]
    if not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
        return f"model.sha256 is {_shown(digest)}; expected 64 lowercase hexadecimal digits"
    expected = [f"models/{digest}{suffix}" for suffix in MODEL_SUFFIXES]
    if name not in expected:
        return f"model.file is {_shown(name)}; expected {' or '.join(map(repr, expected))}, the file named by its model.sha256"
    if not (isinstance(features, list) and features and all(isinstance(f, str) and f for f in features)):
        return f"model.features is {_shown(features)}; expected a list of feature names (non-empty strings)"
    repeated = sorted(f for f, count in Counter(features).items() if count > 1)
    if repeated:
        return f"model.features names {', '.join(map(json.dumps, repeated))} more than once; each feature must appear once"
    return None


def _shown(value: Any) -> str:
    """A card's value in an error message: as JSON, cut to a line's worth."""
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _problem_line(exc: Exception, where: Any) -> str:
    """A problem found by `models check`, in one line naming the file."""
    if isinstance(exc, RegistryError):
        return str(exc)
    return f"{where}: cannot be read: {getattr(exc, 'strerror', None) or exc}; check its owner and permissions, or restore it from a backup"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def operator_name() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def registry_location(model_dir: str, dag_id: str) -> str:
    return f"{str(model_dir).rstrip('/')}/registry/{dag_id}"


def _version_name(number: int) -> str:
    return f"versions/{number:06d}.json"


def champion_stack(events: list[dict[str, Any]]) -> list[int]:
    """The champions in order of taking over; a rollback pops the last one, so the one before is next."""
    stack: list[int] = []
    for event in events:
        if event["action"] in (PROMOTED, PROMOTE):
            stack.append(event["version"])
        elif event["action"] == ROLLBACK and stack:
            stack.pop()
    return stack


ACTIONS = (PROMOTED, REJECTED, PROMOTE, ROLLBACK, RETRAINED)


def _is_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _event_problem(event: Any) -> str | None:
    """What is wrong with one change of the pointer's history, or None: every reader (list, show, rollback, the
    decisions of later runs) relies on these fields."""
    if not isinstance(event, dict):
        return f"found {type(event).__name__}; expected a change (an object)"
    if event.get("action") not in ACTIONS:
        return f"action is {_shown(event.get('action'))}; expected one of {', '.join(ACTIONS)}"
    if not _is_number(event.get("version")):
        return f"version is {_shown(event.get('version'))}; expected a version number"
    if not (event.get("from") is None or _is_number(event.get("from"))):
        return f"from is {_shown(event.get('from'))}; expected a version number or null"
    wrong = [k for k in ("at", "reason", "by") if not isinstance(event.get(k), str)]
    return f"{', '.join(wrong)} must be text, found {', '.join(_shown(event.get(k)) for k in wrong)}" if wrong else None


def run_decisions(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The event in which a run decided about each version (promoted or rejected, with the reason), by version."""
    return {e["version"]: e for e in events if e["action"] in (PROMOTED, REJECTED)}


@dataclass(frozen=True)
class Outcome:
    """What a run's decision did: the version, whether it became champion, and why (not)."""

    version: int
    promoted: bool
    champion: int | None  # the champion after the decision
    previous_champion: int | None
    summary: str
    reasons: tuple[str, ...]
    fails_run: bool = False
    champion_file_error: str | None = None
    kind: str = "won"  # steps.promotion.KINDS
    comparison: Comparison | None = None
    failed: tuple[str, ...] = ()  # the failed gates, short

    def as_json(self) -> dict[str, Any]:
        return {
            "model_version": self.version,
            "promoted": self.promoted,
            "champion_version": self.champion,
            "previous_champion_version": self.previous_champion,
            "decision": self.summary,
            "reasons": list(self.reasons),
            "decision_kind": self.kind,
            "comparison": self.comparison.as_json() if self.comparison else None,
        } | ({"champion_file_error": self.champion_file_error} if self.champion_file_error else {})


class Registry:
    def __init__(self, model_dir: str, dag_id: str, model_file: str = DEFAULT_MODEL_FILE):
        self.dag_id = dag_id
        self.model_dir = str(model_dir)
        self.location = registry_location(model_dir, dag_id)
        self.store: LocalStore | ObjectStore = open_store(self.location)
        self.champion_file = as_path(self.model_dir) / model_file

    @classmethod
    def for_job(cls, job: TrainingJob) -> Registry:
        """The registry of the DAG that `job` trains for."""
        return cls(job.model_dir, job.dag_id, job.model_file)

    def sweep(self) -> list[str]:
        """Remove what writers killed half-way left: in the registry, and beside the champion file."""
        from adclick_ops.artifacts import sweep_temporaries

        return self.store.sweep() + sweep_temporaries(self.champion_file.parent, recursive=False)

    # --- versions ---------------------------------------------------------------------------------

    def versions(self) -> list[int]:
        return sorted(int(n[:-5]) for n in self.store.list("versions") if n.endswith(".json") and n[:-5].isdigit())

    def _card_repair(self, number: int) -> str:
        return (
            f"restore it from a backup, or move it out of {self.store.path('versions')} to give up version {number}; "
            f"if it is the champion, first promote another version: adclick-ops models promote VERSION --dag {self.dag_id} --reason repair"
        )

    def card(self, number: int) -> dict[str, Any]:
        name = _version_name(number)
        try:
            data = self.store.read(name)
        except DamagedRegistryError as exc:  # a folder, a FIFO, a file too large
            if exc.problem is None:
                raise
            raise DamagedRegistryError(f"{self.store.path(name)}: {exc.problem}; {self._card_repair(number)}", exc.problem) from None
        if data is None:
            known = self.versions()
            listing = f"versions: {', '.join(map(str, known))}" if known else "no version yet"
            raise RegistryError(f"{self.dag_id}: no version {number} in {self.location} ({listing})")
        where, repair = str(self.store.path(name)), self._card_repair(number)
        card = parse_json_object(data, where, repair)
        unknown = sorted(set(card) - CARD_FIELDS)
        missing = sorted({"version", "model"} - set(card))
        model = card.get("model")
        if unknown or missing:
            what = "; ".join(
                p
                for p in (f"unknown field(s) {', '.join(unknown)}" if unknown else "", f"missing {', '.join(missing)}" if missing else "")
                if p
            )
            raise DamagedRegistryError(f"{where}: not a model card ({what}); {repair}")
        if not isinstance(model, dict) or not CARD_MODEL_FIELDS <= set(model) or card["version"] != number:
            found = "its version field says " + repr(card["version"]) if card["version"] != number else "model needs file, sha256, features"
            raise DamagedRegistryError(f"{where}: not the model card of version {number} ({found}); {repair}")
        problem = _card_model_problem(model)
        if problem:
            raise DamagedRegistryError(f"{where}: not the model card of version {number}: {problem}; {repair}")
        return card

    def cards(self) -> list[dict[str, Any]]:
        return [self.card(n) for n in self.versions()]

    def model_bytes(self, number: int) -> bytes:
        card = self.card(number)
        name = card["model"]["file"]
        data = self.store.read(name)
        if data is None:
            raise RegistryError(f"{self.store.path(name)}: the model file of version {number} is missing")
        if hashlib.sha256(data).hexdigest() != card["model"]["sha256"]:
            raise RegistryError(f"{self.store.path(name)}: the model file of version {number} does not match its card's sha256")
        return data

    def load_model(self, number: int, threads: int = 1) -> OnnxModel:
        """Version `number`, checked against its card (sha256, format, features) and by the ONNX checks, ready to score."""
        card = self.card(number)
        self.require_current_format(card)
        source = f"{self.store.path(card['model']['file'])} (version {number})"
        features = card["model"]["features"]
        try:
            model = load_model_bytes(self.model_bytes(number), source, n_features=len(features), threads=threads)
        except MemoryError:  # its message is empty: say what could not be done
            raise RegistryError(f"{source}: not enough memory to read and check the model file") from None
        if model.info.features != features:
            # the card's order is the order the rows are given in: another order scores every row wrong, silently
            said = json.dumps(model.info.features) if model.info.features else "no feature list (or one of another width)"
            raise DamagedRegistryError(
                f"{source}: the model file was trained on the features {said}, its card "
                f"{self.store.path(_version_name(number))} names {json.dumps(features)}: they are not of the same model"
            )
        return model

    def require_current_format(self, card: dict[str, Any]) -> None:
        """Refuse, without reading its file, a version saved in a format of earlier adclick-ops versions."""
        found = card["model"].get("format")
        if found != FORMAT:
            raise RegistryError(
                f"{self.dag_id}: version {card['version']} was saved by an earlier adclick-ops in the {found or 'skops'} format; "
                f"convert the registry to ONNX once with: adclick-ops models migrate --dag {self.dag_id}"
            )

    def legacy_versions(self) -> list[int]:
        """The versions whose model is still in a format of earlier adclick-ops versions."""
        return [card["version"] for card in self.cards() if card["model"].get("format") != FORMAT]

    def add_version(self, blob: bytes, card: dict[str, Any]) -> int:
        """Keep `blob` with its card as the next version; returns the number.

        Adding the same model for the same run again (a retried task) returns the existing version.
        """
        self.sweep()
        digest = hashlib.sha256(blob).hexdigest()
        model_name = f"models/{digest}{SUFFIX}"
        if not self.store.exists(model_name):
            self.store.write(model_name, blob)
        for existing in reversed(self.cards()):
            if existing.get("run_id") == card.get("run_id") and existing["model"]["sha256"] == digest:
                return int(existing["version"])
        number = (self.versions() or [0])[-1] + 1
        model = {
            **card.get("model", {}),
            "file": model_name,
            "sha256": digest,
            "bytes": len(blob),
            "format": FORMAT,
        }
        for _ in range(MAX_ATTEMPTS):
            full = {
                "version": number,
                "dag_id": self.dag_id,
                "created_at": now(),
                **card,
                "model": model,
            }
            if self.store.create(
                _version_name(number),
                json.dumps(full, indent=2, sort_keys=False).encode(),
            ):
                return number
            number += 1  # another run claimed it first
        raise RegistryError(f"{self.location}: could not claim a version number after {MAX_ATTEMPTS} tries")

    def identical_version(self, blob: bytes, run_id: str) -> int | None:
        """The version, trained by another run, whose model is byte for byte `blob`; None if there is none."""
        digest = hashlib.sha256(blob).hexdigest()
        for existing in self.cards():
            if existing["model"].get("sha256") == digest and existing.get("run_id") != run_id:
                return int(existing["version"])
        return None

    def decided(self, number: int) -> bool:
        """Whether a run decided about version `number`, or a person made it champion."""
        return any(e["version"] == number and e["action"] in (PROMOTED, REJECTED, PROMOTE) for e in self.history())

    def record_retrain(self, number: int, run_id: str, by: str) -> Outcome:
        """Record that run `run_id` produced version `number`'s model again; the champion does not move.

        A retried task finds its event and records nothing twice."""
        card = self.card(number)
        self.sweep()

        def change(state: dict[str, Any]) -> dict[str, Any] | None:
            if any(e["action"] == RETRAINED and e.get("run_id") == run_id for e in state["events"]):
                return None
            serving = state["champion"]
            same = "it is the champion" if serving == number else f"the champion stays version {serving}"
            return {
                "at": now(),
                "action": RETRAINED,
                "version": number,
                "from": serving,
                "run_id": run_id,
                "reason": f"identical: run {run_id} trained the model of version {number} (run {card.get('run_id')}) again; {same}",
                "by": by,
            }

        state, event = self._change(change)
        if event is None:
            event = next(e for e in state["events"] if e["action"] == RETRAINED and e.get("run_id") == run_id)
        return Outcome(
            number,
            False,
            state["champion"],
            event["from"],
            f"not promoted: {event['reason']}",
            (event["reason"],),
            champion_file_error=self.sync_champion_file(),
            kind="identical",
        )

    def replace_model(self, number: int, blob: bytes, onnx: dict[str, Any], replaced: dict[str, Any]) -> dict[str, Any]:
        """Give version `number` the ONNX model `blob` in place of its file in an earlier format (`adclick-ops models migrate`).

        The card keeps its number, metrics and history, and names the file it replaced; the old file stays in place.
        """
        card = self.card(number)
        digest = hashlib.sha256(blob).hexdigest()
        model_name = f"models/{digest}{SUFFIX}"
        if not self.store.exists(model_name):
            self.store.write(model_name, blob)
        card["model"] = {
            **card["model"],
            "file": model_name,
            "sha256": digest,
            "bytes": len(blob),
            "format": FORMAT,
            "onnx": onnx,
            "migrated_from": replaced,
        }
        self.store.write(_version_name(number), json.dumps(card, indent=2, sort_keys=False).encode())
        return card

    # --- the champion pointer -----------------------------------------------------------------------

    def state(self) -> tuple[dict[str, Any], str | None]:
        try:
            data, tag = self.store.read_tagged(POINTER)
        except DamagedRegistryError as exc:  # a FIFO, a folder, a file too large: promote repairs these too
            if exc.problem is None:
                raise
            raise DamagedRegistryError(f"{self.store.path(POINTER)}: {exc.problem}; {self._pointer_repair()}", exc.problem) from None
        if data is None:
            return self._empty_state(), None
        return self._parse_state(data), tag

    def _empty_state(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "champion": None, "updated_at": None, "events": []}

    def _pointer_repair(self) -> str:
        return (
            f"repair it with: adclick-ops models promote VERSION --dag {self.dag_id} --reason repair "
            f"(it keeps the damaged file beside it; adclick-ops models list --dag {self.dag_id} shows the versions)"
        )

    def _parse_state(self, data: bytes) -> dict[str, Any]:
        where = str(self.store.path(POINTER))
        repair = self._pointer_repair()
        state = parse_json_object(data, where, repair)
        unknown, missing = sorted(set(state) - POINTER_FIELDS), sorted(POINTER_FIELDS - {"updated_at"} - set(state))
        if unknown or missing:
            what = "; ".join(
                p
                for p in (f"unknown field(s) {', '.join(unknown)}" if unknown else "", f"missing {', '.join(missing)}" if missing else "")
                if p
            )
            raise DamagedRegistryError(f"{where}: not a champion pointer ({what}); {repair}")
        champion, events = state["champion"], state["events"]
        if not (champion is None or (isinstance(champion, int) and not isinstance(champion, bool))):
            raise DamagedRegistryError(f"{where}: champion must be a version number or null, found {champion!r}; {repair}")
        if not isinstance(events, list):
            raise DamagedRegistryError(f"{where}: events must be a list of changes, found {type(events).__name__}; {repair}")
        for i, event in enumerate(events):
            problem = _event_problem(event)
            if problem:
                raise DamagedRegistryError(f"{where}: events[{i}]: {problem}; {repair}")
        return state

    def champion(self) -> int | None:
        return self.state()[0]["champion"]

    def history(self) -> list[dict[str, Any]]:
        return self.state()[0]["events"]

    def decisions(self) -> dict[int, dict[str, Any]]:
        """The run's decision about each version (promoted or rejected, with the reason)."""
        return run_decisions(self.history())

    def _change(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Apply `change` (state -> event to append, or None for no change) by compare-and-swap."""
        for _ in range(MAX_ATTEMPTS):
            state, tag = self.state()
            event = change(state)
            if event is None:
                return state, None
            new = dict(state)
            new["events"] = [*state["events"], event]
            if event["action"] not in (REJECTED, RETRAINED):
                new["champion"] = event["version"]
            new["updated_at"] = event["at"]
            if new.get("champion") != state.get("champion"):
                self._drop_copy()
            if self.store.replace_if(POINTER, json.dumps(new, indent=2).encode(), tag):
                return new, event
        raise RegistryError(f"{self.location}/{POINTER}: too many concurrent changes; try again")

    def sync_champion_file(self) -> str | None:
        """Make `<model_dir>/<model_file>` the champion's bytes; returns a problem instead of raising.

        Several processes may do this at once after a change: each re-reads the pointer after its
        write and writes again if the champion moved meanwhile, so the last write is the champion.
        """
        written = None
        try:
            for _ in range(MAX_ATTEMPTS):
                champion = self.champion()
                if champion is None or champion == written:
                    return None
                try:
                    blob = self.model_bytes(champion)
                except RegistryError:
                    # the copy is the champion or absent, never another version's bytes
                    if self._copy_of_ours() is not None:
                        self.champion_file.unlink()
                    raise
                if self._copy_of_ours() != blob:
                    write_bytes_atomic(self.champion_file, blob)
                written = champion
        except Exception as exc:  # noqa: BLE001 - the registry is right; the convenience copy is behind
            log.error("could not update %s with the champion: %s", self.champion_file, exc)
            return f"{type(exc).__name__}: {exc}"
        return None

    def _drop_copy(self) -> None:
        """Remove the champion's copy before the pointer names another champion, so that a process killed before it
        writes the new copy leaves none rather than the former champion's bytes (sync_champion_file writes it after)."""
        try:
            if self._copy_of_ours() is not None:
                self.champion_file.unlink()
        except (RegistryError, OSError) as exc:  # a file it did not write stays; sync_champion_file says why
            log.warning("%s: the champion's copy was not removed before the change: %s", self.champion_file, exc)

    def _copy_of_ours(self) -> bytes | None:
        """The bytes of the champion's copy; None when there is none. RegistryError when a file is there that this
        registry did not write: it is never replaced or removed (model_dir and model_file may name any file). A link,
        a FIFO, a device or a folder is refused by its directory entry, never opened."""
        path = self.champion_file

        def refuse(problem: str) -> RegistryError:
            return RegistryError(
                f"{path}: {problem}; this registry did not write it and leaves it as it is: move it away, or set "
                f"training.model_file (or model_dir) of {self.dag_id} to a name of its own"
            )

        if _is_local(path):
            data = read_local_file(path, MAX_COPY_BYTES, follow_links=False, refuse=refuse)
        else:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = None
        if data is None:
            return None
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self._model_digests():
            raise refuse(f"its bytes (sha256 {digest[:12]}) are no model file of this registry")
        return data

    def _model_digests(self) -> set[str]:
        """The sha256 of every model file this registry keeps: each is named by its content (models/<sha256>.onnx, and
        models/<sha256>.model in the format of earlier versions), whatever state its card is in."""
        return {name.partition(".")[0] for name in self.store.list("models")}

    def decide(
        self,
        number: int,
        compare: Callable[[int], Comparison],
        gates: Gates,
        by: str,
        known: dict[int, Comparison] | None = None,
    ) -> Outcome:
        """Decide whether version `number` replaces the current champion, and record the decision.

        `compare(champion)` scores the new version and version `champion` on the same held-out rows
        (or says why the champion cannot be scored); `known` holds comparisons already made, which are
        not made again. The decision itself is steps.promotion.decide; it is made again only when
        another run changed the champion meanwhile. A decision already recorded for this version (a
        retried task) is returned as it was.
        """
        from adclick_ops.steps.promotion import decide

        card = self.card(number)
        self.sweep()
        compared: dict[int, Comparison] = dict(known or {})
        verdict: dict[str, Any] = {}

        def change(state: dict[str, Any]) -> dict[str, Any] | None:
            earlier = next(
                (e for e in reversed(state["events"]) if e["version"] == number and e["action"] in (PROMOTED, REJECTED)),
                None,
            )
            if earlier is not None:
                verdict["earlier"] = earlier
                return None
            champion = state["champion"]
            comparison = None
            if champion is not None:
                if champion not in compared:
                    compared[champion] = compare(champion)
                comparison = compared[champion]
            decision = decide(card["metrics"], comparison, gates)
            verdict["decision"], verdict["previous"], verdict["comparison"] = decision, champion, comparison
            theirs = comparison.champion if comparison else None
            return {
                "at": now(),
                "action": PROMOTED if decision.promote else REJECTED,
                "version": number,
                "from": champion,
                "reason": decision.summary,
                "kind": decision.kind,
                "by": by,
                "champion_metrics": {k: theirs.get(k) for k in METRICS} if theirs else None,
                "comparison": comparison.as_json() if comparison else None,
            }

        state, event = self._change(change)
        if event is None:
            earlier = verdict["earlier"]
            promoted = earlier["action"] == PROMOTED
            comparison = earlier.get("comparison")
            return Outcome(
                number,
                promoted,
                state["champion"],
                earlier["from"],
                earlier["reason"],
                () if promoted else (earlier["reason"].removeprefix("not promoted: "),),
                kind=earlier.get("kind", "won" if promoted else "lost"),
                comparison=Comparison.from_json(comparison) if comparison else None,
            )
        decision = verdict["decision"]
        problem = self.sync_champion_file()
        return Outcome(
            number,
            decision.promote,
            state["champion"],
            verdict["previous"],
            decision.summary,
            decision.reasons,
            decision.fails_run(gates),
            problem,
            decision.kind,
            verdict["comparison"],
            decision.failed,
        )

    def _by_hand(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        """Record a change made by a person, then bring the champion's copy in line; the event, with any problem of the copy."""
        _, event = self._change(change)
        assert event is not None
        event = dict(event)
        problem = self.sync_champion_file()
        if problem:
            event["champion_file_error"] = problem
        return event

    def check_version(self, number: int) -> None:
        """Raise a RegistryError naming the failed check when version `number`'s file cannot serve."""
        try:
            self.load_model(number)
        except RegistryError as exc:
            raise RegistryError(
                f"{self.dag_id}: version {number} cannot be the champion: {exc}; nothing changed. "
                f"Choose a version whose file passes its checks (adclick-ops models check --dag {self.dag_id} lists the problems)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - UnsafeModelError and the ONNX checks: the message names the check
            raise RegistryError(
                f"{self.dag_id}: version {number} cannot be the champion: its file fails its checks: {exc}; nothing changed. "
                f"Choose a version whose file passes its checks (adclick-ops models check --dag {self.dag_id} lists the problems)"
            ) from None

    def promote(self, number: int, reason: str, by: str | None = None) -> dict[str, Any]:
        """Make version `number` the champion by hand (no gates), with the reason in the history.

        The version's file must pass its checks. A damaged champion pointer is repaired: the damaged
        file is kept beside it (`champion.json.damaged-<time>`) and the new pointer starts its history here.
        """
        self.card(number)  # exists, or a clear error
        self.check_version(number)
        try:
            self.state()
        except DamagedRegistryError as damage:
            return self._repair_pointer(number, reason, by, str(damage))

        def change(state: dict[str, Any]) -> dict[str, Any] | None:
            if state["champion"] == number:
                raise RegistryError(f"{self.dag_id}: version {number} is already the champion")
            return {
                "at": now(),
                "action": PROMOTE,
                "version": number,
                "from": state["champion"],
                "reason": reason,
                "by": by or operator_name(),
            }

        return self._by_hand(change)

    def _pointer_damaged(self) -> bool:
        try:
            self.state()
        except DamagedRegistryError:
            return True
        return False

    def _repair_pointer(self, number: int, reason: str, by: str | None, damage: str) -> dict[str, Any]:
        """A new pointer whose history starts with this promotion; what was there is kept beside it, whatever it is.

        On a local folder the damaged entry is never opened nor removed: a file, a link or a FIFO gets a second name
        (a hard link) before the new pointer replaces it, a folder is renamed with all it holds. On an object store
        its bytes are copied first."""
        at = now()
        aside = f"{POINTER}.damaged-{at.replace(':', '')}"
        event: dict[str, Any] = {}

        def pointer(kept: str) -> bytes:
            event.update(
                {
                    "at": at,
                    "action": PROMOTE,
                    "version": number,
                    "from": None,
                    "reason": f"{reason} (repaired {POINTER}: {damage.split(';')[0]}; the damaged file is kept as {kept})",
                    "by": by or operator_name(),
                }
            )
            state = self._empty_state() | {"champion": number, "updated_at": at, "events": [dict(event)]}
            return json.dumps(state, indent=2).encode()

        changed = RegistryError(f"{self.store.path(POINTER)}: changed while it was being repaired; try again")
        if isinstance(self.store, LocalStore):
            if self.store.replace_keeping(POINTER, aside, pointer, self._pointer_damaged) is None:
                raise changed
        else:
            data, tag = self.store.read_tagged(POINTER)
            self.store.write(aside, data or b"")
            if not self.store.replace_if(POINTER, pointer(aside), tag):
                raise changed
        problem = self.sync_champion_file()
        if problem:
            event["champion_file_error"] = problem
        return event

    def rollback(self, reason: str, by: str | None = None) -> dict[str, Any]:
        """Give the champion back to the version that held it before the current one; its file must pass its checks."""

        def change(state: dict[str, Any]) -> dict[str, Any] | None:
            stack = champion_stack(state["events"])
            if len(stack) < 2:
                current = (
                    f"version {state['champion']} is the only champion there has been" if state["champion"] else "there is no champion yet"
                )
                raise RegistryError(f"{self.dag_id}: nothing to roll back to: {current}")
            self.check_version(stack[-2])
            return {
                "at": now(),
                "action": ROLLBACK,
                "version": stack[-2],
                "from": stack[-1],
                "reason": reason,
                "by": by or operator_name(),
            }

        return self._by_hand(change)

    # --- checks -------------------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Every problem of the registry, one line each naming the file, what is wrong and how to repair it."""
        found: list[str] = []
        try:
            state = self.state()[0]
        except (RegistryError, OSError) as exc:
            found.append(_problem_line(exc, self.store.path(POINTER)))
            state = None
        numbers = self.versions()
        for number in numbers:
            try:
                self.card(number)
            except (RegistryError, OSError) as exc:  # each card in one line, whatever it is; then the next one
                found.append(_problem_line(exc, self.store.path(_version_name(number))))
                continue
            try:
                self.load_model(number)
            except Exception as exc:  # noqa: BLE001 - each failed check is a problem to list
                found.append(
                    f"{self.store.path(_version_name(number))}: the model file of version {number} fails its checks: {exc}; "
                    "restore the file from a backup, or never promote this version"
                )
        if state is not None and state["champion"] is not None:
            found += self._champion_problems(state["champion"], numbers)
        return found

    def _champion_problems(self, champion: int, numbers: list[int]) -> list[str]:
        """The champion has a card, and its copy beside the registry is its file."""
        found: list[str] = []
        if champion not in numbers:
            found.append(
                f"{self.store.path(POINTER)}: the champion, version {champion}, has no model card; repair with: "
                f"adclick-ops models promote VERSION --dag {self.dag_id} --reason repair"
            )
        try:
            expected = self.model_bytes(champion)
        except Exception:  # noqa: BLE001 - listed above
            expected = None
        try:
            copy = self._copy_of_ours()  # never opens a FIFO or a device
        except RegistryError as exc:
            copy, found = None, [*found, str(exc)]
        except OSError as exc:
            copy, found = None, [*found, f"{self.champion_file}: cannot be read: {exc}"]
        if copy is not None and expected is not None and copy != expected:  # without the champion's file: listed above
            found.append(
                f"{self.champion_file}: the champion's copy is not version {champion}'s file; "
                f"repair with: adclick-ops models promote VERSION --dag {self.dag_id} --reason repair"
            )
        return found
