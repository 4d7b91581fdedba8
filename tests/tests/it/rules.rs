//! The rules of assisto, each shown holding against the real Synapse, including attempts
//! to get around them (raw invite, raw join, room upgrade).

use std::time::Duration;

use assisto_appservice::matrix::homeserver::TxnId;
use assisto_tests::{
    eventually,
    matrix::{enc, joined, rid, TestUser},
    TestService,
};
use reqwest::Method;
use serde_json::json;

/// Whether the institution's space for `cat` lists the room.
async fn in_space(member: &TestUser, space: &str, room_id: &str) -> bool {
    let path = format!("/_matrix/client/v3/rooms/{}/state/m.space.child/{}", enc(space), enc(room_id));
    let v = member.raw_get(&path).await;
    v.get("via").is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colleague_group_refuses_its_ninth_member() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Beratung Nord").await;
    let creator = svc.counsellor(&inst, "Anna Berger").await;
    let mut others = Vec::new();
    for i in 0..8 {
        others.push(svc.counsellor(&inst, &format!("Kollege {i}")).await);
    }

    // Created with eight invitees at once (nine members): refused before the room exists.
    let all: Vec<&str> = others.iter().map(|u| u.user_id.as_str()).collect();
    let (s, v) = creator.create_room_raw(json!({"name": "Zu groß", "invite": all})).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("höchstens 8"), "explained in German: {v}");

    // Built up one by one: the first invite makes it a colleague group; seven fit.
    let (s, v) = creator.create_room_raw(json!({"name": "Fallbesprechung"})).await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room_id").to_owned();
    for u in &others[..7] {
        let (s, v) = creator.invite_raw(&room, &u.user_id).await;
        assert_eq!(s, 200, "invite within the cap: {v}");
    }
    assert_eq!(svc.room_kind(&inst.id, &room).await.as_deref(), Some("colleague_group"));
    for u in &others[..7] {
        let (s, v) = u
            .raw(Method::POST, &format!("/_matrix/client/v3/rooms/{}/join", enc(&room)), Some(json!({})))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    creator.send_text(&rid(&room), "Nur für uns acht.").await;

    // The ninth: the invite is refused with the rule's explanation …
    let ninth = &others[7];
    let (s, v) = creator.invite_raw(&room, &ninth.user_id).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("höchstens 8"), "{v}");
    // … even an invite by another member …
    let (s, _) = others[0].invite_raw(&room, &ninth.user_id).await;
    assert_eq!(s, 403);
    // … the room cannot be made public to try …
    let (s, v) = creator.put_state_raw(&room, "m.room.join_rules", "", json!({"join_rule": "public"})).await;
    assert_eq!((s, v["de.assisto.rule"].as_str()), (403, Some("protected_setting")), "{v}");
    // … and a raw join is refused as well.
    let (s, v) = ninth
        .raw(Method::POST, &format!("/_matrix/client/v3/rooms/{}/join", enc(&room)), Some(json!({})))
        .await;
    assert_eq!(s, 403, "the ninth must not join: {v}");
    // The ninth never read a single message.
    let (s, _) = ninth
        .raw(Method::GET, &format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=10", enc(&room)), None)
        .await;
    assert_eq!(s, 403, "no history for the refused colleague");
    assert!(!joined(&creator, &room).await.contains(&ninth.user_id));

    // The room is listed in the institution's Kolleg:innen space.
    let space = inst.rooms["colleagues"].as_str().expect("space").to_owned();
    eventually("the room in the colleagues' space", Duration::from_secs(20), || async {
        in_space(&creator, &space, &room).await.then_some(())
    })
    .await;

    // Refusals are in the audit log, without content.
    let (_, audit) = svc.admin(Method::GET, "/audit?limit=100", None).await;
    let refused = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"] == "rule.colleague_cap.refused")
        .count();
    assert!(refused >= 3, "{audit}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_ever_joins_a_colleague_room() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Beratung Süd").await;
    let anna = svc.counsellor(&inst, "Anna Schmidt").await;
    let ben = svc.counsellor(&inst, "Ben Weber").await;
    let client = svc.client(&inst, "Maria").await;
    let hs = svc.hs_client();

    // A colleague chat (direct, one colleague).
    let (s, v) = anna
        .create_room_raw(
            json!({"invite": [ben.user_id], "is_direct": true, "preset": "trusted_private_chat"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    eventually("the room recorded", Duration::from_secs(20), || async {
        (svc.room_kind(&inst.id, &room).await.as_deref() == Some("colleague_chat")).then_some(())
    })
    .await;

    // By invite: refused, with the explanation.
    let (s, v) = anna.invite_raw(&room, &client).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("Kolleg:innen"), "{v}");
    // The room cannot be made public; a raw join is refused.
    let (s, _) = anna.put_state_raw(&room, "m.room.join_rules", "", json!({"join_rule": "public"})).await;
    assert_eq!(s, 403);
    let err = hs.join_room(&room, &client).await.expect_err("a client must not join a colleague room");
    assert_eq!(err.errcode(), Some("M_FORBIDDEN"), "{err}");
    // Creating a room that mixes is refused too: a colleague chat cannot be opened with a client.
    // Through an upgrade: the new room inherits the kind, and the client is refused there.
    let (s, v) = anna.upgrade_raw(&room, "12").await;
    assert_eq!(s, 200, "upgrade: {v}");
    let new_room = v["replacement_room"].as_str().expect("replacement").to_owned();
    let (s, v) = anna.invite_raw(&new_room, &client).await;
    assert_eq!(s, 403, "a client must not enter the upgraded colleague room: {v}");
    let (s, _) = anna.put_state_raw(&new_room, "m.room.join_rules", "", json!({"join_rule": "public"})).await;
    assert_eq!(s, 403, "the upgraded room is protected too");
    assert!(hs.join_room(&new_room, &client).await.is_err(), "nor join it");
    assert!(!joined(&anna, &room).await.contains(&client));
    assert!(!joined(&anna, &new_room).await.contains(&client));

    // A client cannot slip into a room before it is classified and make it a colleague
    // room later: clients join only where invited, and a room with a client is a group.
    let (s, v) = anna.create_room_raw(json!({"name": "Offen", "preset": "public_chat"})).await;
    assert_eq!(s, 403, "no public rooms: {v}");
    let (s, v) = anna.create_room_raw(json!({"name": "Offen"})).await;
    assert_eq!(s, 200, "{v}");
    let open = v["room_id"].as_str().expect("room").to_owned();
    let err = hs.join_room(&open, &client).await.expect_err("not invited");
    assert_eq!(err.errcode(), Some("M_FORBIDDEN"), "{err}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counsellors_reach_only_their_own_institutions_clients() {
    let mut svc = TestService::start().await;
    let north = svc.institution("Nord").await;
    let south = svc.institution("Sued").await;
    let anna = svc.counsellor(&north, "Anna Nord").await;
    let otto = svc.counsellor(&south, "Otto Sued").await;
    let name = format!("Klara{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let client = svc.client(&north, &name).await;

    // Anna finds the client by display name in the user directory; Otto does not.
    // Synapse updates its user directory in the background; under load that takes a while.
    eventually("the client in Anna's directory", Duration::from_secs(60), || async {
        anna.search_users(&name).await.contains(&client).then_some(())
    })
    .await;
    assert!(
        !otto.search_users(&name).await.contains(&client),
        "another institution's counsellor must not find the client"
    );
    // Otto cannot reach her even with her ID.
    let (s, v) = otto.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("eigenen Einrichtung"), "{v}");

    // Anna starts a chat the Element way; the puppet accepts; it is a client chat in the
    // Ratsuchende space.
    let (s, v) = anna
        .create_room_raw(json!({"invite": [client], "is_direct": true, "preset": "trusted_private_chat"}))
        .await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    eventually("the client to accept", Duration::from_secs(20), || async {
        joined(&anna, &room).await.contains(&client).then_some(())
    })
    .await;
    assert_eq!(svc.room_kind(&north.id, &room).await.as_deref(), Some("client_chat"));
    let space = north.rooms["clients"].as_str().expect("space").to_owned();
    eventually("the chat in the Ratsuchende space", Duration::from_secs(20), || async {
        in_space(&anna, &space, &room).await.then_some(())
    })
    .await;
    // Anna may write first, and the client's side (the puppet) can answer.
    anna.send_text(&rid(&room), "Hallo, ich bin Anna.").await;
    let hs = svc.hs_client();
    hs.send_notice(&room, &client, &TxnId::random(), "Hallo Anna").await.expect("the client can write");
    // A second client cannot be added to a client chat.
    let second = svc.client(&north, "Zweite").await;
    let (s, _) = anna.invite_raw(&room, &second).await;
    assert_eq!(s, 403);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_client_cannot_send_or_join_and_keeps_the_history() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Beratung West").await;
    let anna = svc.counsellor(&inst, "Anna West").await;
    let client = svc.client(&inst, "Jonas").await;
    let hs = svc.hs_client();
    let (s, v) = anna.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    eventually("the client to accept", Duration::from_secs(20), || async {
        joined(&anna, &room).await.contains(&client).then_some(())
    })
    .await;
    let content = json!({"msgtype": "m.text", "body": "Vor der Sperre"});
    hs.send_event(&room, &client, "m.room.message", &TxnId::random(), &content)
        .await
        .expect("sent before the block");

    let (s, v) = svc.admin(Method::POST, &format!("/clients/{}/block", enc(&client)), None).await;
    assert_eq!((s, v["blocked"].as_bool()), (200, Some(true)), "{v}");
    let content = json!({"msgtype": "m.text", "body": "Nach der Sperre"});
    let err = hs
        .send_event(&room, &client, "m.room.message", &TxnId::random(), &content)
        .await
        .expect_err("blocked");
    assert_eq!(err.errcode(), Some("M_FORBIDDEN"), "{err}");
    assert!(err.to_string().contains("gesperrt"), "explained: {err}");
    // Nor may the blocked client join another chat.
    let (s, v) = anna.create_room_raw(json!({"name": "Gruppe", "invite": [client]})).await;
    assert_eq!(s, 403, "{v}");
    // The history stays.
    let msgs = anna.recent_messages(&rid(&room), 20).await;
    assert!(msgs.iter().any(|(s, b)| *s == client && b == "Vor der Sperre"), "{msgs:?}");
    assert!(!msgs.iter().any(|(_, b)| b == "Nach der Sperre"));

    let (s, _) = svc.admin(Method::POST, &format!("/clients/{}/unblock", enc(&client)), None).await;
    assert_eq!(s, 200);
    let content = json!({"msgtype": "m.text", "body": "Wieder da"});
    hs.send_event(&room, &client, "m.room.message", &TxnId::random(), &content).await.expect("unblocked");
    // The same by bot command in the chat.
    anna.send_text(&rid(&room), "!assisto sperren").await;
    let bot = svc.bot();
    // Generous waits: under load (CI, PostgreSQL) a command's answer can take a while.
    eventually("the block by command", Duration::from_secs(60), || async {
        anna.recent_messages(&rid(&room), 10)
            .await
            .iter()
            .any(|(s, b)| *s == bot && b.contains("ist gesperrt"))
            .then_some(())
    })
    .await;
    let content = json!({"msgtype": "m.text", "body": "Gesperrt per Befehl"});
    assert!(hs.send_event(&room, &client, "m.room.message", &TxnId::random(), &content).await.is_err());
    anna.send_text(&rid(&room), "!assisto entsperren").await;
    eventually("the unblock by command", Duration::from_secs(60), || async {
        anna.recent_messages(&rid(&room), 30)
            .await
            .iter()
            .any(|(s, b)| *s == bot && b.contains("aufgehoben"))
            .then_some(())
    })
    .await;
    let content = json!({"msgtype": "m.text", "body": "Wieder frei"});
    hs.send_event(&room, &client, "m.room.message", &TxnId::random(), &content)
        .await
        .expect("unblocked by command");

    let (_, audit) = svc.admin(Method::GET, "/audit", None).await;
    let actions: Vec<&str> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["subject"] == client.as_str())
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"client.block") && actions.contains(&"client.unblock"), "{actions:?}");
    svc.stop().await;
}

/// Processing can lag behind (load, a restart): the invite and join of a client, processed
/// only after a later block, are not mistaken for a blocked client joining; the client keeps
/// the chat and its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_processed_after_a_later_block_is_left_alone() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Nachzugshaus").await;
    let anna = svc.counsellor(&inst, "Anna Nachzug").await;
    let client = svc.client(&inst, "Lotta").await;
    svc.stop().await;
    svc.config.processing.paused = true;
    svc.resume().await;
    // Recorded but not processed: a chat, the client's join, then the block.
    let (s, v) = anna.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    svc.hs_client().join_room(&room, &client).await.expect("the client joins");
    let (s, _) = svc.admin(Method::POST, &format!("/clients/{}/block", enc(&client)), None).await;
    assert_eq!(s, 200);
    // Processing catches up (what was not yet delivered comes after the restart: just as late).
    svc.stop().await;
    svc.config.processing.paused = false;
    svc.resume().await;
    let db = svc.running().db.clone();
    // (The client's join is among the room's events; processed rows keep no body.)
    let backlog = || async {
        let row: (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COUNT(*) - COUNT(processed_at) FROM inbox WHERE room_id = $1")
                .bind(&room)
                .fetch_one(db.pool())
                .await
                .ok()?;
        (row.0 >= 6 && row.1 == 0).then_some(())
    };
    eventually("the room's events to be processed", Duration::from_secs(30), backlog).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    eventually("the room's events to be processed", Duration::from_secs(30), backlog).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        joined(&anna, &room).await.contains(&client),
        "the client keeps the chat it joined before the block"
    );
    let (_, audit) = svc.admin(Method::GET, "/audit?limit=200", None).await;
    assert!(
        !audit.to_string().contains("rule.blocked_client.repaired"),
        "no repair of a join from before the block: {audit}"
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_server_admin_forces_past_the_module_is_repaired() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Beratung Ost").await;
    let creator = svc.counsellor(&inst, "Ida Ost").await;
    let mut others = Vec::new();
    for i in 0..7 {
        others.push(svc.counsellor(&inst, &format!("Ost {i}")).await);
    }
    // A counsellor who is also a server admin: Synapse skips the spam checks for admins.
    let admin = svc.admin_counsellor(&inst, "Admin Ost").await;

    // The admin and seven colleagues: eight, the cap.
    let all: Vec<&str> = others.iter().map(|u| u.user_id.as_str()).collect();
    let (s, v) = admin.create_room_raw(json!({"name": "Acht", "invite": all})).await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    for u in &others {
        let (s, v) = u
            .raw(Method::POST, &format!("/_matrix/client/v3/rooms/{}/join", enc(&room)), Some(json!({})))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    // The admin invites a ninth; the module lets an admin through …
    let ninth = creator;
    let (s, v) = admin.invite_raw(&room, &ninth.user_id).await;
    assert_eq!(s, 200, "the module is bypassed for admins: {v}");
    // … and the service removes the ninth member and says why.
    let bot = svc.bot();
    let member_of_ninth =
        format!("/_matrix/client/v3/rooms/{}/state/m.room.member/{}", enc(&room), enc(&ninth.user_id));
    eventually("the ninth removed", Duration::from_secs(30), || async {
        (admin.raw_get(&member_of_ninth).await["membership"] == "leave").then_some(())
    })
    .await;
    eventually("the explanation in the room", Duration::from_secs(20), || async {
        admin
            .recent_messages(&rid(&room), 20)
            .await
            .iter()
            .any(|(s, b)| *s == bot && b.contains("höchstens 8"))
            .then_some(())
    })
    .await;
    let (_, audit) = svc.admin(Method::GET, "/audit", None).await;
    assert!(
        audit.as_array().expect("audit").iter().any(|e| e["action"] == "rule.colleague_cap.repaired"),
        "{audit}"
    );
    svc.stop().await;
}
