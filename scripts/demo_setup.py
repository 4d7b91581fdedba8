#!/usr/bin/env python3
"""The demo data of `make run`, created once. Standard library only (+ PyYAML from the venv).

    demo_setup.py admin --homeserver URL --secrets FILE --state FILE
        Creates a Synapse admin account for assisto (first run) and prints its access token.
    demo_setup.py demo --assisto URL --admin-api-token TOKEN --homeserver URL --state FILE
        Creates the demo institution "Beratungsstelle Demo" (its four spaces and directory
        room), two counsellors with generated passwords, two clients, and a colleague group
        "Willkommen" with both counsellors and the bot — through assisto's admin API.
    demo_setup.py print-credentials --state FILE

Passwords and tokens are stored in the state file (.dev/demo.json, mode 0600, never
committed).
"""
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
CLIENTS = ["Maria", "Jonas"]


def call(base, method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path} failed: {e.code} {e.read().decode(errors='replace')}")


def password():
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(14))


def load(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def save(path, state):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2)


def arg(name):
    try:
        return sys.argv[sys.argv.index(name) + 1]
    except (ValueError, IndexError):
        raise SystemExit(f"missing {name}")


def admin():
    state_path, hs = arg("--state"), arg("--homeserver")
    state = load(state_path)
    if "admin_token" not in state:
        with open(arg("--secrets")) as f:
            shared = yaml.safe_load(f)["registration_shared_secret"]
        user, pw = "assisto-admin", password()
        nonce = call(hs, "GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(shared.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), user.encode(), pw.encode(), b"admin"]))
        call(hs, "POST", "/_synapse/admin/v1/register", {
            "nonce": nonce, "username": user, "password": pw, "admin": True, "mac": mac.hexdigest()})
        token = call(hs, "POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": pw})["access_token"]
        state["admin_token"] = token
        save(state_path, state)
    print(state["admin_token"])


def demo():
    state_path, base, token, hs = arg("--state"), arg("--assisto"), arg("--admin-api-token"), arg("--homeserver")
    state = load(state_path)
    if state.get("demo_done"):
        return
    api = "/_assisto/admin/v1"
    call(base, "POST", f"{api}/institutions", {"id": "demo", "name": "Beratungsstelle Demo"}, token)
    counsellors = []
    for user, name in COUNSELLORS:
        pw = password()
        call(base, "POST", f"{api}/institutions/demo/counsellors",
             {"localpart": user, "display_name": name, "password": pw}, token)
        counsellors.append({"user": user, "name": name, "password": pw})
    for name in CLIENTS:
        call(base, "POST", f"{api}/institutions/demo/clients", {"display_name": name}, token)
    anna = call(hs, "POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "anna.berger"},
        "password": counsellors[0]["password"]})["access_token"]
    ben = call(hs, "POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "ben.keller"},
        "password": counsellors[1]["password"]})["access_token"]
    room = call(hs, "POST", "/_matrix/client/v3/createRoom", {
        "name": "Willkommen", "topic": "Demo von make run: probieren Sie !assisto hilfe",
        "invite": ["@ben.keller:localhost"]}, anna)["room_id"]
    call(hs, "POST", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/join", {}, ben)
    state.update({"counsellors": counsellors, "welcome_room": room, "demo_done": True})
    save(state_path, state)
    print(">> demo institution 'Beratungsstelle Demo' with two counsellors and two clients created")


def print_credentials():
    for u in load(arg("--state")).get("counsellors", []):
        print(f"    {u['user']:<14} Passwort: {u['password']}")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    {"admin": admin, "demo": demo, "print-credentials": print_credentials}.get(
        cmd, lambda: sys.exit(__doc__))()
