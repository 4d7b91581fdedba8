//! Terminchat notices: when a slot opens and when it closes, the bot says so in the room.
//! Whether anybody may send is decided by the rules at the moment of sending; these notices
//! only tell the participants.

use crate::features::rooms::{commands::format_slot, store as rooms};
use crate::matrix::homeserver::{HomeserverClient, TxnId};
use crate::store::Db;

/// Announces the slots that opened or closed in `(after, until]`. A notice is sent with a
/// transaction ID derived from the slot, so a window looked at twice announces once.
pub async fn announce(
    db: &Db,
    hs: &HomeserverClient,
    bot: &str,
    tz: chrono_tz::Tz,
    after: i64,
    until: i64,
) -> sqlx::Result<()> {
    for (room_id, a) in rooms::appointments_due(db, after, until).await? {
        let (purpose, text) = if a.starts_at > after && a.starts_at <= until {
            (
                "appointment-open",
                format!("Der Terminchat ist jetzt geöffnet ({}).", format_slot(tz, a.starts_at, a.ends_at)),
            )
        } else {
            (
                "appointment-close",
                "Der Terminchat ist jetzt geschlossen. Alle können den Verlauf weiter lesen.".to_owned(),
            )
        };
        let txn = TxnId::derived(&format!("{room_id}/{}", a.id), purpose);
        if let Err(e) = hs.send_notice(&room_id, bot, &txn, &text).await {
            tracing::warn!(error = %e, "announcing an appointment failed");
        }
    }
    Ok(())
}
