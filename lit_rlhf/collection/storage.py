"""SQLite storage for human annotation: pairs, who was shown what (and in which order), and the labels.

One connection per thread, WAL journal, every write in a ``BEGIN IMMEDIATE`` transaction, and
``synchronous=FULL`` by default, so a label is on disk when ``submit`` returns and concurrent
annotators never see half a write. A label is keyed by (pair, annotator): submitting the same
label again is a no-op ("duplicate"), submitting a different one is refused (``ConflictingLabel``).

Access tokens (for the web app) live in the same file: only the SHA-256 of each token is stored, so a copy of
the database does not let anyone label as an annotator.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from lit_rlhf.collection.response_pairs import Comparison
from lit_rlhf.collection.votes import Vote, check_choice, check_ratings

SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (
    pair_id TEXT PRIMARY KEY, prompt TEXT NOT NULL, category TEXT NOT NULL,
    response_a TEXT NOT NULL, response_b TEXT NOT NULL, meta TEXT NOT NULL, added_at REAL NOT NULL,
    n_served INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS pairs_by_served ON pairs(n_served);
CREATE TABLE IF NOT EXISTS assignments (
    pair_id TEXT NOT NULL REFERENCES pairs(pair_id), annotator TEXT NOT NULL, shown_order TEXT NOT NULL,
    assigned_at REAL NOT NULL, PRIMARY KEY (pair_id, annotator));
CREATE TABLE IF NOT EXISTS labels (
    pair_id TEXT NOT NULL REFERENCES pairs(pair_id), annotator TEXT NOT NULL, choice TEXT NOT NULL,
    ratings_a TEXT NOT NULL, ratings_b TEXT NOT NULL, shown_order TEXT NOT NULL, shown_at REAL NOT NULL,
    submitted_at REAL NOT NULL, PRIMARY KEY (pair_id, annotator));
CREATE INDEX IF NOT EXISTS assignments_by_annotator ON assignments(annotator);
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('annotator', 'admin')),
    token_sha256 TEXT NOT NULL, created_at REAL NOT NULL);
"""
ROLES = ("annotator", "admin")
# Annotator and admin names: short, printable, safe in URLs, logs and file names.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


def shorten(text: str, limit: int = 80) -> str:
    """``repr(text)``, cut to about ``limit`` characters: messages never echo unbounded input."""
    text = str(text)
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def check_name(name: str) -> str:
    if not isinstance(name, str) or re.fullmatch(NAME_PATTERN, name) is None:
        raise ValueError(
            f"name {shorten(name, 64)} must be 1-64 letters, digits or ._@- (starting with a letter or digit)"
        )
    return name


def token_digest(token: str) -> str:
    """Hex SHA-256 of a token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class UnknownPair(KeyError):
    def __str__(self):
        return f"unknown pair id {shorten(self.args[0])}"


class NotAssigned(ValueError):
    """A label for a pair that was never shown to this annotator: the shown order is unknown."""


class ConflictingLabel(ValueError):
    """A second, different label for a (pair, annotator) that already has one."""


SHOWN_TO_CANONICAL = {"AB": {"left": "A", "right": "B", "tie": "tie"}, "BA": {"left": "B", "right": "A", "tie": "tie"}}


class AnnotationStore:
    """Pairs to label, each by ``labels_per_pair`` annotators. Safe to share between threads.

    ``assignment_timeout_s``: a pair served but not labelled within this time is offered to others too
    (a late label is still stored: nothing submitted is lost).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        labels_per_pair: int = 1,
        assignment_timeout_s: float = 3600.0,
        synchronous: str = "FULL",
        seed: int = 0,
    ):
        if labels_per_pair < 1:
            raise ValueError(f"labels_per_pair must be >= 1, got {labels_per_pair}")
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.labels_per_pair = labels_per_pair
        self.assignment_timeout_s = assignment_timeout_s
        self.synchronous = synchronous
        self.seed = seed
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._connection().executescript(SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    @contextmanager
    def _transaction(self, durable: bool = True):
        # Writers of this process queue on a Python lock: SQLite's own busy handler sleeps in
        # steps of milliseconds, which under many concurrent annotators costs far more than waiting
        # in line. Other processes are still kept out by SQLite's lock (busy timeout 60 s).
        db = self._connection()
        with self._write_lock:
            # Labels are fsynced before the call returns; a lost assignment is harmless (it is made again),
            # so those commits skip the fsync. In WAL mode the next durable commit persists them too.
            db.execute(f"PRAGMA synchronous={self.synchronous if durable else 'NORMAL'}")
            db.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlocks
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    # -- pairs -------------------------------------------------------------------------------------
    def add_pairs(self, pairs: Iterable[Comparison]) -> int:
        """Insert pairs; re-adding an identical pair is a no-op, a different pair under a known id is an error."""
        added = 0
        with self._transaction() as db:
            for p in pairs:
                row = db.execute(
                    "SELECT prompt, response_a, response_b FROM pairs WHERE pair_id = ?", (p.pair_id,)
                ).fetchone()
                if row is not None:
                    if row != (p.prompt, p.response_a, p.response_b):
                        raise ValueError(f"pair id {shorten(p.pair_id)} already holds a different pair")
                    continue
                db.execute(
                    "INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                    (p.pair_id, p.prompt, p.category, p.response_a, p.response_b, json.dumps(p.meta), time.time()),
                )
                added += 1
        return added

    def pairs(self) -> list[Comparison]:
        rows = (
            self._connection()
            .execute("SELECT pair_id, prompt, category, response_a, response_b, meta FROM pairs ORDER BY rowid")
            .fetchall()
        )
        return [Comparison(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    # -- serving -----------------------------------------------------------------------------------
    def next_pair(self, annotator: str) -> dict | None:
        """The pair this annotator should label now, or None when there is nothing left for them.

        A pair served earlier and not yet labelled comes back first (resume after a break);
        otherwise the least-served open pair, with a random left/right order that is recorded.
        """
        if not annotator or not annotator.strip():
            raise ValueError("annotator id must be a non-empty string")
        now = time.time()
        with self._transaction(durable=False) as db:
            row = db.execute(
                """SELECT a.pair_id, a.shown_order, a.assigned_at FROM assignments a
                   LEFT JOIN labels l ON l.pair_id = a.pair_id AND l.annotator = a.annotator
                   WHERE a.annotator = ? AND l.pair_id IS NULL ORDER BY a.assigned_at LIMIT 1""",
                (annotator,),
            ).fetchone()
            if row is None:
                row = self._assign_new(db, annotator, now)
            if row is None:
                return None
            pair_id, shown_order, assigned_at = row
            p = db.execute(
                "SELECT prompt, category, response_a, response_b FROM pairs WHERE pair_id = ?", (pair_id,)
            ).fetchone()
        left, right = (p[2], p[3]) if shown_order == "AB" else (p[3], p[2])
        return {
            "pair_id": pair_id,
            "prompt": p[0],
            "category": p[1],
            "left": left,
            "right": right,
            "shown_order": shown_order,
            "shown_at": assigned_at,
        }

    def _assign_new(self, db, annotator: str, now: float):
        # Active load of a pair: its labels plus served-and-pending assignments that have not timed out.
        # Walking the n_served index stops at the first open pair, so the least-served one wins cheaply.
        row = db.execute(
            """SELECT p.pair_id FROM pairs p
               WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.pair_id = p.pair_id AND a.annotator = ?)
                 AND (SELECT COUNT(*) FROM labels l WHERE l.pair_id = p.pair_id)
                   + (SELECT COUNT(*) FROM assignments a WHERE a.pair_id = p.pair_id AND a.assigned_at > ?
                        AND NOT EXISTS (SELECT 1 FROM labels l2 WHERE l2.pair_id = a.pair_id
                                        AND l2.annotator = a.annotator)) < ?
               ORDER BY p.n_served, p.rowid LIMIT 1""",
            (annotator, now - self.assignment_timeout_s, self.labels_per_pair),
        ).fetchone()
        if row is None:
            return None
        pair_id = row[0]
        shown_order = random.Random(f"{self.seed}:{pair_id}:{annotator}").choice(("AB", "BA"))
        db.execute("INSERT INTO assignments VALUES (?, ?, ?, ?)", (pair_id, annotator, shown_order, now))
        db.execute("UPDATE pairs SET n_served = n_served + 1 WHERE pair_id = ?", (pair_id,))
        return pair_id, shown_order, now

    # -- labels ------------------------------------------------------------------------------------
    def submit(
        self,
        pair_id: str,
        annotator: str,
        choice: str,
        ratings_left: dict | None = None,
        ratings_right: dict | None = None,
    ) -> str:
        """Store a label given as the annotator saw it (``choice`` "left"/"right"/"tie").

        Returns "stored" or "duplicate" (the same label again); raises ``UnknownPair``, ``NotAssigned``,
        ``ConflictingLabel`` or ``ValueError`` (bad choice or ratings) without writing anything.
        """
        if choice not in ("left", "right", "tie"):
            raise ValueError(f"choice must be 'left', 'right' or 'tie', got {shorten(choice)}")
        ratings_left, ratings_right = check_ratings(ratings_left or {}), check_ratings(ratings_right or {})
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM pairs WHERE pair_id = ?", (pair_id,)).fetchone() is None:
                raise UnknownPair(pair_id)
            assignment = db.execute(
                "SELECT shown_order, assigned_at FROM assignments WHERE pair_id = ? AND annotator = ?",
                (pair_id, annotator),
            ).fetchone()
            if assignment is None:
                raise NotAssigned(f"pair {shorten(pair_id)} was never shown to annotator {shorten(annotator)}")
            shown_order, shown_at = assignment
            canonical = check_choice(SHOWN_TO_CANONICAL[shown_order][choice])
            ratings_a, ratings_b = (
                (ratings_left, ratings_right) if shown_order == "AB" else (ratings_right, ratings_left)
            )
            payload = (canonical, json.dumps(ratings_a, sort_keys=True), json.dumps(ratings_b, sort_keys=True))
            existing = db.execute(
                "SELECT choice, ratings_a, ratings_b FROM labels WHERE pair_id = ? AND annotator = ?",
                (pair_id, annotator),
            ).fetchone()
            if existing is not None:
                if tuple(existing) == payload:
                    return "duplicate"
                # The stored label is not repeated: the message may reach someone who only claims this name.
                raise ConflictingLabel(
                    f"annotator {shorten(annotator)} already labelled pair {shorten(pair_id)} "
                    "differently; labels are final"
                )
            db.execute(
                "INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (pair_id, annotator, *payload, shown_order, shown_at, time.time()),
            )
        return "stored"

    def votes(self) -> list[Vote]:
        rows = (
            self._connection()
            .execute(
                "SELECT pair_id, annotator, choice, ratings_a, ratings_b, shown_order, shown_at, submitted_at "
                "FROM labels ORDER BY submitted_at, pair_id, annotator"
            )
            .fetchall()
        )
        return [Vote(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), "human", r[5], r[6], r[7]) for r in rows]

    def progress(self, annotator: str | None = None) -> dict:
        db = self._connection()
        n_pairs = db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
        n_labels = db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        out = {"pairs": n_pairs, "labels": n_labels, "labels_wanted": n_pairs * self.labels_per_pair}
        if annotator is not None:
            out["done_by_annotator"] = db.execute(
                "SELECT COUNT(*) FROM labels WHERE annotator = ?", (annotator,)
            ).fetchone()[0]
        return out

    # -- access tokens -----------------------------------------------------------------------------
    def add_token(self, name: str, role: str = "annotator") -> str:
        """A new random token for ``name``; only its hash is stored. Issuing again replaces (revokes) the old one."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {list(ROLES)}, got {shorten(role)}")
        check_name(name)
        token = secrets.token_urlsafe(32)
        with self._transaction() as db:
            row = db.execute("SELECT role FROM tokens WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != role:
                raise ValueError(f"{name!r} already has a token as {row[0]}; pick another name for the {role}")
            db.execute(
                "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?)", (name, role, token_digest(token), time.time())
            )
        return token

    def has_tokens(self) -> bool:
        return self._connection().execute("SELECT EXISTS (SELECT 1 FROM tokens)").fetchone()[0] == 1

    def token_names(self) -> dict[str, str]:
        """``{name: role}`` of everyone holding a token."""
        return dict(self._connection().execute("SELECT name, role FROM tokens ORDER BY name").fetchall())

    def identify(self, token: str) -> tuple[str, str] | None:
        """``(name, role)`` of the holder of ``token``, or None. Every stored hash is compared in constant time."""
        digest = token_digest(token)
        found = None
        for name, role, stored in self._connection().execute("SELECT name, role, token_sha256 FROM tokens"):
            if hmac.compare_digest(stored, digest):
                found = (name, role)
        return found

    def check_integrity(self) -> str:
        return self._connection().execute("PRAGMA integrity_check").fetchone()[0]
