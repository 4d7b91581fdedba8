//! A counsellor works with the bot through a real client: the events flow in order.

use std::time::Duration;

use assisto_tests::{eventually, matrix::TestUser, TestService};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counsellor_invites_the_bot_and_messages_are_processed_in_order() {
    let mut svc = TestService::start().await;
    let c = TestUser::new(&svc.counsellor_localpart("berger")).await;
    let bot = svc.bot();
    let room = c.create_room(&[&bot]).await;
    eventually("the bot to accept the invite", Duration::from_secs(20), || async {
        c.joined_members(&room).await.contains(&bot).then_some(())
    })
    .await;

    let mut sent = Vec::new();
    for i in 0..25 {
        sent.push(c.send_text(&room, &format!("Nachricht {i}")).await);
    }
    c.send_text(&room, "!assisto hilfe").await;
    c.send_text(&room, "!assisto gibtsnicht").await;

    eventually("the bot's answers", Duration::from_secs(20), || async {
        let msgs = c.recent_messages(&room, 10).await;
        let from_bot = |needle: &str| msgs.iter().any(|(s, b)| *s == bot && b.contains(needle));
        (from_bot("Befehle von assisto") && from_bot("Unbekannter Befehl „gibtsnicht“")).then_some(())
    })
    .await;

    // The service processed the counsellor's messages in the order they were sent.
    let db = svc.running().db.clone();
    let processed: Vec<String> = eventually("all messages processed", Duration::from_secs(20), || {
        let db = db.clone();
        let room = room.to_string();
        let sent = sent.clone();
        async move {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT event_id FROM inbox WHERE room_id = $1 AND processed_seq IS NOT NULL ORDER BY processed_seq",
            )
            .bind(room)
            .fetch_all(db.pool())
            .await
            .ok()?;
            let done = sent.iter().all(|id| ids.contains(id));
            done.then_some(ids)
        }
    })
    .await;
    let ours: Vec<&String> = processed.iter().filter(|id| sent.contains(id)).collect();
    assert_eq!(ours.len(), sent.len(), "every message was processed");
    assert!(ours.iter().zip(&sent).all(|(a, b)| *a == b), "processed out of order: {ours:?} vs {sent:?}");

    // Membership is tracked from the room's member events.
    let me = c.user_id.clone();
    eventually("the memberships recorded", Duration::from_secs(20), || {
        let (db, room, bot, me) = (db.clone(), room.to_string(), bot.clone(), me.clone());
        async move {
            let members = assisto_appservice::features::rooms::members::of_room(&db, &room).await.ok()?;
            let joined = |who: &str| members.iter().any(|(u, m)| u == who && m.as_str() == "join");
            (joined(&bot) && joined(&me)).then_some(())
        }
    })
    .await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_notifications_arrive_as_ephemeral_events() {
    let mut svc = TestService::start().await;
    let c = TestUser::new(&svc.counsellor_localpart("typing")).await;
    let bot = svc.bot();
    let room_id = c.create_room(&[&bot]).await;
    eventually("the bot to join", Duration::from_secs(20), || async {
        c.joined_members(&room_id).await.contains(&bot).then_some(())
    })
    .await;
    let room = c.room(&room_id).await;
    room.typing_notice(true).await.expect("typing");
    let m = svc.running().metrics.clone();
    eventually("an ephemeral event", Duration::from_secs(20), || async {
        (m.events_received.with_label_values(&["ephemeral"]).get() > 0).then_some(())
    })
    .await;
    svc.stop().await;
}
