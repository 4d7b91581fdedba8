//! Group chats: name for all, description for counsellors only, deactivation of the group
//! and of single participants, Terminchats, deletion.

use std::time::Duration;

use assisto_appservice::matrix::homeserver::HomeserverClient;

use assisto_appservice::matrix::homeserver::TxnId;
use assisto_tests::{
    eventually,
    matrix::{enc, joined, rid, TestUser},
    TestService,
};
use chrono::{Local, Timelike};
use reqwest::Method;
use serde_json::json;

async fn say(hs: &HomeserverClient, room: &str, who: &str, text: &str) -> Result<(), String> {
    let content = json!({"msgtype": "m.text", "body": text});
    hs.send_event(room, who, "m.room.message", &TxnId::random(), &content)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The counsellor sends a command and waits for the bot's answer containing `needle`.
async fn command(svc: &TestService, c: &TestUser, room: &str, cmd: &str, needle: &str) {
    svc.command(c, room, cmd, needle).await
}

/// A group with two clients who joined; returns (counsellor, room, clients).
async fn group(svc: &TestService) -> (TestUser, String, Vec<String>) {
    let inst = svc.institution("Gruppenhaus").await;
    let anna = svc.counsellor(&inst, "Anna Gruppe").await;
    let a = svc.client(&inst, "Lea").await;
    let b = svc.client(&inst, "Tom").await;
    let (s, v) = anna.create_room_raw(json!({"name": "Gruppe Mut", "invite": [a, b]})).await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    let bot = svc.bot();
    eventually("clients and bot in the group", Duration::from_secs(20), || async {
        let j = joined(&anna, &room).await;
        (j.contains(&a) && j.contains(&b) && j.contains(&bot)).then_some(())
    })
    .await;
    (anna, room, vec![a, b])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_description_is_for_counsellors_only() {
    let mut svc = TestService::start().await;
    let (anna, room, clients) = group(&svc).await;
    let hs = svc.hs_client();
    // Clients see the group's name.
    let name = hs.get_state(&room, &clients[0], "m.room.name", "").await.expect("state").expect("name");
    assert_eq!(name["name"], "Gruppe Mut");

    // Setting it inside the group is refused (clients would read the command).
    command(&svc, &anna, &room, &format!("!assisto beschreibung {room} Geheim-12345"), "nicht hier").await;
    // In the direct chat with assisto it works.
    let (s, v) = anna.create_room_raw(json!({"invite": [svc.bot()], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let dm = v["room_id"].as_str().expect("dm").to_owned();
    let bot = svc.bot();
    eventually("the bot in the direct chat", Duration::from_secs(20), || async {
        joined(&anna, &dm).await.contains(&bot).then_some(())
    })
    .await;
    command(
        &svc,
        &anna,
        &dm,
        &format!("!assisto beschreibung {room} Für Jugendliche 14-17, ruhig angehen"),
        "gespeichert",
    )
    .await;
    command(&svc, &anna, &dm, &format!("!assisto beschreibung {room}"), "ruhig angehen").await;

    // Nothing a client can read in the group carries it: neither state nor timeline.
    let state = hs
        .request::<serde_json::Value>(
            Method::GET,
            &["_matrix", "client", "v3", "rooms", &room, "state"],
            &[],
            Some(&clients[0]),
            None,
        )
        .await
        .expect("client reads state");
    let messages = hs
        .request::<serde_json::Value>(
            Method::GET,
            &["_matrix", "client", "v3", "rooms", &room, "messages"],
            &[("dir", "b"), ("limit", "100")],
            Some(&clients[0]),
            None,
        )
        .await
        .expect("client reads timeline");
    for text in [state.to_string(), messages.to_string()] {
        assert!(!text.contains("ruhig angehen"), "the description leaked to a client");
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_participants_can_be_deactivated_and_reactivated() {
    let mut svc = TestService::start().await;
    let (anna, room, clients) = group(&svc).await;
    let hs = svc.hs_client();
    say(&hs, &room, &clients[0], "Hallo Gruppe").await.expect("writes while active");

    command(&svc, &anna, &room, "!assisto gruppe deaktivieren", "deaktiviert").await;
    let err = say(&hs, &room, &clients[0], "Noch jemand da?").await.expect_err("read-only");
    assert!(err.contains("deaktiviert"), "{err}");
    let (s, v) = anna
        .raw(
            Method::PUT,
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/t{}",
                enc(&room),
                uuid::Uuid::new_v4().simple()
            ),
            Some(json!({"msgtype": "m.text", "body": "Ich auch nicht"})),
        )
        .await;
    assert_eq!(s, 403, "counsellors cannot write either: {v}");
    // Everyone still reads the history.
    let msgs = anna.recent_messages(&rid(&room), 30).await;
    assert!(msgs.iter().any(|(_, b)| b == "Hallo Gruppe"));
    // A counsellor's command still reaches the bot, which reopens the group.
    command(&svc, &anna, &room, "!assisto gruppe aktivieren", "wieder aktiv").await;
    say(&hs, &room, &clients[0], "Wieder offen").await.expect("writes again");

    // One participant deactivated: reads, does not write; the other writes.
    command(
        &svc,
        &anna,
        &room,
        &format!("!assisto teilnehmer deaktivieren {}", clients[0]),
        "nur noch mitlesen",
    )
    .await;
    let err = say(&hs, &room, &clients[0], "Darf ich?").await.expect_err("participant read-only");
    assert!(err.contains("mitlesen"), "{err}");
    say(&hs, &room, &clients[1], "Ich darf").await.expect("the other participant writes");
    command(
        &svc,
        &anna,
        &room,
        &format!("!assisto teilnehmer aktivieren {}", clients[0]),
        "wieder schreiben",
    )
    .await;
    say(&hs, &room, &clients[0], "Danke").await.expect("reactivated");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appointment_group_is_open_only_in_its_slots() {
    let mut svc = TestService::start().await;
    let (anna, room, clients) = group(&svc).await;
    let hs = svc.hs_client();
    let tz = chrono_tz::Europe::Berlin;
    let now = Local::now().with_timezone(&tz);
    let tomorrow = (now + chrono::Duration::days(1)).format("%d.%m.%Y").to_string();
    command(&svc, &anna, &room, &format!("!assisto termin hinzufügen {tomorrow} 10:00 11:00"), "Terminchat")
        .await;
    let err = say(&hs, &room, &clients[0], "Zu früh").await.expect_err("closed outside its slot");
    assert!(err.contains("Termine"), "{err}");

    // A slot around now (within today).
    if now.hour() == 23 && now.minute() >= 57 {
        return; // no slot of whole minutes around now fits into today
    }
    let start = now - chrono::Duration::minutes(1);
    let end = now + chrono::Duration::minutes(2);
    let cmd = format!(
        "!assisto termin hinzufügen {} {} {}",
        start.format("%d.%m.%Y"),
        start.format("%H:%M"),
        end.format("%H:%M")
    );
    command(&svc, &anna, &room, &cmd, "eingetragen").await;
    say(&hs, &room, &clients[0], "Jetzt ist offen").await.expect("open in its slot");
    command(&svc, &anna, &room, "!assisto termin liste", "Termine:").await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_group_is_gone_for_everyone() {
    let mut svc = TestService::start().await;
    let (anna, room, clients) = group(&svc).await;
    let hs = svc.hs_client();
    say(&hs, &room, &clients[0], "Etwas Persönliches").await.expect("sent");
    command(&svc, &anna, &room, "!assisto gruppe löschen", "bestätigen").await;
    anna.send_text(&rid(&room), "!assisto gruppe löschen bestätigen").await;
    eventually("the group to be gone", Duration::from_secs(30), || async {
        let (s, _) = anna
            .raw(
                Method::GET,
                &format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=10", enc(&room)),
                None,
            )
            .await;
        (s == 403 || s == 404).then_some(())
    })
    .await;
    // Synapse's admin API no longer knows the room.
    eventually("the purge to finish", Duration::from_secs(30), || async {
        let admin = assisto_tests::matrix::admin_token().await;
        let r = reqwest::Client::new()
            .get(format!("{}/_synapse/admin/v1/rooms/{}", assisto_tests::synapse().url, enc(&room)))
            .bearer_auth(admin)
            .send()
            .await
            .ok()?;
        (r.status().as_u16() == 404).then_some(())
    })
    .await;
    assert!(
        hs.request::<serde_json::Value>(
            Method::GET,
            &["_matrix", "client", "v3", "rooms", &room, "messages"],
            &[("dir", "b")],
            Some(&clients[0]),
            None
        )
        .await
        .is_err(),
        "the client cannot read it either"
    );
    let (_, audit) = svc.admin(Method::GET, "/audit", None).await;
    assert!(audit
        .as_array()
        .expect("audit")
        .iter()
        .any(|e| e["action"] == "group.delete" && e["subject"] == room.as_str()));
    svc.stop().await;
}
