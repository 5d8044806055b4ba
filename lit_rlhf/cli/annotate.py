"""``lit-rlhf-annotate``: human pairwise annotation in the browser, and import/export of its data.

lit-rlhf-annotate add-annotator --db annotations.sqlite alice     # prints alice's token and page link, once
lit-rlhf-annotate serve --db annotations.sqlite --pairs artifacts/preferences/pairs.jsonl --labels-per-pair 3
lit-rlhf-annotate export --db annotations.sqlite --out artifacts/preferences_human [--hf]
lit-rlhf-annotate import-label-studio export.json --out artifacts/label_studio
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lit_rlhf.collection.server import MAX_BODY_BYTES
from lit_rlhf.data.errors import DataError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lit-rlhf-annotate", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the annotation page")
    serve.add_argument("--db", required=True, help="SQLite file (created if missing)")
    serve.add_argument("--pairs", help="JSONL of pairs to add first (prompt, response_a, response_b, category)")
    serve.add_argument("--labels-per-pair", type=int, default=3, help="annotators wanted per pair")
    serve.add_argument("--host", default="127.0.0.1", help="other than loopback only once tokens are issued")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument(
        "--max-body-bytes", type=int, default=MAX_BODY_BYTES, help="larger request bodies are refused (413) unread"
    )
    for command, role in (("add-annotator", "annotator"), ("add-admin", "admin")):
        token = sub.add_parser(command, help=f"issue a {role} token (printed once; issuing again replaces it)")
        token.add_argument("--db", required=True)
        token.add_argument("--url", default="http://127.0.0.1:8765", help="the server's address, for the printed link")
        token.add_argument("name", help="1-64 letters, digits or ._@-")
        token.set_defaults(role=role)
    add = sub.add_parser("add-pairs", help="add pairs from JSONL to the database")
    add.add_argument("--db", required=True)
    add.add_argument("pairs")
    export = sub.add_parser("export", help="write pairs, votes, the filtered preference set and a report")
    export.add_argument("--db", required=True)
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--min-agreement", type=float, default=0.6)
    export.add_argument("--keep-cycles", action="store_true", help="do not drop cyclic preferences")
    export.add_argument("--hf", action="store_true", help="also save a Hugging Face datasets copy")
    ls = sub.add_parser("import-label-studio", help="convert a Label Studio pairwise export to pairs and votes")
    ls.add_argument("export")
    ls.add_argument("--out", required=True)
    ls.add_argument("--prompt-key", default="prompt")
    ls.add_argument("--left-key", default="answer1")
    ls.add_argument("--right-key", default="answer2")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {
            "serve": _serve,
            "add-pairs": _add_pairs,
            "add-annotator": _add_token,
            "add-admin": _add_token,
            "export": _export,
            "import-label-studio": _import_label_studio,
        }[args.command](args)
    except (DataError, FileNotFoundError, ValueError, KeyError) as err:
        print(f"lit-rlhf-annotate: error: {err}", file=sys.stderr)
        return 2


def _store(db: str, labels_per_pair: int = 1):
    from lit_rlhf.collection.storage import AnnotationStore

    return AnnotationStore(db, labels_per_pair=labels_per_pair)


def _serve(args) -> int:
    import uvicorn

    from lit_rlhf.collection.io import read_pairs
    from lit_rlhf.collection.server import create_app, serving_mode

    if args.max_body_bytes < 1024:
        raise ValueError(f"--max-body-bytes must be at least 1024 (a label is ~300 bytes), got {args.max_body_bytes}")
    store = _store(args.db, args.labels_per_pair)
    mode = serving_mode(store, args.host)  # refuses a non-loopback host without tokens
    if args.pairs:
        print(f"added {store.add_pairs(read_pairs(args.pairs))} new pairs from {args.pairs}")
    print(f"{store.progress()} -> open http://{args.host}:{args.port}/ (Ctrl-C stops; labels are already on disk)")
    if mode == "token":
        roles = store.token_names()
        print(
            f"token mode: {sorted(n for n, r in roles.items() if r == 'annotator')} label through the links "
            "add-annotator printed for them"
        )
    uvicorn.run(create_app(store, max_body_bytes=args.max_body_bytes), host=args.host, port=args.port, log_level="info")
    store.close()
    return 0


def _add_pairs(args) -> int:
    from lit_rlhf.collection.io import read_pairs

    store = _store(args.db)
    print(f"added {store.add_pairs(read_pairs(args.pairs))} new pairs; {store.progress()}")
    return 0


def _add_token(args) -> int:
    store = _store(args.db)
    token = store.add_token(args.name, args.role)
    store.close()
    print(
        f"{args.name}: {args.role} token {token} (shown once: the database keeps only its hash; issuing again "
        "replaces it)"
    )
    if args.role == "annotator":
        print(f"{args.name}'s page: {args.url.rstrip('/')}/#token={token}")
    else:
        print(f'all labels: curl -H "Authorization: Bearer {token}" {args.url.rstrip("/")}/api/admin/votes')
    return 0


def _export(args) -> int:
    from lit_rlhf.collection.collect import (
        Collection,
        filter_and_report,
        format_report,
        write_collection,
    )
    from lit_rlhf.stages.common import write_json

    if not Path(args.db).exists():
        raise FileNotFoundError(f"no annotation database at {args.db}")
    store = _store(args.db)
    pairs, votes = store.pairs(), store.votes()
    rows, report = filter_and_report(
        pairs,
        votes,
        min_agreement=args.min_agreement,
        drop_cycles=not args.keep_cycles,
        provenance={"annotation_db": str(args.db)},
    )
    paths = write_collection(args.out, Collection([], pairs, votes, rows, report), hf=args.hf)
    write_json(Path(args.out) / "report.json", {**report, "outputs": paths})
    print(format_report(report))
    print(json.dumps(paths, indent=2))
    return 0


def _import_label_studio(args) -> int:
    from lit_rlhf.collection.io import import_label_studio, write_pairs, write_votes

    pairs, votes = import_label_studio(args.export, args.prompt_key, args.left_key, args.right_key)
    out = Path(args.out)
    write_pairs(out / "pairs.jsonl", pairs)
    write_votes(out / "votes.jsonl", votes)
    print(f"{len(pairs)} pairs and {len(votes)} votes -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
