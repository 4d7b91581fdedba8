//! The visitor's download of their conversation ("Verlauf herunterladen"): every message,
//! oldest first, as plain German text with the times in the service's time zone
//! (`bot.timezone`).

use assisto_bridge::core::{CoreError, Kind, Message, Session};
use chrono::TimeZone;

use crate::features::embed::EmbedCore;

/// The most messages a transcript holds (a conversation longer than that is cut at the
/// oldest end, and the transcript says so).
const MAX_MESSAGES: usize = 10_000;

impl EmbedCore {
    /// The conversation as text.
    pub(super) async fn transcript_text(&self, s: &Session) -> Result<String, CoreError> {
        let mut all: Vec<Message> = Vec::new();
        let mut before: Option<String> = None;
        let mut cut = false;
        loop {
            let (page, more) = self.load_history(s, before.as_deref(), 100).await?;
            let Some(first) = page.first() else { break };
            before = Some(first.id.clone());
            all.splice(0..0, page);
            if !more {
                break;
            }
            if all.len() >= MAX_MESSAGES {
                cut = true;
                break;
            }
        }
        let tz: chrono_tz::Tz =
            self.provisioning.config.bot.timezone.parse().unwrap_or(chrono_tz::Europe::Berlin);
        let at = |ms: i64| {
            tz.timestamp_millis_opt(ms)
                .single()
                .map(|t| t.format("%d.%m.%Y %H:%M").to_string())
                .unwrap_or_default()
        };
        let inst = crate::features::institutions::store::get(&self.db, &s.institution)
            .await
            .map_err(super::db_err)?
            .map(|i| i.name)
            .unwrap_or_default();
        let mut out = format!("Chatverlauf – {inst}\nHeruntergeladen am {}\n", at(crate::store::now_ms()));
        if cut {
            out.push_str(&format!("(Nur die letzten {MAX_MESSAGES} Nachrichten.)\n"));
        }
        out.push('\n');
        for m in &all {
            let text = match m.kind {
                Kind::File => format!("[Datei: {}]", m.text),
                Kind::Voice => "[Sprachnachricht]".to_owned(),
                Kind::Link => format!("Link: {}", m.href.as_deref().unwrap_or(&m.text)),
                Kind::Phone | Kind::Video => match &m.href {
                    Some(h) => format!("{} ({h})", m.text),
                    None => m.text.clone(),
                },
                Kind::Text => m.text.clone(),
            };
            out.push_str(&format!("[{}] {}: {}\n", at(m.ts), m.sender_name, text));
        }
        Ok(out)
    }
}
