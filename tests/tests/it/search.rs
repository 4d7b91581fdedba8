//! Search against the real homeserver, with real OpenID tokens: a German corpus that
//! Synapse's own `/search` answers worse than ours (inflections, compounds, umlauts and ß,
//! shown side by side); what a counsellor may see (never another institution's rooms, a
//! room they left, or a colleague's chat they are not in); edits and redactions; people and
//! groups; prefixes while typing; bad input; the bot command only in the direct chat.

use std::collections::BTreeSet;
use std::time::Duration;

use assisto_tests::{
    api::OpenIdApi,
    eventually,
    matrix::{enc, rid, TestUser},
    TestService,
};
use reqwest::Method;
use serde_json::{json, Value};

/// The search API as one counsellor.
struct Finder(OpenIdApi);

impl Finder {
    async fn of(svc: &TestService, c: &TestUser) -> Self {
        Finder(OpenIdApi::of(svc, c, "search/v1").await)
    }

    async fn get(&self, query: &str) -> (u16, Value) {
        self.0.call(Method::GET, &format!("/search?{query}"), None).await
    }

    /// The results for `q` (all categories).
    async fn find(&self, q: &str) -> Value {
        let (s, v) = self.get(&format!("q={}", enc(q))).await;
        assert_eq!(s, 200, "searching {q:?}: {v}");
        v
    }

    /// The event IDs of the messages found for `q`.
    async fn events(&self, q: &str) -> BTreeSet<String> {
        ids(&self.find(q).await["messages"])
    }
}

fn ids(hits: &Value) -> BTreeSet<String> {
    hits.as_array()
        .expect("hits")
        .iter()
        .map(|h| h["event_id"].as_str().expect("event_id").to_owned())
        .collect()
}

/// What Synapse's own search (`POST /_matrix/client/v3/search`) finds for `user`.
async fn synapse_search(user: &TestUser, q: &str) -> BTreeSet<String> {
    let body = json!({"search_categories": {"room_events": {"search_term": q}}});
    let (s, v) = user.raw(Method::POST, "/_matrix/client/v3/search", Some(body)).await;
    assert_eq!(s, 200, "{v}");
    v["search_categories"]["room_events"]["results"]
        .as_array()
        .map(|r| r.iter().filter_map(|h| h["result"]["event_id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Waits until `finder` finds exactly `want` for `q` (indexing is asynchronous: within a
/// second, the API says; the test allows ten).
async fn until_found(finder: &Finder, q: &str, want: &BTreeSet<String>) {
    eventually(&format!("{q:?} to find {want:?}"), Duration::from_secs(10), || async {
        let got = finder.events(q).await;
        (got == *want).then_some(())
    })
    .await;
}

fn set(items: &[&String]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_understands_german_better_than_synapse_and_shows_only_what_the_counsellor_may_see() {
    let svc = TestService::start().await;
    let inst = svc.institution("Suchhaus").await;
    let south = svc.institution("Suchhaus Süd").await;
    let anna = svc.counsellor(&inst, "Anna Sucher").await;
    let ben = svc.counsellor(&inst, "Ben Sucher").await;
    let otto = svc.counsellor(&south, "Otto Sucher").await;
    let (chat, _maria) = svc.client_chat(&inst, &anna, "Maria Müller").await;
    let (a, b, o) =
        (Finder::of(&svc, &anna).await, Finder::of(&svc, &ben).await, Finder::of(&svc, &otto).await);

    // The corpus: inflected forms, a compound, umlauts written both ways, ß.
    let r = rid(&chat);
    let compound = anna.send_text(&r, "Ich empfehle Ihnen die Schuldnerberatung der Stadt.").await;
    let plural = anna.send_text(&r, "Die Beratungen finden dienstags statt.").await;
    let singular = anna.send_text(&r, "Eine Beratung dauert etwa eine Stunde.").await;
    let street = anna.send_text(&r, "Bitte kommen Sie in die Goethestraße 5.").await;
    let girls = anna.send_text(&r, "Das Gespräch mit den Mädchen war gut.").await;
    let monday = anna.send_text(&r, "Unser Termin ist am Montag.").await;
    anna.send_text(&r, "!assisto hilfe").await; // commands are not indexed

    // Another institution's chat with the same words: never found by Anna.
    let (south_chat, _) = svc.client_chat(&south, &otto, "Olga Süd").await;
    let south_msg = otto.send_text(&rid(&south_chat), "Beratungen auch im Süden.").await;

    // A group Anna leaves: its messages are no longer hers to find.
    let c2 = svc.client(&inst, "Jonas Weg").await;
    let (s, v) = anna.create_room_raw(json!({"name": "Gruppe Abschied", "invite": [c2]})).await;
    assert_eq!(s, 200, "{v}");
    let left = v["room_id"].as_str().expect("room").to_owned();
    let bot = svc.bot();
    eventually("the bot in the group", Duration::from_secs(20), || async {
        anna.joined_members(&rid(&left)).await.contains(&bot).then_some(())
    })
    .await;
    let secret = anna.send_text(&rid(&left), "Die Zwiebelberatung war vertraulich.").await;
    until_found(&a, "Zwiebelberatung ", &set(&[&secret])).await;
    let (s, v) = anna
        .raw(Method::POST, &format!("/_matrix/client/v3/rooms/{}/leave", enc(&left)), Some(json!({})))
        .await;
    assert_eq!(s, 200, "{v}");

    // A group Anna stays in, found by its name.
    let (s, v) = anna
        .create_room_raw(json!({"name": "Gruppe Mut", "invite": [svc.client(&inst, "Lea Mut").await]}))
        .await;
    assert_eq!(s, 200, "{v}");
    let group = v["room_id"].as_str().expect("room").to_owned();

    // German forms: "Beratungen" finds the plural, the singular and the compound.
    let beratung = set(&[&compound, &plural, &singular]);
    until_found(&a, "Beratungen ", &beratung).await;
    assert!(a.events("Zwiebelberatung ").await.is_empty(), "a room Anna left");
    assert_eq!(a.events("Strasse ").await, set(&[&street]), "ß and ss, and the compound Goethestraße");
    assert_eq!(a.events("Maedchen Gespraech ").await, set(&[&girls]), "ae/ä, every word must match");
    assert_eq!(a.events("Schuldnerbera").await, set(&[&compound]), "the last word as typed is a prefix");
    assert!(a.events("hilfe ").await.is_empty(), "bot commands are not indexed");

    // Synapse's own search, on the same messages as the same user, misses what ours finds.
    let theirs = synapse_search(&anna, "Beratungen").await;
    assert!(!theirs.contains(&compound), "Synapse finds the compound after all: {theirs:?}");
    assert!(!theirs.contains(&singular), "Synapse stems German after all: {theirs:?}");
    assert!(beratung.is_superset(&theirs.iter().filter(|e| beratung.contains(*e)).cloned().collect()));
    let theirs = synapse_search(&anna, "Strasse").await;
    assert!(!theirs.contains(&street), "Synapse folds ß after all: {theirs:?}");

    // Who sees what: Ben (same institution, not in the chat) and Otto (another one).
    assert!(b.events("Beratungen ").await.is_empty(), "Ben is not in Anna's chat");
    until_found(&o, "Beratungen ", &set(&[&south_msg])).await;
    assert!(!a.events("Beratungen ").await.contains(&south_msg));

    // A hit: where it is, who wrote it, the snippet with the match, the permalink.
    let v = a.find("Schuldnerberatung ").await;
    let hit = &v["messages"][0];
    assert_eq!(hit["event_id"], compound.as_str(), "{v}");
    assert_eq!(hit["room_id"], chat.as_str());
    assert_eq!(hit["category"], "clients");
    assert_eq!(hit["sender"], "Anna Sucher");
    assert!(hit["room"].as_str().unwrap_or_default().contains("Maria Müller"), "{hit}");
    let (snippet, marks) = (hit["snippet"].as_str().expect("snippet"), &hit["highlights"][0]);
    let (from, to) = (marks[0].as_u64().expect("from") as usize, marks[1].as_u64().expect("to") as usize);
    assert_eq!(&snippet[from..to], "Schuldnerberatung", "{hit}");
    assert_eq!(
        hit["link"],
        format!("https://matrix.to/#/{}/{}?via=localhost", chat, compound).as_str(),
        "{hit}"
    );

    // Edits replace, redactions remove.
    let edit = json!({
        "msgtype": "m.text", "body": "* Unser Termin ist am Donnerstag.",
        "m.new_content": {"msgtype": "m.text", "body": "Unser Termin ist am Donnerstag."},
        "m.relates_to": {"rel_type": "m.replace", "event_id": monday},
    });
    let (s, v) = anna
        .raw(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/e1", enc(&chat)),
            Some(edit),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    until_found(&a, "Donnerstag ", &set(&[&monday])).await;
    assert!(a.events("Montag ").await.is_empty(), "the edit replaced the old text");
    let (s, v) = anna
        .raw(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{}/redact/{}/r1", enc(&chat), enc(&singular)),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    until_found(&a, "Beratung ", &set(&[&compound, &plural])).await;

    // People and groups, by category.
    let (s, v) = a.get("q=muel&category=clients").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["people"][0]["name"], "Maria Müller", "{v}");
    assert_eq!(v["people"][0]["room_id"], chat.as_str(), "{v}");
    assert_eq!(v["people"].as_array().map(Vec::len), Some(1), "{v}");
    let (_, v) = a.get("q=ben&category=colleagues").await;
    assert_eq!(
        (v["people"][0]["name"].as_str(), v["people"][0]["kind"].as_str()),
        (Some("Ben Sucher"), Some("colleague")),
        "{v}"
    );
    assert_eq!(
        v["people"][0]["link"],
        format!("https://matrix.to/#/{}", ben.user_id).as_str(),
        "no chat with Ben yet: {v}"
    );
    let (_, v) = o.get("q=ben&category=colleagues").await;
    assert_eq!(v["people"].as_array().map(Vec::len), Some(0), "another institution's counsellors: {v}");
    eventually("the group by its name", Duration::from_secs(10), || async {
        let (_, v) = a.get("q=Mut&category=groups").await;
        (v["groups"][0]["room_id"] == group.as_str()).then_some(())
    })
    .await;
    let (_, v) = a.get("q=Abschied&category=groups").await;
    assert_eq!(v["groups"].as_array().map(Vec::len), Some(0), "a group Anna left: {v}");
    let (_, v) = a.get("q=Beratung&category=groups").await;
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(0), "the client chat is not a group chat: {v}");

    // Bad input: German errors, never a 500.
    for (query, why) in [
        ("q=", "empty"),
        ("q=%22*%3A%22%20%F0%9F%99%82", "only signs and emoji"),
        (&format!("q={}", "a".repeat(201)) as &str, "too long"),
        ("q=Beratung&category=alles", "unknown category"),
        ("q=Beratung&limit=0", "limit 0"),
        ("q=Beratung&limit=51", "limit 51"),
        ("q=Beratung&limit=viele", "limit not a number"),
        ("q=Beratung&unknown=1", "unknown parameter"),
    ] {
        let (s, v) = a.get(query).await;
        assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{why}: {v}");
    }
    let (s, v) = a.get("q=%22Beratungen%22%20*%3A").await;
    assert_eq!(
        (s, ids(&v["messages"])),
        (200, set(&[&compound, &plural])),
        "quotes and signs separate words: {v}"
    );
    let (s, _) = reqwest::Client::new()
        .get(format!("{}/_assisto/search/v1/search?q=x", svc.url()))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .expect("request");
    assert_eq!(s, 401, "no token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_command_answers_only_in_the_direct_chat_with_the_bot() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Befehlssuche").await;
    let anna = svc.counsellor(&inst, "Anna Befehl").await;
    let (chat, _) = svc.client_chat(&inst, &anna, "Karl Kunde").await;
    let msg = anna.send_text(&rid(&chat), "Wir sprechen über die Wohnungssuche.").await;
    let finder = Finder::of(&svc, &anna).await;
    until_found(&finder, "Wohnungssuche ", &set(&[&msg])).await;

    let direct = svc.room_with_bot(&anna).await;
    // The direct chat with the bot carries the search widget too (each viewer's widget
    // searches as that viewer); the client chat does not.
    let widget = |room: &str| {
        format!("/_matrix/client/v3/rooms/{}/state/im.vector.modular.widgets/assisto-suche", enc(room))
    };
    let placed = eventually("the search widget in the direct chat", Duration::from_secs(20), || async {
        let v = anna.raw_get(&widget(&direct)).await;
        v.get("url").is_some().then_some(v)
    })
    .await;
    assert_eq!(
        placed["url"],
        format!("{}/_assisto/widget/suche?widgetId=$matrix_widget_id", svc.url()).as_str()
    );
    assert!(anna.raw_get(&widget(&chat)).await.get("url").is_none(), "no search widget in the client chat");
    svc.command(&anna, &direct, "!assisto suche Wohnungssuchen", "Treffer für „Wohnungssuchen“").await;
    let bot = svc.bot();
    let answer = anna
        .recent_messages(&rid(&direct), 10)
        .await
        .into_iter()
        .find(|(s, b)| *s == bot && b.contains("Treffer"))
        .map(|(_, b)| b)
        .expect("answer");
    assert!(answer.contains("Wir sprechen über die Wohnungssuche."), "{answer}");
    assert!(answer.contains(&format!("https://matrix.to/#/{chat}/{msg}")), "{answer}");
    svc.command(&anna, &direct, "!assisto suche", "mindestens ein Wort").await;
    // In a chat with a client, nobody else may read the hits.
    svc.command(&anna, &chat, "!assisto suche Wohnung", "nur Sie und assisto").await;
    let leaked = anna
        .recent_messages(&rid(&chat), 10)
        .await
        .into_iter()
        .any(|(s, b)| s == bot && b.contains("Treffer für"));
    assert!(!leaked, "hits were posted into the client chat");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_catches_up_after_a_crash_and_is_rebuilt_from_synapse() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Wiederaufbau").await;
    let anna = svc.counsellor(&inst, "Anna Aufbau").await;
    let (chat, _) = svc.client_chat(&inst, &anna, "Rita Rest").await;
    let r = rid(&chat);
    let apple = anna.send_text(&r, "Wir backen Apfelkuchen.").await;
    let pear = anna.send_text(&r, "Dann Birnenkuchen.").await;
    let plum = anna.send_text(&r, "Und Pflaumenkuchen.").await;
    let edit = json!({
        "msgtype": "m.text", "body": "* Dann Kirschkuchen.",
        "m.new_content": {"msgtype": "m.text", "body": "Dann Kirschkuchen."},
        "m.relates_to": {"rel_type": "m.replace", "event_id": pear},
    });
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/k1", enc(&chat));
    assert_eq!(anna.raw(Method::PUT, &path, Some(edit)).await.0, 200);
    let path = format!("/_matrix/client/v3/rooms/{}/redact/{}/k2", enc(&chat), enc(&plum));
    assert_eq!(anna.raw(Method::PUT, &path, Some(json!({}))).await.0, 200);
    let a = Finder::of(&svc, &anna).await;
    until_found(&a, "Kirschkuchen ", &set(&[&pear])).await;
    until_found(&a, "Pflaumenkuchen ", &BTreeSet::new()).await;
    until_found(&a, "Apfelkuchen ", &set(&[&apple])).await;

    // A crash lost the last commit: the index no longer holds the first message, and its
    // commit says it is complete only up to before it was sent.
    svc.stop().await;
    let dir = svc.config.search_dir().expect("search dir");
    {
        use assisto_appservice::features::search::index::SearchIndex;
        let index = SearchIndex::open(&dir).expect("index");
        index.remove_event(&apple);
        index.commit(0).expect("commit");
    }
    svc.resume().await;
    until_found(&a, "Apfelkuchen ", &set(&[&apple])).await;

    // While the service runs, the CLI cannot rebuild: it says to use the admin API, which
    // rebuilds in the background.
    let cfg_dir = tempfile::tempdir().expect("tempdir");
    let config = cfg_dir.path().join("assisto.yaml");
    std::fs::write(&config, serde_norway::to_string(&svc.config).expect("yaml")).expect("config");
    let (ok, _, err) = crate::cli::assisto(cfg_dir.path(), &config, &["search", "reindex"], "").await;
    assert!(!ok && err.contains("/_assisto/admin/v1/search/rebuild"), "{err}");
    let (s, v) = svc.admin(Method::POST, "/search/rebuild", None).await;
    assert_eq!((s, v["state"].as_str()), (202, Some("running")), "{v}");
    let done = eventually("the rebuild to finish", Duration::from_secs(30), || async {
        let (_, v) = svc.admin(Method::GET, "/search/rebuild", None).await;
        (v["state"] == "done").then_some(v)
    })
    .await;
    assert!(done["messages"].as_u64().unwrap_or(0) >= 2, "{done}");
    assert_eq!(a.events("Apfelkuchen ").await, set(&[&apple]));

    // With the service stopped and the index gone, the CLI rebuilds it from Synapse: the
    // latest edit of each message, nothing redacted.
    svc.stop().await;
    std::fs::remove_dir_all(&dir).expect("remove the index");
    let (ok, out, err) = crate::cli::assisto(cfg_dir.path(), &config, &["search", "reindex"], "").await;
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).expect("a JSON report");
    assert_eq!(
        (report["state"].as_str(), report["rooms_done"].as_u64()),
        (Some("done"), report["rooms_total"].as_u64()),
        "{report}"
    );
    svc.resume().await;
    assert_eq!(a.events("Apfelkuchen ").await, set(&[&apple]));
    assert_eq!(a.events("Kirschkuchen ").await, set(&[&pear]));
    assert!(a.events("Birnenkuchen ").await.is_empty(), "the edit replaced it");
    assert!(a.events("Pflaumenkuchen ").await.is_empty(), "redacted");
    svc.stop().await;
}
