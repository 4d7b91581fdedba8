//! Nothing lost, nothing twice: replays, restarted counters, crashes, malformed events.

use std::time::Duration;

use assisto_appservice::store::Db;
use assisto_tests::{eventually, matrix::TestUser, message_event, TestService};
use serde_json::json;

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.expect(sql)
}

/// This test's rows (the homeserver may push events of earlier tests' rooms too).
const ROOM_ROWS: &str = "SELECT COUNT(*) FROM inbox WHERE room_id = '!dups:localhost'";
/// This test's processed events and their processing numbers.
const PROCESSED: &str =
    "SELECT event_id, processed_seq FROM inbox WHERE room_id = '!dups:localhost' ORDER BY event_id";

async fn all_processed(db: &Db, expected: i64) {
    let seen = std::sync::Mutex::new(String::new());
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            // Only this test's room: the homeserver may push events of earlier tests' rooms.
            let n = count(db, "SELECT COUNT(*) FROM inbox WHERE processed_at IS NOT NULL AND room_id = '!dups:localhost'").await;
            if n == expected {
                return;
            }
            let rows: Vec<(i64, String, Option<i64>)> =
                sqlx::query_as("SELECT seq, event_id, processed_at FROM inbox WHERE room_id = '!dups:localhost' ORDER BY seq")
                    .fetch_all(db.pool())
                    .await
                    .expect("rows");
            *seen.lock().expect("lock") = format!("{rows:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "not all {expected} events processed within 20 s; inbox: {}",
        seen.lock().expect("lock")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_transactions_and_duplicate_events_are_no_ops() {
    let mut svc = TestService::start().await;
    let hs = svc.as_homeserver();
    let sender = "@c_someone:localhost";
    let ev = |id: &str| message_event(id, "!dups:localhost", sender, "text");

    // The same transaction twice: recorded once.
    let t1 = json!({"events": [ev("$a"), ev("$b"), ev("$c")]});
    assert_eq!(hs.push("10", &t1).await.0, 200);
    assert_eq!(hs.push("10", &t1).await.0, 200);
    let db = svc.running().db.clone();
    all_processed(&db, 3).await;
    assert_eq!(count(&db, ROOM_ROWS).await, 3);

    // The homeserver's counter started over: txn 1 again, with a new event and an old one.
    let t2 = json!({"events": [ev("$d"), ev("$a")]});
    assert_eq!(hs.push("1", &t2).await.0, 200);
    // The same ID as an earlier transaction but other events: not dropped.
    let t3 = json!({"events": [ev("$e")]});
    assert_eq!(hs.push("10", &t3).await.0, 200);
    all_processed(&db, 5).await;
    assert_eq!(count(&db, ROOM_ROWS).await, 5, "$a must be stored once");
    let m = &svc.running().metrics;
    assert_eq!(m.transactions.with_label_values(&["replay"]).get(), 1);
    assert_eq!(m.events_received.with_label_values(&["duplicate"]).get(), 1);
    let before: Vec<(String, i64)> = sqlx::query_as(PROCESSED).fetch_all(db.pool()).await.expect("processed");
    assert_eq!(before.len(), 5);

    // After a restart the record is still there: the replay is still a no-op, and no event
    // is processed a second time.
    svc.stop().await;
    svc.resume().await;
    assert_eq!(hs.push("10", &t3).await.0, 200);
    assert_eq!(hs.push("1", &t2).await.0, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db = svc.running().db.clone();
    assert_eq!(count(&db, ROOM_ROWS).await, 5);
    let after: Vec<(String, i64)> = sqlx::query_as(PROCESSED).fetch_all(db.pool()).await.expect("processed");
    assert_eq!(before, after, "nothing processed twice");
    let m = &svc.running().metrics;
    assert_eq!(m.transactions.with_label_values(&["replay"]).get(), 2);
    svc.stop().await;
}

/// Sets up a room where a counsellor and the bot are members; returns the counsellor.
async fn room_with_bot(svc: &TestService) -> (TestUser, matrix_sdk::ruma::OwnedRoomId) {
    let c = TestUser::new(&svc.counsellor_localpart("anna")).await;
    let bot = svc.bot();
    let room = c.create_room(&[&bot]).await;
    eventually("the bot to join", Duration::from_secs(20), || async {
        c.joined_members(&room).await.contains(&bot).then_some(())
    })
    .await;
    (c, room)
}

async fn bot_answered(c: &TestUser, room: &matrix_sdk::ruma::RoomId, bot: &str, needle: &str) {
    eventually(&format!("the bot to answer with {needle:?}"), Duration::from_secs(20), || async {
        c.recent_messages(room, 20).await.iter().any(|(s, b)| s == bot && b.contains(needle)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_event_is_dead_lettered_and_the_next_still_flows() {
    let mut svc = TestService::start().await;
    let (c, room) = room_with_bot(&svc).await;
    let hs = svc.as_homeserver();
    // Faults a real homeserver does not produce: an event without a sender, one that is
    // not an object, and a membership event without a membership (caught in processing).
    let bad = json!({"events": [
        {"event_id": "$nosender", "room_id": room.as_str(), "type": "m.room.message", "content": {}},
        "just a string",
        {"event_id": "$nomembership", "room_id": room.as_str(), "sender": c.user_id,
         "type": "m.room.member", "state_key": c.user_id, "content": {}},
    ]});
    assert_eq!(hs.push("bad-1", &bad).await.0, 200, "a malformed event must not fail the transaction");

    // The stream goes on: a real command through Synapse is answered.
    c.send_text(&room, "!assisto status").await;
    bot_answered(&c, &room, &svc.bot(), "assisto ist erreichbar").await;

    let db = svc.running().db.clone();
    eventually("three dead letters", Duration::from_secs(10), || async {
        (count(&db, "SELECT COUNT(*) FROM dead_letters").await == 3).then_some(())
    })
    .await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM dead_letters WHERE stage = 'ingest'").await, 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM dead_letters WHERE stage = 'processing'").await, 1);
    let m = &svc.running().metrics;
    assert_eq!(m.dead_letters.with_label_values(&["ingest"]).get(), 2);
    assert_eq!(m.dead_letters.with_label_values(&["processing"]).get(), 1);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_acknowledgement_and_processing_loses_nothing() {
    let mut svc = TestService::start().await;
    let (c, room) = room_with_bot(&svc).await;
    svc.stop().await;

    // The real binary, recording but not processing, so that acknowledged events are
    // certainly unprocessed when it is killed.
    svc.config.processing.paused = true;
    let mut child = svc.spawn_binary().await;
    let mut sent = Vec::new();
    for i in 0..10 {
        sent.push(c.send_text(&room, &format!("Nachricht {i}")).await);
    }
    sent.push(c.send_text(&room, "!assisto status").await);

    // Wait until Synapse's transactions were acknowledged, i.e. recorded.
    let db = Db::connect(&svc.config.database).await.expect("db");
    let probe = db.clone();
    let last = sent.last().cloned().expect("sent");
    eventually("the events to be recorded", Duration::from_secs(30), || {
        let (db, last) = (probe.clone(), last.clone());
        async move {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE event_id = $1")
                .bind(last)
                .fetch_one(db.pool())
                .await
                .ok()?;
            (n == 1).then_some(())
        }
    })
    .await;
    child.kill().await.expect("kill -9");
    let unprocessed: i64 = count(&db, "SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL").await;
    assert!(unprocessed >= 11, "the killed process must have left work: {unprocessed}");
    db.close().await;

    // Restarted, it processes everything it acknowledged: the command is answered.
    svc.config.processing.paused = false;
    svc.resume().await;
    bot_answered(&c, &room, &svc.bot(), "assisto ist erreichbar").await;
    let db = svc.running().db.clone();
    eventually("the inbox to drain", Duration::from_secs(20), || async {
        (count(&db, "SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL").await == 0).then_some(())
    })
    .await;
    for id in &sent {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE event_id = $1 AND outcome = 'processed'")
                .bind(id)
                .fetch_one(db.pool())
                .await
                .expect("query");
        assert_eq!(n, 1, "{id} processed exactly once");
    }
    svc.stop().await;
}
