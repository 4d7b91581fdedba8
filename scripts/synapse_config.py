#!/usr/bin/env python3
"""Writes a Synapse configuration for development or tests, and its signing key.

Used by `make run` (scripts/run.sh) and by the Rust test harness, so that both run the
homeserver the same way. Run with the project's venv Python (it has PyYAML).

    synapse_config.py --dir DIR --port PORT [--registration FILE ...] [--profile dev|test]

Secrets (registration shared secret, macaroon and form secrets) are generated at random
into DIR/secrets.yaml on first use and kept; nothing secret is committed.
"""
import argparse
import os
import secrets
import subprocess
import sys

import yaml

GENEROUS = {"per_second": 1000, "burst_count": 10000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", required=True, help="data directory of the homeserver")
    ap.add_argument("--port", type=int, default=8008)
    ap.add_argument("--server-name", default="localhost")
    ap.add_argument("--registration", action="append", default=[], help="appservice registration file")
    ap.add_argument("--profile", choices=["dev", "test"], default="dev")
    ap.add_argument("--database", default=None, help="psycopg2 DSN; SQLite in DIR when omitted")
    ap.add_argument("--module", action="append", default=[],
                    help="Synapse module as JSON {\"module\": ..., \"config\": {...}}")
    args = ap.parse_args()

    d = os.path.abspath(args.dir)
    os.makedirs(os.path.join(d, "media"), exist_ok=True)
    secrets_path = os.path.join(d, "secrets.yaml")
    if os.path.exists(secrets_path):
        with open(secrets_path) as f:
            sec = yaml.safe_load(f)
    else:
        sec = {k: secrets.token_urlsafe(32) for k in
               ("registration_shared_secret", "macaroon_secret_key", "form_secret")}
        fd = os.open(secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(sec, f)

    log_config = os.path.join(d, "log.yaml")
    level = "WARNING" if args.profile == "test" else "INFO"
    with open(log_config, "w") as f:
        yaml.safe_dump({
            "version": 1,
            "formatters": {"precise": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            # Request URIs are logged without their query strings: the media upload's
            # `filename` (a client's or counsellor's file name) would be in the log otherwise.
            "filters": {"no_query_strings": {"()": "assisto_erasure.StripQueryStrings"}},
            "handlers": {"file": {"class": "logging.FileHandler", "formatter": "precise",
                                  "filters": ["no_query_strings"],
                                  "filename": os.path.join(d, "homeserver.log")}},
            # Access lines also in tests (the deletion test searches the log for names).
            "loggers": {"synapse.storage.SQL": {"level": "WARNING"}, "synapse.access": {"level": "INFO"}},
            "root": {"level": level, "handlers": ["file"]},
            "disable_existing_loggers": False,
        }, f)

    if args.database:
        database = {"name": "psycopg2", "args": {"dsn": args.database, "cp_min": 1, "cp_max": 5}}
    else:
        database = {"name": "sqlite3", "args": {"database": os.path.join(d, "homeserver.db")}}

    cfg = {
        "server_name": args.server_name,
        "public_baseurl": f"http://localhost:{args.port}/",
        "pid_file": os.path.join(d, "homeserver.pid"),
        "listeners": [{
            "port": args.port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
            "x_forwarded": False, "resources": [{"names": ["client", "openid"], "compress": False}],
        }],
        "database": database,
        "log_config": log_config,
        "media_store_path": os.path.join(d, "media"),
        "signing_key_path": os.path.join(d, "signing.key"),
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "enable_registration": False,
        "registration_shared_secret": sec["registration_shared_secret"],
        "macaroon_secret_key": sec["macaroon_secret_key"],
        "form_secret": sec["form_secret"],
        "app_service_config_files": [os.path.abspath(r) for r in args.registration],
        "url_preview_enabled": False,
        "enable_metrics": False,
        # The live-chat desk learns from presence whether a counsellor's Element is open:
        # closing it or logging out makes them not available (never silently available).
        "presence": {"enabled": True},
        # Counsellors find clients of their institution in the user directory.
        "user_directory": {"enabled": True, "search_all_users": False},
        # Nobody looks up a client's display name by user ID unless they share a room
        # (issue: /profile revealed puppets' names to any user).
        "require_auth_for_profile_requests": True,
        "limit_profile_requests_to_users_who_share_rooms": True,
        # Managed rooms stay unencrypted (server-side rules, search, export, deletion);
        # the rules module refuses m.room.encryption in them.
        "encryption_enabled_by_default_for_room_type": "off",
        "federation_domain_whitelist": [],
        "allow_public_rooms_over_federation": False,
        # Redacted events lose their content in the database at the censoring job's next
        # run (every 5 minutes) instead of after 7 days. The deletion routine does not wait
        # for it (the erasure module prunes a deleted client's events at once); this is for
        # every other redaction (a message deleted by its sender).
        "redaction_retention_period": 0,
    }
    if args.profile == "test":
        # Tests drive many users quickly; the limits under test are our own, not Synapse's.
        for key in ("rc_message", "rc_registration", "rc_login", "rc_joins", "rc_invites",
                    "rc_admin_redaction", "rc_3pid_validation", "rc_room_creation",
                    "rc_presence", "rc_delayed_event_mgmt", "rc_reports"):
            cfg[key] = GENEROUS
        cfg["rc_login"] = {k: GENEROUS for k in ("address", "account", "failed_attempts")}
        cfg["rc_joins"] = {"local": GENEROUS, "remote": GENEROUS}
        cfg["rc_invites"] = {"per_room": GENEROUS, "per_user": GENEROUS, "per_issuer": GENEROUS}
        cfg["rc_registration"] = GENEROUS
        cfg["rc_presence"] = {"per_user": GENEROUS}
    import json
    # The erasure module (synapse_erasure/): what the deletion routine must erase in
    # Synapse's database and no admin API reaches (see docs/operations.md, 4c).
    cfg["modules"] = [{"module": "assisto_erasure.AssistoErasure", "config": {}}]
    cfg["modules"] += [json.loads(m) for m in args.module]

    path = os.path.join(d, "homeserver.yaml")
    with open(path, "w") as f:
        f.write("# Generated by scripts/synapse_config.py. Development/test only.\n")
        yaml.safe_dump(cfg, f, sort_keys=False)
    os.chmod(path, 0o600)
    subprocess.run([sys.executable, "-m", "synapse.app.homeserver", "-c", path, "--generate-keys"],
                   check=True, stdout=subprocess.DEVNULL)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
