"""assisto's thin Synapse module: it asks the assisto application service whether an action
may go ahead, and applies the answer. It holds no rules of its own.

Configured in homeserver.yaml:

    modules:
      - module: assisto_synapse.AssistoRules
        config:
          timeout_seconds: 5
          backends:
            - url: http://127.0.0.1:8009          # the assisto service
              token: "<appservice.module_token>"   # secret
              bot: "@assisto:example.org"
              users: "@.*:example.org"             # whose actions this service decides
              puppets: "@(rs|guest)_.+:example.org" # its clients and guests

Callbacks:
- on_create_room: the service classifies the room and decides its shape (preset, initial
  state, invites, the bot first); invites inside `initial_state` count as invites.
- user_may_create_room: room upgrades.
- check_event_allowed: every state event, membership included (invite, join, knock, leave,
  ban), in the rooms the service manages and every membership of its puppets, from every
  path (the client-server API, room creation, upgrades, the admin API) — before Synapse
  applies it. Server admins are let through, as Synapse lets them through its spam checks;
  the service repairs what they force.
- check_event_for_spam: messages of puppets and in managed rooms.
- user_may_publish_room, user_may_create_room_alias: no directory entries or aliases for
  managed rooms.
- check_registration_for_spam, check_login_for_spam: nobody registers or logs in as a puppet.

When the service cannot be reached, actions that touch its clients or the rooms it manages
are refused (safe side); everything else goes ahead.
"""

import json
import logging
import re
from typing import Any, Optional

from twisted.internet import defer, reactor

from synapse.module_api import NOT_SPAM, ModuleApi
from synapse.spam_checker_api import RegistrationBehaviour
from synapse.module_api.errors import Codes, ConfigError, SynapseError

logger = logging.getLogger(__name__)

CREATE_KIND = "de.assisto.kind"
CREATE_INSTITUTION = "de.assisto.institution"


class _Backend:
    def __init__(self, cfg: dict):
        self.url = cfg["url"].rstrip("/") + "/_assisto/module/v1/check"
        self.token = cfg["token"]
        self.bot = cfg["bot"]
        self.users = re.compile(cfg["users"])
        self.puppets = re.compile(cfg["puppets"])

    def owns(self, user_id: Optional[str]) -> bool:
        return bool(user_id) and (
            user_id == self.bot or bool(self.puppets.fullmatch(user_id)) or bool(self.users.fullmatch(user_id))
        )


class _Unavailable(Exception):
    pass


class AssistoRules:
    def __init__(self, config: dict, api: ModuleApi):
        self._api = api
        self._timeout = float(config.get("timeout_seconds", 5))
        self._backends = [_Backend(b) for b in config["backends"]]
        api.register_spam_checker_callbacks(
            user_may_create_room=self.user_may_create_room,
            check_event_for_spam=self.check_event_for_spam,
            user_may_publish_room=self.user_may_publish_room,
            user_may_create_room_alias=self.user_may_create_room_alias,
        )
        api.register_third_party_rules_callbacks(
            on_create_room=self.on_create_room,
            check_event_allowed=self.check_event_allowed,
        )
        api.register_spam_checker_callbacks(
            check_registration_for_spam=self.check_registration_for_spam,
            check_login_for_spam=self.check_login_for_spam,
        )
        self._server_name = api.server_name

    @staticmethod
    def parse_config(config: dict) -> dict:
        backends = config.get("backends")
        if not isinstance(backends, list) or not backends:
            raise ConfigError("assisto_synapse: 'backends' must be a non-empty list")
        for b in backends:
            for key in ("url", "token", "bot", "users", "puppets"):
                if not isinstance(b.get(key), str) or not b[key]:
                    raise ConfigError(f"assisto_synapse: every backend needs '{key}'")
            for key in ("users", "puppets"):
                try:
                    re.compile(b[key])
                except re.error as e:
                    raise ConfigError(f"assisto_synapse: bad regex in '{key}': {e}")
        return config

    # -- talking to the service ------------------------------------------------------

    def _backend_for(self, *user_ids: Optional[str], members=()) -> Optional[_Backend]:
        for b in self._backends:
            if any(b.owns(u) for u in user_ids):
                return b
        for b in self._backends:
            if b.bot in members:
                return b
        return None

    async def _ask(self, backend: _Backend, question: dict) -> dict:
        try:
            d = defer.ensureDeferred(
                self._api.http_client.post_json_get_json(
                    backend.url, question, headers={"Authorization": [f"Bearer {backend.token}"]}
                )
            )
            d.addTimeout(self._timeout, reactor)
            answer = await d
        except Exception as e:  # unreachable, timeout, non-2xx
            logger.warning("assisto rules unavailable (%s): %s", question.get("action"), type(e).__name__)
            raise _Unavailable() from e
        if not isinstance(answer, dict) or "allow" not in answer:
            raise _Unavailable()
        return answer

    @staticmethod
    def _refusal(answer: dict):
        return (Codes.FORBIDDEN, {"error": answer.get("error", "Nicht erlaubt."), "de.assisto.rule": answer.get("rule")})

    _UNAVAILABLE = (
        Codes.FORBIDDEN,
        {"error": "Die Regeln der Einrichtung können gerade nicht geprüft werden. Bitte versuchen Sie es in einem Moment erneut.",
         "de.assisto.rule": "unavailable"},
    )

    async def _room_state(self, room_id: str) -> dict:
        state = await self._api.get_room_state(room_id, [("m.room.create", None), ("m.room.member", None)])
        return self._summary(state)

    @staticmethod
    def _summary(state) -> dict:
        """The room's creation content, creator and members from a state map."""
        create = state.get(("m.room.create", ""))
        members = {"join": [], "invite": [], "knock": []}
        for (etype, key), ev in state.items():
            if etype == "m.room.member":
                m = ev.content.get("membership")
                if m in members:
                    members[m].append(key)
        return {
            "create": _plain(create.content) if create else {},
            "creator": create.sender if create else None,
            "members": members,
        }

    def _maybe_managed(self, backend: _Backend, state: dict) -> bool:
        """Whether the service may manage the room: classified at creation, an upgrade (the
        service knows whether the old room is its own), or the bot is in it."""
        create = state["create"]
        members = state["members"]
        return (CREATE_KIND in create or CREATE_INSTITUTION in create or "predecessor" in create
                or backend.bot in members["join"] or backend.bot in members["invite"])

    # -- callbacks --------------------------------------------------------------------

    async def user_may_create_room(self, user_id: str, request: dict) -> Any:
        creation = request.get("creation_content") or {}
        predecessor = (creation.get("predecessor") or {}).get("room_id")
        if predecessor is None:
            return NOT_SPAM  # decided with the full request in on_create_room
        backend = self._backend_for(user_id)
        if backend is None:
            return NOT_SPAM
        try:
            answer = await self._ask(backend, {"action": "create", "user": user_id,
                                               "request": {"upgrade_of": predecessor}})
        except _Unavailable:
            return self._UNAVAILABLE
        return NOT_SPAM if answer["allow"] else self._refusal(answer)

    async def on_create_room(self, requester, request: dict, is_requester_admin: bool) -> None:
        user_id = requester.user.to_string()
        # Nobody but this module sets these keys.
        creation = dict(request.get("creation_content") or {})
        creation.pop(CREATE_KIND, None)
        creation.pop(CREATE_INSTITUTION, None)
        request["creation_content"] = creation
        invites = list(request.get("invite") or [])
        initial_state = [dict(e) for e in (request.get("initial_state") or []) if isinstance(e, dict)]
        # Invites inside initial_state are invites too.
        state_invites = [e.get("state_key") for e in initial_state if e.get("type") == "m.room.member"]
        backend = self._backend_for(user_id, *invites, *[u for u in state_invites if isinstance(u, str)])
        if backend is None:
            return
        question = {"action": "create", "user": user_id, "request": {
            "invite": invites,
            "is_direct": bool(request.get("is_direct")),
            "preset": request.get("preset"),
            "visibility": request.get("visibility"),
            "room_alias_name": request.get("room_alias_name"),
            "invite_3pid": list(request.get("invite_3pid") or []),
            "initial_state": initial_state,
            "power_level_content_override": request.get("power_level_content_override"),
            "creation_content": _plain(creation),
        }}
        try:
            answer = await self._ask(backend, question)
        except _Unavailable:
            raise SynapseError(403, self._UNAVAILABLE[1]["error"], Codes.FORBIDDEN,
                               additional_fields={"de.assisto.rule": "unavailable"})
        if not answer["allow"]:
            raise SynapseError(403, answer.get("error", "Nicht erlaubt."), Codes.FORBIDDEN,
                               additional_fields={"de.assisto.rule": answer.get("rule")})
        creation.update(answer.get("creation_content") or {})
        for key in ("preset", "visibility", "initial_state", "invite"):
            if key in answer:
                request[key] = answer[key]
        grants = answer.get("power_levels_users") or {}
        if grants:
            override = dict(request.get("power_level_content_override") or {})
            users = dict(override.get("users") or {})
            users.update(grants)
            override["users"] = users
            request["power_level_content_override"] = override

    def _is_puppet(self, user_id: str) -> bool:
        return any(b.puppets.fullmatch(user_id) for b in self._backends)

    async def check_registration_for_spam(self, email_threepid, username, request_info, auth_provider_id=None):
        # Only the application service registers puppets (its own path skips this check).
        if username and self._is_puppet(f"@{username}:{self._server_name}"):
            logger.info("refused a registration in the puppet namespace")
            return RegistrationBehaviour.DENY
        return RegistrationBehaviour.ALLOW

    async def check_login_for_spam(self, user_id, device_id, initial_display_name, request_info, auth_provider_id):
        # Puppets speak only through the service; nobody logs in as them.
        if self._is_puppet(user_id):
            return (Codes.FORBIDDEN, {"error": "Für dieses Konto ist keine Anmeldung möglich."})
        return NOT_SPAM

    async def check_event_allowed(self, event, state_events) -> tuple:
        if not event.is_state() or event.type == "m.room.create":
            return True, None
        sender = event.sender
        if not self._api.is_mine(sender) or any(sender == b.bot for b in self._backends):
            return True, None
        state = self._summary(state_events)
        member = event.type == "m.room.member"
        target = event.state_key if member else None
        backend = self._backend_for(sender, target, members=state["members"]["join"])
        if backend is None:
            return True, None
        touches_puppet = member and self._is_puppet(target)
        if not (touches_puppet or self._maybe_managed(backend, state)):
            return True, None
        if await self._api.is_user_admin(sender):
            # As with Synapse's spam checks, server admins go ahead; the service repairs.
            return True, None
        if member:
            question = {"action": "member", "user": sender, "target": target,
                        "membership": event.content.get("membership"),
                        "room_id": event.room_id, "room": state}
        else:
            question = {"action": "state", "user": sender, "room_id": event.room_id,
                        "event_type": event.type, "state_key": event.state_key,
                        "content": _plain(event.content), "room": state}
            if event.type == "m.room.tombstone":
                exists, predecessor = await self._replacement(event.content.get("replacement_room"))
                question["replacement_exists"] = exists
                question["replacement_predecessor"] = predecessor
        try:
            answer = await self._ask(backend, question)
        except _Unavailable:
            raise SynapseError(403, self._UNAVAILABLE[1]["error"], Codes.FORBIDDEN,
                               additional_fields={"de.assisto.rule": "unavailable"})
        if answer["allow"]:
            return True, None
        raise SynapseError(403, answer.get("error", "Nicht erlaubt."), Codes.FORBIDDEN,
                           additional_fields={"de.assisto.rule": answer.get("rule")})

    async def _replacement(self, room_id) -> tuple:
        """Whether the replacement room exists yet (an upgrade sends the tombstone before
        it creates the new room), and which room its creation names as its predecessor."""
        if not isinstance(room_id, str):
            return True, None
        try:
            state = await self._api.get_room_state(room_id, [("m.room.create", None)])
        except Exception:
            state = {}
        create = state.get(("m.room.create", ""))
        if create is None:
            return False, None
        predecessor = create.content.get("predecessor")
        return True, predecessor.get("room_id") if isinstance(predecessor, dict) else None

    async def user_may_publish_room(self, user_id: str, room_id: str) -> Any:
        state = await self._room_state(room_id)
        backend = self._backend_for(user_id, members=state["members"]["join"])
        if backend is None or not self._maybe_managed(backend, state):
            return NOT_SPAM
        try:
            answer = await self._ask(backend, {"action": "publish", "user": user_id, "room_id": room_id,
                                               "room": state})
        except _Unavailable:
            return self._UNAVAILABLE
        return NOT_SPAM if answer["allow"] else self._refusal(answer)

    async def user_may_create_room_alias(self, user_id: str, room_alias) -> Any:
        backend = self._backend_for(user_id)
        if backend is None:
            return NOT_SPAM
        try:
            answer = await self._ask(backend, {"action": "alias", "user": user_id})
        except _Unavailable:
            return self._UNAVAILABLE
        return NOT_SPAM if answer["allow"] else self._refusal(answer)

    async def check_event_for_spam(self, event) -> Any:
        # State, membership included, is decided in check_event_allowed.
        if event.is_state() or not self._api.is_mine(event.sender):
            return NOT_SPAM
        sender = event.sender
        puppet = any(b.puppets.fullmatch(sender) for b in self._backends)
        state = await self._room_state(event.room_id)
        joined = state["members"]["join"]
        managed = any(b.bot in joined for b in self._backends)
        if not (puppet or managed):
            return NOT_SPAM
        backend = self._backend_for(sender, members=joined)
        if backend is None or sender == backend.bot:
            return NOT_SPAM
        question = {"action": "send", "user": sender, "room_id": event.room_id,
                    "event_type": event.type, "room": state}
        body = event.content.get("body")
        # Whether it addresses the bot (no content is sent): counsellors may still give
        # commands in a read-only group, e.g. to reopen it.
        question["is_command"] = isinstance(body, str) and body.lstrip().startswith("!assisto")
        try:
            answer = await self._ask(backend, question)
        except _Unavailable:
            return self._UNAVAILABLE if puppet else NOT_SPAM
        return NOT_SPAM if answer["allow"] else self._refusal(answer)



def _plain(value):
    """A JSON-serialisable copy of event content (Synapse may hand out frozen dicts)."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
