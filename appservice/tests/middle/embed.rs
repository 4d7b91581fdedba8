//! The web embed's core (`/_assisto/embed/v1`, the bridge on the service's listener): a
//! visitor's session gets a guest puppet and a conversation room made by the bot, the
//! visitor's messages go to the homeserver as the puppet with a transaction ID derived from
//! the browser's, the history is read through `/messages`, counsellors' messages arrive
//! through the application-service API; validation, rate limits and blocking.

use reqwest::Method;
use serde_json::{json, Value};

use crate::mock_hs::Seen;
use crate::{bot, enc, eventually, user, Answer, Institution, Service, HS_TOKEN};

const SEND: &str = "/_matrix/client/v3/rooms/*/send/m.room.message/*";

/// A browser's session.
struct Visitor<'a> {
    svc: &'a Service,
    session: String,
    /// The guest puppet's user ID.
    puppet: String,
    /// The conversation room.
    room: String,
}

impl Visitor<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.svc.call(method, &format!("/_assisto/embed/v1{path}"), Some(&self.session), body).await
    }

    async fn send(&self, txn_id: &str, text: &str) -> Answer {
        self.call(Method::POST, "/messages", Some(json!({"txn_id": txn_id, "text": text}))).await
    }

    /// The sends the homeserver got from this visitor's puppet.
    async fn sends(&self) -> Vec<Seen> {
        let mine = |r: &Seen| r.user_id() == Some(self.puppet.as_str());
        self.svc.hs.calls("PUT", SEND).await.into_iter().filter(mine).collect()
    }
}

/// Opens an anonymous session with the bubble (the anonymous area's default form) and
/// finds, from what the homeserver was asked, the guest puppet and its room.
async fn open<'a>(svc: &'a Service, inst: &Institution) -> (Visitor<'a>, Value) {
    let before = svc.hs.calls("POST", "/_matrix/client/v3/register").await.len();
    let (s, v) = svc
        .call(
            Method::POST,
            &format!("/_assisto/embed/v1/institutions/{}/sessions", inst.id),
            None,
            Some(json!({"area": "anonymous", "form": "bubble"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let registered = svc.hs.calls("POST", "/_matrix/client/v3/register").await;
    let username = registered[before..]
        .iter()
        .find_map(|r| r.body["username"].as_str().filter(|u| u.starts_with("guest_")))
        .expect("a guest puppet was registered");
    let puppet = user(username);
    let joined = svc.hs.calls("POST", "/_matrix/client/v3/rooms/*/join").await;
    let room = joined
        .iter()
        .rev()
        .find(|r| r.user_id() == Some(puppet.as_str()))
        .map(|r| r.segment(4).to_owned())
        .expect("the puppet joined its conversation");
    let session = v["session"].as_str().expect("session token").to_owned();
    (Visitor { svc, session, puppet, room }, v)
}

#[tokio::test]
async fn a_visitor_opens_a_session_and_writes_as_the_guest_puppet() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let available = || async {
        let (s, c) = svc.call(Method::GET, "/_assisto/embed/v1/institutions/nord/config", None, None).await;
        assert_eq!(s, 200, "{c}");
        c["available"].as_bool()
    };
    // A counsellor is available once online (status) with Element open (presence, which
    // the homeserver pushes as an ephemeral event).
    assert_eq!(available().await, Some(false), "a new counsellor is not online");
    let (s, v) = svc
        .admin(Method::PUT, &format!("/counsellors/{}/status", enc(&anna)), Some(json!({"status": "online"})))
        .await;
    assert_eq!((s, v["presence"].as_str()), (200, Some("offline")), "{v}");
    assert_eq!(available().await, Some(false), "online, but Element is closed");
    let presence = json!({"events": [], "ephemeral": [
        {"type": "m.presence", "sender": anna, "content": {"presence": "online"}}]});
    let (s, _) = svc
        .call(Method::PUT, "/_matrix/app/v1/transactions/presence-1", Some(HS_TOKEN), Some(presence))
        .await;
    assert_eq!(s, 200);
    eventually("available once Element is open", async || available().await == Some(true)).await;

    let (s, config) = svc.call(Method::GET, "/_assisto/embed/v1/institutions/nord/config", None, None).await;
    assert_eq!(s, 200, "{config}");
    assert_eq!(
        (config["available"].as_bool(), config["institution"]["name"].as_str()),
        (Some(true), Some("Beratung Nord"))
    );
    let (s, _) = svc.call(Method::GET, "/_assisto/embed/v1/institutions/gibtsnicht/config", None, None).await;
    assert_eq!(s, 404);

    // The anonymous tile is off by default: refused, and no puppet or room is made.
    let rooms_before = svc.hs.calls("POST", "/_matrix/client/v3/createRoom").await.len();
    let (s, v) = svc
        .call(
            Method::POST,
            "/_assisto/embed/v1/institutions/nord/sessions",
            None,
            Some(json!({"area": "anonymous", "form": "tile"})),
        )
        .await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{v}");
    assert_eq!(v["error"], "Dieser Chat ist auf dieser Seite ausgeschaltet.");
    assert_eq!(svc.hs.calls("POST", "/_matrix/client/v3/createRoom").await.len(), rooms_before);
    assert!(svc
        .hs
        .calls("POST", "/_matrix/client/v3/register")
        .await
        .iter()
        .all(|r| r.body["username"] == "assisto"));

    // The bubble opens a live chat as "Gast 1", waiting for a counsellor.
    let (visitor, v) = open(&svc, &nord).await;
    assert_eq!(v["client"]["display_name"], "Gast 1", "{v}");
    assert_eq!(
        (v["conversation"]["kind"].as_str(), v["state"]["waiting"].as_bool()),
        (Some("live"), Some(true)),
        "{v}"
    );
    // What the homeserver was asked: the puppet registered and named …
    let named =
        svc.hs.calls("PUT", &format!("/_matrix/client/v3/profile/{}/displayname", visitor.puppet)).await;
    assert_eq!(
        (named[0].user_id(), &named[0].body),
        (Some(visitor.puppet.as_str()), &json!({"displayname": "Gast 1"}))
    );
    // … the room created by the bot, inviting the puppet, joinable by the Live space's members …
    let created = svc.hs.calls("POST", "/_matrix/client/v3/createRoom").await;
    let create = created.last().expect("the conversation room");
    assert_eq!(create.user_id(), Some(bot().as_str()), "created as the bot");
    assert_eq!(create.body["invite"], json!([visitor.puppet]));
    assert_eq!(create.body["preset"], "private_chat");
    let join_rule = create.body["initial_state"]
        .as_array()
        .expect("initial_state")
        .iter()
        .find(|e| e["type"] == "m.room.join_rules")
        .expect("a join rule")
        .clone();
    assert_eq!(
        join_rule["content"],
        json!({"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": nord.room("live")}]})
    );
    // … and listed in the Live space.
    let child = svc
        .hs
        .calls(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{}/state/m.space.child/{}", nord.room("live"), visitor.room),
        )
        .await;
    assert_eq!(child.len(), 1, "the room is a child of the Live space");
    assert_eq!(child[0].user_id(), Some(bot().as_str()));

    // The visitor writes: sent as the puppet, into the conversation, with the browser's
    // txn_id in the content and a transaction ID derived from it.
    let (s, first) = visitor.send("t1", "Hallo, ich brauche Hilfe 🙏").await;
    assert_eq!(s, 201, "{first}");
    let sends = visitor.sends().await;
    assert_eq!(sends.len(), 1);
    let sent = &sends[0];
    assert_eq!(sent.segment(4), visitor.room);
    assert_eq!(
        sent.body,
        json!({"msgtype": "m.text", "body": "Hallo, ich brauche Hilfe 🙏", "de.assisto.txn_id": "t1"})
    );
    let txn = sent.segment(7).to_owned();
    assert!(txn.starts_with("assisto-") && txn != "t1", "a transaction ID of the service: {txn}");
    assert_eq!((first["from"].as_str(), first["txn_id"].as_str()), (Some("me"), Some("t1")), "{first}");
    // The same txn_id again: the same Matrix transaction (the homeserver de-duplicates), so
    // the same message; another txn_id, another transaction.
    let (s, again) = visitor.send("t1", "Hallo, ich brauche Hilfe 🙏").await;
    assert_eq!((s, &again["id"]), (201, &first["id"]), "{again}");
    visitor.send("t2", "Noch jemand da?").await;
    let txns: Vec<String> = visitor.sends().await.iter().map(|r| r.segment(7).to_owned()).collect();
    assert_eq!(txns.len(), 3);
    assert_eq!(txns[1], txn, "derived: the same for the same txn_id");
    assert_ne!(txns[2], txn, "and another for another");

    // A second visitor is "Gast 2", with a puppet and room of their own.
    let (other, v) = open(&svc, &nord).await;
    assert_eq!(v["client"]["display_name"], "Gast 2", "{v}");
    assert_ne!((&other.puppet, &other.room), (&visitor.puppet, &visitor.room));
    svc.finish().await;
}

#[tokio::test]
async fn history_is_read_through_the_homeserver_and_counsellors_arrive_live() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let (visitor, _) = open(&svc, &nord).await;

    // The room's timeline at the homeserver, newest first (`dir=b`).
    let ev = |id: &str, sender: &str, content: Value| {
        json!({"type": "m.room.message", "event_id": id, "sender": sender, "room_id": visitor.room,
            "origin_server_ts": 1_700_000_000_000i64, "content": content})
    };
    let timeline = vec![
        ev("$3", &anna, json!({"msgtype": "m.text", "body": "0800 111 0 111"})),
        ev("$2", &anna, json!({"msgtype": "m.text", "body": "Hallo, hier ist Anna."})),
        json!({"type": "m.room.member", "event_id": "$m", "sender": anna, "state_key": anna, "content": {"membership": "join"}}),
        ev("$1", &visitor.puppet, json!({"msgtype": "m.text", "body": "Hallo", "de.assisto.txn_id": "t1"})),
    ];
    svc.hs.mock_timeline(&visitor.room, timeline).await;
    let (s, h) = visitor.call(Method::GET, "/messages", None).await;
    assert_eq!(s, 200, "{h}");
    let got: Vec<(&str, &str, &str)> = h["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["from"].as_str().unwrap_or_default(),
                m["sender_name"].as_str().unwrap_or_default(),
                m["text"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("me", "Du", "Hallo"),
            ("counsellor", "Anna Berger", "Hallo, hier ist Anna."),
            ("counsellor", "Anna Berger", "0800 111 0 111")
        ],
        "oldest first, only messages, the counsellor by name: {h}"
    );
    assert_eq!(h["messages"][0]["txn_id"], "t1");
    assert_eq!(
        (h["messages"][2]["kind"].as_str(), h["messages"][2]["href"].as_str()),
        (Some("phone"), Some("tel:08001110111"))
    );
    let read = svc.hs.calls("GET", &format!("/_matrix/client/v3/rooms/{}/messages", visitor.room)).await;
    let read = read.last().expect("read at the homeserver");
    assert_eq!(
        (read.user_id(), read.query("dir")),
        (Some(visitor.puppet.as_str()), Some("b")),
        "as the puppet, backwards"
    );
    // Paging from a message the homeserver does not know in this room: refused.
    let (s, v) = visitor.call(Method::GET, "/messages?before=%24fremd", None).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");
    let (s, v) = visitor.call(Method::GET, "/messages?limit=viele", None).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");

    // Live: the counsellor joins (an event the homeserver pushes over the
    // application-service API), so the visitor no longer waits …
    let (s, v) = svc
        .push(
            "1",
            json!([{"type": "m.room.member", "event_id": "$join", "room_id": visitor.room, "sender": anna,
                "state_key": anna, "origin_server_ts": 1_700_000_000_100i64, "content": {"membership": "join"}}]),
        )
        .await;
    assert_eq!((s, &v), (200, &json!({})));
    eventually("the visitor sees the counsellor", async || {
        visitor.call(Method::GET, "/session", None).await.1["state"]["waiting"] == false
    })
    .await;
    // The join may still move the queue a moment later (a state frame): wait until a
    // short poll comes back empty, so that the long poll below waits for the message.
    for _ in 0..10 {
        let (_, v) = visitor.call(Method::GET, "/events?after=%241&timeout=1", None).await;
        if v["events"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
    }
    // … and a long poll returns what the counsellor writes.
    let messages = format!("/_matrix/client/v3/rooms/{}/messages", visitor.room);
    let reads = svc.hs.calls("GET", &messages).await.len();
    let poll = {
        let base = svc.base.clone();
        let session = visitor.session.clone();
        tokio::spawn(async move {
            let r = reqwest::Client::new()
                .get(format!("{base}/_assisto/embed/v1/events?after=%241&timeout=5"))
                .bearer_auth(session)
                .send()
                .await
                .expect("poll");
            r.json::<Value>().await.expect("json")
        })
    };
    // The poll subscribes, then catches up from the history (or from the conversation's
    // cache, which the short polls above filled): once it has read it, it listens.
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(2), svc.hs.wait_for("GET", &messages, reads + 1))
            .await;
    let (s, _) = svc
        .push(
            "2",
            json!([{"type": "m.room.message", "event_id": "$live", "room_id": visitor.room, "sender": anna,
                "origin_server_ts": 1_700_000_000_200i64, "content": {"msgtype": "m.text", "body": "Ich bin jetzt da."}}]),
        )
        .await;
    assert_eq!(s, 200);
    let events = poll.await.expect("poll task");
    let frames = events["events"].as_array().expect("events");
    let message = frames
        .iter()
        .find(|f| f["type"] == "message")
        .unwrap_or_else(|| panic!("the message in the poll: {events}"));
    assert_eq!(
        (message["message"]["id"].as_str(), message["message"]["from"].as_str()),
        (Some("$live"), Some("counsellor"))
    );
    assert_eq!(message["message"]["text"], "Ich bin jetzt da.");
    assert_eq!(message["message"]["sender_name"], "Anna Berger");
    svc.finish().await;
}

#[tokio::test]
async fn bad_messages_and_too_many_are_refused_before_the_homeserver() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    svc.counsellor(&nord, "anna", "Anna Berger").await;
    let (visitor, _) = open(&svc, &nord).await;

    for (body, status, errcode) in [
        (json!({"txn_id": "t1", "text": "   "}), 400, "M_INVALID_PARAM"),
        (json!({"txn_id": "t/1", "text": "Hallo"}), 400, "M_INVALID_PARAM"),
        (json!({"txn_id": "t1", "text": "x".repeat(4001)}), 413, "M_TOO_LARGE"),
        (json!({"txn_id": "t1", "text": "Hallo\u{7}"}), 400, "M_INVALID_PARAM"),
        (json!({"txn": "t1"}), 400, "M_BAD_JSON"),
    ] {
        let (s, v) = visitor.call(Method::POST, "/messages", Some(body.clone())).await;
        assert_eq!((s, v["errcode"].as_str()), (status, Some(errcode)), "{body}: {v}");
    }
    let (s, v) =
        svc.call_raw(Method::POST, "/_assisto/embed/v1/messages", Some(&visitor.session), "kein json").await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_NOT_JSON")), "{v}");
    let (s, v) = svc
        .call(
            Method::POST,
            "/_assisto/embed/v1/messages",
            None,
            Some(json!({"txn_id": "t1", "text": "Hallo"})),
        )
        .await;
    assert_eq!((s, v["errcode"].as_str()), (401, Some("M_MISSING_TOKEN")), "{v}");
    let (s, v) = svc
        .call(
            Method::POST,
            "/_assisto/embed/v1/messages",
            Some("gefaelscht"),
            Some(json!({"txn_id": "t1", "text": "Hallo"})),
        )
        .await;
    assert_eq!((s, v["errcode"].as_str()), (401, Some("M_UNKNOWN_TOKEN")), "{v}");
    assert!(visitor.sends().await.is_empty(), "nothing invalid reached the homeserver");

    // 30 messages a minute per session; the 31st waits.
    for i in 0..30 {
        let (s, v) = visitor.send(&format!("n{i}"), &format!("Nachricht {i}")).await;
        assert_eq!(s, 201, "message {i}: {v}");
    }
    let (s, v) = visitor.send("n30", "Eine zu viel").await;
    assert_eq!((s, v["errcode"].as_str()), (429, Some("M_LIMIT_EXCEEDED")), "{v}");
    assert!(v["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= 60_000), "{v}");
    assert_eq!(visitor.sends().await.len(), 30, "the refused one was not sent");

    // Ten new sessions a minute per address (one is open already).
    for _ in 0..9 {
        open(&svc, &nord).await;
    }
    let (s, v) = svc
        .call(
            Method::POST,
            "/_assisto/embed/v1/institutions/nord/sessions",
            None,
            Some(json!({"area": "anonymous", "form": "bubble"})),
        )
        .await;
    assert_eq!((s, v["errcode"].as_str()), (429, Some("M_LIMIT_EXCEEDED")), "{v}");
    svc.finish().await;
}

#[tokio::test]
async fn a_blocked_visitor_is_refused_and_nothing_is_sent() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    svc.counsellor(&nord, "anna", "Anna Berger").await;
    let (visitor, _) = open(&svc, &nord).await;
    assert_eq!(visitor.send("t1", "Hallo").await.0, 201);

    svc.block(&visitor.puppet, true).await;
    let (s, v) = visitor.call(Method::GET, "/session", None).await;
    assert_eq!((s, v["blocked"].as_bool()), (403, Some(true)), "{v}");
    assert_eq!(v["error"], "Dieser Zugang ist gesperrt. Bitte wende dich an die Beratungsstelle.");
    let (s, v) = visitor.send("t2", "Darf ich noch?").await;
    assert_eq!((s, v["blocked"].as_bool()), (403, Some(true)), "{v}");
    assert_eq!(visitor.sends().await.len(), 1, "nothing sent while blocked");

    svc.block(&visitor.puppet, false).await;
    assert_eq!(visitor.send("t3", "Danke!").await.0, 201);
    assert_eq!(visitor.sends().await.len(), 2);

    // The homeserver refusing a send (the rules module said no): a German refusal, not an
    // outage.
    svc.hs
        .mock_send()
        .for_room(&visitor.room)
        .for_user(&visitor.puppet)
        .error(403, "M_FORBIDDEN", "Nicht erlaubt.")
        .mount()
        .await;
    let (s, v) = visitor.send("t4", "Und jetzt?").await;
    assert_eq!((s, v["error"].as_str()), (403, Some("Die Nachricht konnte nicht gesendet werden.")), "{v}");
    // The homeserver down for a moment: 503, try again.
    svc.hs
        .mock_send()
        .for_room(&visitor.room)
        .error(502, "M_UNKNOWN", "Bad gateway")
        .priority(1)
        .mount()
        .await;
    let (s, v) = visitor.send("t5", "Hallo?").await;
    assert_eq!((s, v["errcode"].as_str()), (503, Some("M_UNKNOWN")), "{v}");
    svc.finish().await;
}

#[tokio::test]
async fn a_logged_in_client_gets_a_client_chat_with_its_puppet() {
    use assisto_bridge::token::{sign, Claims};

    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    svc.counsellor(&nord, "anna", "Anna Berger").await;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() as i64;
    let claims = |sub: &str| Claims {
        inst: "nord".into(),
        sub: sub.into(),
        name: "Maria Muster".into(),
        exp: now + 600,
    };
    let open = |token: String| {
        svc.call(
            Method::POST,
            "/_assisto/embed/v1/institutions/nord/sessions",
            None,
            Some(json!({"area": "registered", "form": "tile", "token": token})),
        )
    };

    let (s, v) = open(sign(b"irgendwas", &claims("u-1"))).await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "no secret yet: {v}");
    let (s, v) = svc.admin(Method::POST, "/institutions/nord/embed-secret", None).await;
    assert_eq!(s, 200, "{v}");
    let secret = v["secret"].as_str().expect("secret").to_owned();
    let (s, v) = open(sign(b"falsch", &claims("u-1"))).await;
    assert_eq!((s, v["errcode"].as_str()), (401, Some("M_UNKNOWN_TOKEN")), "{v}");

    let (s, first) = open(sign(secret.as_bytes(), &claims("u-1"))).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(
        (first["client"]["display_name"].as_str(), first["conversation"]["kind"].as_str()),
        (Some("Maria Muster"), Some("client_chat"))
    );
    // A client puppet (not a guest) was made, in the directory room, and a room in the
    // Ratsuchende space.
    let registered = svc.hs.calls("POST", "/_matrix/client/v3/register").await;
    let puppet = registered
        .iter()
        .find_map(|r| r.body["username"].as_str().filter(|u| u.starts_with("rs_")))
        .map(user)
        .expect("a client puppet");
    let joins = svc.hs.calls("POST", "/_matrix/client/v3/rooms/*/join").await;
    let rooms: Vec<&str> =
        joins.iter().filter(|r| r.user_id() == Some(puppet.as_str())).map(|r| r.segment(4)).collect();
    assert_eq!(rooms.len(), 2, "directory and conversation: {rooms:?}");
    assert_eq!(rooms[0], nord.room("directory"));
    let child = format!("/_matrix/client/v3/rooms/{}/state/m.space.child/{}", nord.room("clients"), rooms[1]);
    assert_eq!(svc.hs.calls("PUT", &child).await.len(), 1, "in the Ratsuchende space");

    // The same site user again: the same client and room, nothing new at the homeserver.
    let before = svc.hs.requests().await.len();
    let (s, second) = open(sign(secret.as_bytes(), &claims("u-1"))).await;
    assert_eq!(s, 201, "{second}");
    let after = svc.hs.requests().await;
    assert!(
        after[before..].iter().all(|r| r.method == "GET"),
        "no new puppet or room: {:?}",
        after[before..].iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    let (_, clients) = svc.admin(Method::GET, "/institutions/nord/clients", None).await;
    assert_eq!(clients.as_array().map(Vec::len), Some(1), "{clients}");
    svc.finish().await;
}
