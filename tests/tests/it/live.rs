//! The live-chat desk against the real stack: visitors through the embed's API, counsellors
//! as real Matrix clients. Taking over (twenty counsellors at the same instant: exactly one
//! gets in, the others cannot read the chat), the queue's places, status, departments,
//! returning, forwarding, closing with a required code, automatic routing with offers that
//! lapse, a visitor who leaves, an owner who goes away, and a restart with chats in every
//! state.

use std::{sync::Arc, time::Duration};

use assisto_tests::{
    embed::Visitor,
    eventually,
    matrix::{enc, rid, TestUser},
    TestInstitution, TestService,
};
use reqwest::Method;
use serde_json::{json, Value};

/// The institution's open live chats (admin API), in queue order.
async fn live_chats(svc: &TestService, inst: &TestInstitution) -> Vec<Value> {
    let (s, v) = svc.admin(Method::GET, &format!("/institutions/{}/live-chats", inst.id), None).await;
    assert_eq!(s, 200, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

/// The open live chat with `number`.
async fn chat(svc: &TestService, inst: &TestInstitution, number: i64) -> Value {
    live_chats(svc, inst).await.into_iter().find(|c| c["number"] == number).unwrap_or(Value::Null)
}

/// Waits until the live chat `number` is in `state`; returns it.
async fn chat_in_state(svc: &TestService, inst: &TestInstitution, number: i64, state: &str) -> Value {
    eventually(&format!("live chat {number} to be {state}"), Duration::from_secs(20), || async {
        let c = chat(svc, inst, number).await;
        (c["state"] == state).then_some(c)
    })
    .await
}

async fn join(c: &TestUser, room: &str) -> (u16, Value) {
    c.raw(Method::POST, &format!("/_matrix/client/v3/join/{}", enc(room)), Some(json!({}))).await
}

/// Whether the counsellor can read the room's messages now.
async fn reads(c: &TestUser, room: &str) -> bool {
    let (s, _) = c
        .raw(Method::GET, &format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=5", enc(room)), None)
        .await;
    s == 200
}

/// Whether the counsellor is a member of the room now.
async fn joined(c: &TestUser, room: &str) -> bool {
    let (_, v) = c.raw(Method::GET, "/_matrix/client/v3/joined_rooms", None).await;
    v["joined_rooms"].as_array().is_some_and(|r| r.iter().any(|x| x == room))
}

/// Waits until the counsellor is out of the room, then checks that what the visitor writes
/// next does not reach them.
async fn out_of_chat(c: &TestUser, room: &str, visitor: &Visitor, probe: &str) {
    eventually("the counsellor out of the chat", Duration::from_secs(20), || async {
        (!joined(c, room).await).then_some(())
    })
    .await;
    assert_eq!(visitor.send(probe, probe).await.0, 201);
    let (_, v) = c
        .raw(Method::GET, &format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50", enc(room)), None)
        .await;
    assert!(!v.to_string().contains(probe), "a counsellor who left reads nothing further: {v}");
}

/// A department of the institution.
async fn department(svc: &TestService, inst: &TestInstitution, name: &str) -> String {
    svc.department(inst, name).await
}

/// A counsellor of `departments`, online unless said otherwise.
async fn counsellor(
    svc: &TestService,
    inst: &TestInstitution,
    name: &str,
    departments: &[&str],
    online: bool,
) -> TestUser {
    let c = svc.counsellor_in(inst, name, departments).await;
    if online {
        svc.set_status(&c.user_id, "online").await;
    }
    c
}

async fn room_with_bot(svc: &TestService, c: &TestUser) -> String {
    svc.room_with_bot(c).await
}

async fn command(svc: &TestService, c: &TestUser, room: &str, cmd: &str, needle: &str) {
    svc.command(c, room, cmd, needle).await
}

/// Waits until the visitor's state satisfies `check`.
async fn visitor_state(v: &Visitor, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(what, Duration::from_secs(20), || async {
        let s = v.state().await;
        check(&s).then_some(s)
    })
    .await
}

/// Waits until the visitor sees a notice of the service containing `needle`.
async fn visitor_told(v: &Visitor, needle: &str) {
    eventually(&format!("the visitor to be told {needle:?}"), Duration::from_secs(20), || async {
        v.messages()
            .await
            .iter()
            .any(|m| m["from"] == "system" && m["text"].as_str().is_some_and(|t| t.contains(needle)))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_counsellors_taking_the_same_chat_at_once_exactly_one_gets_in() {
    let svc = TestService::start().await;
    let inst = svc.institution("Wettlauf").await;
    let mut team = Vec::new();
    for i in 0..20 {
        team.push(counsellor(&svc, &inst, &format!("Berater {i}"), &[], true).await);
    }
    let visitor = Visitor::anonymous(&svc, &inst.id, None).await;
    assert_eq!(visitor.send("t1", "Ich halte es nicht mehr aus").await.0, 201);
    let room = chat_in_state(&svc, &inst, 1, "waiting").await["room_id"].as_str().expect("room").to_owned();

    // All twenty join from the Live space at the same instant.
    let start = Arc::new(tokio::sync::Barrier::new(team.len()));
    let results = futures::future::join_all(team.iter().map(|c| {
        let start = start.clone();
        let room = room.clone();
        async move {
            start.wait().await;
            join(c, &room).await
        }
    }))
    .await;
    let winners: Vec<usize> =
        results.iter().enumerate().filter(|(_, (s, _))| *s == 200).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one counsellor takes the chat: {results:?}");
    for (s, v) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*s, v["de.assisto.rule"].as_str()), (403, Some("live_chat_owner")), "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains("bereits")), "a German reason: {v}");
    }
    let winner = &team[winners[0]];
    assert_eq!(chat(&svc, &inst, 1).await["counsellor"], winner.user_id.as_str());
    assert!(reads(winner, &room).await, "the owner reads the chat");
    for (i, c) in team.iter().enumerate() {
        if i != winners[0] {
            assert!(!reads(c, &room).await, "{} lost and must not read the chat", c.user_id);
        }
    }
    visitor_told(&visitor, "übernommen").await;
    visitor_state(&visitor, "the visitor no longer waits", |s| {
        s["waiting"] == false && s.get("queue").is_none()
    })
    .await;

    // Trying again by command is refused in German, the chat stays the winner's.
    let loser = &team[(winners[0] + 1) % team.len()];
    let room_b = room_with_bot(&svc, loser).await;
    command(&svc, loser, &room_b, "!assisto übernehmen 1", "bereits von einer anderen").await;
    assert_eq!(chat(&svc, &inst, 1).await["counsellor"], winner.user_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_counsellor_taking_several_chats_at_once_stays_within_their_limit() {
    let svc = TestService::start().await;
    let inst = svc.institution("Grenze").await;
    let c = counsellor(&svc, &inst, "Frau Eins", &[], true).await;
    let (s, v) = svc
        .admin(
            Method::PUT,
            &format!("/counsellors/{}/status", enc(&c.user_id)),
            Some(json!({"status": "online", "max_chats": 2})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut visitors = Vec::new();
    let mut rooms = Vec::new();
    for n in 1..=6 {
        let v = Visitor::anonymous(&svc, &inst.id, None).await;
        assert_eq!(v.send("t1", "Hallo").await.0, 201);
        rooms.push(
            chat_in_state(&svc, &inst, n, "waiting").await["room_id"].as_str().expect("room").to_owned(),
        );
        visitors.push(v);
    }
    // Six joins of six different chats at the same instant: the limit of two holds.
    let start = Arc::new(tokio::sync::Barrier::new(rooms.len()));
    let results = futures::future::join_all(rooms.iter().map(|room| {
        let (start, c) = (start.clone(), &c);
        async move {
            start.wait().await;
            join(c, room).await
        }
    }))
    .await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 2, "exactly as many takes as the limit allows: {results:?}");
    for (s, v) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*s, 403, "{v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains('2')),
            "the German reason names the limit: {v}"
        );
    }
    let owned =
        live_chats(&svc, &inst).await.into_iter().filter(|x| x["counsellor"] == c.user_id.as_str()).count();
    assert_eq!(owned, 2, "the desk agrees");
    let readable = futures::future::join_all(rooms.iter().map(|r| reads(&c, r))).await;
    assert_eq!(readable.iter().filter(|r| **r).count(), 2, "and the counsellor reads only those two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn visitors_see_their_place_and_only_online_counsellors_of_the_department_take() {
    let svc = TestService::start().await;
    let inst = svc.institution("Warteschlange").await;
    let jugend = department(&svc, &inst, "Jugend").await;
    let sucht = department(&svc, &inst, "Sucht").await;
    let ben = counsellor(&svc, &inst, "Ben Sucht", &[&sucht], true).await;
    let anna = counsellor(&svc, &inst, "Anna Jugend", &[&jugend], false).await;

    // Nobody of Jugend is online: the embed says so, per department.
    let (_, cfg) =
        Visitor::new(&svc).call(Method::GET, &format!("/institutions/{}/config", inst.id), None).await;
    let dept = |cfg: &Value, id: &str| {
        cfg["departments"].as_array().and_then(|a| a.iter().find(|d| d["id"] == id).cloned())
    };
    assert_eq!(dept(&cfg, &jugend).expect("Jugend listed")["available"], false, "{cfg}");
    assert_eq!(dept(&cfg, &sucht).expect("Sucht listed")["available"], true, "{cfg}");

    // An unknown department is refused; three visitors queue for Jugend.
    let (s, v) = Visitor::new(&svc)
        .call(
            Method::POST,
            &format!("/institutions/{}/sessions", inst.id),
            Some(json!({"area": "anonymous", "form": "bubble", "department": "gibt-es-nicht"})),
        )
        .await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");
    let mut visitors = Vec::new();
    for i in 0..3 {
        let v = Visitor::anonymous(&svc, &inst.id, Some(&jugend)).await;
        assert_eq!(v.send(&format!("t{i}"), "Hallo?").await.0, 201);
        visitors.push(v);
    }
    for (i, v) in visitors.iter().enumerate() {
        let s = visitor_state(v, "a place in the queue", |s| s["queue"]["position"].is_u64()).await;
        assert_eq!(s["queue"]["position"], i as u64 + 1, "{s}");
        assert_eq!(s["waiting"], true);
    }

    // Ben (Sucht) may not take Jugend's chat; Anna may not while not online.
    let room1 = chat(&svc, &inst, 1).await["room_id"].as_str().expect("room").to_owned();
    let (s, v) = join(&ben, &room1).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("Abteilung")), "{v}");
    let anna_room = room_with_bot(&svc, &anna).await;
    command(&svc, &anna, &anna_room, "!assisto übernehmen", "nicht online").await;
    assert!(!reads(&anna, &room1).await);

    // Online by command, Anna sees the queue and takes the longest waiting chat.
    command(&svc, &anna, &anna_room, "!assisto status online", "jetzt „online“").await;
    command(&svc, &anna, &anna_room, "!assisto warteschlange", "Live 1 – Jugend, Platz 1").await;
    command(&svc, &anna, &anna_room, "!assisto übernehmen", "Live 1 übernommen").await;
    assert_eq!(chat_in_state(&svc, &inst, 1, "taken").await["counsellor"], anna.user_id.as_str());
    eventually("Anna in the chat", Duration::from_secs(20), || async {
        reads(&anna, &room1).await.then_some(())
    })
    .await;
    visitor_told(&visitors[0], "übernommen").await;
    // The others move up, and are told so on their pages.
    visitor_state(&visitors[1], "second visitor moves up", |s| s["queue"]["position"] == 1).await;
    visitor_state(&visitors[2], "third visitor moves up", |s| s["queue"]["position"] == 2).await;
    // The command and the bot's answer never reach a visitor.
    assert!(visitors[0]
        .messages()
        .await
        .iter()
        .all(|m| !m["text"].as_str().unwrap_or("").contains("!assisto")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_returns_forwards_and_closes_with_the_required_code() {
    let svc = TestService::start().await;
    let inst = svc.institution("Weiterleitung").await;
    let erste = department(&svc, &inst, "Erstberatung").await;
    let familie = department(&svc, &inst, "Familie").await;
    let anna = counsellor(&svc, &inst, "Anna Erst", &[&erste], true).await;
    let cem = counsellor(&svc, &inst, "Cem Erst", &[&erste], true).await;
    let dora = counsellor(&svc, &inst, "Dora Familie", &[&familie], true).await;
    let (s, v) = svc
        .admin(
            Method::PUT,
            &format!("/departments/{familie}/live"),
            Some(
                json!({"routing": "manual", "max_chats": 3, "offer_timeout_secs": 30, "code_required": true}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = svc
        .admin(
            Method::PUT,
            &format!("/institutions/{}/live-codes", inst.id),
            Some(json!([{"code": "K1", "label": "Krise"}, {"code": "I2", "label": "Information"}])),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    let visitor = Visitor::anonymous(&svc, &inst.id, Some(&erste)).await;
    visitor.send("t1", "Ich weiß nicht weiter").await;
    let later = Visitor::anonymous(&svc, &inst.id, Some(&erste)).await;
    let room = chat(&svc, &inst, 1).await["room_id"].as_str().expect("room").to_owned();
    assert_eq!(join(&anna, &room).await.0, 200);

    // Returning asks first; confirmed, Anna is out and the visitor is back at the front.
    command(&svc, &anna, &room, "!assisto zurückgeben", "Bestätigen mit").await;
    anna.send_text(&rid(&room), "!assisto zurückgeben ja").await;
    chat_in_state(&svc, &inst, 1, "waiting").await;
    out_of_chat(&anna, &room, &visitor, "nach-der-rueckgabe").await;
    visitor_told(&visitor, "wieder in der Warteschlange").await;
    let s = visitor_state(&visitor, "back in the queue", |s| s["queue"]["position"].is_u64()).await;
    assert_eq!(s["queue"]["position"], 1, "a returned visitor keeps their place ahead of later ones: {s}");
    assert_eq!(later.state().await["queue"]["position"], 2);

    // Cem takes it and forwards it to Familie; there only Dora may take it.
    assert_eq!(join(&cem, &room).await.0, 200);
    command(&svc, &cem, &room, "!assisto weiterleiten Gibtsnicht", "Diese Abteilung gibt es nicht").await;
    cem.send_text(&rid(&room), "!assisto weiterleiten Familie").await;
    let c = chat_in_state(&svc, &inst, 1, "waiting").await;
    assert_eq!(c["department_id"], familie.as_str());
    visitor_told(&visitor, "weitergegeben").await;
    assert_eq!(join(&anna, &room).await.0, 403, "Familie's chat is not Anna's to take");
    assert_eq!(join(&dora, &room).await.0, 200);

    // Dora forwards it to Anna by name: an invite; Anna accepts and owns it.
    dora.send_text(&rid(&room), &format!("!assisto weiterleiten {}", anna.user_id)).await;
    let c = chat_in_state(&svc, &inst, 1, "offered").await;
    assert_eq!(c["counsellor"], anna.user_id.as_str());
    visitor_state(&visitor, "someone is coming", |s| s["queue"]["someone_coming"] == true).await;
    assert_eq!(join(&cem, &room).await.0, 403, "an offered chat is the offered counsellor's");
    assert_eq!(join(&anna, &room).await.0, 200);
    chat_in_state(&svc, &inst, 1, "taken").await;

    // Familie needs a code: without one, or with an unknown one, closing is refused.
    command(&svc, &anna, &room, "!assisto beenden", "Klassifizierungscode").await;
    command(&svc, &anna, &room, "!assisto beenden K1 Suizidgedanken, Krisendienst empfohlen", "ist beendet")
        .await;
    eventually("the chat closed", Duration::from_secs(20), || async {
        chat(&svc, &inst, 1).await.is_null().then_some(())
    })
    .await;
    visitor_state(&visitor, "the visitor sees the end", |s| s["ended"] == true).await;
    // The note never reaches the visitor; the live-chat retention is scheduled.
    assert!(visitor.messages().await.iter().all(|m| !m["text"].as_str().unwrap_or("").contains("Suizid")));
    // The visitor downloads the conversation: their words and the counsellors', never a
    // command or the note.
    let r = reqwest::Client::new()
        .get(format!("{}/transcript", visitor.base))
        .bearer_auth(visitor.session.as_deref().expect("session"))
        .send()
        .await
        .expect("transcript");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-disposition"].to_str().expect("header").contains("attachment"));
    let text = r.text().await.expect("text");
    assert!(text.starts_with("Chatverlauf – Weiterleitung"), "{text}");
    assert!(text.contains("Du: Ich weiß nicht weiter"), "{text}");
    assert!(text.contains("Die beratende Person hat den Chat beendet"), "{text}");
    assert!(!text.contains("!assisto") && !text.contains("Suizid"), "{text}");
    let (_, deletions) = svc.admin(Method::GET, "/deletions", None).await;
    assert!(deletions.to_string().contains("guest"), "the guest is due for deletion: {deletions}");
    let (_, log) = svc.admin(Method::GET, &format!("/institutions/{}/live-log", inst.id), None).await;
    let what: Vec<&str> = log
        .as_array()
        .expect("log")
        .iter()
        .filter(|e| e["room_id"] == room.as_str())
        .filter_map(|e| e["what"].as_str())
        .collect();
    assert_eq!(
        what,
        ["queued", "taken", "returned", "taken", "forwarded", "taken", "forwarded", "taken", "closed"],
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn automatic_routing_offers_the_chat_and_moves_on_when_an_offer_lapses() {
    let svc = TestService::start_with(|c| c.live.tick_ms = 200).await;
    let inst = svc.institution("Automatik").await;
    let auto = department(&svc, &inst, "Automatisch").await;
    let (s, v) = svc
        .admin(
            Method::PUT,
            &format!("/departments/{auto}/live"),
            Some(json!({"routing": "auto", "max_chats": 2, "offer_timeout_secs": 5, "code_required": false})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let anna = counsellor(&svc, &inst, "Anna Auto", &[&auto], true).await;
    let ben = counsellor(&svc, &inst, "Ben Auto", &[&auto], true).await;

    let visitor = Visitor::anonymous(&svc, &inst.id, Some(&auto)).await;
    let first = chat_in_state(&svc, &inst, 1, "offered").await;
    let offered = first["counsellor"].as_str().expect("offered to someone").to_owned();
    let (first_c, other_c) = if offered == anna.user_id { (&anna, &ben) } else { (&ben, &anna) };
    visitor_state(&visitor, "someone is coming", |s| s["queue"]["someone_coming"] == true).await;
    assert_eq!(join(other_c, first["room_id"].as_str().expect("room")).await.0, 403, "offered to the other");

    // Not accepted within 5 s: the invite is withdrawn and the other is offered the chat.
    let second = eventually("the offer to pass to the other", Duration::from_secs(20), || async {
        let c = chat(&svc, &inst, 1).await;
        (c["state"] == "offered" && c["counsellor"] == other_c.user_id.as_str()).then_some(c)
    })
    .await;
    let room = second["room_id"].as_str().expect("room").to_owned();
    assert_eq!(join(first_c, &room).await.0, 403, "a lapsed offer does not let one in");
    assert_eq!(join(other_c, &room).await.0, 200);
    chat_in_state(&svc, &inst, 1, "taken").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_visitor_who_ends_leaves_the_queue_and_a_gone_owners_chat_goes_back() {
    let svc = TestService::start_with(|c| {
        c.live.tick_ms = 200;
        c.live.grace_secs = 2;
    })
    .await;
    let inst = svc.institution("Abwesend").await;
    let anna = counsellor(&svc, &inst, "Anna Weg", &[], true).await;

    let leaver = Visitor::anonymous(&svc, &inst.id, None).await;
    let stays = Visitor::anonymous(&svc, &inst.id, None).await;
    visitor_state(&stays, "second in line", |s| s["queue"]["position"] == 2).await;
    assert_eq!(leaver.call(Method::POST, "/end", None).await.0, 200);
    visitor_state(&stays, "first in line once the other left", |s| s["queue"]["position"] == 1).await;

    let room = chat(&svc, &inst, 2).await["room_id"].as_str().expect("room").to_owned();
    assert_eq!(join(&anna, &room).await.0, 200);
    chat_in_state(&svc, &inst, 2, "taken").await;
    // Anna goes not online: after the grace period her chat is back in the queue.
    svc.set_status(&anna.user_id, "not_online").await;
    chat_in_state(&svc, &inst, 2, "waiting").await;
    visitor_told(&stays, "nicht mehr erreichbar").await;
    out_of_chat(&anna, &room, &stays, "nach-der-frist").await;
    let (_, log) = svc.admin(Method::GET, &format!("/institutions/{}/live-log", inst.id), None).await;
    assert!(
        log.as_array().expect("log").iter().any(|e| e["what"] == "abandoned"),
        "the leaver is counted as abandoned: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_keeps_every_chat_in_its_state_and_place() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Neustart").await;
    let anna = counsellor(&svc, &inst, "Anna Neu", &[], true).await;
    let ben = counsellor(&svc, &inst, "Ben Neu", &[], true).await;
    let mut visitors = Vec::new();
    for _ in 0..4 {
        visitors.push(Visitor::anonymous(&svc, &inst.id, None).await);
    }
    // Live 1 taken by Anna, Live 2 offered to Ben (forwarded by Anna), Live 3 waiting,
    // Live 4 ended by its visitor.
    let room1 = chat(&svc, &inst, 1).await["room_id"].as_str().expect("room").to_owned();
    let room2 = chat(&svc, &inst, 2).await["room_id"].as_str().expect("room").to_owned();
    assert_eq!(join(&anna, &room1).await.0, 200);
    assert_eq!(join(&anna, &room2).await.0, 200);
    anna.send_text(&rid(&room2), &format!("!assisto weiterleiten {}", ben.user_id)).await;
    chat_in_state(&svc, &inst, 2, "offered").await;
    assert_eq!(visitors[3].call(Method::POST, "/end", None).await.0, 200);
    let before = live_chats(&svc, &inst).await;
    let states: Vec<&str> = before.iter().filter_map(|c| c["state"].as_str()).collect();
    assert_eq!(states, ["taken", "offered", "waiting"], "{before:?}");

    svc.stop().await;
    svc.resume().await;
    assert_eq!(live_chats(&svc, &inst).await, before, "nothing lost, nothing moved");
    assert_eq!(visitors[0].state().await["waiting"], false);
    assert_eq!(visitors[1].state().await["queue"]["position"], 1);
    assert_eq!(visitors[2].state().await["queue"]["position"], 2);
    // The offer still stands: Ben accepts it after the restart.
    assert_eq!(join(&ben, &room2).await.0, 200);
    chat_in_state(&svc, &inst, 2, "taken").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_from_the_homeserver_decides_availability_and_the_button_follows() {
    let svc = TestService::start_with(|c| c.live.presence = true).await;
    let inst = svc.institution("Praesenz").await;
    let anna = counsellor(&svc, &inst, "Anna Praesenz", &[], false).await;
    let config = || async {
        let (_, v) =
            Visitor::new(&svc).call(Method::GET, &format!("/institutions/{}/config", inst.id), None).await;
        v
    };
    assert_eq!(config().await["available"], false, "nobody online: no chat button");
    let presence = |p: &'static str| {
        let anna = &anna;
        async move {
            let path = format!("/_matrix/client/v3/presence/{}/status", enc(&anna.user_id));
            let (s, v) = anna.raw(Method::PUT, &path, Some(json!({"presence": p}))).await;
            assert_eq!(s, 200, "{v}");
        }
    };
    // Online status, Element open (presence online, as Element reports it): available.
    svc.set_status(&anna.user_id, "online").await;
    presence("online").await;
    eventually("available", Duration::from_secs(20), || async {
        (config().await["available"] == true).then_some(())
    })
    .await;
    // Element closed or logged out (offline): not available, whatever the status says.
    presence("offline").await;
    eventually("not available once offline", Duration::from_secs(20), || async {
        (config().await["available"] == false).then_some(())
    })
    .await;
    let (_, st) = svc.admin(Method::GET, &format!("/counsellors/{}/status", enc(&anna.user_id)), None).await;
    assert_eq!(
        (st["status"].as_str(), st["presence"].as_str(), st["shown"].as_str()),
        (Some("online"), Some("offline"), Some("offline")),
        "{st}"
    );
    // Idle (away) still takes chats; busy does not.
    presence("unavailable").await;
    eventually("available while away", Duration::from_secs(20), || async {
        (config().await["available"] == true).then_some(())
    })
    .await;
    svc.set_status(&anna.user_id, "busy").await;
    assert_eq!(config().await["available"], false, "busy takes no new chats");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_admin_forcing_their_way_into_a_taken_chat_is_removed() {
    let svc = TestService::start().await;
    let inst = svc.institution("Adminlive").await;
    let anna = counsellor(&svc, &inst, "Anna Live", &[], true).await;
    // A counsellor who is also a server admin: the module lets admins through, as Synapse
    // does with its spam checks; the service repairs what they force.
    let admin = svc.admin_counsellor(&inst, "Admin Live").await;
    let visitor = Visitor::anonymous(&svc, &inst.id, None).await;
    let room = chat(&svc, &inst, 1).await["room_id"].as_str().expect("room").to_owned();
    assert_eq!(join(&anna, &room).await.0, 200);
    chat_in_state(&svc, &inst, 1, "taken").await;

    let (s, v) = join(&admin, &room).await;
    assert_eq!(s, 200, "Synapse lets the admin in: {v}");
    out_of_chat(&admin, &room, &visitor, "nach-dem-eindringen").await;
    assert_eq!(chat(&svc, &inst, 1).await["counsellor"], anna.user_id.as_str(), "the chat stays Anna's");
    eventually("the repair audited", Duration::from_secs(30), || async {
        let (_, audit) = svc.admin(Method::GET, "/audit?limit=200", None).await;
        audit
            .as_array()?
            .iter()
            .any(|e| e["action"] == "rule.live_chat_owner.repaired" && e["subject"] == room.as_str())
            .then_some(())
    })
    .await;
}

/// The next Server-Sent Event's data on an open stream (comments skipped).
async fn next_event(r: &mut reqwest::Response, buf: &mut String) -> Value {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                return serde_json::from_str(data.trim()).expect("event data is JSON");
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(20), r.chunk())
            .await
            .expect("an event within 20 s")
            .expect("stream")
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_pages_hear_at_once_when_someone_can_take_a_chat() {
    let svc = TestService::start().await;
    let inst = svc.institution("Knopf").await;
    let jugend = department(&svc, &inst, "Jugend").await;
    let anna = counsellor(&svc, &inst, "Anna Knopf", &[&jugend], false).await;
    let mut r = reqwest::Client::new()
        .get(format!("{}/_assisto/embed/v1/institutions/{}/availability", svc.url(), inst.id))
        .send()
        .await
        .expect("availability stream");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().expect("type").starts_with("text/event-stream"));
    let mut buf = String::new();
    let first = next_event(&mut r, &mut buf).await;
    assert_eq!(
        (first["available"].as_bool(), first["departments"][0]["available"].as_bool()),
        (Some(false), Some(false)),
        "{first}"
    );
    // Anna goes online: the open page hears it without asking.
    svc.set_status(&anna.user_id, "online").await;
    let next = next_event(&mut r, &mut buf).await;
    assert_eq!(
        (next["available"].as_bool(), next["departments"][0]["available"].as_bool()),
        (Some(true), Some(true)),
        "{next}"
    );
    // Busy: no new chats, the button goes.
    svc.set_status(&anna.user_id, "busy").await;
    assert_eq!(next_event(&mut r, &mut buf).await["available"], false);
    // An unknown institution has no stream.
    let (s, v) = Visitor::new(&svc).call(Method::GET, "/institutions/gibt-es-nicht/availability", None).await;
    assert_eq!((s, v["errcode"].as_str()), (404, Some("M_NOT_FOUND")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_visitor_whose_page_is_closed_leaves_the_queue_after_a_while() {
    let svc = TestService::start_with(|c| {
        c.live.tick_ms = 200;
        c.live.abandon_after_secs = 2;
    })
    .await;
    let inst = svc.institution("Verlassen").await;
    let _anna = counsellor(&svc, &inst, "Anna Verlassen", &[], true).await;
    let gone = Visitor::anonymous(&svc, &inst.id, None).await;
    let stays = Visitor::anonymous(&svc, &inst.id, None).await;
    // The second visitor's page stays open: long polls one after the other, as the embed's
    // fallback holds them.
    let (_, sent) = stays.send("t1", "Ich bin noch da").await;
    let after = sent["id"].as_str().expect("id").to_owned();
    let poll = {
        let v = Visitor { base: stays.base.clone(), session: stays.session.clone() };
        tokio::spawn(async move {
            loop {
                v.call(Method::GET, &format!("/events?after={}&timeout=5", enc(&after)), None).await;
            }
        })
    };
    eventually("the visitor without a page out of the queue", Duration::from_secs(20), || async {
        chat(&svc, &inst, 1).await.is_null().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(chat(&svc, &inst, 2).await["state"], "waiting", "an open page keeps its place");
    assert_eq!(stays.state().await["queue"]["position"], 1, "and moves up");
    assert_eq!(gone.state().await["ended"], true);
    let (_, log) = svc.admin(Method::GET, &format!("/institutions/{}/live-log", inst.id), None).await;
    assert!(log.as_array().expect("log").iter().any(|e| e["what"] == "abandoned"), "{log}");
    poll.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_response_reminder_marks_the_room_name_until_a_counsellor_answers() {
    let svc = TestService::start_with(|c| {
        c.live.tick_ms = 200;
        c.live.reminder_yellow_secs = 2;
        c.live.reminder_red_secs = 4;
    })
    .await;
    let inst = svc.institution("Erinnerung").await;
    let anna = counsellor(&svc, &inst, "Anna Erinnerung", &[], true).await;
    let visitor = Visitor::anonymous(&svc, &inst.id, None).await;
    let room = chat(&svc, &inst, 1).await["room_id"].as_str().expect("room").to_owned();
    assert_eq!(join(&anna, &room).await.0, 200);
    let name = || async {
        anna.state(&room, "m.room.name", "").await["name"].as_str().unwrap_or_default().to_owned()
    };
    let name_is = |want: &'static str| {
        let name = &name;
        async move {
            eventually(&format!("the room name {want:?}"), Duration::from_secs(20), || async {
                let n = name().await;
                (n == want).then_some(n)
            })
            .await
        }
    };
    assert_eq!(name().await, "Gast 1", "nothing unanswered: no marker");
    assert_eq!(visitor.send("t1", "Hallo? Ist da jemand?").await.0, 201);
    name_is("🟢 Gast 1").await;
    name_is("🟡 Gast 1").await;
    name_is("🔴 Gast 1").await;
    // A command is no answer; a message is.
    anna.send_text(&rid(&room), "!assisto status").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(name().await, "🔴 Gast 1");
    anna.send_text(&rid(&room), "Ja, ich bin da.").await;
    name_is("Gast 1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_owner_brings_a_colleague_into_a_live_chat() {
    let svc = TestService::start().await;
    let inst = svc.institution("Konferenz").await;
    let anna = counsellor(&svc, &inst, "Anna Konferenz", &[], true).await;
    let ben = counsellor(&svc, &inst, "Ben Konferenz", &[], false).await;
    let cem = counsellor(&svc, &inst, "Cem Konferenz", &[], true).await;
    let visitor = Visitor::anonymous(&svc, &inst.id, None).await;
    let room = chat(&svc, &inst, 1).await["room_id"].as_str().expect("room").to_owned();
    // Nobody invites into a chat nobody has taken, nor into one that is not theirs.
    let (s, v) = cem.invite_raw(&room, &ben.user_id).await;
    assert_eq!((s, v["de.assisto.rule"].as_str()), (403, Some("live_chat_owner")), "{v}");
    assert_eq!(join(&anna, &room).await.0, 200);
    let (s, v) = cem.invite_raw(&room, &ben.user_id).await;
    assert_eq!(s, 403, "{v}");
    // The owner consults Ben (not online, of no department): invited, he joins and reads.
    let (s, v) = anna.invite_raw(&room, &ben.user_id).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(join(&ben, &room).await.0, 200, "an invited colleague joins");
    assert_eq!(visitor.send("t1", "Danke euch beiden").await.0, 201);
    eventually("Ben reads the visitor", Duration::from_secs(20), || async {
        ben.recent_messages(&rid(&room), 10).await.iter().any(|(_, b)| b == "Danke euch beiden").then_some(())
    })
    .await;
    // The chat stays Anna's; Cem, uninvited, stays out.
    assert_eq!(chat(&svc, &inst, 1).await["counsellor"], anna.user_id.as_str());
    assert_eq!(join(&cem, &room).await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outside_opening_hours_the_embed_says_when_the_department_opens_again() {
    let svc = TestService::start().await;
    let inst = svc.institution("Oeffnungszeiten").await;
    let abend = department(&svc, &inst, "Abendsprechstunde").await;
    let _anna = counsellor(&svc, &inst, "Anna Abend", &[&abend], true).await;
    let config = || async {
        let (_, v) =
            Visitor::new(&svc).call(Method::GET, &format!("/institutions/{}/config", inst.id), None).await;
        v
    };
    assert_eq!(config().await["available"], true, "open around the clock until hours are set");
    // Holidays from yesterday to the day after tomorrow (whatever today is in Berlin).
    let today = chrono::Utc::now().date_naive();
    let day = |d: i64| (today + chrono::Duration::days(d)).format("%Y-%m-%d").to_string();
    let hours = json!({"weekly": {}, "holidays": [day(-1), day(0), day(1), day(2)]});
    let body = json!({"routing": "manual", "max_chats": 3, "offer_timeout_secs": 30, "code_required": false, "opening_hours": hours});
    let (s, v) = svc.admin(Method::PUT, &format!("/departments/{abend}/live"), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let c = config().await;
    assert_eq!(c["available"], false, "closed, though Anna is online: {c}");
    assert_eq!(c["next_open"], format!("{}T00:00", day(3)), "{c}");
    assert_eq!(c["departments"][0]["next_open"], c["next_open"]);
    // Bad hours are refused and change nothing.
    let bad = json!({"routing": "manual", "max_chats": 3, "offer_timeout_secs": 30, "code_required": false,
                     "opening_hours": {"weekly": {"mon": ["17:00-09:00"]}}});
    let (s, v) = svc.admin(Method::PUT, &format!("/departments/{abend}/live"), Some(bad)).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");
    assert_eq!(config().await["available"], false);
    // Open every day around the clock: available again.
    let open = json!({"routing": "manual", "max_chats": 3, "offer_timeout_secs": 30, "code_required": false,
                      "opening_hours": {"weekly": {"mon": ["00:00-24:00"], "tue": ["00:00-24:00"], "wed": ["00:00-24:00"],
                      "thu": ["00:00-24:00"], "fri": ["00:00-24:00"], "sat": ["00:00-24:00"], "sun": ["00:00-24:00"]}}});
    let (s, v) = svc.admin(Method::PUT, &format!("/departments/{abend}/live"), Some(open)).await;
    assert_eq!(s, 200, "{v}");
    let c = config().await;
    assert_eq!((c["available"].as_bool(), c["next_open"].is_null()), (Some(true), true), "{c}");
}

/// The counsellor's desk API with their OpenID token.
struct DeskApi(assisto_tests::api::OpenIdApi);

impl DeskApi {
    async fn of(svc: &TestService, c: &TestUser) -> Self {
        Self(assisto_tests::api::OpenIdApi::of(svc, c, "live/v1").await)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.0.call(method, path, body).await
    }

    async fn chat(&self, room: &str, step: &str, body: Option<Value>) -> (u16, Value) {
        self.call(Method::POST, &format!("/chats/{}/{step}", enc(room)), body.or(Some(json!({})))).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_chat_widget_shows_the_desk_live_and_takes_exactly_once() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Schreibtisch").await;
    let anna = counsellor(&svc, &inst, "Anna Tisch", &[], true).await;
    let ben = counsellor(&svc, &inst, "Ben Tisch", &[], true).await;

    // The institution's desk room, in the Live space, carries the widget at its top; the
    // counsellors are in it.
    let desk_room = inst.rooms["desk"].as_str().expect("desk room").to_owned();
    assert!(joined(&anna, &desk_room).await, "counsellors are in the desk room");
    let widget = anna
        .raw_get(&format!(
            "/_matrix/client/v3/rooms/{}/state/im.vector.modular.widgets/assisto-live",
            enc(&desk_room)
        ))
        .await;
    let url = widget["url"].as_str().expect("widget url");
    assert!(url.starts_with(&format!("{}/_assisto/widget/live?", svc.url())), "{widget}");
    let layout = anna
        .raw_get(&format!("/_matrix/client/v3/rooms/{}/state/io.element.widgets.layout/", enc(&desk_room)))
        .await;
    assert_eq!(layout["widgets"]["assisto-live"]["container"], "top", "{layout}");
    let live_space = inst.rooms["live"].as_str().expect("live space");
    let child = anna
        .raw_get(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.space.child/{}",
            enc(live_space),
            enc(&desk_room)
        ))
        .await;
    assert!(child.get("via").is_some(), "the desk room is in the Live space: {child}");
    // Counsellors cannot write there.
    let (s, _) = anna
        .raw(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/t1", enc(&desk_room)),
            Some(json!({"msgtype": "m.text", "body": "hallo"})),
        )
        .await;
    assert_eq!(s, 403, "nobody writes in the desk room");
    // The page: German, with a security policy, labelled controls.
    let r = reqwest::get(url.replace("$matrix_widget_id", "w1")).await.expect("widget page");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"].to_str().expect("csp").contains("default-src 'none'"));
    let html = r.text().await.expect("html");
    assert!(html.contains(r#"<html lang="de">"#) && html.contains(r#"<label for="my-status">"#));

    // Without a token, nothing.
    let r = reqwest::get(format!("{}/_assisto/live/v1/desk", svc.url())).await.expect("desk");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().await.expect("json")["errcode"], "M_UNAUTHORIZED");

    let a = DeskApi::of(&svc, &anna).await;
    let b = DeskApi::of(&svc, &ben).await;
    let mut events = reqwest::Client::new()
        .get(a.0.url("/desk/events"))
        .bearer_auth(a.0.token())
        .send()
        .await
        .expect("desk stream");
    assert_eq!(events.status().as_u16(), 200);
    let mut buf = String::new();
    let first = next_event(&mut events, &mut buf).await;
    assert_eq!(
        (first["status"]["status"].as_str(), first["waiting"].as_array().map(Vec::len)),
        (Some("online"), Some(0)),
        "{first}"
    );
    assert_eq!(first["colleagues"][0]["display_name"], "Ben Tisch", "{first}");

    // A visitor writes: the open desk hears it, with what they wrote.
    let visitor = Visitor::anonymous(&svc, &inst.id, None).await;
    assert_eq!(visitor.send("t1", "Mir geht es heute sehr schlecht").await.0, 201);
    let seen = loop {
        let d = next_event(&mut events, &mut buf).await;
        if d["waiting"][0]["last_message"].as_str().is_some_and(|m| m.contains("sehr schlecht")) {
            break d;
        }
    };
    let room = seen["waiting"][0]["room_id"].as_str().expect("room").to_owned();
    assert_eq!(seen["waiting"][0]["position"], 1, "{seen}");
    assert_eq!(visitor.state().await["queue"]["someone_coming"], false);

    // Ben previews it: he reads what the visitor wrote, and the visitor learns that
    // someone is coming.
    let (s, v) = b.chat(&room, "preview", None).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["messages"].to_string().contains("sehr schlecht"), "{v}");
    visitor_state(&visitor, "someone coming", |s| s["queue"]["someone_coming"] == true).await;

    // Both take at the same instant: exactly one wins, the other is told why.
    let ((sa, va), (sb, vb)) = tokio::join!(a.chat(&room, "take", None), b.chat(&room, "take", None));
    let mut answers = [(sa, va.clone()), (sb, vb.clone())];
    answers.sort_by_key(|(s, _)| *s);
    assert_eq!((answers[0].0, answers[1].0), (200, 409), "{va} {vb}");
    assert_eq!(answers[1].1["errcode"], "ASSISTO_LIVE_STATE", "{}", answers[1].1);
    let (winner, winner_api, loser) = if sa == 200 { (&anna, &a, &ben) } else { (&ben, &b, &anna) };
    eventually("the winner in the chat", Duration::from_secs(20), || async {
        joined(winner, &room).await.then_some(())
    })
    .await;
    assert!(!reads(loser, &room).await, "the loser reads nothing");
    // The preview is only of waiting chats.
    let loser_api = if sa == 200 { &b } else { &a };
    assert_eq!(loser_api.chat(&room, "preview", None).await.0, 409);
    let (_, d) = winner_api.call(Method::GET, "/desk", None).await;
    assert_eq!(
        (d["mine"][0]["room_id"].as_str(), d["waiting"].as_array().map(Vec::len)),
        (Some(room.as_str()), Some(0)),
        "{d}"
    );
    visitor_told(&visitor, "übernommen").await;

    // Only the owner returns it; back in the queue the other takes it.
    assert_eq!(loser_api.chat(&room, "return", None).await.0, 403);
    let (s, v) = winner_api.chat(&room, "return", None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("waiting")), "{v}");
    assert_eq!(loser_api.chat(&room, "take", None).await.0, 200);

    // Bad input: German errors, nothing changes.
    let (s, v) = loser_api
        .chat(&room, "forward", Some(json!({"department_id": null, "counsellor": winner.user_id})))
        .await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");
    let (s, v) = loser_api.chat(&room, "forward", Some(json!({"counsellor": "@niemand:localhost"}))).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = loser_api.call(Method::PUT, "/status", Some(json!({"status": "quatsch"}))).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("Unbekannter Status")), "{v}");
    let (s, _) = loser_api.chat(&room, "close", Some(json!({"note": "x".repeat(2001)}))).await;
    assert_eq!(s, 400);
    let (s, _) = loser_api.chat("!gibt-es-nicht:localhost", "take", None).await;
    assert_eq!(s, 404);
    // Another institution's counsellor does not learn of the chat.
    let other = svc.institution("Anderer Tisch").await;
    let otto = counsellor(&svc, &other, "Otto Tisch", &[], true).await;
    let o = DeskApi::of(&svc, &otto).await;
    assert_eq!(o.chat(&room, "take", None).await.0, 404);
    assert_eq!(o.chat(&room, "preview", None).await.0, 404);

    // Status from the widget: busy, and the desk says so.
    let (s, d) = winner_api.call(Method::PUT, "/status", Some(json!({"status": "beschäftigt"}))).await;
    assert_eq!(
        (s, d["status"]["status"].as_str(), d["status"]["shown"].as_str()),
        (200, Some("busy"), Some("busy")),
        "{d}"
    );

    // The owner closes it with a note.
    let (s, v) = loser_api.chat(&room, "close", Some(json!({"note": "Gespräch beendet"}))).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("closed")), "{v}");
    assert_eq!(loser_api.chat(&room, "close", None).await.0, 409, "closed is closed");
    svc.stop().await;
}

/// The configuration's proposed counsellors (name → ID) as an open page reads them.
async fn proposed(svc: &TestService, inst: &TestInstitution) -> Vec<(String, String)> {
    let (s, v) =
        Visitor::new(svc).call(Method::GET, &format!("/institutions/{}/config", inst.id), None).await;
    assert_eq!(s, 200, "{v}");
    v["team"]
        .as_array()
        .expect("team")
        .iter()
        .map(|m| (m["name"].as_str().expect("name").to_owned(), m["id"].as_str().expect("id").to_owned()))
        .collect()
}

async fn set_status_with(svc: &TestService, c: &TestUser, body: Value) {
    let (s, v) =
        svc.admin(Method::PUT, &format!("/counsellors/{}/status", enc(&c.user_id)), Some(body)).await;
    assert_eq!(s, 200, "{v}");
}

/// Whether the counsellor holds an invite to the room (their own sync says so).
async fn invited(c: &TestUser, room: &str) -> bool {
    let (_, v) = c.raw(Method::GET, "/_matrix/client/v3/sync?timeout=0", None).await;
    v["rooms"]["invite"].get(room).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_visitor_chooses_a_proposed_counsellor_and_falls_back_to_the_queue_when_they_cannot() {
    let svc = TestService::start_with(|c| c.live.tick_ms = 200).await;
    let inst = svc.institution("Wahlhaus").await;
    let bea = counsellor(&svc, &inst, "Bea Wahl", &[], true).await;
    let carl = counsellor(&svc, &inst, "Carl Wahl", &[], true).await;
    let dora = counsellor(&svc, &inst, "Dora Stamm", &[], true).await;
    set_status_with(&svc, &dora, json!({"status": "online", "only_regular": true})).await;
    let _emil = counsellor(&svc, &inst, "Emil Offline", &[], false).await;

    // Proposed: who can take a chat now, not those only for regular clients, not offline;
    // by an opaque ID, never the Matrix user ID.
    let team = proposed(&svc, &inst).await;
    let names: Vec<&str> = team.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Bea Wahl", "Carl Wahl"], "{team:?}");
    assert!(team.iter().all(|(_, id)| !id.contains('@') && !id.contains("wahl")), "{team:?}");
    let bea_id = team[0].1.clone();

    // Choosing Bea offers her the chat (an invite); only she can get in.
    let (v1, _) =
        Visitor::open(&svc, &inst.id, json!({"area": "anonymous", "form": "bubble", "counsellor": bea_id}))
            .await;
    let first = chat_in_state(&svc, &inst, 1, "offered").await;
    assert_eq!(first["counsellor"], bea.user_id.as_str());
    let room = first["room_id"].as_str().expect("room").to_owned();
    visitor_state(&v1, "someone is coming", |s| s["queue"]["someone_coming"] == true).await;
    eventually("Bea's invite", Duration::from_secs(20), || async {
        invited(&bea, &room).await.then_some(())
    })
    .await;
    assert_eq!(join(&carl, &room).await.0, 403, "offered to Bea, not to Carl");
    assert_eq!(join(&bea, &room).await.0, 200);
    chat_in_state(&svc, &inst, 1, "taken").await;

    // Unknown or malformed IDs are refused before anything is created.
    let chats_before = live_chats(&svc, &inst).await.len();
    for bad in [json!("0000000000000000"), json!(""), json!(bea.user_id)] {
        let (s, v) = Visitor::new(&svc)
            .call(
                Method::POST,
                &format!("/institutions/{}/sessions", inst.id),
                Some(json!({"area": "anonymous", "form": "bubble", "counsellor": bad})),
            )
            .await;
        assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains("beratende Person")), "{v}");
    }
    assert_eq!(live_chats(&svc, &inst).await.len(), chats_before, "nothing was created");

    // Chose Carl, but Carl went offline in between: the chat waits for the next free
    // counsellor, and the visitor is told so in plain German.
    let carl_id = team[1].1.clone();
    svc.set_status(&carl.user_id, "not_online").await;
    let (v2, _) =
        Visitor::open(&svc, &inst.id, json!({"area": "anonymous", "form": "bubble", "counsellor": carl_id}))
            .await;
    visitor_told(&v2, "nicht frei").await;
    let second = chat_in_state(&svc, &inst, 2, "waiting").await;
    assert!(second["counsellor"].is_null(), "{second}");

    // Dora (only for regular clients) is no choice for a new visitor, even by her ID.
    let dora_id = {
        svc.set_status(&carl.user_id, "online").await;
        set_status_with(&svc, &dora, json!({"status": "online", "only_regular": false})).await;
        let id = proposed(&svc, &inst).await.into_iter().find(|(n, _)| n == "Dora Stamm").expect("Dora").1;
        set_status_with(&svc, &dora, json!({"status": "online", "only_regular": true})).await;
        id
    };
    let (v3, _) =
        Visitor::open(&svc, &inst.id, json!({"area": "anonymous", "form": "bubble", "counsellor": dora_id}))
            .await;
    visitor_told(&v3, "nicht frei").await;
    assert!(
        !invited(&dora, chat_in_state(&svc, &inst, 3, "waiting").await["room_id"].as_str().expect("room"))
            .await
    );

    // An offer to the chosen one that is not accepted in time lapses: the chat waits for
    // the next free counsellor, and the visitor is told.
    let fast = department(&svc, &inst, "Schnell").await;
    let (s, v) = svc
        .admin(
            Method::PUT,
            &format!("/departments/{fast}/live"),
            Some(
                json!({"routing": "manual", "max_chats": 5, "offer_timeout_secs": 5, "code_required": false}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let fritz = counsellor(&svc, &inst, "Fritz Schnell", &[&fast], true).await;
    let fritz_id =
        proposed(&svc, &inst).await.into_iter().find(|(n, _)| n == "Fritz Schnell").expect("Fritz").1;
    let (v4, _) = Visitor::open(
        &svc,
        &inst.id,
        json!({"area": "anonymous", "form": "bubble", "department": fast, "counsellor": fritz_id}),
    )
    .await;
    assert_eq!(chat_in_state(&svc, &inst, 4, "offered").await["counsellor"], fritz.user_id.as_str());
    visitor_state(&v4, "someone is coming", |s| s["queue"]["someone_coming"] == true).await;
    chat_in_state(&svc, &inst, 4, "waiting").await;
    visitor_told(&v4, "nicht frei").await;
    let _ = (v1, v2, v3);
}

/// The ID clients know a counsellor by, read from the proposals while they are proposed.
async fn team_id_of(
    svc: &TestService,
    inst: &TestInstitution,
    c: &TestUser,
    name: &str,
    then: Value,
) -> String {
    set_status_with(svc, c, json!({"status": "online", "only_regular": false})).await;
    let id = proposed(svc, inst).await.into_iter().find(|(n, _)| n == name).expect("proposed").1;
    set_status_with(svc, c, then).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn our_team_lists_whom_a_logged_in_client_may_write_to_and_writing_brings_them_in() {
    let svc = TestService::start().await;
    let inst = svc.institution("Teamhaus").await;
    let gabi = counsellor(&svc, &inst, "Gabi Team", &[], true).await;
    let hans = counsellor(&svc, &inst, "Hans Team", &[], false).await;
    svc.set_status(&hans.user_id, "not_online").await;
    let ina = counsellor(&svc, &inst, "Ina Team", &[], false).await;
    let ina_id = team_id_of(&svc, &inst, &ina, "Ina Team", json!({"status": "not_selectable"})).await;
    let jana = counsellor(&svc, &inst, "Jana Team", &[], false).await;
    let jana_id =
        team_id_of(&svc, &inst, &jana, "Jana Team", json!({"status": "online", "only_regular": true})).await;

    let token = assisto_tests::embed::site_token(&svc, &inst.id, "team-user-1", "Klara Klient").await;
    let (client, opened) =
        Visitor::open(&svc, &inst.id, json!({"area": "registered", "form": "tile", "token": token})).await;
    assert_eq!(opened["conversation"]["kind"], "client_chat", "{opened}");
    let team = || async {
        let (s, v) = client.call(Method::GET, "/team", None).await;
        assert_eq!(s, 200, "{v}");
        v["team"]
            .as_array()
            .expect("team")
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap_or_default().to_owned(),
                    m["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    // Not selectable: not listed; only for regular clients: not yet; not online: listed as
    // offline (they can still be written to).
    assert_eq!(
        team().await,
        [("Gabi Team".to_owned(), "online".to_owned()), ("Hans Team".to_owned(), "offline".to_owned())]
    );
    for (id, why) in [
        (&ina_id, "not selectable"),
        (&jana_id, "only for regular clients"),
        (&"00ff00ff00ff00ff".to_owned(), "unknown"),
    ] {
        let (s, v) = client.call(Method::POST, &format!("/team/{id}"), None).await;
        assert_eq!((s, v["errcode"].as_str()), (404, Some("M_NOT_FOUND")), "{why}: {v}");
    }

    // Writing to Hans: he is invited into the client's chat, and the client is told once,
    // however often they ask.
    let hans_id = team_id_of(&svc, &inst, &hans, "Hans Team", json!({"status": "not_online"})).await;
    let room: String = sqlx::query_scalar("SELECT room_id FROM embed_conversations e JOIN clients c ON c.user_id = e.client WHERE c.display_name = 'Klara Klient'")
        .fetch_one(svc.running().db.pool())
        .await
        .expect("the client's chat");
    // A double click (two presses at once), then a press once Hans is invited: one invite,
    // one notice.
    let path = format!("/team/{hans_id}");
    let (a, b) = tokio::join!(client.call(Method::POST, &path, None), client.call(Method::POST, &path, None));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    eventually("Hans's invite", Duration::from_secs(20), || async {
        invited(&hans, &room).await.then_some(())
    })
    .await;
    let (s, v) = client.call(Method::POST, &path, None).await;
    assert_eq!(s, 200, "{v}");
    visitor_told(&client, "Hans Team geschrieben").await;
    let told = client
        .messages()
        .await
        .iter()
        .filter(|m| {
            m["from"] == "system" && m["text"].as_str().is_some_and(|t| t.contains("Hans Team geschrieben"))
        })
        .count();
    assert_eq!(told, 1, "told once");
    assert!(!invited(&gabi, &room).await, "nobody else is brought in");

    // Once Jana has a chat with the client, the client is her regular client: listed, and
    // writing to her is accepted.
    assert_eq!(join(&jana, &room).await.0, 200);
    eventually("Jana listed for her regular client", Duration::from_secs(20), || async {
        team().await.iter().any(|(n, _)| n == "Jana Team").then_some(())
    })
    .await;
    assert_eq!(client.call(Method::POST, &format!("/team/{jana_id}"), None).await.0, 200);

    // "Unser Team" is the logged-in area's: an anonymous visitor's session gets 403.
    let visitor = Visitor::anonymous(&svc, &inst.id, None).await;
    let (s, v) = visitor.call(Method::GET, "/team", None).await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{v}");
    // The logged-in area chooses through "Unser Team", not when opening.
    let (s, v) = Visitor::new(&svc)
        .call(
            Method::POST,
            &format!("/institutions/{}/sessions", inst.id),
            Some(json!({"area": "registered", "form": "tile", "token": "x", "counsellor": hans_id})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
}
