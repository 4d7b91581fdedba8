#!/usr/bin/env python3
"""Creates the demo data of `make run` once: two counsellor accounts and a welcome room
with the bot. Standard library only. Passwords are random, stored in the state file
(.dev/demo.json, never committed) and printed by run.sh.
"""
import argparse
import hashlib
import hmac
import json
import os
import secrets
import string
import sys
import urllib.error
import urllib.parse
import urllib.request

import yaml

COUNSELLORS = [("anna.berger", "Anna Berger"), ("ben.keller", "Ben Keller")]


def call(hs, method, path, body=None, token=None):
    req = urllib.request.Request(hs + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")
        raise SystemExit(f"{method} {path} failed: {e.code} {detail}")


def register(hs, shared_secret, user, password, displayname):
    nonce = call(hs, "GET", "/_synapse/admin/v1/register")["nonce"]
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    for part in (nonce, user, password, "notadmin"):
        mac.update(part.encode())
        if part != "notadmin":
            mac.update(b"\x00")
    call(hs, "POST", "/_synapse/admin/v1/register", {
        "nonce": nonce, "username": user, "password": password, "admin": False,
        "displayname": displayname, "mac": mac.hexdigest()})


def login(hs, user, password):
    return call(hs, "POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
        "password": password})["access_token"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--homeserver")
    ap.add_argument("--secrets")
    ap.add_argument("--print-credentials", action="store_true",
                    help="print the demo counsellors' logins and exit")
    ap.add_argument("--state", required=True)
    ap.add_argument("--server-name", default="localhost")
    args = ap.parse_args()
    if args.print_credentials:
        with open(args.state) as f:
            for u in json.load(f)["counsellors"]:
                print(f"    {u['user']:<14} Passwort: {u['password']}")
        return 0
    if not (args.homeserver and args.secrets):
        ap.error("--homeserver and --secrets are required")
    if os.path.exists(args.state):
        return 0
    with open(args.secrets) as f:
        shared = yaml.safe_load(f)["registration_shared_secret"]
    hs = args.homeserver
    users = []
    for user, name in COUNSELLORS:
        password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(12))
        register(hs, shared, user, password, name)
        users.append({"user": user, "name": name, "password": password})
    anna = login(hs, users[0]["user"], users[0]["password"])
    ben = login(hs, users[1]["user"], users[1]["password"])
    server = args.server_name
    room = call(hs, "POST", "/_matrix/client/v3/createRoom", {
        "name": "Willkommen", "preset": "private_chat",
        "topic": "Demo-Raum von make run: probieren Sie !assisto hilfe",
        "invite": [f"@ben.keller:{server}", f"@assisto:{server}"]}, token=anna)["room_id"]
    call(hs, "POST", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/join", {}, token=ben)
    fd = os.open(args.state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"counsellors": users, "welcome_room": room}, f, indent=2)
    print(">> demo counsellors and the room 'Willkommen' created")
    return 0


if __name__ == "__main__":
    sys.exit(main())
