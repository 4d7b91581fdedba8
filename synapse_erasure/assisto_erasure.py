"""assisto_erasure: erases what Synapse keeps of a deleted client and no API removes.

assisto's deletion routine redacts a client's events, purges the client's own rooms,
deletes its media and deactivates the puppet with erase. Synapse still keeps, in rooms
that stay (group chats, the institution's directory room):

- `room_memberships.display_name` / `avatar_url` of every membership event of the user
  (the name the client had when invited or joined); no API and no Synapse job clears them;
- `event_search` rows of the user's messages (redaction does not remove them,
  element-hq/synapse#13122);
- the unredacted JSON of redacted events in `event_json` until `redaction_retention_period`
  has passed and the censoring job (every 5 minutes) ran.

This module gives the routine one admin-only endpoint that removes them at once, for a user
who is deactivated and erased (nobody else):

    POST /_synapse/client/assisto/v1/erase   {"user_id": "@rs_…:example.org"}
    Authorization: Bearer <access token of a server admin>
    → 200 {"events_pruned": N, "search_rows_deleted": N, "memberships_cleared": N}

Every event the user sent and every membership event about the user (invites by others
included) is pruned in `event_json` (Synapse's own redaction algorithm, caches invalidated),
the user's `event_search` rows are deleted and the user's `room_memberships` rows lose name
and avatar. Repeating it is harmless. Tested with Synapse 1.163 (it uses its data store).

It also holds `StripQueryStrings`, a logging filter that removes query strings from the
URIs Synapse logs (the media upload's `filename`, search terms), used by the log
configuration `scripts/synapse_config.py` writes.

Configure it in homeserver.yaml (the folder on Synapse's Python path):

    modules:
      - module: assisto_erasure.AssistoErasure
        config: {}
"""

import logging
import re
from typing import Any, List, Tuple

from synapse.api.errors import AuthError, Codes, SynapseError
from synapse.http.server import DirectServeJsonResource
from synapse.http.servlet import parse_json_object_from_request
from synapse.module_api import ModuleApi

logger = logging.getLogger(__name__)

PATH = "/_synapse/client/assisto/v1/erase"


class AssistoErasure:
    def __init__(self, config: dict, api: ModuleApi):
        self._api = api
        api.register_web_resource(PATH, _EraseResource(api))

    @staticmethod
    def parse_config(config: dict) -> dict:
        return config or {}


class _EraseResource(DirectServeJsonResource):
    def __init__(self, api: ModuleApi):
        super().__init__(clock=getattr(api, "_clock", None))
        self._api = api
        self._store = api._store  # the main data store (expire_event, is_user_erased)

    async def _async_render_POST(self, request: Any) -> Tuple[int, dict]:
        requester = await self._api.get_user_by_req(request)
        if not await self._api.is_user_admin(requester.user.to_string()):
            raise AuthError(403, "You are not a server admin", Codes.FORBIDDEN)
        body = parse_json_object_from_request(request)
        user_id = body.get("user_id")
        if not isinstance(user_id, str) or not self._api.is_mine(user_id):
            raise SynapseError(400, "user_id must be a local user", Codes.INVALID_PARAM)
        info = await self._api.get_userinfo_by_id(user_id)
        if info is None or not info.is_deactivated or not await self._store.is_user_erased(user_id):
            raise SynapseError(
                400, "only a deactivated and erased user can be erased here", Codes.INVALID_PARAM
            )

        event_ids: List[str] = await self._api.run_db_interaction(
            "assisto_erasure_events", _events_of_user_txn, user_id
        )
        pruned = 0
        for event_id in event_ids:
            try:
                # Prunes the stored JSON with the room version's redaction algorithm and
                # invalidates the event caches (also on other workers).
                await self._store.expire_event(event_id)
                pruned += 1
            except Exception as e:  # a rejected or missing event: nothing to prune
                logger.debug("not pruned: %s (%s)", event_id, type(e).__name__)
        search, members = await self._api.run_db_interaction(
            "assisto_erasure_rows", _clear_rows_txn, user_id, event_ids
        )
        logger.info("erased what remained of a deleted user: %d events, %d search rows", pruned, search)
        return 200, {
            "events_pruned": pruned,
            "search_rows_deleted": search,
            "memberships_cleared": members,
        }


def _events_of_user_txn(txn: Any, user_id: str) -> List[str]:
    """Every membership event about the user and every event the user sent (looked up per
    room the user was ever in, so that the room index is used)."""
    ids = set()
    txn.execute("SELECT event_id, room_id FROM room_memberships WHERE user_id = ?", (user_id,))
    rows = txn.fetchall()
    ids.update(r[0] for r in rows)
    for room_id in sorted({r[1] for r in rows}):
        txn.execute("SELECT event_id FROM events WHERE room_id = ? AND sender = ?", (room_id, user_id))
        ids.update(r[0] for r in txn.fetchall())
    return sorted(ids)


def _clear_rows_txn(txn: Any, user_id: str, event_ids: List[str]) -> Tuple[int, int]:
    # event_search has no sender on SQLite: by event ID, in chunks (one scan each there).
    search = 0
    for i in range(0, len(event_ids), 500):
        chunk = event_ids[i : i + 500]
        marks = ", ".join("?" for _ in chunk)
        txn.execute(f"DELETE FROM event_search WHERE event_id IN ({marks})", chunk)
        search += max(txn.rowcount, 0)
    txn.execute(
        "UPDATE room_memberships SET display_name = NULL, avatar_url = NULL WHERE user_id = ?",
        (user_id,),
    )
    return search, max(txn.rowcount, 0)


_QUERY = re.compile(r"(/_(?:matrix|synapse)/[^\s?\"']*)\?[^\s\"']*")


class StripQueryStrings(logging.Filter):
    """Removes query strings from Synapse's request URIs in log records: access lines carry
    the media upload's `filename` and other personal values otherwise."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        stripped = _QUERY.sub(r"\1?<omitted>", message)
        if stripped != message:
            record.msg = stripped
            record.args = None
        return True
