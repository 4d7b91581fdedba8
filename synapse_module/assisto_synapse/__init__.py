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

Callbacks: user_may_create_room + on_create_room (classification, the bot joins every
counsellor's room), user_may_invite, user_may_join_room, check_event_for_spam.

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
            user_may_invite=self.user_may_invite,
            user_may_join_room=self.user_may_join_room,
            check_event_for_spam=self.check_event_for_spam,
        )
        api.register_third_party_rules_callbacks(on_create_room=self.on_create_room)
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
        create = state.get(("m.room.create", ""))
        members = {"join": [], "invite": []}
        for (etype, key), ev in state.items():
            if etype == "m.room.member":
                m = ev.content.get("membership")
                if m in members:
                    members[m].append(key)
        return {
            "create": dict(create.content) if create else {},
            "creator": create.sender if create else None,
            "members": members,
        }

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
        backend = self._backend_for(user_id, *invites)
        if backend is None:
            return
        question = {"action": "create", "user": user_id,
                    "request": {"invite": invites, "is_direct": bool(request.get("is_direct"))}}
        try:
            answer = await self._ask(backend, question)
        except _Unavailable:
            if any(backend.puppets.fullmatch(u) for u in invites) or backend.owns(user_id):
                raise SynapseError(403, self._UNAVAILABLE[1]["error"], Codes.FORBIDDEN)
            return
        if not answer["allow"]:
            raise SynapseError(403, answer.get("error", "Nicht erlaubt."), Codes.FORBIDDEN,
                               additional_fields={"de.assisto.rule": answer.get("rule")})
        creation.update(answer.get("creation_content") or {})
        if answer.get("preset"):
            request["preset"] = answer["preset"]
        for extra in answer.get("add_invites") or []:
            if extra not in invites and extra != user_id:
                invites.append(extra)
        request["invite"] = invites
        grants = answer.get("power_levels_users") or {}
        # With trusted_private_chat every invitee (the bot too) becomes a room creator in
        # current room versions, with all power; a grant would then be refused.
        if grants and request.get("preset") != "trusted_private_chat":
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

    async def user_may_invite(self, inviter: str, invitee: str, room_id: str) -> Any:
        state = await self._room_state(room_id)
        backend = self._backend_for(inviter, invitee, members=state["members"]["join"])
        if backend is None:
            return NOT_SPAM
        try:
            answer = await self._ask(backend, {"action": "invite", "user": inviter, "target": invitee,
                                               "room_id": room_id, "room": state})
        except _Unavailable:
            return self._UNAVAILABLE if self._managed(backend, invitee, state) else NOT_SPAM
        return NOT_SPAM if answer["allow"] else self._refusal(answer)

    async def user_may_join_room(self, user_id: str, room_id: str, is_invited: bool) -> Any:
        state = await self._room_state(room_id)
        backend = self._backend_for(user_id, members=state["members"]["join"])
        if backend is None:
            return NOT_SPAM
        try:
            answer = await self._ask(backend, {"action": "join", "user": user_id, "room_id": room_id, "room": state})
        except _Unavailable:
            return self._UNAVAILABLE if self._managed(backend, user_id, state) else NOT_SPAM
        return NOT_SPAM if answer["allow"] else self._refusal(answer)

    async def check_event_for_spam(self, event) -> Any:
        if event.type == "m.room.member" or not self._api.is_mine(event.sender):
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
        if event.is_state():
            question["state_key"] = event.state_key
        body = event.content.get("body")
        # Whether it addresses the bot (no content is sent): counsellors may still give
        # commands in a read-only group, e.g. to reopen it.
        question["is_command"] = isinstance(body, str) and body.lstrip().startswith("!assisto")
        try:
            answer = await self._ask(backend, question)
        except _Unavailable:
            return self._UNAVAILABLE if puppet else NOT_SPAM
        return NOT_SPAM if answer["allow"] else self._refusal(answer)

    @staticmethod
    def _managed(backend: _Backend, user_id: str, state: dict) -> bool:
        return (bool(backend.puppets.fullmatch(user_id)) or backend.bot in state["members"]["join"]
                or backend.bot in state["members"]["invite"] or CREATE_KIND in state["create"])
