//! Who the browser is: the embedding site's configuration (forms, limits, signing secret,
//! allowed origins), opening a session (a new guest puppet for an anonymous visitor, the
//! puppet linked to the site's ID for a logged-in client), finding it again by its token,
//! and ending the conversation (also when the client asks for its data to be deleted).

use assisto_bridge::{
    api::MAX_TEXT_CHARS,
    core::{
        Area, ConversationKind, CoreError, DepartmentInfo, EmbedConfig, Features, Form, Identity,
        InstitutionInfo, Limits, Session,
    },
};
use assisto_core::RoomKind;
use sha2::{Digest, Sha256};

use crate::features::embed::store as embed;
use crate::features::embed::{db_err, domain_err, unavailable, EmbedCore, BLOCKED};
use crate::features::institutions::store as institutions;
use crate::features::people::store as people;
use crate::matrix::homeserver::TxnId;
use crate::store::audit;
use crate::store::now_ms;

/// How long a session lasts.
const SESSION_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;

/// How long a shared configuration serves without a change being signalled (changes of
/// the chat set-up, the departments, the team, statuses and the queue signal theirs).
pub(super) const SHARED_CONFIG_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// What the database keeps of a session token (never the token itself).
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl EmbedCore {
    /// The institution's embed configuration, as the site's script reads it.
    pub(super) async fn site_config(&self, institution: &str) -> Result<EmbedConfig, CoreError> {
        let inst = institutions::get(&self.db, institution)
            .await
            .map_err(db_err)?
            .ok_or_else(|| CoreError::NotFound("Diese Beratungsstelle gibt es nicht.".into()))?;
        let settings = embed::settings(&self.db, institution).await.map_err(db_err)?;
        let mut departments = Vec::new();
        for d in institutions::departments(&self.db, institution).await.map_err(db_err)? {
            let available = self.live.available(institution, Some(&d.id)).await.map_err(domain_err)?;
            let (_, next_open) = self.live.opening(Some(&d.id)).await.map_err(domain_err)?;
            departments.push(DepartmentInfo { id: d.id, name: d.name, available, next_open });
        }
        // A visitor without a choice joins the only department's queue, or else the general
        // queue, which every counsellor of the institution serves (always open).
        let (available, next_open) = match departments.as_slice() {
            [only] => (only.available, only.next_open.clone()),
            _ => (self.live.available(institution, None).await.map_err(domain_err)?, None),
        };
        let files = &self.provisioning.config.files;
        Ok(EmbedConfig {
            institution: InstitutionInfo { name: inst.name },
            forms: settings.forms,
            available,
            departments,
            next_open,
            team: self.proposed(institution).await?,
            features: Features { files: true, voice: true },
            limits: Limits {
                max_file_bytes: files.max_document_bytes,
                max_files: files.max_documents_per_upload,
                max_text_chars: MAX_TEXT_CHARS,
            },
        })
    }

    /// The configuration as open pages' availability streams read it: after a change
    /// ([`EmbedCore::forget_shared_config`], called before the pages are told), the first
    /// of them computes it and the others wait for that answer, so a thousand open pages
    /// cost one computation, not a thousand. A failed computation is not kept.
    pub(super) async fn shared_site_config(&self, institution: &str) -> Result<EmbedConfig, CoreError> {
        self.shared.get(institution, || self.site_config(institution)).await
    }

    /// Who can take a chat changed: the next read of the shared configuration computes it
    /// afresh.
    pub(super) fn forget_shared_config(&self, institution: &str) {
        self.shared.forget(institution);
    }

    /// The secret the institution's site signs its clients' tokens with, if it has one.
    pub(super) async fn site_secret(&self, institution: &str) -> Result<Option<Vec<u8>>, CoreError> {
        if institutions::get(&self.db, institution).await.map_err(db_err)?.is_none() {
            return Err(CoreError::NotFound("Diese Beratungsstelle gibt es nicht.".into()));
        }
        let s = embed::settings(&self.db, institution).await.map_err(db_err)?;
        Ok(s.secret.map(String::into_bytes))
    }

    /// Whether any institution lets `origin` embed the chat.
    pub(super) async fn origin_allowed_anywhere(&self, origin: &str) -> bool {
        embed::origin_allowed(&self.db, origin).await.unwrap_or(false)
    }

    /// Whether the institution lets `origin` embed the chat.
    pub(super) async fn origin_allowed_at(&self, institution: &str, origin: &str) -> bool {
        embed::settings(&self.db, institution)
            .await
            .is_ok_and(|s| s.allowed_origins.iter().any(|o| o == origin))
    }

    /// Opens a session: the client's puppet (a new guest, or the one linked to the site's
    /// ID), its open conversation or a new one, and a new token.
    pub(super) async fn open(
        &self,
        institution: &str,
        area: Area,
        form: Form,
        identity: Identity,
        department: Option<&str>,
        counsellor: Option<&str>,
    ) -> Result<(String, Session), CoreError> {
        // The same for every visitor arriving meanwhile (a rush must not compute it each).
        let config = self.shared_site_config(institution).await?;
        if !config.forms.allows(area, form) {
            return Err(CoreError::Forbidden("Dieser Chat ist auf dieser Seite ausgeschaltet.".into()));
        }
        // A live chat waits in the chosen department's queue; with one department, in its
        // queue; otherwise in the general queue, which every counsellor serves.
        let department = match department {
            Some(d) if config.departments.iter().any(|x| x.id == d) => Some(d.to_owned()),
            Some(_) => return Err(CoreError::Invalid("Diese Abteilung gibt es nicht.".into())),
            None if config.departments.len() == 1 => Some(config.departments[0].id.clone()),
            None => None,
        };
        // A chosen counsellor is one of the institution's (whether they are free is the
        // desk's to decide when the chat is queued); only a live chat's visitor chooses so.
        let chosen = match counsellor {
            None => None,
            Some(_) if !matches!(identity, Identity::Anonymous) => {
                return Err(CoreError::Invalid(
                    "Im angemeldeten Bereich wählst du deine beratende Person unter „Unser Team“.".into(),
                ))
            }
            Some(id) => match self.team_member(institution, id).await {
                Ok(e) => Some(e.counsellor.user_id),
                Err(CoreError::NotFound(m)) => return Err(CoreError::Invalid(m)),
                Err(e) => return Err(e),
            },
        };
        let (client, kind) = match identity {
            Identity::Anonymous => {
                let n = embed::next_guest_number(&self.db, institution).await.map_err(db_err)?;
                let localpart = self.ids.guest_localpart(&uuid::Uuid::new_v4().simple().to_string());
                let user_id = self.ids.user_id(&localpart);
                self.hs.register_appservice_user(&localpart).await.map_err(unavailable)?;
                let name = format!("Gast {n}");
                self.hs.set_displayname(&user_id, &name).await.map_err(unavailable)?;
                people::insert_client(&self.db, &user_id, institution, &name, "guest")
                    .await
                    .map_err(db_err)?;
                audit::record(&self.db, "embed", "client.create_guest", &user_id, Some(institution))
                    .await
                    .map_err(db_err)?;
                (user_id, RoomKind::Live)
            }
            Identity::Registered { external_id, display_name } => {
                let known = embed::identity(&self.db, institution, &external_id).await.map_err(db_err)?;
                let client = match known {
                    Some(c) => c,
                    None => {
                        let c = self
                            .provisioning
                            .create_client("embed", institution, &display_name)
                            .await
                            .map_err(domain_err)?;
                        if !embed::insert_identity(&self.db, institution, &external_id, &c.user_id)
                            .await
                            .map_err(db_err)?
                        {
                            // Two first logins at once: keep the one linked first.
                            embed::identity(&self.db, institution, &external_id)
                                .await
                                .map_err(db_err)?
                                .ok_or_else(|| unavailable("identity vanished"))?
                        } else {
                            c.user_id
                        }
                    }
                };
                (client, RoomKind::ClientChat)
            }
        };
        let row = self.client_row(&client).await?;
        if row.blocked {
            return Err(CoreError::Blocked(BLOCKED.into()));
        }
        let room = match embed::conversation(&self.db, &client).await.map_err(db_err)? {
            Some((room, false)) => room,
            _ => {
                let room = self.create_room(institution, &client, &row.display_name, kind).await?;
                embed::set_conversation(&self.db, &client, &room, kind.as_str()).await.map_err(db_err)?;
                if kind == RoomKind::Live {
                    self.live
                        .open_chat(&room, institution, department.as_deref(), &client, chosen.as_deref())
                        .await
                        .map_err(domain_err)?;
                }
                room
            }
        };
        let token = crate::matrix::registration::random_token();
        let expires_at = now_ms() + SESSION_LIFETIME_MS;
        embed::insert_session(&self.db, &token_hash(&token), &client, institution, &room, expires_at)
            .await
            .map_err(db_err)?;
        let session = self.session_of(&token).await?;
        Ok((token, session))
    }

    /// The session of a token, unless it ended, expired or its client is blocked.
    pub(super) async fn session_of(&self, token: &str) -> Result<Session, CoreError> {
        let hash = token_hash(token);
        let row = embed::session(&self.db, &hash).await.map_err(db_err)?.ok_or(CoreError::Unauthorized)?;
        if row.ended_at.is_some() || row.expires_at <= now_ms() {
            return Err(CoreError::Unauthorized);
        }
        let client = self.client_row(&row.client).await?;
        if client.blocked {
            return Err(CoreError::Blocked(BLOCKED.into()));
        }
        let kind = if client.kind == "guest" { ConversationKind::Live } else { ConversationKind::ClientChat };
        Ok(Session {
            id: hash[..16].to_owned(),
            institution: row.institution,
            conversation: row.room_id,
            kind,
            display_name: client.display_name,
            expires_at: row.expires_at,
        })
    }

    /// The client ends the chat: the bot says so, the puppet leaves, and every session of
    /// the conversation ends.
    pub(super) async fn end_conversation(&self, s: &Session) -> Result<(), CoreError> {
        let (client, ended) = self.conversation(s).await?;
        if !ended {
            let notice = "Die ratsuchende Person hat den Chat beendet.";
            let txn = TxnId::derived(&format!("{}/{client}", s.conversation), "embed-end");
            let _ = self.hs.send_notice(&s.conversation, self.bot(), &txn, notice).await;
            embed::end_conversation(&self.db, &s.conversation).await.map_err(db_err)?;
            // Out of the queue, or over for the counsellor who has it (not a live chat: nothing).
            let _ = self.live.visitor_left(&s.conversation).await.map_err(domain_err)?;
            match self.hs.leave_room(&s.conversation, &client).await {
                Ok(()) => {}
                Err(e) if !e.is_transient() => {}
                Err(e) => return Err(unavailable(e)),
            }
            audit::record(&self.db, &client, "embed.chat_ended", &s.conversation, None)
                .await
                .map_err(db_err)?;
        }
        embed::end_sessions(&self.db, &client, &s.conversation).await.map_err(db_err)?;
        Ok(())
    }

    /// "Delete my data": the chat ends, and the deletion routine deletes the client at its
    /// next run.
    pub(super) async fn delete_client_data(&self, s: &Session) -> Result<(), CoreError> {
        let (client, _) = self.conversation(s).await?;
        self.end_conversation(s).await?;
        self.provisioning.deleter().mark_now(&client).await.map_err(domain_err)?;
        Ok(())
    }
}
