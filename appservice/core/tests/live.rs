//! Tests of the live-chat desk's pure part, `assisto_core::live`.
//!
//! * [`status`], [`visibility`], [`routing`], [`wait`], [`reminders`]: unit tests (and a few
//!   properties) of the counsellor status and presence, what clients see, whom a chat is
//!   offered to, the estimated wait and the response reminder.
//! * [`machine`]: single transitions of the chat state machine.
//! * [`queue`]: properties over any sequence of arrivals and steps, by any actor, legal or
//!   not, with the invariants checked after every operation.
//! * [`race`]: many counsellors taking the same chat at once, one after another and through
//!   the compare-and-set update the service does.

use std::collections::{BTreeMap, BTreeSet};

use assisto_core::live::{
    estimated_wait_secs, pick, positions, reminder, selectable, shown, step, takes_new_chats, Candidate,
    Chat, ChatState, LiveError, Presence, Queue, Reminder, Shown, Status, Step,
};
use proptest::prelude::*;

/// The counsellors (and arbitrary actors) of the properties.
const COUNSELLORS: [&str; 5] = [
    "@anna:beratung.example",
    "@ben:beratung.example",
    "@cem:beratung.example",
    "@dora:beratung.example",
    "@emil:beratung.example",
];

/// The departments of the properties: the general queue and two departments.
const DEPARTMENTS: [Option<&str>; 3] = [None, Some("sucht"), Some("familie")];

const STATUSES: [Status; 4] = [Status::Online, Status::Busy, Status::NotOnline, Status::NotSelectable];

const PRESENCES: [Presence; 3] = [Presence::Online, Presence::Away, Presence::Offline];

fn waiting(department: Option<&str>, queued_at: i64) -> Chat {
    Chat { department: department.map(str::to_owned), state: ChatState::Waiting, queued_at, declined: vec![] }
}

fn taken(owner: &str) -> Chat {
    Chat { state: ChatState::Taken { owner: owner.to_owned() }, ..waiting(Some("sucht"), 1_000) }
}

fn offered(to: &str) -> Chat {
    Chat { state: ChatState::Offered { to: to.to_owned(), since_ms: 2_000 }, ..waiting(Some("sucht"), 1_000) }
}

fn closed() -> Chat {
    Chat { state: ChatState::Closed { abandoned: false }, ..waiting(Some("sucht"), 1_000) }
}

/// One step of every kind, by and to `who`.
fn every_step(who: &str) -> Vec<Step> {
    let who = who.to_owned();
    vec![
        Step::Take { by: who.clone() },
        Step::Offer { to: who.clone(), at_ms: 5 },
        Step::Lapse { to: who.clone() },
        Step::Return { by: who.clone() },
        Step::ToDepartment { by: who.clone(), department: Some("familie".into()) },
        Step::ToCounsellor { by: who.clone(), to: COUNSELLORS[4].into(), at_ms: 5 },
        Step::Close { by: who },
        Step::VisitorLeft,
    ]
}

mod status {
    use super::*;

    #[test]
    fn parses_stable_names_and_german_words() {
        let cases = [
            ("online", Status::Online),
            ("Online", Status::Online),
            ("verfügbar", Status::Online),
            ("VERFÜGBAR", Status::Online),
            ("da", Status::Online),
            ("  online\t", Status::Online),
            ("busy", Status::Busy),
            ("beschäftigt", Status::Busy),
            ("Beschäftigt", Status::Busy),
            ("BESCHÄFTIGT", Status::Busy),
            ("beschaeftigt", Status::Busy),
            ("not_online", Status::NotOnline),
            ("not-online", Status::NotOnline),
            ("nicht online", Status::NotOnline),
            ("Nicht Online", Status::NotOnline),
            ("nicht-online", Status::NotOnline),
            ("nicht_online", Status::NotOnline),
            ("offline", Status::NotOnline),
            ("abgemeldet", Status::NotOnline),
            ("not_selectable", Status::NotSelectable),
            ("nicht anwählbar", Status::NotSelectable),
            ("nicht-anwählbar", Status::NotSelectable),
            ("Nicht-Anwählbar", Status::NotSelectable),
            ("NICHT ANWÄHLBAR", Status::NotSelectable),
            ("nicht-anwaehlbar", Status::NotSelectable),
            ("nicht anwaehlbar", Status::NotSelectable),
            ("unerreichbar", Status::NotSelectable),
        ];
        for (word, status) in cases {
            assert_eq!(Status::parse(word), Some(status), "{word:?}");
        }
    }

    #[test]
    fn rejects_other_words() {
        for word in ["", "  ", "onlin", "nicht", "anwählbar", "nichtonline", "away", "abwesend", "nicht da"]
        {
            assert_eq!(Status::parse(word), None, "{word:?}");
        }
    }

    #[test]
    fn stable_names_and_german_labels_parse_back() {
        for status in STATUSES {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(Status::parse(status.label_de()), Some(status), "{}", status.label_de());
        }
        let names: BTreeSet<_> = STATUSES.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), STATUSES.len(), "stable names are distinct");
    }

    #[test]
    fn presence_from_matrix_is_never_silently_available() {
        assert_eq!(Presence::from_matrix("online"), Presence::Online);
        assert_eq!(Presence::from_matrix("unavailable"), Presence::Away);
        assert_eq!(Presence::from_matrix("offline"), Presence::Offline);
        for unknown in ["", "away", "Online", "busy", "org.example.custom"] {
            assert_eq!(Presence::from_matrix(unknown), Presence::Offline, "{unknown:?}");
        }
    }

    #[test]
    fn presence_names_round_trip() {
        for presence in PRESENCES {
            assert_eq!(Presence::parse(presence.as_str()), Some(presence));
        }
        assert_eq!(Presence::parse("unavailable"), None);
        assert_eq!(Presence::parse("Online"), None);
    }
}

mod visibility {
    use super::*;

    #[test]
    fn shown_for_every_status_and_presence() {
        let table = [
            (Status::Online, Presence::Online, Shown::Online),
            (Status::Online, Presence::Away, Shown::Away),
            (Status::Online, Presence::Offline, Shown::Offline),
            (Status::Busy, Presence::Online, Shown::Busy),
            (Status::Busy, Presence::Away, Shown::Busy),
            (Status::Busy, Presence::Offline, Shown::Offline),
            (Status::NotOnline, Presence::Online, Shown::Offline),
            (Status::NotOnline, Presence::Away, Shown::Offline),
            (Status::NotOnline, Presence::Offline, Shown::Offline),
            (Status::NotSelectable, Presence::Online, Shown::Offline),
            (Status::NotSelectable, Presence::Away, Shown::Offline),
            (Status::NotSelectable, Presence::Offline, Shown::Offline),
        ];
        assert_eq!(table.len(), STATUSES.len() * PRESENCES.len());
        for (status, presence, expected) in table {
            assert_eq!(shown(status, presence), expected, "{status:?} {presence:?}");
        }
    }

    #[test]
    fn only_online_counsellors_with_element_open_take_new_chats() {
        assert!(takes_new_chats(Status::Online, Presence::Online));
        assert!(takes_new_chats(Status::Online, Presence::Away), "idle does not stop new chats");
        for status in STATUSES {
            assert!(!takes_new_chats(status, Presence::Offline), "{status:?} offline");
        }
        for status in [Status::Busy, Status::NotOnline, Status::NotSelectable] {
            for presence in PRESENCES {
                assert!(!takes_new_chats(status, presence), "{status:?} {presence:?}");
            }
        }
    }

    #[test]
    fn who_takes_new_chats_is_shown_online_or_away() {
        for status in STATUSES {
            for presence in PRESENCES {
                assert_eq!(
                    takes_new_chats(status, presence),
                    matches!(shown(status, presence), Shown::Online | Shown::Away),
                    "{status:?} {presence:?}"
                );
            }
        }
    }

    #[test]
    fn not_selectable_is_never_selectable() {
        for only_regular in [false, true] {
            for client_is_regular in [false, true] {
                assert!(!selectable(Status::NotSelectable, only_regular, client_is_regular));
            }
        }
    }

    #[test]
    fn only_regular_counsellors_are_selectable_by_their_regular_clients_only() {
        for status in [Status::Online, Status::Busy, Status::NotOnline] {
            assert!(selectable(status, false, false), "{status:?} open to new clients");
            assert!(selectable(status, false, true), "{status:?} open to regulars");
            assert!(!selectable(status, true, false), "{status:?} closed to new clients");
            assert!(selectable(status, true, true), "{status:?} open to their regulars");
        }
    }
}

mod routing {
    use super::*;

    fn candidate(user_id: &str, open_chats: u32, last_taken_ms: i64) -> Candidate {
        Candidate {
            user_id: user_id.to_owned(),
            status: Status::Online,
            presence: Presence::Online,
            open_chats,
            max_chats: 3,
            last_taken_ms,
        }
    }

    fn picked(candidates: &[Candidate], declined: &[&str]) -> Option<String> {
        let declined: Vec<String> = declined.iter().map(|&d| d.to_owned()).collect();
        pick(candidates, &declined).map(|c| c.user_id.clone())
    }

    #[test]
    fn nobody_to_pick_from() {
        assert_eq!(picked(&[], &[]), None);
    }

    #[test]
    fn least_busy_first() {
        let cs = [candidate("@anna:b", 2, 0), candidate("@ben:b", 1, 500), candidate("@cem:b", 3, -100)];
        assert_eq!(picked(&cs, &[]).as_deref(), Some("@ben:b"));
    }

    #[test]
    fn then_longest_since_last_taken() {
        let cs = [candidate("@anna:b", 1, 500), candidate("@ben:b", 1, 100), candidate("@cem:b", 1, 300)];
        assert_eq!(picked(&cs, &[]).as_deref(), Some("@ben:b"));
    }

    #[test]
    fn then_by_id_whatever_the_order() {
        let mut cs =
            vec![candidate("@cem:b", 1, 100), candidate("@anna:b", 1, 100), candidate("@ben:b", 1, 100)];
        assert_eq!(picked(&cs, &[]).as_deref(), Some("@anna:b"));
        cs.reverse();
        assert_eq!(picked(&cs, &[]).as_deref(), Some("@anna:b"));
    }

    #[test]
    fn away_counsellors_are_picked() {
        let away = Candidate { presence: Presence::Away, ..candidate("@anna:b", 0, 0) };
        assert!(away.can_take());
        assert_eq!(picked(&[away, candidate("@ben:b", 1, 0)], &[]).as_deref(), Some("@anna:b"));
    }

    /// Each of these would be the best, if they could take the chat.
    #[test]
    fn skips_declined_full_busy_and_offline_counsellors() {
        let best = candidate("@best:b", 0, 0);
        let excluded = [
            ("full", Candidate { open_chats: 3, max_chats: 3, ..best.clone() }),
            ("over capacity", Candidate { open_chats: 4, max_chats: 3, ..best.clone() }),
            ("no live chats at all", Candidate { open_chats: 0, max_chats: 0, ..best.clone() }),
            ("busy", Candidate { status: Status::Busy, ..best.clone() }),
            ("not online", Candidate { status: Status::NotOnline, ..best.clone() }),
            ("not selectable", Candidate { status: Status::NotSelectable, ..best.clone() }),
            ("Element closed", Candidate { presence: Presence::Offline, ..best.clone() }),
        ];
        let fallback = candidate("@fallback:b", 2, 900);
        for (why, c) in &excluded {
            assert!(!c.can_take(), "{why}");
            assert_eq!(picked(std::slice::from_ref(c), &[]), None, "{why}");
            assert_eq!(picked(&[c.clone(), fallback.clone()], &[]).as_deref(), Some("@fallback:b"), "{why}");
        }
        // Declined: the best can take chats, but let this one's offer lapse.
        assert!(best.can_take());
        assert_eq!(picked(&[best.clone(), fallback.clone()], &["@best:b"]).as_deref(), Some("@fallback:b"));
        assert_eq!(picked(&[best.clone(), fallback.clone()], &["@best:b", "@fallback:b"]), None);
        assert_eq!(picked(&[best, fallback], &["@other:b"]).as_deref(), Some("@best:b"));
    }

    fn any_candidates() -> impl Strategy<Value = Vec<Candidate>> {
        let one = (
            prop::sample::select(STATUSES.to_vec()),
            prop::sample::select(PRESENCES.to_vec()),
            0..4u32,
            0..4u32,
            0..4i64,
        );
        prop::collection::vec(one, 0..12).prop_map(|cs| {
            cs.into_iter()
                .enumerate()
                .map(|(i, (status, presence, open_chats, max_chats, last_taken_ms))| Candidate {
                    user_id: format!("@c{i}:b"),
                    status,
                    presence,
                    open_chats,
                    max_chats,
                    last_taken_ms,
                })
                .collect()
        })
    }

    proptest! {
        /// The pick can take the chat, did not decline it, and nobody who could is less
        /// busy, waited longer or sorts first; nobody is picked only if nobody could be.
        /// The order of the candidates does not matter.
        #[test]
        fn picks_the_best_eligible(cs in any_candidates(), declined in prop::collection::vec(0..12usize, 0..4)) {
            let declined: Vec<String> = declined.into_iter().map(|i| format!("@c{i}:b")).collect();
            let eligible: Vec<&Candidate> =
                cs.iter().filter(|c| c.can_take() && !declined.contains(&c.user_id)).collect();
            let chosen = pick(&cs, &declined);
            match chosen {
                None => prop_assert!(eligible.is_empty()),
                Some(chosen) => {
                    prop_assert!(chosen.can_take());
                    prop_assert!(!declined.contains(&chosen.user_id));
                    let key = |c: &Candidate| (c.open_chats, c.last_taken_ms, c.user_id.clone());
                    for other in &eligible {
                        prop_assert!(key(chosen) <= key(other), "{:?} beats {:?}", other, chosen);
                    }
                }
            }
            let mut reversed = cs.clone();
            reversed.reverse();
            prop_assert_eq!(pick(&reversed, &declined).map(|c| &c.user_id), chosen.map(|c| &c.user_id));
        }
    }
}

mod wait {
    use super::*;

    #[test]
    fn none_without_counsellors_history_or_position() {
        assert_eq!(estimated_wait_secs(1, 0, &[60]), None, "no counsellor available");
        assert_eq!(estimated_wait_secs(1, 3, &[]), None, "no history");
        assert_eq!(estimated_wait_secs(0, 3, &[60]), None, "not queued");
    }

    #[test]
    fn rounds_up_to_full_minutes() {
        assert_eq!(estimated_wait_secs(1, 1, &[60]), Some(60));
        assert_eq!(estimated_wait_secs(1, 1, &[61]), Some(120));
        assert_eq!(estimated_wait_secs(1, 1, &[119]), Some(120));
        assert_eq!(estimated_wait_secs(1, 1, &[120]), Some(120));
        // The average of 90 and 100 is 95 s.
        assert_eq!(estimated_wait_secs(1, 1, &[90, 100]), Some(120));
        // The average is 60.5 s: two rounds are 121 s, three minutes, not two.
        assert_eq!(estimated_wait_secs(2, 1, &[60, 61]), Some(180));
    }

    #[test]
    fn counsellors_serve_in_rounds() {
        // Positions 1 and 2 are served in the first round by two counsellors, 3 in the
        // second.
        assert_eq!(estimated_wait_secs(1, 2, &[90]), Some(120));
        assert_eq!(estimated_wait_secs(2, 2, &[90]), Some(120));
        assert_eq!(estimated_wait_secs(3, 2, &[90]), Some(180));
        assert_eq!(estimated_wait_secs(3, 3, &[90]), Some(120));
        assert_eq!(estimated_wait_secs(10, 1, &[600]), Some(6_000));
    }

    #[test]
    fn never_promises_no_wait() {
        assert_eq!(estimated_wait_secs(1, 1, &[0]), Some(60));
        assert_eq!(estimated_wait_secs(1, 5, &[0, 0, 1]), Some(60));
    }

    #[test]
    fn extreme_inputs_saturate() {
        assert_eq!(estimated_wait_secs(u32::MAX, 1, &[u32::MAX]), Some(u32::MAX));
        assert_eq!(estimated_wait_secs(u32::MAX, 1, &[u32::MAX; 64]), Some(u32::MAX));
        assert_eq!(estimated_wait_secs(1, u32::MAX, &[u32::MAX]), Some(u32::MAX));
    }

    fn recent() -> impl Strategy<Value = Vec<u32>> {
        prop::collection::vec(0..3_600u32, 1..20)
    }

    fn wait(position: u32, available: u32, recent: &[u32]) -> Result<u32, TestCaseError> {
        estimated_wait_secs(position, available, recent)
            .ok_or_else(|| TestCaseError::fail("no estimate with counsellors and history"))
    }

    proptest! {
        /// Further back in the queue never means a shorter wait.
        #[test]
        fn monotone_in_position(a in 1..1_000u32, b in 1..1_000u32, available in 1..20u32, recent in recent()) {
            let (near, far) = (a.min(b), a.max(b));
            prop_assert!(wait(near, available, &recent)? <= wait(far, available, &recent)?);
            prop_assert!(wait(near, available, &recent)? <= wait(near + 1, available, &recent)?);
        }

        /// More counsellors never mean a longer wait.
        #[test]
        fn more_counsellors_never_wait_longer(position in 1..1_000u32, a in 1..20u32, b in 1..20u32, recent in recent()) {
            let (fewer, more) = (a.min(b), a.max(b));
            prop_assert!(wait(position, more, &recent)? <= wait(position, fewer, &recent)?);
        }

        /// The estimate is the rounds before the visitor's turn times the average recent
        /// wait (at least 30 s), rounded up to the next full minute: a multiple of 60, not
        /// below the exact product and less than a minute above it.
        #[test]
        fn rounds_times_average_rounded_up(position in 1..1_000u32, available in 1..20u32, recent in recent()) {
            let secs = u64::from(wait(position, available, &recent)?);
            let n = recent.len() as u64;
            let total = recent.iter().map(|&s| u64::from(s)).sum::<u64>().max(30 * n);
            let rounds = u64::from(position.div_ceil(available));
            // Exact: the estimate e satisfies e >= total * rounds / n > e - 60.
            prop_assert_eq!(secs % 60, 0);
            prop_assert!(secs * n >= total * rounds, "{} s below the model", secs);
            prop_assert!((secs - 60) * n < total * rounds, "{} s a minute or more above the model", secs);
        }
    }
}

mod reminders {
    use super::*;

    const YELLOW: u32 = 300;
    const RED: u32 = 900;
    const SINCE: i64 = 1_700_000_000_000;

    fn after(ms: i64) -> Reminder {
        reminder(Some(SINCE), SINCE + ms, YELLOW, RED)
    }

    #[test]
    fn nothing_unanswered() {
        assert_eq!(reminder(None, SINCE, YELLOW, RED), Reminder::None);
        assert_eq!(reminder(None, SINCE + 10_000_000, 0, 0), Reminder::None);
    }

    #[test]
    fn thresholds_turn_at_the_exact_second() {
        assert_eq!(after(0), Reminder::Green);
        assert_eq!(after(299_999), Reminder::Green);
        assert_eq!(after(300_000), Reminder::Yellow);
        assert_eq!(after(300_001), Reminder::Yellow);
        assert_eq!(after(899_999), Reminder::Yellow);
        assert_eq!(after(900_000), Reminder::Red);
        assert_eq!(after(86_400_000), Reminder::Red);
    }

    #[test]
    fn a_clock_behind_the_message_is_green() {
        assert_eq!(after(-1), Reminder::Green);
        assert_eq!(after(-3_600_000), Reminder::Green);
    }

    #[test]
    fn zero_and_crossed_thresholds() {
        assert_eq!(reminder(Some(SINCE), SINCE, 0, RED), Reminder::Yellow);
        assert_eq!(reminder(Some(SINCE), SINCE, 0, 0), Reminder::Red);
        // Red before yellow (misconfigured): red wins once it is reached.
        assert_eq!(reminder(Some(SINCE), SINCE + 100_000, 600, 60), Reminder::Red);
        assert_eq!(reminder(Some(SINCE), SINCE + 59_000, 600, 60), Reminder::Green);
    }

    #[test]
    fn markers() {
        assert_eq!(Reminder::None.marker(), "");
        let markers: BTreeSet<_> =
            [Reminder::Green, Reminder::Yellow, Reminder::Red].iter().map(|r| r.marker()).collect();
        assert_eq!(markers.len(), 3);
        assert!(!markers.contains(""));
    }

    fn rank(r: Reminder) -> u8 {
        match r {
            Reminder::None => 0,
            Reminder::Green => 1,
            Reminder::Yellow => 2,
            Reminder::Red => 3,
        }
    }

    proptest! {
        /// While a message is unanswered the reminder only ever gets more urgent, and it
        /// is never "nothing unanswered".
        #[test]
        fn only_gets_more_urgent(
            since in 0..2_000_000_000_000i64,
            a in -1_000_000..10_000_000i64,
            b in -1_000_000..10_000_000i64,
            yellow in 0..3_600u32,
            extra in 0..3_600u32,
        ) {
            let red = yellow + extra;
            let (earlier, later) = (a.min(b), a.max(b));
            let first = reminder(Some(since), since + earlier, yellow, red);
            let then = reminder(Some(since), since + later, yellow, red);
            prop_assert_ne!(first, Reminder::None);
            prop_assert!(rank(first) <= rank(then), "{:?} then {:?}", first, then);
        }
    }
}

mod machine {
    use super::*;

    const ANNA: &str = COUNSELLORS[0];
    const BEN: &str = COUNSELLORS[1];

    fn take(by: &str) -> Step {
        Step::Take { by: by.to_owned() }
    }

    #[test]
    fn taking_a_waiting_chat_forgets_who_declined() {
        let chat = Chat { declined: vec![BEN.into()], ..waiting(Some("sucht"), 7) };
        let next = step(&chat, &take(ANNA)).expect("waiting chats can be taken");
        assert_eq!(
            next,
            Chat { state: ChatState::Taken { owner: ANNA.into() }, ..waiting(Some("sucht"), 7) }
        );
    }

    #[test]
    fn an_offered_chat_is_taken_only_by_whom_it_is_offered_to() {
        assert_eq!(step(&offered(ANNA), &take(BEN)), Err(LiveError::OfferedToOther));
        assert_eq!(step(&offered(ANNA), &take(ANNA)), Ok(taken(ANNA)));
        let offer = Step::Offer { to: BEN.into(), at_ms: 3 };
        assert_eq!(step(&offered(ANNA), &offer), Err(LiveError::OfferedToOther));
    }

    #[test]
    fn a_taken_chat_is_taken() {
        assert_eq!(step(&taken(ANNA), &take(BEN)), Err(LiveError::Taken));
        assert_eq!(step(&taken(ANNA), &take(ANNA)), Err(LiveError::AlreadyYours));
        assert_eq!(step(&taken(ANNA), &Step::Offer { to: BEN.into(), at_ms: 3 }), Err(LiveError::Taken));
        assert_eq!(step(&taken(ANNA), &Step::Lapse { to: ANNA.into() }), Err(LiveError::Taken));
    }

    #[test]
    fn a_lapsed_offer_goes_back_to_waiting_and_is_declined_once() {
        let chat = waiting(None, 1);
        let offer = Step::Offer { to: ANNA.into(), at_ms: 10 };
        let lapse = Step::Lapse { to: ANNA.into() };
        let once = step(&chat, &offer).and_then(|c| step(&c, &lapse)).expect("offer, lapse");
        assert_eq!(once, Chat { declined: vec![ANNA.into()], ..chat.clone() });
        let twice = step(&once, &offer).and_then(|c| step(&c, &lapse)).expect("offer, lapse again");
        assert_eq!(twice, once, "declined once, not twice");
        // Nothing offered (taken and returned meanwhile, say): the lapse is moot.
        assert_eq!(step(&chat, &lapse), Ok(chat.clone()));
        // A late timer of Anna's offer does not end a newer offer to Ben.
        let to_ben = step(&chat, &Step::Offer { to: BEN.into(), at_ms: 11 }).expect("offer to Ben");
        assert_eq!(step(&to_ben, &lapse), Err(LiveError::OfferedToOther));
    }

    #[test]
    fn a_returned_chat_waits_in_its_department_keeping_its_place() {
        let next = step(&taken(ANNA), &Step::Return { by: ANNA.into() }).expect("the owner returns it");
        assert_eq!(next, Chat { declined: vec![ANNA.into()], ..waiting(Some("sucht"), 1_000) });
        assert_eq!(step(&taken(ANNA), &Step::Return { by: BEN.into() }), Err(LiveError::NotOwner));
        assert_eq!(step(&waiting(None, 1), &Step::Return { by: ANNA.into() }), Err(LiveError::NotTaken));
    }

    #[test]
    fn a_chat_forwarded_to_a_department_waits_there() {
        let to_familie = Step::ToDepartment { by: ANNA.into(), department: Some("familie".into()) };
        let chat = Chat { declined: vec![BEN.into()], ..taken(ANNA) };
        let next = step(&chat, &to_familie).expect("the owner forwards it");
        assert_eq!(next, Chat { declined: vec![ANNA.into()], ..waiting(Some("familie"), 1_000) });
        let to_general = Step::ToDepartment { by: ANNA.into(), department: None };
        assert_eq!(step(&chat, &to_general).map(|c| c.department), Ok(None));
    }

    #[test]
    fn a_chat_forwarded_to_a_counsellor_is_offered_to_them() {
        let forward = Step::ToCounsellor { by: ANNA.into(), to: BEN.into(), at_ms: 42 };
        let next = step(&taken(ANNA), &forward).expect("the owner forwards it");
        assert_eq!(
            next,
            Chat {
                state: ChatState::Offered { to: BEN.into(), since_ms: 42 },
                declined: vec![ANNA.into()],
                ..taken(ANNA)
            }
        );
        let to_self = Step::ToCounsellor { by: ANNA.into(), to: ANNA.into(), at_ms: 42 };
        assert_eq!(step(&taken(ANNA), &to_self), Err(LiveError::ToSelf));
        let by_other = Step::ToCounsellor { by: BEN.into(), to: COUNSELLORS[2].into(), at_ms: 42 };
        assert_eq!(step(&taken(ANNA), &by_other), Err(LiveError::NotOwner));
        assert_eq!(step(&offered(BEN), &forward), Err(LiveError::NotTaken));
    }

    #[test]
    fn closing_and_leaving() {
        let close = Step::Close { by: ANNA.into() };
        assert_eq!(step(&taken(ANNA), &close).map(|c| c.state), Ok(ChatState::Closed { abandoned: false }));
        assert_eq!(step(&taken(BEN), &close), Err(LiveError::NotOwner));
        assert_eq!(step(&offered(ANNA), &close), Err(LiveError::NotTaken));
        let left = |chat: &Chat| step(chat, &Step::VisitorLeft).map(|c| c.state);
        assert_eq!(left(&taken(ANNA)), Ok(ChatState::Closed { abandoned: false }));
        assert_eq!(left(&offered(ANNA)), Ok(ChatState::Closed { abandoned: true }));
        assert_eq!(left(&waiting(None, 1)), Ok(ChatState::Closed { abandoned: true }));
    }

    #[test]
    fn a_closed_chat_refuses_every_step() {
        for chat in [closed(), Chat { state: ChatState::Closed { abandoned: true }, ..closed() }] {
            for who in COUNSELLORS {
                for s in every_step(who) {
                    assert_eq!(step(&chat, &s), Err(LiveError::Closed), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn a_returned_visitor_is_first_again() {
        let mut queue = Queue::new();
        assert!(queue.arrive("first", Some("sucht"), 10));
        assert!(queue.arrive("second", Some("sucht"), 20));
        assert!(!queue.arrive("first", None, 30), "IDs are unique");
        assert_eq!(queue.positions(Some("sucht")), [("first", 1), ("second", 2)]);
        queue.apply("first", &take(ANNA)).expect("take");
        assert_eq!(queue.positions(Some("sucht")), [("second", 1)]);
        assert_eq!(queue.owned_by(ANNA), 1);
        queue.apply("first", &Step::Return { by: ANNA.into() }).expect("return");
        assert_eq!(queue.positions(Some("sucht")), [("first", 1), ("second", 2)]);
        assert_eq!(queue.owned_by(ANNA), 0);
        assert!(queue.apply("nobody", &take(ANNA)).is_err());
        assert_eq!(queue.get("nobody"), None);
    }

    #[test]
    fn a_forwarded_visitor_keeps_their_place_in_the_new_department() {
        let mut queue = Queue::new();
        assert!(queue.arrive("early", Some("sucht"), 10));
        assert!(queue.arrive("late", Some("familie"), 20));
        queue.apply("early", &take(ANNA)).expect("take");
        let forward = Step::ToDepartment { by: ANNA.into(), department: Some("familie".into()) };
        queue.apply("early", &forward).expect("forward");
        assert_eq!(queue.positions(Some("familie")), [("early", 1), ("late", 2)]);
        assert_eq!(queue.positions(Some("sucht")), []);
    }

    #[test]
    fn positions_break_ties_by_id() {
        let chats =
            [("b", waiting(None, 5)), ("a", waiting(None, 5)), ("c", waiting(None, 1)), ("d", taken(ANNA))];
        assert_eq!(positions(chats.iter().map(|(id, c)| (*id, c))), [("c", 1), ("a", 2), ("b", 3)]);
    }

    #[test]
    fn state_names_are_the_serialised_tags() {
        for state in [offered(ANNA).state, taken(ANNA).state, closed().state, ChatState::Waiting] {
            let value = serde_json::to_value(&state).expect("serialise");
            assert_eq!(value["state"], state.name(), "{state:?}");
            assert_eq!(state.queued(), matches!(state.name(), "waiting" | "offered"));
        }
    }
}

mod queue {
    use super::*;

    /// One operation on the queue. Chat IDs come from a small pool, so arrivals repeat IDs
    /// and steps hit chats that have not arrived (yet).
    #[derive(Clone, Debug)]
    enum Op {
        Arrive { chat: String, department: Option<String>, at_ms: i64 },
        Apply { chat: String, step: Step },
    }

    fn chat_id() -> impl Strategy<Value = String> {
        (0..12u8).prop_map(|n| format!("live-{n}"))
    }

    fn actor() -> impl Strategy<Value = String> {
        prop::sample::select(COUNSELLORS.to_vec()).prop_map(str::to_owned)
    }

    fn department() -> impl Strategy<Value = Option<String>> {
        prop::sample::select(DEPARTMENTS.to_vec()).prop_map(|d| d.map(str::to_owned))
    }

    fn any_step() -> impl Strategy<Value = Step> {
        let at_ms = 0..1_000i64;
        prop_oneof![
            3 => actor().prop_map(|by| Step::Take { by }),
            2 => (actor(), at_ms.clone()).prop_map(|(to, at_ms)| Step::Offer { to, at_ms }),
            2 => actor().prop_map(|to| Step::Lapse { to }),
            2 => actor().prop_map(|by| Step::Return { by }),
            2 => (actor(), department()).prop_map(|(by, department)| Step::ToDepartment { by, department }),
            2 => (actor(), actor(), at_ms).prop_map(|(by, to, at_ms)| Step::ToCounsellor { by, to, at_ms }),
            1 => actor().prop_map(|by| Step::Close { by }),
            1 => Just(Step::VisitorLeft),
        ]
    }

    fn any_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            // Arrival times from a small range: many ties, and not in the order of arrival.
            1 => (chat_id(), department(), 0..20i64)
                .prop_map(|(chat, department, at_ms)| Op::Arrive { chat, department, at_ms }),
            4 => (chat_id(), any_step()).prop_map(|(chat, step)| Op::Apply { chat, step }),
        ]
    }

    /// The queue as a plain map, to compare before and after.
    fn snapshot(queue: &Queue) -> BTreeMap<String, Chat> {
        queue.chats().map(|(id, chat)| (id.to_owned(), chat.clone())).collect()
    }

    /// The answer a step must get from a chat in this state, as the module states its rules.
    fn expected_answer(state: &ChatState, s: &Step) -> Result<(), LiveError> {
        use ChatState as C;
        use LiveError as E;
        match (state, s) {
            (C::Closed { .. }, _) => Err(E::Closed),
            (C::Waiting, Step::Take { .. } | Step::Offer { .. } | Step::Lapse { .. } | Step::VisitorLeft) => {
                Ok(())
            }
            (C::Offered { to, .. }, Step::Take { by }) if to == by => Ok(()),
            (C::Offered { .. }, Step::Take { .. } | Step::Offer { .. }) => Err(E::OfferedToOther),
            (C::Offered { to, .. }, Step::Lapse { to: lapsed }) if to == lapsed => Ok(()),
            (C::Offered { .. }, Step::Lapse { .. }) => Err(E::OfferedToOther),
            (C::Offered { .. }, Step::VisitorLeft) => Ok(()),
            (C::Taken { owner }, Step::Take { by }) if owner == by => Err(E::AlreadyYours),
            (C::Taken { .. }, Step::Take { .. } | Step::Offer { .. } | Step::Lapse { .. }) => Err(E::Taken),
            (C::Taken { .. }, Step::VisitorLeft) => Ok(()),
            (
                C::Waiting | C::Offered { .. } | C::Taken { .. },
                Step::Return { by }
                | Step::ToDepartment { by, .. }
                | Step::ToCounsellor { by, .. }
                | Step::Close { by },
            ) => match state {
                C::Taken { owner } if owner != by => Err(E::NotOwner),
                C::Taken { .. } => match s {
                    Step::ToCounsellor { to, .. } if to == by => Err(E::ToSelf),
                    _ => Ok(()),
                },
                _ => Err(E::NotTaken),
            },
        }
    }

    /// The acting counsellor of a step only the owner may take.
    fn owner_only(s: &Step) -> Option<&str> {
        match s {
            Step::Return { by }
            | Step::ToDepartment { by, .. }
            | Step::ToCounsellor { by, .. }
            | Step::Close { by } => Some(by),
            Step::Take { .. } | Step::Offer { .. } | Step::Lapse { .. } | Step::VisitorLeft => None,
        }
    }

    fn no_duplicates(declined: &[String]) -> bool {
        declined.iter().collect::<BTreeSet<_>>().len() == declined.len()
    }

    /// Checks one step on an existing chat: its answer, and the chat after it.
    fn check_step(
        pre: &Chat,
        s: &Step,
        answer: &Result<(), LiveError>,
        post: &Chat,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(answer, &expected_answer(&pre.state, s), "{:?} on {:?}", s, pre);
        // (d) A refused step leaves the chat unchanged.
        if answer.is_err() {
            prop_assert_eq!(post, pre);
            return Ok(());
        }
        // (c) Nothing happens to a closed chat.
        prop_assert!(!matches!(pre.state, ChatState::Closed { .. }), "{:?} accepted on a closed chat", s);
        // (f) Only the owner returns, forwards or closes.
        if let Some(by) = owner_only(s) {
            prop_assert_eq!(&pre.state, &ChatState::Taken { owner: by.to_owned() }, "{:?} by a non-owner", s);
        }
        // (e) The place in the queue stays.
        prop_assert_eq!(post.queued_at, pre.queued_at);
        let same_department = post.department == pre.department;
        match s {
            Step::Take { by } => {
                prop_assert_eq!(&post.state, &ChatState::Taken { owner: by.clone() });
                prop_assert!(post.declined.is_empty());
                prop_assert!(same_department);
            }
            Step::Offer { to, at_ms } => {
                prop_assert_eq!(&post.state, &ChatState::Offered { to: to.clone(), since_ms: *at_ms });
                prop_assert_eq!(&post.declined, &pre.declined);
                prop_assert!(same_department);
            }
            Step::Lapse { .. } => match &pre.state {
                ChatState::Offered { to, .. } => {
                    prop_assert_eq!(&post.state, &ChatState::Waiting);
                    prop_assert!(post.declined.contains(to));
                    prop_assert!(pre.declined.iter().all(|d| post.declined.contains(d)));
                    prop_assert!(post.declined.len() <= pre.declined.len() + 1);
                    prop_assert!(same_department);
                }
                _ => prop_assert_eq!(post, pre, "a moot lapse changes nothing"),
            },
            Step::Return { by } => {
                prop_assert_eq!(&post.state, &ChatState::Waiting);
                prop_assert!(post.declined.contains(by));
                prop_assert!(same_department);
            }
            Step::ToDepartment { by, department } => {
                prop_assert_eq!(&post.state, &ChatState::Waiting);
                prop_assert_eq!(&post.department, department);
                prop_assert_eq!(&post.declined, &vec![by.clone()]);
            }
            Step::ToCounsellor { by, to, at_ms } => {
                prop_assert_eq!(&post.state, &ChatState::Offered { to: to.clone(), since_ms: *at_ms });
                prop_assert_eq!(&post.declined, &vec![by.clone()]);
                prop_assert!(same_department);
            }
            Step::Close { .. } => {
                prop_assert_eq!(&post.state, &ChatState::Closed { abandoned: false });
            }
            Step::VisitorLeft => {
                prop_assert_eq!(&post.state, &ChatState::Closed { abandoned: pre.state.queued() });
            }
        }
        Ok(())
    }

    /// Every chat but `target` is as it was, and no chat but `target` is new.
    fn others_unchanged(
        before: &BTreeMap<String, Chat>,
        after: &BTreeMap<String, Chat>,
        target: &str,
    ) -> Result<(), TestCaseError> {
        for (id, chat) in after {
            if id != target {
                prop_assert_eq!(Some(chat), before.get(id), "{} changed", id);
            }
        }
        Ok(())
    }

    /// The invariants of the whole queue after an operation.
    fn check_invariants(
        queue: &Queue,
        before: &BTreeMap<String, Chat>,
        arrived: &BTreeMap<String, i64>,
    ) -> Result<(), TestCaseError> {
        let now = snapshot(queue);

        // (c) Nothing disappears, and a closed chat stays exactly as it was closed.
        prop_assert!(now.len() >= before.len());
        for (id, old) in before {
            let chat = now.get(id);
            prop_assert!(chat.is_some(), "{} disappeared", id);
            if matches!(old.state, ChatState::Closed { .. }) {
                prop_assert_eq!(chat, Some(old), "closed {} changed", id);
            }
        }

        // (e) Every chat keeps the time it arrived.
        prop_assert_eq!(now.len(), arrived.len());
        for (id, chat) in &now {
            prop_assert_eq!(Some(&chat.queued_at), arrived.get(id), "{} moved in the queue", id);
        }

        // (a) At most one owner, and taken exactly when owned.
        let mut owned = 0;
        for counsellor in COUNSELLORS {
            let theirs = now
                .values()
                .filter(|c| matches!(&c.state, ChatState::Taken { owner } if owner == counsellor))
                .count();
            prop_assert_eq!(queue.owned_by(counsellor), theirs, "{}", counsellor);
            owned += theirs;
        }
        let taken = now.values().filter(|c| matches!(c.state, ChatState::Taken { .. })).count();
        prop_assert_eq!(owned, taken, "every taken chat has exactly one owner");
        for (id, chat) in &now {
            let has_counsellor = chat.state.counsellor().is_some();
            prop_assert_eq!(
                has_counsellor,
                matches!(chat.state, ChatState::Taken { .. } | ChatState::Offered { .. }),
                "{}: {:?}",
                id,
                chat.state
            );
            prop_assert!(no_duplicates(&chat.declined), "{}: {:?}", id, chat.declined);
        }

        // (b) Each department's queue is numbered 1..n in order of arrival, then ID.
        let mut listed = 0;
        for department in DEPARTMENTS {
            let positions = queue.positions(department);
            let queued: BTreeSet<&str> = now
                .iter()
                .filter(|(_, c)| c.department.as_deref() == department && c.state.queued())
                .map(|(id, _)| id.as_str())
                .collect();
            let ids: BTreeSet<&str> = positions.iter().map(|&(id, _)| id).collect();
            prop_assert_eq!(&ids, &queued, "{:?}", department);
            prop_assert_eq!(ids.len(), positions.len(), "a chat listed twice in {:?}", department);
            let numbers: Vec<u32> = positions.iter().map(|&(_, n)| n).collect();
            let expected: Vec<u32> = (1..=queued.len() as u32).collect();
            prop_assert_eq!(numbers, expected, "{:?}", department);
            let key = |id: &str| now.get(id).map(|c| (c.queued_at, id.to_owned()));
            for pair in positions.windows(2) {
                prop_assert!(key(pair[0].0) < key(pair[1].0), "{:?} out of order in {:?}", pair, department);
            }
            listed += positions.len();
        }
        let queued = now.values().filter(|c| c.state.queued()).count();
        prop_assert_eq!(listed, queued, "every queued chat is in exactly one queue");
        Ok(())
    }

    /// Runs the operations on an empty queue, checking each answer and the invariants.
    fn run(ops: &[Op]) -> Result<(), TestCaseError> {
        let mut queue = Queue::new();
        let mut arrived = BTreeMap::new();
        for op in ops {
            let before = snapshot(&queue);
            match op {
                Op::Arrive { chat, department, at_ms } => {
                    let fresh = !before.contains_key(chat);
                    prop_assert_eq!(queue.arrive(chat, department.as_deref(), *at_ms), fresh);
                    if fresh {
                        arrived.insert(chat.clone(), *at_ms);
                        prop_assert_eq!(queue.get(chat), Some(&waiting(department.as_deref(), *at_ms)));
                    } else {
                        prop_assert_eq!(queue.get(chat), before.get(chat), "arrival over an existing chat");
                    }
                    others_unchanged(&before, &snapshot(&queue), chat)?;
                }
                Op::Apply { chat, step } => {
                    let answer = queue.apply(chat, step);
                    let after = snapshot(&queue);
                    match (before.get(chat), after.get(chat)) {
                        (Some(pre), Some(post)) => check_step(pre, step, &answer, post)?,
                        (None, None) => {
                            prop_assert!(answer.is_err(), "{:?} on a chat that never arrived", step)
                        }
                        (pre, post) => {
                            return Err(TestCaseError::fail(format!("{chat} was {pre:?}, is {post:?}")));
                        }
                    }
                    others_unchanged(&before, &after, chat)?;
                }
            }
            check_invariants(&queue, &before, &arrived)?;
        }
        Ok(())
    }

    /// Applies the operations, whatever the answers.
    fn replay(ops: &[Op], queue: &mut Queue) {
        for op in ops {
            match op {
                Op::Arrive { chat, department, at_ms } => {
                    queue.arrive(chat, department.as_deref(), *at_ms);
                }
                Op::Apply { chat, step } => {
                    let _ = queue.apply(chat, step);
                }
            }
        }
    }

    /// The checks accept a day at the desk where every kind of step succeeds (so they do
    /// not merely pass on refusals).
    #[test]
    fn a_day_at_the_desk() {
        let [anna, ben, cem, ..] = COUNSELLORS.map(str::to_owned);
        let arrive = |chat: &str, department: Option<&str>, at_ms| Op::Arrive {
            chat: chat.into(),
            department: department.map(str::to_owned),
            at_ms,
        };
        let apply = |chat: &str, step| Op::Apply { chat: chat.into(), step };
        let ops = [
            arrive("live-1", Some("sucht"), 5),
            arrive("live-2", Some("sucht"), 5),
            arrive("live-3", None, 1),
            apply("live-1", Step::Offer { to: anna.clone(), at_ms: 6 }),
            apply("live-1", Step::Lapse { to: anna.clone() }),
            apply("live-1", Step::Take { by: ben.clone() }),
            apply("live-1", Step::ToCounsellor { by: ben.clone(), to: cem.clone(), at_ms: 7 }),
            apply("live-1", Step::Take { by: cem.clone() }),
            apply("live-1", Step::Return { by: cem.clone() }),
            apply("live-1", Step::Take { by: anna.clone() }),
            apply("live-1", Step::ToDepartment { by: anna.clone(), department: None }),
            apply("live-1", Step::Take { by: anna.clone() }),
            apply("live-1", Step::Close { by: anna.clone() }),
            apply("live-2", Step::Take { by: ben.clone() }),
            apply("live-2", Step::VisitorLeft),
            apply("live-3", Step::VisitorLeft),
        ];
        let mut queue = Queue::new();
        for op in &ops {
            match op {
                Op::Arrive { chat, department, at_ms } => {
                    assert!(queue.arrive(chat, department.as_deref(), *at_ms));
                }
                Op::Apply { chat, step } => queue.apply(chat, step).expect("every step is legal"),
            }
        }
        run(&ops).expect("the checks accept legal steps");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        /// Any sequence of arrivals and steps, by anyone: every answer is the rules' answer
        /// and the invariants hold after every operation.
        #[test]
        fn invariants_hold_after_every_operation(ops in prop::collection::vec(any_op(), 1..150)) {
            run(&ops)?;
        }

        /// Once closed, a chat refuses every step by anyone, with `LiveError::Closed`, and
        /// stays as it was, whatever else happens in the queue.
        #[test]
        fn closed_stays_closed(
            before in prop::collection::vec(any_op(), 0..60),
            after in prop::collection::vec(any_op(), 0..60),
        ) {
            let mut queue = Queue::new();
            replay(&before, &mut queue);
            prop_assert!(queue.arrive("closing", Some("sucht"), 3));
            queue.apply("closing", &Step::VisitorLeft).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let closed = queue.get("closing").cloned();
            replay(&after, &mut queue);
            for who in COUNSELLORS {
                for s in every_step(who) {
                    prop_assert_eq!(queue.apply("closing", &s), Err(LiveError::Closed));
                }
            }
            prop_assert_eq!(queue.get("closing").cloned(), closed);
        }
    }
}

mod race {
    use super::*;

    fn counsellors(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("@counsellor{i}:beratung.example")).collect()
    }

    /// `n` counsellors, and an order of attempts in which each tries at least once and some
    /// try again.
    fn attempts() -> impl Strategy<Value = (usize, Vec<usize>)> {
        (2..30usize).prop_flat_map(|n| (Just(n), prop::collection::vec(0..n, 0..n))).prop_flat_map(
            |(n, again)| {
                let mut all: Vec<usize> = (0..n).collect();
                all.extend(again);
                (Just(n), Just(all).prop_shuffle())
            },
        )
    }

    /// A row of the service's table: the chat and its version, updated only if the version
    /// is the one read (`UPDATE … WHERE version = ?`).
    struct Row {
        version: u64,
        chat: Chat,
    }

    /// Where one counsellor's `Take` is.
    enum Phase {
        /// About to read the row.
        Reading,
        /// Read this version; about to compute the step and write.
        Writing { version: u64, chat: Chat },
        /// Finished with this answer.
        Done(Result<(), LiveError>),
    }

    /// One counsellor's next move: read, or compute and compare-and-set (re-reading if the
    /// row changed meanwhile).
    fn advance(row: &mut Row, by: &str, phase: &mut Phase) {
        *phase = match std::mem::replace(phase, Phase::Reading) {
            Phase::Reading => Phase::Writing { version: row.version, chat: row.chat.clone() },
            Phase::Writing { version, chat } => match step(&chat, &Step::Take { by: by.to_owned() }) {
                Err(e) => Phase::Done(Err(e)),
                Ok(next) if row.version == version => {
                    row.chat = next;
                    row.version += 1;
                    Phase::Done(Ok(()))
                }
                Ok(_) => Phase::Reading,
            },
            done @ Phase::Done(_) => done,
        };
    }

    proptest! {
        /// One after another, in any order: the first wins, every other counsellor is told
        /// it is taken, and the winner trying again is told it is theirs already.
        #[test]
        fn exactly_one_take_wins((n, order) in attempts()) {
            let who = counsellors(n);
            let mut queue = Queue::new();
            prop_assert!(queue.arrive("live", Some("sucht"), 1));
            let winner = &who[order[0]];
            let mut wins = 0;
            for &i in &order {
                let answer = queue.apply("live", &Step::Take { by: who[i].clone() });
                if answer.is_ok() {
                    wins += 1;
                    prop_assert_eq!(&who[i], winner);
                } else if &who[i] == winner {
                    prop_assert_eq!(answer, Err(LiveError::AlreadyYours));
                } else {
                    prop_assert_eq!(answer, Err(LiveError::Taken));
                }
            }
            prop_assert_eq!(wins, 1);
            prop_assert_eq!(queue.get("live").map(|c| &c.state), Some(&ChatState::Taken { owner: winner.clone() }));
            for counsellor in &who {
                prop_assert_eq!(queue.owned_by(counsellor), usize::from(counsellor == winner));
            }
        }

        /// At once, through the compare-and-set update, in any interleaving of reads and
        /// writes: exactly one update succeeds, every other counsellor ends with `Taken`
        /// after re-reading, and the row changed exactly once.
        #[test]
        fn exactly_one_compare_and_set_wins(n in 2..30usize, schedule in prop::collection::vec(0..30usize, 0..200)) {
            let who = counsellors(n);
            let mut row = Row { version: 0, chat: waiting(Some("sucht"), 1) };
            let mut phases: Vec<Phase> = (0..n).map(|_| Phase::Reading).collect();
            for i in schedule.into_iter().filter(|&i| i < n) {
                advance(&mut row, &who[i], &mut phases[i]);
            }
            // Then everyone finishes, in turn.
            while phases.iter().any(|p| !matches!(p, Phase::Done(_))) {
                for (i, phase) in phases.iter_mut().enumerate() {
                    advance(&mut row, &who[i], phase);
                }
            }
            let winners: Vec<&String> = who
                .iter()
                .zip(&phases)
                .filter(|(_, p)| matches!(p, Phase::Done(Ok(()))))
                .map(|(w, _)| w)
                .collect();
            prop_assert_eq!(winners.len(), 1);
            for phase in &phases {
                if let Phase::Done(Err(e)) = phase {
                    prop_assert_eq!(e, &LiveError::Taken);
                }
            }
            prop_assert_eq!(row.version, 1);
            prop_assert_eq!(row.chat.state, ChatState::Taken { owner: winners[0].clone() });
        }

        /// A chat offered to one of them: only that one can take it, whoever tries first.
        #[test]
        fn only_the_offeree_takes_an_offered_chat((n, order) in attempts(), offeree in 0..30usize) {
            let who = counsellors(n);
            let offeree = &who[offeree % n];
            let mut chat = waiting(None, 1);
            chat = step(&chat, &Step::Offer { to: offeree.clone(), at_ms: 2 })
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut taken_by = None;
            for &i in &order {
                let by = &who[i];
                let answer = step(&chat, &Step::Take { by: by.clone() });
                match (&taken_by, answer) {
                    (None, Ok(next)) => {
                        prop_assert_eq!(by, offeree);
                        chat = next;
                        taken_by = Some(by.clone());
                    }
                    (None, Err(e)) => prop_assert_eq!(e, LiveError::OfferedToOther),
                    (Some(owner), answer) => prop_assert_eq!(
                        answer,
                        Err(if owner == by { LiveError::AlreadyYours } else { LiveError::Taken })
                    ),
                }
            }
            prop_assert_eq!(taken_by.as_ref(), Some(offeree));
        }
    }
}

mod opening_hours {
    use assisto_core::live::OpeningHours;
    use chrono::NaiveDate;

    fn at(d: &str, hm: &str) -> chrono::NaiveDateTime {
        NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .expect("date")
            .and_time(chrono::NaiveTime::parse_from_str(hm, "%H:%M").expect("time"))
    }

    fn hours(json: &str) -> OpeningHours {
        serde_json::from_str(json).expect("opening hours")
    }

    #[test]
    fn without_a_schedule_it_is_always_open_but_on_holidays() {
        let h = hours(r#"{"holidays": ["2026-12-24"]}"#).check().expect("valid");
        assert!(h.is_open(at("2026-12-23", "03:00")));
        assert!(!h.is_open(at("2026-12-24", "12:00")));
        assert_eq!(h.next_open(at("2026-12-24", "12:00")), Some(at("2026-12-25", "00:00")));
    }

    #[test]
    fn a_weekly_schedule_with_a_lunch_break_and_a_holiday() {
        // 2026-12-21 is a Monday.
        let h = hours(r#"{"weekly": {"mon": ["13:00-17:00", "09:00-12:00"], "wed": ["18:00-24:00"]}, "holidays": ["2026-12-23"]}"#)
            .check()
            .expect("valid");
        assert!(!h.is_open(at("2026-12-21", "08:59")));
        assert!(h.is_open(at("2026-12-21", "09:00")));
        assert!(!h.is_open(at("2026-12-21", "12:00")), "the end is exclusive");
        assert!(h.is_open(at("2026-12-21", "16:59")));
        assert_eq!(h.next_open(at("2026-12-21", "12:30")), Some(at("2026-12-21", "13:00")));
        // After Monday's hours: Wednesday is a holiday, so next Monday.
        assert_eq!(h.next_open(at("2026-12-21", "17:00")), Some(at("2026-12-28", "09:00")));
        assert!(!h.is_open(at("2026-12-22", "10:00")), "a day without hours is closed");
        assert!(h.is_open(at("2026-12-30", "23:59")));
        assert_eq!(h.next_open(at("2026-12-21", "10:00")), Some(at("2026-12-21", "10:00")), "open now: now");
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        for bad in [
            r#"{"weekly": {"montag": ["09:00-12:00"]}}"#,
            r#"{"weekly": {"mon": ["12:00-09:00"]}}"#,
            r#"{"weekly": {"mon": ["9:00-12:00"]}}"#,
            r#"{"weekly": {"mon": ["09:00-24:30"]}}"#,
            r#"{"holidays": ["24.12.2026"]}"#,
        ] {
            assert!(hours(bad).check().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<OpeningHours>(r#"{"weekdays": {}}"#).is_err(), "unknown fields");
    }

    #[test]
    fn closed_for_two_weeks_has_no_next_opening() {
        let holidays: Vec<String> = (1..=20).map(|d| format!("2026-12-{d:02}")).collect();
        let h = OpeningHours { holidays, ..Default::default() }.check().expect("valid");
        assert_eq!(h.next_open(at("2026-12-01", "10:00")), None);
    }
}
