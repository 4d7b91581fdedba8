//! A determined insider with a raw Matrix client: every request here is the client-server
//! API itself, not Element's buttons. Each hole a raw client once found is a test that
//! fails without the fix: state changes that weaken a room, invites inside
//! `initial_state`, a colleague direct chat that grows, rooms made public, counsellors of
//! another institution, knocks, profile look-ups, room upgrades, and what a server admin
//! forces past the module.

use std::time::Duration;

use assisto_tests::{
    eventually,
    matrix::{enc, joined, rid, TestUser},
    TestInstitution, TestService,
};
use reqwest::Method;
use serde_json::{json, Value};

fn room_id(v: &Value) -> String {
    v["room_id"].as_str().unwrap_or_else(|| panic!("no room_id in {v}")).to_owned()
}

/// The refusal is the module's, with its rule and a German explanation.
fn refused_by(status: u16, v: &Value, rule: &str) {
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["de.assisto.rule"], rule, "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.chars().any(|c| "äöüß".contains(c)) || error.contains("Chat"), "German: {v}");
}

async fn join_raw(user: &TestUser, room: &str) -> (u16, Value) {
    user.raw(Method::POST, &format!("/_matrix/client/v3/rooms/{}/join", enc(room)), Some(json!({}))).await
}

/// Whether any room named `name` exists on the homeserver (admin API).
async fn room_named_exists(name: &str) -> bool {
    let r = reqwest::Client::new()
        .get(format!("{}/_synapse/admin/v1/rooms?search_term={}", assisto_tests::synapse().url, enc(name)))
        .bearer_auth(assisto_tests::matrix::admin_token().await)
        .send()
        .await
        .expect("admin rooms");
    let v: Value = r.json().await.expect("json");
    v["total_rooms"].as_u64().unwrap_or(0) > 0
}

async fn institution_with(
    svc: &TestService,
    name: &str,
    counsellors: usize,
) -> (TestInstitution, Vec<TestUser>) {
    let inst = svc.institution(name).await;
    let mut people = Vec::new();
    for i in 0..counsellors {
        people.push(svc.counsellor(&inst, &format!("{name} {i}")).await);
    }
    (inst, people)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_member_can_weaken_a_managed_room() {
    let mut svc = TestService::start().await;
    let (inst, people) = institution_with(&svc, "Schutzhaus", 2).await;
    let (_, outsiders) = institution_with(&svc, "Fremdhaus", 1).await;
    let (anna, ben) = (&people[0], &people[1]);
    let otto = &outsiders[0];
    let client = svc.client(&inst, "Mara").await;

    // One room of each kind a counsellor makes: colleague group, client chat, group chat.
    let (s, v) = anna.create_room_raw(json!({"name": "Team", "invite": [ben.user_id]})).await;
    assert_eq!(s, 200, "{v}");
    let team = room_id(&v);
    let (s, v) = anna.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let chat = room_id(&v);
    let (s, v) = anna
        .create_room_raw(json!({"name": "Gruppe", "invite": [client.clone(), ben.user_id.clone()]}))
        .await;
    assert_eq!(s, 200, "{v}");
    let group = room_id(&v);
    let bot = svc.bot();
    for room in [&team, &chat, &group] {
        eventually("the bot in the room", Duration::from_secs(30), || async {
            joined(anna, room).await.contains(&bot).then_some(())
        })
        .await;
        anna.send_text(&rid(room), "Vertraulich").await;
    }

    let lure = inst.rooms["colleagues"].as_str().expect("space").to_owned();
    for room in [&team, &chat, &group] {
        let attempts = [
            (
                "m.room.history_visibility",
                "",
                json!({"history_visibility": "world_readable"}),
                "protected_setting",
            ),
            ("m.room.join_rules", "", json!({"join_rule": "public"}), "protected_setting"),
            ("m.room.join_rules", "", json!({"join_rule": "knock"}), "protected_setting"),
            ("m.room.guest_access", "", json!({"guest_access": "can_join"}), "protected_setting"),
            ("m.room.encryption", "", json!({"algorithm": "m.megolm.v1.aes-sha2"}), "protected_setting"),
            ("m.room.canonical_alias", "", json!({"alias": "#x:localhost"}), "protected_setting"),
            ("m.room.server_acl", "", json!({"allow": ["*"], "deny": ["localhost"]}), "protected_setting"),
            ("m.space.parent", "!irgendwo:localhost", json!({"via": ["localhost"]}), "protected_setting"),
            ("m.space.child", "!irgendwo:localhost", json!({"via": ["localhost"]}), "protected_setting"),
            (
                "im.vector.modular.widgets",
                "falle",
                json!({"type": "m.custom", "url": "https://example.org", "name": "Falle"}),
                "protected_setting",
            ),
            (
                "m.room.tombstone",
                "",
                // Pointing at some other existing room: not an upgrade of this one.
                json!({"replacement_room": lure, "body": "Hier weiter"}),
                "protected_setting",
            ),
            ("de.unbekannt", "", json!({"x": 1}), "protected_setting"),
        ];
        for (kind, key, content, rule) in attempts {
            let (s, v) = anna.put_state_raw(room, kind, key, content).await;
            refused_by(s, &v, rule);
        }
        // Power levels: the bot keeps its power, nobody gets more, clients get none.
        let pl = anna.state(room, "m.room.power_levels", "").await;
        assert_eq!(pl["users"][&bot], 100, "{pl}");
        let mut demoted = pl.clone();
        demoted["users"][&bot] = json!(0);
        let (s, v) = anna.put_state_raw(room, "m.room.power_levels", "", demoted).await;
        refused_by(s, &v, "protected_power_levels");
        let mut client_power = pl.clone();
        client_power["users"][&client] = json!(100);
        let (s, v) = anna.put_state_raw(room, "m.room.power_levels", "", client_power).await;
        refused_by(s, &v, "protected_power_levels");
        let mut everyone = pl.clone();
        everyone["users_default"] = json!(100);
        let (s, v) = anna.put_state_raw(room, "m.room.power_levels", "", everyone).await;
        refused_by(s, &v, "protected_power_levels");
        // The bot stays.
        let (s, v) = anna
            .raw(
                Method::POST,
                &format!("/_matrix/client/v3/rooms/{}/kick", enc(room)),
                Some(json!({"user_id": bot})),
            )
            .await;
        refused_by(s, &v, "bot_stays");
        let (s, v) = anna
            .raw(
                Method::POST,
                &format!("/_matrix/client/v3/rooms/{}/ban", enc(room)),
                Some(json!({"user_id": bot})),
            )
            .await;
        refused_by(s, &v, "bot_stays");
        // No directory entry, no alias.
        let (s, v) = anna
            .raw(
                Method::PUT,
                &format!("/_matrix/client/v3/directory/list/room/{}", enc(room)),
                Some(json!({"visibility": "public"})),
            )
            .await;
        assert_eq!(s, 403, "published: {v}");
        let alias = format!("#offen{}:localhost", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (s, v) = anna
            .raw(
                Method::PUT,
                &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
                Some(json!({"room_id": room})),
            )
            .await;
        assert_eq!(s, 403, "alias: {v}");
        // What is allowed still works: a new name, a topic, a stricter history.
        let (s, v) = anna.put_state_raw(room, "m.room.topic", "", json!({"topic": "Neues Thema"})).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = anna
            .put_state_raw(room, "m.room.history_visibility", "", json!({"history_visibility": "joined"}))
            .await;
        assert_eq!(s, 200, "{v}");
        // Nothing became readable from outside.
        for path in [
            format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=10", enc(room)),
            format!("/_matrix/client/v3/rooms/{}/state", enc(room)),
        ] {
            let (s, _) = otto.raw(Method::GET, &path, None).await;
            assert_eq!(s, 403, "another institution's counsellor reads {path}");
        }
        let (s, v) = join_raw(otto, room).await;
        assert_eq!(s, 403, "{v}");
        assert_eq!(anna.state(room, "m.room.history_visibility", "").await["history_visibility"], "joined");
        assert_eq!(anna.state(room, "m.room.join_rules", "").await["join_rule"], "invite");
        assert_eq!(anna.state(room, "m.room.guest_access", "").await["guest_access"], "forbidden");
    }
    assert_eq!(svc.room_kind(&inst.id, &team).await.as_deref(), Some("colleague_group"));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_cannot_smuggle_members_or_weak_settings() {
    let mut svc = TestService::start().await;
    let (inst, people) = institution_with(&svc, "Gruendungshaus", 10).await;
    let anna = &people[0];
    let others: Vec<&str> = people[1..].iter().map(|u| u.user_id.as_str()).collect();
    let invite_state =
        |u: &str| json!({"type": "m.room.member", "state_key": u, "content": {"membership": "invite"}});

    // Nine invites inside initial_state: nine members besides the creator — refused, and no
    // room is left behind.
    let name = format!("Schmuggel {}", uuid::Uuid::new_v4().simple());
    let state: Vec<Value> = others.iter().map(|u| invite_state(u)).collect();
    let (s, v) = anna.create_room_raw(json!({"name": name, "initial_state": state})).await;
    refused_by(s, &v, "colleague_cap");
    // One real invite plus eight in initial_state: refused as well, before the room exists.
    let state: Vec<Value> = others[1..].iter().map(|u| invite_state(u)).collect();
    let (s, v) =
        anna.create_room_raw(json!({"name": name, "invite": [others[0]], "initial_state": state})).await;
    refused_by(s, &v, "colleague_cap");
    assert!(!room_named_exists(&name).await, "a refused creation leaves no room");
    for u in &people[1..] {
        let (_, sync) = u.raw(Method::GET, "/_matrix/client/v3/sync?timeout=0", None).await;
        assert!(sync["rooms"]["invite"].as_object().is_none_or(|i| i.is_empty()), "no invite left: {sync}");
    }

    // Three invites in initial_state count: a colleague group with the bot, the three invited.
    let state: Vec<Value> = others[..3].iter().map(|u| invite_state(u)).collect();
    let (s, v) = anna.create_room_raw(json!({"name": "Drei", "initial_state": state})).await;
    assert_eq!(s, 200, "{v}");
    let three = room_id(&v);
    assert_eq!(svc.room_kind(&inst.id, &three).await.as_deref(), Some("colleague_group"));
    for u in &others[..3] {
        assert_eq!(anna.state(&three, "m.room.member", u).await["membership"], "invite");
    }

    // Weak settings at creation are refused; end-to-end encryption (Element's default) is
    // left out, since the service must read managed rooms.
    for (body, rule) in [
        (json!({"preset": "public_chat", "invite": [others[0]]}), "protected_setting"),
        (json!({"visibility": "public", "invite": [others[0]]}), "protected_setting"),
        (
            json!({"room_alias_name": format!("a{}", uuid::Uuid::new_v4().simple()), "invite": [others[0]]}),
            "protected_setting",
        ),
        (
            json!({"invite": [others[0]], "initial_state": [{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "world_readable"}}]}),
            "protected_setting",
        ),
        (
            json!({"invite": [others[0]], "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}}]}),
            "protected_setting",
        ),
        (
            json!({"invite": [others[0]], "power_level_content_override": {"users_default": 100}}),
            "protected_power_levels",
        ),
        (
            json!({"invite": [others[0]], "creation_content": {"additional_creators": [others[1]]}}),
            "protected_power_levels",
        ),
    ] {
        let (s, v) = anna.create_room_raw(body.clone()).await;
        refused_by(s, &v, rule);
    }
    let (s, v) = anna
        .create_room_raw(json!({
            "invite": [others[0]], "is_direct": true, "preset": "trusted_private_chat",
            "initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]
        }))
        .await;
    assert_eq!(s, 200, "Element's direct chat: {v}");
    let dm = room_id(&v);
    assert!(anna.state(&dm, "m.room.encryption", "").await.get("algorithm").is_none(), "not encrypted");
    assert_eq!(anna.state(&dm, "m.room.join_rules", "").await["join_rule"], "invite");
    assert_eq!(anna.state(&dm, "m.room.guest_access", "").await["guest_access"], "forbidden");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colleague_chat_stays_two_and_unclassified_rooms_stay_closed() {
    let mut svc = TestService::start().await;
    let (inst, people) = institution_with(&svc, "Zweierhaus", 4).await;
    let anna = &people[0];
    // Element's "Start chat" with one colleague: a colleague chat, for two.
    let (s, v) = anna
        .create_room_raw(
            json!({"invite": [people[1].user_id], "is_direct": true, "preset": "trusted_private_chat"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let dm = room_id(&v);
    assert_eq!(svc.room_kind(&inst.id, &dm).await.as_deref(), Some("colleague_chat"));
    for u in &people[2..] {
        let (s, v) = anna.invite_raw(&dm, &u.user_id).await;
        refused_by(s, &v, "colleague_chat_for_two");
        let (s, v) = people[1].invite_raw(&dm, &u.user_id).await;
        assert_eq!(s, 403, "by the other member too: {v}");
    }
    // A room without invites is not open to anyone until its first invite classifies it.
    let (s, v) = anna.create_room_raw(json!({"name": "Noch leer"})).await;
    assert_eq!(s, 200, "{v}");
    let empty = room_id(&v);
    for u in &people[1..] {
        let (s, v) = join_raw(u, &empty).await;
        assert_eq!(s, 403, "joined an unclassified room: {v}");
        let (s, v) = u
            .raw(
                Method::POST,
                &format!("/_matrix/client/v3/knock/{}", enc(&empty)),
                Some(json!({"reason": "Bitte"})),
            )
            .await;
        refused_by(s, &v, "invite_only");
    }
    assert_eq!(joined(anna, &empty).await.len(), 2, "the creator and the bot");
    // A knock on a full room is told why.
    let (s, v) = anna.invite_raw(&dm, &people[2].user_id).await;
    assert_eq!(s, 403, "{v}");
    let (s, v) =
        people[2].raw(Method::POST, &format!("/_matrix/client/v3/knock/{}", enc(&dm)), Some(json!({}))).await;
    refused_by(s, &v, "colleague_chat_for_two");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_institutions_counsellor_never_gets_in_or_sees_a_client() {
    let mut svc = TestService::start().await;
    let (north, people) = institution_with(&svc, "Nordhaus", 1).await;
    let (_, outsiders) = institution_with(&svc, "Suedhaus", 1).await;
    let (anna, otto) = (&people[0], &outsiders[0]);
    let name = format!("Klient{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let client = svc.client(&north, &name).await;
    let (s, v) = anna.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let chat = room_id(&v);
    eventually("the client to accept", Duration::from_secs(30), || async {
        joined(anna, &chat).await.contains(&client).then_some(())
    })
    .await;
    anna.send_text(&rid(&chat), "Nur für uns").await;
    // Anna invites Otto: refused, at invite and at join by ID.
    let (s, v) = anna.invite_raw(&chat, &otto.user_id).await;
    refused_by(s, &v, "own_institution_only");
    let (s, v) = join_raw(otto, &chat).await;
    assert_eq!(s, 403, "{v}");
    // Nor into a colleague room, nor as a creator's invitee.
    let (s, v) = anna.create_room_raw(json!({"invite": [otto.user_id], "is_direct": true})).await;
    refused_by(s, &v, "own_institution_only");
    // Otto learns nothing of the client: not her messages, not her name by ID.
    let (s, _) =
        otto.raw(Method::GET, &format!("/_matrix/client/v3/rooms/{}/messages?dir=b", enc(&chat)), None).await;
    assert_eq!(s, 403);
    for path in [
        format!("/_matrix/client/v3/profile/{}", enc(&client)),
        format!("/_matrix/client/v3/profile/{}/displayname", enc(&client)),
    ] {
        let (s, v) = otto.raw(Method::GET, &path, None).await;
        assert!(s == 403 || s == 404, "{path}: {s} {v}");
        assert!(!v.to_string().contains(&name), "the client's name leaked: {v}");
    }
    assert!(!otto.search_users(&name).await.contains(&client));
    // Anna, who shares a room with her, can.
    let (s, v) = anna.raw(Method::GET, &format!("/_matrix/client/v3/profile/{}", enc(&client)), None).await;
    assert_eq!((s, v["displayname"].as_str()), (200, Some(name.as_str())), "{v}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_room_keeps_its_bot_its_space_its_members_and_its_rules() {
    let mut svc = TestService::start().await;
    let (inst, people) = institution_with(&svc, "Upgradehaus", 3).await;
    let (anna, ben) = (&people[0], &people[1]);
    let (s, v) = anna.create_room_raw(json!({"invite": [ben.user_id], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let old = room_id(&v);
    let (s, v) = join_raw(ben, &old).await;
    assert_eq!(s, 200, "{v}");
    let bot = svc.bot();
    eventually("the bot in the old room", Duration::from_secs(30), || async {
        joined(anna, &old).await.contains(&bot).then_some(())
    })
    .await;
    let (s, v) = anna.upgrade_raw(&old, "12").await;
    assert_eq!(s, 200, "upgrade: {v}");
    let new = v["replacement_room"].as_str().expect("replacement").to_owned();
    // The bot follows with its power, and Ben is invited over.
    eventually("the bot in the new room", Duration::from_secs(30), || async {
        joined(anna, &new).await.contains(&bot).then_some(())
    })
    .await;
    assert_eq!(anna.state(&new, "m.room.power_levels", "").await["users"][&bot], 100);
    eventually("Ben invited into the new room", Duration::from_secs(30), || async {
        (anna.state(&new, "m.room.member", &ben.user_id).await["membership"] == "invite").then_some(())
    })
    .await;
    let (s, v) = join_raw(ben, &new).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(svc.room_kind(&inst.id, &new).await.as_deref(), Some("colleague_chat"));
    // The space lists the new room, not the old one.
    let space = inst.rooms["colleagues"].as_str().expect("space").to_owned();
    eventually("the new room in the space", Duration::from_secs(30), || async {
        anna.state(&space, "m.space.child", &new).await.get("via").is_some().then_some(())
    })
    .await;
    eventually("the old room out of the space", Duration::from_secs(30), || async {
        anna.state(&space, "m.space.child", &old).await.get("via").is_none().then_some(())
    })
    .await;
    // The bot answers there, and the rules hold: still a chat for two, still protected.
    anna.send_text(&rid(&new), "!assisto hilfe").await;
    eventually("the bot's answer in the new room", Duration::from_secs(60), || async {
        anna.recent_messages(&rid(&new), 10).await.iter().any(|(s, _)| *s == bot).then_some(())
    })
    .await;
    let (s, v) = anna.invite_raw(&new, &people[2].user_id).await;
    refused_by(s, &v, "colleague_chat_for_two");
    let (s, v) = anna
        .put_state_raw(&new, "m.room.history_visibility", "", json!({"history_visibility": "world_readable"}))
        .await;
    refused_by(s, &v, "protected_setting");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_server_admin_forces_is_repaired_and_counted() {
    let mut svc = TestService::start().await;
    let (inst, people) = institution_with(&svc, "Adminhaus", 2).await;
    let admin = svc.admin_counsellor(&inst, "Admin Haus").await;
    let (s, v) = admin.create_room_raw(json!({"name": "Admins Gruppe", "invite": [people[0].user_id]})).await;
    assert_eq!(s, 200, "{v}");
    let room = room_id(&v);
    let bot = svc.bot();
    eventually("the bot in the room", Duration::from_secs(30), || async {
        joined(&admin, &room).await.contains(&bot).then_some(())
    })
    .await;
    // The module lets a server admin through, as Synapse does with its spam checks …
    let (s, v) = admin
        .put_state_raw(
            &room,
            "m.room.history_visibility",
            "",
            json!({"history_visibility": "world_readable"}),
        )
        .await;
    assert_eq!(s, 200, "admins are let through: {v}");
    let (s, v) =
        admin.put_state_raw(&room, "m.room.guest_access", "", json!({"guest_access": "can_join"})).await;
    assert_eq!(s, 200, "{v}");
    // … and the service puts it back.
    eventually("the history hidden again", Duration::from_secs(30), || async {
        (admin.state(&room, "m.room.history_visibility", "").await["history_visibility"] == "shared")
            .then_some(())
    })
    .await;
    eventually("guests shut out again", Duration::from_secs(30), || async {
        (admin.state(&room, "m.room.guest_access", "").await["guest_access"] == "forbidden").then_some(())
    })
    .await;
    // Both repairs are in the audit log ("repaired" is written once the repair worked).
    eventually("both repairs audited", Duration::from_secs(30), || async {
        let (_, audit) = svc.admin(Method::GET, "/audit?limit=200", None).await;
        let repaired = audit
            .as_array()?
            .iter()
            .filter(|e| e["action"] == "rule.protected_setting.repaired" && e["subject"] == room.as_str())
            .count();
        (repaired == 2).then_some(())
    })
    .await;
    let metrics =
        reqwest::get(format!("{}/metrics", svc.url())).await.expect("metrics").text().await.expect("text");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("assisto_rule_repairs_total{outcome=\"repaired\"}"))
        .unwrap_or_else(|| panic!("repairs counted: {metrics}"));
    let counted: u64 = line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(counted >= 2, "{line}");
    // A member from another institution that the admin forces in is removed again.
    let (_, outsiders) = institution_with(&svc, "Adminfremd", 1).await;
    let (s, v) = admin.invite_raw(&room, &outsiders[0].user_id).await;
    assert_eq!(s, 200, "{v}");
    eventually("the outsider's invite withdrawn", Duration::from_secs(30), || async {
        (admin.state(&room, "m.room.member", &outsiders[0].user_id).await["membership"] == "leave")
            .then_some(())
    })
    .await;
    eventually("the removal audited", Duration::from_secs(30), || async {
        let (_, audit) = svc.admin(Method::GET, "/audit?limit=200", None).await;
        audit.to_string().contains("rule.own_institution_only.repaired").then_some(())
    })
    .await;
    svc.stop().await;
}

/// `{"a": {"a": … 1}}`, `depth` levels deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "a": inner }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_content_hides_nothing_from_the_rules() {
    // Content nested as deep as Synapse accepts reaches us one level deeper or more: a
    // state event's `unsigned.prev_content`, a timeline page's `chunk`. serde_json alone
    // stops at 128 levels, which dead-lettered the event (hiding it from the repair) and
    // failed the page. Nothing that deep may slip past the rules.
    let mut svc = TestService::start().await;
    let (inst, people) = institution_with(&svc, "Tiefhaus", 2).await;
    let admin = svc.admin_counsellor(&inst, "Admin Tief").await;
    let anna = &people[0];
    let (s, v) = admin.create_room_raw(json!({"name": "Tiefe Gruppe", "invite": [anna.user_id]})).await;
    assert_eq!(s, 200, "{v}");
    let room = room_id(&v);
    let bot = svc.bot();
    eventually("the bot in the room", Duration::from_secs(30), || async {
        joined(&admin, &room).await.contains(&bot).then_some(())
    })
    .await;
    let (s, v) = join_raw(anna, &room).await;
    assert_eq!(s, 200, "{v}");

    // How deep Synapse lets content be nested (harmless state, found by bisection; the
    // room's creator may send any state).
    let (mut ok, mut refused) = (1usize, 4096usize);
    while refused - ok > 1 {
        let mid = (ok + refused) / 2;
        let (s, _) = admin.put_state_raw(&room, "de.example.tief", "", json!({"x": nested(mid)})).await;
        if s == 200 {
            ok = mid;
        } else {
            refused = mid;
        }
    }
    let depth = ok;
    assert!(depth >= 100, "Synapse accepts only {depth} levels");

    // A counsellor weakening the room with such content: refused by the rule itself.
    let (s, v) = anna
        .put_state_raw(
            &room,
            "m.room.guest_access",
            "",
            json!({"guest_access": "can_join", "x": nested(depth)}),
        )
        .await;
    refused_by(s, &v, "protected_setting");

    // A server admin leaves deep content in the history setting, then opens the history:
    // that event carries the deep content as its prev_content, and is repaired all the same.
    let (s, v) = admin
        .put_state_raw(
            &room,
            "m.room.history_visibility",
            "",
            json!({"history_visibility": "shared", "x": nested(depth)}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = admin
        .put_state_raw(
            &room,
            "m.room.history_visibility",
            "",
            json!({"history_visibility": "world_readable"}),
        )
        .await;
    assert_eq!(s, 200, "admins are let through: {v}");
    eventually("the history hidden again", Duration::from_secs(30), || async {
        (admin.state(&room, "m.room.history_visibility", "").await["history_visibility"] == "shared")
            .then_some(())
    })
    .await;
    let db = svc.running().db.clone();
    let dead: Vec<String> = sqlx::query_scalar("SELECT reason FROM dead_letters WHERE room_id = $1")
        .bind(&room)
        .fetch_all(db.pool())
        .await
        .expect("dead letters");
    assert!(dead.is_empty(), "no event of the room was dead-lettered: {dead:?}");

    // A deep message in the timeline: the service still reads the room's history.
    let (s, v) = anna
        .raw(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/tief1", enc(&room)),
            Some(json!({"msgtype": "m.text", "body": "tief", "x": nested(depth)})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let page = svc
        .hs_client()
        .room_messages(&room, &bot, assisto_appservice::matrix::homeserver::Direction::Backward, None, 10)
        .await
        .expect("the timeline page is read");
    assert!(page.chunk.iter().any(|e| e["content"]["body"] == "tief"), "{} events", page.chunk.len());
    svc.stop().await;
}
