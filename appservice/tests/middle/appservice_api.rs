//! The application-service API (`PUT /_matrix/app/v1/transactions/{txnId}`): the homeserver
//! pushes events, the service records them durably, answers `200 {}`, and processes them —
//! here observed in what it then asks the mock homeserver to do. A replayed transaction,
//! or the same events in another one, changes nothing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::mock_hs::Seen;
use crate::{bot, Service, HS_TOKEN};

const NO_CLIENTS: &str =
    "Chats mit Kolleg:innen sind interne Chats: Ratsuchende können ihnen nicht beitreten.";
const BLOCKED: &str =
    "Diese ratsuchende Person ist gesperrt: Sie kann keine Nachrichten senden und keinem Chat beitreten.";

fn create(id: &str, room: &str, sender: &str, kind: &str) -> Value {
    json!({"type": "m.room.create", "event_id": id, "room_id": room, "sender": sender, "state_key": "",
        "origin_server_ts": 1_700_000_000_000i64,
        "content": {"room_version": "11", "de.assisto.kind": kind, "de.assisto.institution": "nord"}})
}

fn member(id: &str, room: &str, sender: &str, target: &str, membership: &str) -> Value {
    json!({"type": "m.room.member", "event_id": id, "room_id": room, "sender": sender, "state_key": target,
        "origin_server_ts": 1_700_000_000_000i64, "content": {"membership": membership}})
}

/// The joins of `room` as `user`.
async fn joins(svc: &Service, room: &str, user: &str) -> Vec<Seen> {
    let calls = svc.hs.calls("POST", &format!("/_matrix/client/v3/rooms/{room}/join")).await;
    calls.into_iter().filter(|r| r.user_id() == Some(user)).collect()
}

#[tokio::test]
async fn member_events_are_processed_once_and_a_replay_is_a_no_op() {
    let svc =
        Service::start_with(|c| c.appservice.public_url = Some("https://assisto.example.org".into())).await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let maria = svc.client(&nord, "Maria").await;
    let b = bot();
    let room = "!beratung:localhost";

    // Anna's client chat, as Synapse would push it: created (classified by the module), the
    // bot invited and joined, the client invited.
    let events = json!([
        create("$create", room, &anna, "client_chat"),
        member("$invite-bot", room, &anna, &b, "invite"),
        member("$join-bot", room, &b, &b, "join"),
        member("$invite-maria", room, &anna, &maria, "invite"),
    ]);
    assert_eq!(svc.push("1", events.clone()).await, (200, json!({})));

    // The bot accepts (as itself), the room is listed in the Ratsuchende space, the client's
    // puppet accepts (masquerading as the puppet), and the client file's widget is placed.
    svc.hs.wait_for("POST", &format!("/_matrix/client/v3/rooms/{room}/join"), 2).await;
    assert_eq!(joins(&svc, room, &b).await.len(), 1, "the bot joins once");
    assert_eq!(joins(&svc, room, &maria).await.len(), 1, "the puppet joins once");
    let child = format!("/_matrix/client/v3/rooms/{}/state/m.space.child/{room}", nord.room("clients"));
    let listed = svc.hs.wait_for("PUT", &child, 1).await;
    assert_eq!((listed[0].user_id(), &listed[0].body), (Some(b.as_str()), &json!({"via": ["localhost"]})));
    let widget = svc
        .hs
        .wait_for(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/state/im.vector.modular.widgets/assisto-mappe"),
            1,
        )
        .await;
    let url = widget[0].body["url"].as_str().expect("widget url");
    assert!(url.starts_with("https://assisto.example.org/_assisto/widget/mappe?client="), "{url}");
    let (_, rooms) = svc.admin(Method::GET, "/institutions/nord/rooms", None).await;
    let kind =
        rooms.as_array().and_then(|r| r.iter().find(|r| r["room_id"] == room)).map(|r| r["kind"].clone());
    assert_eq!(kind, Some(json!("client_chat")), "{rooms}");

    // The same transaction again: 200, nothing recorded or done twice. The same events in
    // another transaction (a homeserver whose counter started over): the same.
    assert_eq!(svc.push("1", events.clone()).await, (200, json!({})));
    assert_eq!(svc.push("2", events).await, (200, json!({})));
    // A new event after them, to know the processor has caught up when it is done.
    let other = "!zweiter:localhost";
    assert_eq!(svc.push("3", json!([member("$invite-bot-2", other, &anna, &b, "invite")])).await.0, 200);
    svc.hs.wait_for("POST", &format!("/_matrix/client/v3/rooms/{other}/join"), 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(joins(&svc, room, &b).await.len(), 1, "the replay did not join again");
    assert_eq!(joins(&svc, room, &maria).await.len(), 1, "the replay did not join again");
    assert_eq!(svc.hs.calls("PUT", &child).await.len(), 1);
    svc.finish().await;
}

#[tokio::test]
async fn a_refused_puppet_invite_is_declined_and_explained() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let maria = svc.client(&nord, "Maria").await;
    let b = bot();
    svc.block(&maria, true).await;

    // A blocked client invited into a client chat: the puppet declines, the bot says why.
    let room = "!gesperrt:localhost";
    let events = json!([
        create("$c1", room, &anna, "client_chat"),
        member("$b1", room, &anna, &b, "invite"),
        member("$b2", room, &b, &b, "join"),
        member("$m1", room, &anna, &maria, "invite"),
    ]);
    assert_eq!(svc.push("1", events).await.0, 200);
    let left = svc.hs.wait_for("POST", &format!("/_matrix/client/v3/rooms/{room}/leave"), 1).await;
    assert_eq!(left[0].user_id(), Some(maria.as_str()), "declined as the puppet");
    let notice =
        svc.hs.wait_for("PUT", &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/*"), 1).await;
    assert_eq!(notice[0].user_id(), Some(b.as_str()));
    assert_eq!(notice[0].body, json!({"msgtype": "m.notice", "body": BLOCKED}));
    assert!(joins(&svc, room, &maria).await.is_empty(), "a refused invite leads to no join");
    assert!(svc.audit_actions().await.contains(&"rule.blocked_client.refused".to_owned()));

    // A client forced into a colleague chat (a server admin, past the module): the puppet
    // declines, and the second line of defence removes her with the rule's explanation.
    svc.block(&maria, false).await;
    let colleague = "!kollegen:localhost";
    svc.hs.mock_state().for_room(colleague).ok_json(json!({"membership": "invite"})).mount().await;
    let events = json!([
        create("$c2", colleague, &anna, "colleague_chat"),
        member("$b3", colleague, &anna, &b, "invite"),
        member("$b4", colleague, &b, &b, "join"),
        member("$m2", colleague, &anna, &maria, "invite"),
    ]);
    assert_eq!(svc.push("2", events).await.0, 200);
    let kicked = svc.hs.wait_for("POST", &format!("/_matrix/client/v3/rooms/{colleague}/kick"), 1).await;
    assert_eq!(kicked[0].user_id(), Some(b.as_str()), "by the bot");
    assert_eq!(kicked[0].body, json!({"user_id": maria, "reason": NO_CLIENTS}));
    svc.hs.wait_for("POST", &format!("/_matrix/client/v3/rooms/{colleague}/leave"), 1).await;
    assert!(joins(&svc, colleague, &maria).await.is_empty());
    let actions = svc.audit_actions().await;
    assert!(actions.contains(&"rule.no_clients_in_colleague_rooms.repaired".to_owned()), "{actions:?}");
    svc.finish().await;
}

#[tokio::test]
async fn the_homeserver_must_authenticate_and_send_a_transaction() {
    let svc = Service::start().await;
    let path = "/_matrix/app/v1/transactions/1";
    let body = json!({"events": []});
    let (s, v) = svc.call(Method::PUT, path, None, Some(body.clone())).await;
    assert_eq!((s, v["errcode"].as_str()), (401, Some("M_UNAUTHORIZED")), "{v}");
    let (s, v) = svc.call(Method::PUT, path, Some("falsch"), Some(body.clone())).await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{v}");
    let (s, v) = svc.call(Method::PUT, &format!("{path}?access_token={HS_TOKEN}"), None, Some(body)).await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "the query token alone: {v}");
    let (s, v) = svc.call_raw(Method::PUT, path, Some(HS_TOKEN), "{kein json").await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_NOT_JSON")), "{v}");
    let (s, v) = svc.call(Method::PUT, path, Some(HS_TOKEN), Some(json!({"ereignisse": []}))).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_BAD_JSON")), "{v}");

    // A malformed event does not fail the transaction (it becomes a dead letter), and is
    // not acted on: the bot is not made to join anything.
    let broken = json!([{"type": "m.room.member", "state_key": bot(), "content": {"membership": "invite"}}]);
    assert_eq!(svc.push("2", broken).await, (200, json!({})));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(svc.hs.calls("POST", "/_matrix/client/v3/rooms/*/join").await.is_empty());
    svc.finish().await;
}
