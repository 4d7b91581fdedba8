//! The rules through the Synapse module's check endpoint (`POST /_assisto/module/v1/check`),
//! asked exactly as `synapse_module/assisto_synapse/__init__.py` asks: the action, who, and
//! the room's state as Synapse sees it. People and institutions are made through the admin
//! API. What Synapse then does with the verdict is the real-Synapse suite's business
//! (`tests/tests/it/rules.rs`, `attacks.rs`).

use reqwest::Method;
use serde_json::json;

use crate::{assert_allowed, assert_refused, bot, room_state, Service, MODULE_TOKEN};

const NO_CLIENTS: &str =
    "Chats mit Kolleg:innen sind interne Chats: Ratsuchende können ihnen nicht beitreten.";
const CLIENTS_DO_NOT_ACT: &str =
    "Ratsuchende nehmen nur an Chats teil, in die sie von Beratenden eingeladen werden.";
const COLLEAGUE_CAP: &str = "Ein Gruppenchat mit Kolleg:innen hat höchstens 8 Mitglieder (inklusive der Person, die ihn erstellt hat). Diese Person kann nicht hinzugefügt werden.";
const OWN_INSTITUTION_ONLY: &str =
    "Diesem Chat können nur Beratende dieser Einrichtung (und, wo vorgesehen, ihre Ratsuchenden) angehören.";
const INSTITUTION_BOUNDARY: &str =
    "Ratsuchende können nur von Beratenden ihrer eigenen Einrichtung erreicht werden.";
const LOCAL_ONLY: &str = "Dieser Chat ist nur für Personen dieser Einrichtung.";
const BLOCKED: &str =
    "Diese ratsuchende Person ist gesperrt: Sie kann keine Nachrichten senden und keinem Chat beitreten.";
const INVITE_ONLY: &str =
    "Diesem Chat tritt man nur auf Einladung bei. Bitte bitten Sie eine Person im Chat, Sie einzuladen.";
const PROTECTED_SETTING: &str = "Diese Einstellung legt assisto für diese Art von Chat fest (wer beitreten und den Verlauf lesen kann, Gastzugang, Verschlüsselung, Adressen, Raumverzeichnis, Bereiche, Widgets). Sie kann nicht geändert werden.";
const PROTECTED_POWER_LEVELS: &str = "Diese Berechtigungen sind nicht möglich: Der assisto-Bot behält seine Rechte, niemand erhält mehr Rechte als er, und Ratsuchende erhalten keine Rechte.";

#[tokio::test]
async fn no_client_is_ever_invited_into_or_joins_a_colleague_room() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let ben = svc.counsellor(&nord, "ben", "Ben Weber").await;
    let maria = svc.client(&nord, "Maria").await;
    let b = bot();
    let setup = svc.hs.requests().await.len();

    // A colleague chat of Anna and Ben: Anna invites the client → refused.
    let colleague = room_state(Some("colleague_chat"), "nord", &anna, &[&b, &anna, &ben], &[]);
    let v = svc
        .check(json!({"action": "member", "user": anna, "target": maria, "membership": "invite",
            "room_id": "!kollegen:localhost", "room": colleague}))
        .await;
    assert_refused(&v, "no_clients_in_colleague_rooms", NO_CLIENTS);
    // A colleague group too, whoever invites.
    let group = room_state(Some("colleague_group"), "nord", &anna, &[&b, &anna, &ben], &[]);
    let v = svc
        .check(json!({"action": "member", "user": ben, "target": maria, "membership": "invite",
            "room_id": "!gruppe:localhost", "room": group}))
        .await;
    assert_refused(&v, "no_clients_in_colleague_rooms", NO_CLIENTS);
    // The client joining on her own (even were it made public) is refused.
    let v = svc
        .check(json!({"action": "member", "user": maria, "target": maria, "membership": "join",
            "room_id": "!kollegen:localhost", "room": colleague}))
        .await;
    assert_refused(&v, "clients_do_not_act", CLIENTS_DO_NOT_ACT);
    // A room created as a direct chat with a colleague and the client: not a colleague room
    // with a client in it — the client makes it a group (the check does not refuse it as
    // a colleague room).
    let v = svc
        .check(json!({"action": "create", "user": anna, "request": {"invite": [ben, maria], "is_direct": false}}))
        .await;
    assert_allowed(&v);
    assert_eq!(v["creation_content"]["de.assisto.kind"], "group", "{v}");

    // The same invite into her client chat goes ahead: the refusals above are the rule's.
    let chat = room_state(Some("client_chat"), "nord", &anna, &[&b, &anna], &[]);
    let v = svc
        .check(json!({"action": "member", "user": anna, "target": maria, "membership": "invite",
            "room_id": "!chat:localhost", "room": chat}))
        .await;
    assert_allowed(&v);

    // Refusals are audited (IDs only).
    let actions = svc.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "rule.no_clients_in_colleague_rooms.refused").count(), 2);
    assert!(actions.contains(&"rule.clients_do_not_act.refused".to_owned()), "{actions:?}");
    // Answering asks nothing of the homeserver (no room made, nobody invited): Synapse
    // carries out what is allowed.
    let asked: Vec<String> = svc.hs.requests().await[setup..].iter().map(ToString::to_string).collect();
    assert!(asked.is_empty(), "{asked:?}");
    svc.finish().await;
}

#[tokio::test]
async fn a_colleague_group_has_at_most_eight_members() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let creator = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let mut others = Vec::new();
    for i in 1..=8 {
        others.push(svc.counsellor(&nord, &format!("kollege{i}"), &format!("Kollege {i}")).await);
    }
    let b = bot();

    // Created with eight colleagues at once (nine members): refused before the room exists.
    let v = svc.check(json!({"action": "create", "user": creator, "request": {"invite": others}})).await;
    assert_refused(&v, "colleague_cap", COLLEAGUE_CAP);
    // Invites inside initial_state count as invites.
    let state_invites: Vec<_> = others[..1]
        .iter()
        .map(|u| json!({"type": "m.room.member", "state_key": u, "content": {"membership": "invite"}}))
        .collect();
    let v = svc
        .check(json!({"action": "create", "user": creator,
            "request": {"invite": others[1..], "initial_state": state_invites}}))
        .await;
    assert_refused(&v, "colleague_cap", COLLEAGUE_CAP);

    // Seven fit. The answer shapes the room: a colleague group of this institution, the bot
    // invited first with power 100, private, the `private_chat` preset.
    let v = svc.check(json!({"action": "create", "user": creator, "request": {"invite": others[..7]}})).await;
    assert_allowed(&v);
    assert_eq!(
        v["creation_content"],
        json!({"de.assisto.kind": "colleague_group", "de.assisto.institution": "nord"})
    );
    assert_eq!(v["invite"][0], b, "the bot first: {v}");
    assert_eq!(v["invite"].as_array().map(Vec::len), Some(8), "{v}");
    assert_eq!((v["preset"].as_str(), v["visibility"].as_str()), (Some("private_chat"), Some("private")));
    assert_eq!(v["power_levels_users"], json!({ b.clone(): 100 }));

    // In the room: the creator, six joined, one invited (eight; the bot does not count).
    let joined: Vec<&str> =
        [b.as_str(), creator.as_str()].into_iter().chain(others[..6].iter().map(String::as_str)).collect();
    let full = room_state(Some("colleague_group"), "nord", &creator, &joined, &[&others[6]]);
    for inviter in [&creator, &others[0]] {
        let v = svc
            .check(json!({"action": "member", "user": inviter, "target": others[7], "membership": "invite",
                "room_id": "!fall:localhost", "room": full}))
            .await;
        assert_refused(&v, "colleague_cap", COLLEAGUE_CAP);
    }
    // The ninth cannot join or knock their way in either.
    for membership in ["join", "knock"] {
        let v = svc
            .check(
                json!({"action": "member", "user": others[7], "target": others[7], "membership": membership,
                "room_id": "!fall:localhost", "room": full}),
            )
            .await;
        assert_refused(&v, "colleague_cap", COLLEAGUE_CAP);
    }
    // The invited eighth may join; with one place left the invite goes ahead.
    let v = svc
        .check(json!({"action": "member", "user": others[6], "target": others[6], "membership": "join",
            "room_id": "!fall:localhost", "room": full}))
        .await;
    assert_allowed(&v);
    let seven = room_state(Some("colleague_group"), "nord", &creator, &joined, &[]);
    let v = svc
        .check(json!({"action": "member", "user": creator, "target": others[7], "membership": "invite",
            "room_id": "!fall2:localhost", "room": seven}))
        .await;
    assert_allowed(&v);

    let actions = svc.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "rule.colleague_cap.refused").count(), 6, "{actions:?}");
    svc.finish().await;
}

#[tokio::test]
async fn another_institutions_people_are_kept_out() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let sued = svc.institution("sued", "Beratung Süd").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Nord").await;
    let otto = svc.counsellor(&sued, "otto", "Otto Süd").await;
    let maria = svc.client(&nord, "Maria").await;
    let b = bot();
    let group = room_state(Some("colleague_group"), "nord", &anna, &[&b, &anna], &[]);

    // Anna invites a counsellor of another institution into her colleague group.
    let v = svc
        .check(json!({"action": "member", "user": anna, "target": otto, "membership": "invite",
            "room_id": "!gruppe:localhost", "room": group}))
        .await;
    assert_refused(&v, "own_institution_only", OWN_INSTITUTION_ONLY);
    // Otto joins it on his own, or knocks.
    for membership in ["join", "knock"] {
        let v = svc
            .check(json!({"action": "member", "user": otto, "target": otto, "membership": membership,
                "room_id": "!gruppe:localhost", "room": group}))
            .await;
        assert_refused(&v, "own_institution_only", OWN_INSTITUTION_ONLY);
    }
    // Otto opens a chat with Nord's client: refused before the room exists.
    let v = svc
        .check(json!({"action": "create", "user": otto, "request": {"invite": [maria], "is_direct": true,
            "preset": "trusted_private_chat"}}))
        .await;
    assert_refused(&v, "institution_boundary", INSTITUTION_BOUNDARY);
    // … or invites her into a room of his own institution.
    let his = room_state(Some("client_chat"), "sued", &otto, &[&b, &otto], &[]);
    let v = svc
        .check(json!({"action": "member", "user": otto, "target": maria, "membership": "invite",
            "room_id": "!sued:localhost", "room": his}))
        .await;
    assert_refused(&v, "institution_boundary", INSTITUTION_BOUNDARY);
    // A user of another homeserver is not let in either.
    let v = svc
        .check(json!({"action": "member", "user": anna, "target": "@eve:fremd.test", "membership": "invite",
            "room_id": "!gruppe:localhost", "room": group}))
        .await;
    assert_refused(&v, "local_only", LOCAL_ONLY);
    // Anna may reach her own client.
    let v = svc
        .check(json!({"action": "create", "user": anna, "request": {"invite": [maria], "is_direct": true}}))
        .await;
    assert_allowed(&v);
    assert_eq!(v["creation_content"]["de.assisto.kind"], "client_chat", "{v}");
    svc.finish().await;
}

#[tokio::test]
async fn a_blocked_client_may_not_send_or_join_until_unblocked() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let maria = svc.client(&nord, "Maria").await;
    let b = bot();
    let chat = room_state(Some("client_chat"), "nord", &anna, &[&b, &anna, &maria], &[]);
    let send = |user: &str| {
        json!({"action": "send", "user": user, "room_id": "!chat:localhost", "event_type": "m.room.message",
            "room": chat, "is_command": false})
    };

    assert_allowed(&svc.check(send(&maria)).await);
    svc.block(&maria, true).await;
    assert_refused(&svc.check(send(&maria)).await, "blocked_client", BLOCKED);
    // Only the client is blocked: the counsellor still writes (and reads the history).
    assert_allowed(&svc.check(send(&anna)).await);
    // Invited somewhere else, the blocked client neither is invited nor joins.
    let other = room_state(Some("client_chat"), "nord", &anna, &[&b, &anna], &[&maria]);
    let v = svc
        .check(json!({"action": "member", "user": maria, "target": maria, "membership": "join",
            "room_id": "!neu:localhost", "room": other}))
        .await;
    assert_refused(&v, "blocked_client", BLOCKED);
    let empty = room_state(Some("client_chat"), "nord", &anna, &[&b, &anna], &[]);
    let v = svc
        .check(json!({"action": "member", "user": anna, "target": maria, "membership": "invite",
            "room_id": "!neu2:localhost", "room": empty}))
        .await;
    assert_refused(&v, "blocked_client", BLOCKED);

    svc.block(&maria, false).await;
    assert_allowed(&svc.check(send(&maria)).await);
    let actions = svc.audit_actions().await;
    assert!(actions.contains(&"client.block".to_owned()) && actions.contains(&"client.unblock".to_owned()));
    assert_eq!(actions.iter().filter(|a| *a == "rule.blocked_client.refused").count(), 3, "{actions:?}");
    svc.finish().await;
}

#[tokio::test]
async fn knocks_on_managed_rooms_are_refused() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let ben = svc.counsellor(&nord, "ben", "Ben Weber").await;
    let maria = svc.client(&nord, "Maria").await;
    let b = bot();

    // A colleague of the institution, whom no rule keeps out: only by invitation.
    let group = room_state(Some("colleague_group"), "nord", &anna, &[&b, &anna], &[]);
    let v = svc
        .check(json!({"action": "member", "user": ben, "target": ben, "membership": "knock",
            "room_id": "!gruppe:localhost", "room": group}))
        .await;
    assert_refused(&v, "invite_only", INVITE_ONLY);
    // A client knocking learns the rule that keeps her out.
    let v = svc
        .check(json!({"action": "member", "user": maria, "target": maria, "membership": "knock",
            "room_id": "!gruppe:localhost", "room": group}))
        .await;
    assert_refused(&v, "clients_do_not_act", CLIENTS_DO_NOT_ACT);
    // A room that is not the service's (no institution, no kind): counsellors may knock,
    // clients never.
    let unmanaged =
        json!({"create": {}, "creator": "@someone:localhost", "members": {"join": ["@someone:localhost"]}});
    let v = svc
        .check(json!({"action": "member", "user": ben, "target": ben, "membership": "knock",
            "room_id": "!privat:localhost", "room": unmanaged}))
        .await;
    assert_allowed(&v);
    let v = svc
        .check(json!({"action": "member", "user": maria, "target": maria, "membership": "knock",
            "room_id": "!privat:localhost", "room": unmanaged}))
        .await;
    assert_refused(&v, "clients_do_not_act", CLIENTS_DO_NOT_ACT);
    svc.finish().await;
}

#[tokio::test]
async fn protected_state_and_power_levels_are_refused() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let sued = svc.institution("sued", "Beratung Süd").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let ben = svc.counsellor(&nord, "ben", "Ben Weber").await;
    let otto = svc.counsellor(&sued, "otto", "Otto Süd").await;
    let maria = svc.client(&nord, "Maria").await;
    let b = bot();
    let group = room_state(Some("colleague_group"), "nord", &anna, &[&b, &anna, &ben], &[]);
    let state = |user: &str, event_type: &str, content: serde_json::Value| {
        json!({"action": "state", "user": user, "room_id": "!gruppe:localhost", "event_type": event_type,
            "state_key": "", "content": content, "room": group})
    };

    // The join rule: only `invite`.
    let v = svc.check(state(&anna, "m.room.join_rules", json!({"join_rule": "public"}))).await;
    assert_refused(&v, "protected_setting", PROTECTED_SETTING);
    let v = svc.check(state(&anna, "m.room.join_rules", json!({"join_rule": "knock"}))).await;
    assert_refused(&v, "protected_setting", PROTECTED_SETTING);
    assert_allowed(&svc.check(state(&anna, "m.room.join_rules", json!({"join_rule": "invite"}))).await);
    // History never world-readable; no guests; no encryption, aliases or space links.
    let v = svc
        .check(state(&anna, "m.room.history_visibility", json!({"history_visibility": "world_readable"})))
        .await;
    assert_refused(&v, "protected_setting", PROTECTED_SETTING);
    assert_allowed(
        &svc.check(state(&anna, "m.room.history_visibility", json!({"history_visibility": "joined"}))).await,
    );
    let v = svc.check(state(&anna, "m.room.guest_access", json!({"guest_access": "can_join"}))).await;
    assert_refused(&v, "protected_setting", PROTECTED_SETTING);
    let v = svc.check(state(&anna, "m.room.encryption", json!({"algorithm": "m.megolm.v1.aes-sha2"}))).await;
    assert_refused(&v, "protected_setting", PROTECTED_SETTING);
    let v = svc.check(state(&anna, "m.room.canonical_alias", json!({"alias": "#fall:localhost"}))).await;
    assert_refused(&v, "protected_setting", PROTECTED_SETTING);

    // Power levels: nobody above the bot, the bot keeps 100, clients get nothing.
    let v = svc
        .check(state(
            &anna,
            "m.room.power_levels",
            json!({"users": {b.clone(): 100, anna.clone(): 100, ben.clone(): 150}}),
        ))
        .await;
    assert_refused(&v, "protected_power_levels", PROTECTED_POWER_LEVELS);
    let v = svc
        .check(state(&anna, "m.room.power_levels", json!({"users": {b.clone(): 50, anna.clone(): 100}})))
        .await;
    assert_refused(&v, "protected_power_levels", PROTECTED_POWER_LEVELS);
    let v = svc
        .check(state(&anna, "m.room.power_levels", json!({"users": {b.clone(): 100, maria.clone(): 50}})))
        .await;
    assert_refused(&v, "protected_power_levels", PROTECTED_POWER_LEVELS);
    let v =
        svc.check(state(&anna, "m.room.power_levels", json!({"users": {b.clone(): 100}, "kick": 200}))).await;
    assert_refused(&v, "protected_power_levels", PROTECTED_POWER_LEVELS);
    let v = svc
        .check(state(
            &anna,
            "m.room.power_levels",
            json!({"users": {b.clone(): 100, anna.clone(): 100, ben.clone(): 50}}),
        ))
        .await;
    assert_allowed(&v);

    // The name is free for the institution's counsellors, not for others.
    assert_allowed(&svc.check(state(&ben, "m.room.name", json!({"name": "Fallbesprechung"}))).await);
    let v = svc.check(state(&otto, "m.room.name", json!({"name": "Übernommen"}))).await;
    assert_refused(&v, "own_institution_only", OWN_INSTITUTION_ONLY);
    // The bot cannot be kicked out of a managed room.
    let v = svc
        .check(json!({"action": "member", "user": anna, "target": b, "membership": "leave",
            "room_id": "!gruppe:localhost", "room": group}))
        .await;
    assert_eq!((v["allow"].as_bool(), v["rule"].as_str()), (Some(false), Some("bot_stays")), "{v}");
    // Rooms in the directory and aliases: never for managed rooms.
    let v = svc
        .check(json!({"action": "publish", "user": anna, "room_id": "!gruppe:localhost", "room": group}))
        .await;
    assert_refused(&v, "protected_setting", PROTECTED_SETTING);
    let v = svc.check(json!({"action": "alias", "user": anna})).await;
    assert_refused(&v, "protected_setting", PROTECTED_SETTING);
    svc.finish().await;
}

#[tokio::test]
async fn the_check_endpoint_wants_the_module_token_and_json() {
    let svc = Service::start().await;
    let path = "/_assisto/module/v1/check";
    let q = json!({"action": "alias", "user": "@anna:localhost"});
    let (s, v) = svc.call(Method::POST, path, None, Some(q.clone())).await;
    assert_eq!((s, v["errcode"].as_str()), (401, Some("M_UNAUTHORIZED")), "{v}");
    let (s, v) = svc.call(Method::POST, path, Some("falsch"), Some(q.clone())).await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{v}");
    let (s, v) = svc.call_raw(Method::POST, path, Some(MODULE_TOKEN), "{kein json").await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_NOT_JSON")), "{v}");
    let (s, v) = svc.call(Method::POST, path, Some(MODULE_TOKEN), Some(json!({"action": "fly"}))).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_BAD_JSON")), "{v}");
    // A service without a module token refuses every question.
    let svc2 = Service::start_with(|c| c.appservice.module_token = None).await;
    let (s, v) = svc2.call(Method::POST, path, Some(MODULE_TOKEN), Some(q)).await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{v}");
    svc.finish().await;
    svc2.finish().await;
}
