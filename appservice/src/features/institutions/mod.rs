//! Provisioning: institutions with their spaces, departments, counsellors and clients.
//! Used by the admin CLI and the admin HTTP API alike. Every operation validates its input,
//! is safe to repeat after a failure half-way, and writes the audit log.

pub mod store;

use serde::Serialize;
use serde_json::json;

use crate::app::config::Config;
use crate::error::Error;
use crate::features::institutions::store as institutions;
use crate::features::people::store as people;
use crate::matrix::homeserver::{HomeserverClient, HsError};
use crate::store::audit;
use crate::store::Db;
use assisto_core::check_name;
use assisto_core::check_slug;
use assisto_core::Category;

/// What provisioning needs.
#[derive(Clone)]
pub struct Provisioning {
    /// The database.
    pub db: Db,
    /// The homeserver.
    pub hs: HomeserverClient,
    /// `@bot:server`.
    pub bot: String,
    /// The configuration (prefixes, server name).
    pub config: std::sync::Arc<Config>,
    /// The file store (documents of the client file).
    pub files: crate::features::client_file::files::FileStore,
    /// Live frames to the web embed (a block ends the client's embed sessions at once).
    pub bus: std::sync::Arc<dyn crate::bus::LiveBus>,
}

/// An institution's chat configuration (Chatkonfigurationen), as the admin API shows it.
#[derive(Debug, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Tile and bubble in the anonymous area.
    pub anonymous: assisto_bridge::core::FormSwitches,
    /// Tile and bubble in the logged-in area (not both).
    pub registered: assisto_bridge::core::FormSwitches,
    /// Origins of the institution's site that may embed the chat (`https://host[:port]`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Whether a signing secret for the logged-in area exists (read only: ignored when sent,
    /// so what `GET` answers can be sent back changed).
    #[serde(default)]
    pub has_secret: bool,
}

/// An origin as browsers send it: `http(s)://host[:port]`, nothing else.
pub fn check_origin(o: &str) -> Result<(), Error> {
    let u = url::Url::parse(o).map_err(|_| Error::invalid(format!("{o:?} is not an origin")))?;
    let exact = u.origin().ascii_serialization() == o;
    if !matches!(u.scheme(), "http" | "https") || !exact {
        return Err(Error::invalid(format!(
            "{o:?} is not an origin (scheme://host[:port], no path or trailing slash)"
        )));
    }
    Ok(())
}

/// An institution with its rooms.
#[derive(Debug, Serialize)]
pub struct InstitutionView {
    /// The institution.
    #[serde(flatten)]
    pub institution: institutions::Institution,
    /// Its spaces and directory room, by category.
    pub rooms: std::collections::BTreeMap<&'static str, String>,
}

/// Where the live-chat widget is served.
const DESK_WIDGET_PATH: &str = "/_assisto/widget/live";
/// The live-chat widget's ID (its state key).
const DESK_WIDGET_ID: &str = "assisto-live";
/// The search widget's ID (its state key); it sits in the desk room beside the live-chat
/// widget, since every counsellor of the institution is in that room.
const SEARCH_WIDGET_ID: &str = crate::features::search::WIDGET_ID;
/// Where the statistics widget is served (for the institution's admins; others are told
/// it is not for them).
const STATISTICS_WIDGET_PATH: &str = "/_assisto/widget/statistik";
/// The statistics widget's ID.
const STATISTICS_WIDGET_ID: &str = "assisto-statistik";
/// Widgets in a room (Element's state event).
const WIDGETS: &str = "im.vector.modular.widgets";
/// Where Element shows a room's widgets.
const WIDGET_LAYOUT: &str = "io.element.widgets.layout";

/// The state event that marks a room as a space's child.
const SPACE_CHILD: &str = "m.space.child";
/// The state event in a child pointing at its space.
const SPACE_PARENT: &str = "m.space.parent";

impl Provisioning {
    /// The deletion routine on the same database, homeserver and file store.
    pub fn deleter(&self) -> crate::features::deletion::Deleter {
        crate::features::deletion::Deleter::new(self.db.clone(), self.hs.clone(), self.files.clone())
    }

    /// Creates an institution and its four spaces and directory room. Repeating it creates
    /// what is missing and changes nothing else.
    pub async fn create_institution(
        &self,
        actor: &str,
        id: &str,
        name: &str,
    ) -> Result<InstitutionView, Error> {
        check_slug("id", id)?;
        let name = check_name("name", name)?;
        let created = institutions::insert(&self.db, id, &name).await?;
        let existing =
            institutions::get(&self.db, id).await?.ok_or_else(|| Error::not_found("institution vanished"))?;
        if !created && existing.name != name {
            return Err(Error::conflict(format!("institution {id} exists with another name")));
        }
        let have = institutions::rooms(&self.db, id).await?;
        let cats = Category::SPACES.iter().copied().chain([Category::Directory]);
        for cat in cats {
            if have.iter().any(|(c, _)| *c == cat) {
                continue;
            }
            let room_id = self.create_institution_room(&existing.name, cat).await?;
            institutions::set_room(&self.db, id, cat, &room_id).await?;
        }
        self.ensure_desk(id).await?;
        if created {
            let period = self.config.deletion.default_period_secs;
            crate::features::deletion::store::set_periods(&self.db, id, period, period).await?;
            audit::record(&self.db, actor, "institution.create", id, None).await?;
        }
        self.institution(id).await
    }

    async fn create_institution_room(&self, institution_name: &str, cat: Category) -> Result<String, Error> {
        let mut body = json!({
            "name": format!("{} · {}", institution_name, cat.label_de()),
            "preset": "private_chat",
            "visibility": "private",
            "power_level_content_override": { "invite": 100, "events_default": 100, "state_default": 100 },
            "initial_state": [
                { "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": "joined" } },
                { "type": "m.room.guest_access", "state_key": "", "content": { "guest_access": "forbidden" } },
            ],
        });
        if cat == Category::Directory {
            body["topic"] = json!("Verzeichnis der Einrichtung: Hierüber finden Beratende Ratsuchende und Kolleg:innen ihrer Einrichtung. Hier wird nicht geschrieben.");
        } else if cat == Category::Desk {
            body["topic"] = json!("Live-Chat-Schreibtisch: wartende Live-Chats mit Vorschau, Ihre Live-Chats und Ihr Status (im Widget oben). Hier wird nicht geschrieben.");
        } else {
            body["creation_content"] = json!({ "type": "m.space" });
        }
        Ok(self.hs.create_room(&self.bot, &body).await?.room_id)
    }

    /// The institution's desk room "Live-Chat-Schreibtisch" exists, is a child of the Live
    /// space, carries the live-chat widget (shown at the top of the room) and holds every
    /// counsellor of the institution. Institutions created before the desk existed get it
    /// here (called at every start). Without `appservice.public_url` there is no widget.
    pub async fn ensure_desk(&self, id: &str) -> Result<(), Error> {
        let inst = self.require_institution(id).await?;
        let room = match institutions::room(&self.db, id, Category::Desk).await? {
            Some(r) => r,
            None => {
                let r = self.create_institution_room(&inst.name, Category::Desk).await?;
                institutions::set_room(&self.db, id, Category::Desk, &r).await?;
                for c in people::counsellors(&self.db, id).await? {
                    self.hs.invite(&r, &self.bot, &c.user_id).await?;
                    self.hs.join_room(&r, &c.user_id).await?;
                }
                self.place_in_space(id, Category::Live, &r).await?;
                r
            }
        };
        let Some(base) = self.config.appservice.public_url.as_deref() else { return Ok(()) };
        let base = base.trim_end_matches('/');
        let widget = |path: &str, id: &str, name: &str, title: &str| {
            json!({
                "type": "m.custom",
                "url": format!("{base}{path}?widgetId=$matrix_widget_id"),
                "name": name,
                "id": id,
                "creatorUserId": self.bot,
                "data": { "title": title },
            })
        };
        let desk = widget(DESK_WIDGET_PATH, DESK_WIDGET_ID, "Live-Chat", "Live-Chat-Schreibtisch");
        let search = crate::features::search::widget_content(base, &self.bot);
        let statistics =
            widget(STATISTICS_WIDGET_PATH, STATISTICS_WIDGET_ID, "Statistik", "Statistik der Einrichtung");
        // The desk on top; the search in the room's side panel (Element: "Erweiterungen").
        let layout = json!({ "widgets": {
            DESK_WIDGET_ID: { "container": "top", "index": 0, "width": 100, "height": 80 },
            SEARCH_WIDGET_ID: { "container": "right" },
            STATISTICS_WIDGET_ID: { "container": "right" },
        } });
        for (kind, key, content) in [
            (WIDGETS, DESK_WIDGET_ID, &desk),
            (WIDGETS, SEARCH_WIDGET_ID, &search),
            (WIDGETS, STATISTICS_WIDGET_ID, &statistics),
            (WIDGET_LAYOUT, "", &layout),
        ] {
            // Only what differs is sent again: a start sends nothing new.
            let now = self.hs.get_state(&room, &self.bot, kind, key).await?;
            if now.as_ref() != Some(content) {
                self.hs.set_state(&room, &self.bot, kind, key, content).await?;
            }
        }
        Ok(())
    }

    /// One institution with its rooms.
    pub async fn institution(&self, id: &str) -> Result<InstitutionView, Error> {
        let institution = institutions::get(&self.db, id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no institution {id}")))?;
        let rooms =
            institutions::rooms(&self.db, id).await?.into_iter().map(|(c, r)| (c.as_str(), r)).collect();
        Ok(InstitutionView { institution, rooms })
    }

    /// The institution's chat set-up changed (its configuration, departments, team): open
    /// pages show it at once, and the next session is opened under it (the embed's shared
    /// configuration is forgotten).
    async fn setup_changed(&self, institution: &str) {
        if let Err(e) = self.bus.publish(crate::bus::Change::Availability(institution.to_owned())).await {
            tracing::warn!(error = %e, "publishing a chat set-up change failed");
        }
    }

    /// The institution, or "not found".
    pub async fn require_institution(&self, id: &str) -> Result<institutions::Institution, Error> {
        institutions::get(&self.db, id).await?.ok_or_else(|| Error::not_found(format!("no institution {id}")))
    }

    /// Creates a department.
    pub async fn create_department(
        &self,
        actor: &str,
        institution: &str,
        name: &str,
    ) -> Result<institutions::Department, Error> {
        self.require_institution(institution).await?;
        let name = check_name("name", name)?;
        let id = format!("{institution}.{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        if !institutions::insert_department(&self.db, &id, institution, &name).await? {
            return Err(Error::conflict(format!("department {name:?} exists in {institution}")));
        }
        audit::record(&self.db, actor, "department.create", &id, None).await?;
        self.setup_changed(institution).await;
        Ok(institutions::Department { id, name })
    }

    /// Makes a local user a counsellor of an institution. With `password`, the account is
    /// created (or its password reset) through the Synapse admin API; without, it must
    /// exist. The counsellor joins the institution's spaces and directory room.
    pub async fn add_counsellor(
        &self,
        actor: &str,
        institution: &str,
        localpart: &str,
        display_name: &str,
        password: Option<&str>,
        departments: &[String],
    ) -> Result<people::Counsellor, Error> {
        self.require_institution(institution).await?;
        let display_name = check_name("display_name", display_name)?;
        check_localpart(localpart)?;
        let ns = &self.config.namespaces;
        if localpart.starts_with(&ns.client_prefix)
            || localpart.starts_with(&ns.guest_prefix)
            || localpart == self.config.bot.localpart
        {
            return Err(Error::invalid("localpart is reserved for clients, guests or the bot"));
        }
        // Outside the namespace the service may not act for the account (Synapse: "cannot
        // masquerade"), and numeric localparts are Synapse's guests. (The regex was checked
        // when the configuration was loaded.)
        let in_namespace = ns.is_counsellor(localpart).unwrap_or(false);
        if !in_namespace || localpart.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(format!(
                "localpart is outside the counsellor namespace ({}) or purely numeric",
                ns.counsellor_regex
            )));
        }
        if let Some(p) = password {
            if p.chars().count() < 10 {
                return Err(Error::invalid("password must have at least 10 characters"));
            }
        }
        for d in departments {
            match institutions::department(&self.db, d).await? {
                Some((inst, _)) if inst == institution => {}
                _ => {
                    return Err(Error::invalid(format!(
                        "department {d} is not a department of {institution}"
                    )))
                }
            }
        }
        let user_id = self.hs.user_id(localpart);
        if let Some(existing) = people::counsellor_by_id(&self.db, &user_id).await? {
            if existing.institution_id != institution {
                return Err(Error::conflict(format!("{user_id} is a counsellor of another institution")));
            }
        }
        match password {
            Some(p) => match self.hs.admin_upsert_user(&user_id, Some(p), &display_name).await {
                // The homeserver's own checks (e.g. Synapse reserves numeric localparts for
                // guests, its password policy): the caller's input, not a failure.
                Err(HsError::Matrix { status, error, .. }) if status.as_u16() == 400 => {
                    return Err(Error::invalid(format!("the homeserver refused the account: {error}")));
                }
                other => other?,
            },
            None => {
                if self.hs.own_displayname(&user_id).await?.is_none() {
                    return Err(Error::not_found(format!(
                        "{user_id} does not exist; give a password to create the account"
                    )));
                }
                self.hs.set_displayname(&user_id, &display_name).await?;
            }
        }
        let new = people::insert_counsellor(&self.db, &user_id, institution, &display_name).await?;
        for d in departments {
            people::add_to_department(&self.db, &user_id, d).await?;
        }
        for (_, room) in institutions::rooms(&self.db, institution).await? {
            self.hs.invite(&room, &self.bot, &user_id).await?;
            self.hs.join_room(&room, &user_id).await?;
        }
        if new {
            audit::record(&self.db, actor, "counsellor.add", &user_id, Some(institution)).await?;
        }
        self.setup_changed(institution).await;
        people::counsellor_by_id(&self.db, &user_id)
            .await?
            .ok_or_else(|| Error::not_found("counsellor vanished"))
    }

    /// Creates a client: a puppet in the exclusive namespace with the client's chosen name,
    /// findable by the institution's counsellors.
    pub async fn create_client(
        &self,
        actor: &str,
        institution: &str,
        display_name: &str,
    ) -> Result<people::Client, Error> {
        self.require_institution(institution).await?;
        let display_name = check_name("display_name", display_name)?;
        let localpart = format!("{}{}", self.config.namespaces.client_prefix, uuid::Uuid::new_v4().simple());
        let user_id = self.hs.user_id(&localpart);
        self.hs.register_appservice_user(&localpart).await?;
        self.hs.set_displayname(&user_id, &display_name).await?;
        people::insert_client(&self.db, &user_id, institution, &display_name, "registered").await?;
        if let Some(dir) = institutions::room(&self.db, institution, Category::Directory).await? {
            self.hs.invite(&dir, &self.bot, &user_id).await?;
            self.hs.join_room(&dir, &user_id).await?;
        }
        audit::record(&self.db, actor, "client.create", &user_id, Some(institution)).await?;
        people::client_by_id(&self.db, &user_id).await?.ok_or_else(|| Error::not_found("client vanished"))
    }

    /// Blocks or unblocks a client. The history stays; the rules refuse sending and joining.
    pub async fn set_blocked(
        &self,
        actor: &str,
        user_id: &str,
        blocked: bool,
    ) -> Result<people::Client, Error> {
        if !people::set_blocked(&self.db, user_id, blocked).await? {
            return Err(Error::not_found(format!("no client {user_id}")));
        }
        let action = if blocked { "client.block" } else { "client.unblock" };
        audit::record(&self.db, actor, action, user_id, None).await?;
        // The client's browsers learn it at once (a block closes their connections),
        // whichever entry point made the change.
        if let Err(e) = self.bus.publish(crate::bus::Change::Client(user_id.to_owned())).await {
            tracing::warn!(error = %e, "publishing a client change failed");
        }
        people::client_by_id(&self.db, user_id).await?.ok_or_else(|| Error::not_found("client vanished"))
    }

    /// Places `room_id` in the institution's space for `cat`, both ways (`m.space.child` in
    /// the space, `m.space.parent` in the room).
    pub async fn place_in_space(&self, institution: &str, cat: Category, room_id: &str) -> Result<(), Error> {
        let Some(space) = self.list_in_space(institution, cat, room_id).await? else { return Ok(()) };
        self.hs.set_state(room_id, &self.bot, SPACE_PARENT, &space, &self.parent_content()).await?;
        Ok(())
    }

    /// The `m.space.parent` event naming `space`, for a new room's `initial_state` (one
    /// event less than setting it afterwards; [`Provisioning::list_in_space`] adds the other
    /// way).
    pub fn parent_state(&self, space: &str) -> serde_json::Value {
        json!({ "type": SPACE_PARENT, "state_key": space, "content": self.parent_content() })
    }

    /// What a room's `m.space.parent` says of its space.
    fn parent_content(&self) -> serde_json::Value {
        json!({ "via": [self.config.homeserver.server_name], "canonical": true })
    }

    /// Lists `room_id` in the institution's space for `cat` (`m.space.child` in the space);
    /// the space, if the institution has one.
    pub async fn list_in_space(
        &self,
        institution: &str,
        cat: Category,
        room_id: &str,
    ) -> Result<Option<String>, Error> {
        let Some(space) = institutions::room(&self.db, institution, cat).await? else { return Ok(None) };
        let via = json!({ "via": [self.config.homeserver.server_name] });
        self.hs.set_state(&space, &self.bot, SPACE_CHILD, room_id, &via).await?;
        Ok(Some(space))
    }

    /// Takes `room_id` out of the institution's space for `cat` (an upgraded room's
    /// predecessor): an empty `m.space.child` removes the link.
    pub async fn remove_from_space(
        &self,
        institution: &str,
        cat: Category,
        room_id: &str,
    ) -> Result<(), Error> {
        let Some(space) = institutions::room(&self.db, institution, cat).await? else { return Ok(()) };
        self.hs.set_state(&space, &self.bot, SPACE_CHILD, room_id, &json!({})).await?;
        Ok(())
    }
}

/// Validates a Matrix localpart for a counsellor.
pub fn check_localpart(localpart: &str) -> Result<(), Error> {
    let ok = !localpart.is_empty()
        && localpart.len() <= 64
        && localpart.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._=-/+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("localpart must be 1 to 64 characters of a-z, 0-9 and ._=-/+"))
    }
}

/// An institution's retention settings.
#[derive(Debug, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Seconds between marking a client for deletion and the deletion.
    pub deletion_period_secs: i64,
    /// Seconds closed anonymous live chats are kept.
    pub live_retention_secs: i64,
}

impl Provisioning {
    /// Reads an institution's retention settings.
    pub async fn retention(&self, institution: &str) -> Result<Retention, Error> {
        let (d, l) = crate::features::deletion::store::periods(&self.db, institution)
            .await?
            .ok_or_else(|| Error::not_found(format!("no institution {institution}")))?;
        Ok(Retention { deletion_period_secs: d, live_retention_secs: l })
    }

    /// The chat configuration.
    pub async fn chat_config(&self, institution: &str) -> Result<ChatConfig, Error> {
        self.require_institution(institution).await?;
        let s = crate::features::embed::store::settings(&self.db, institution).await?;
        Ok(ChatConfig {
            anonymous: s.forms.anonymous,
            registered: s.forms.registered,
            allowed_origins: s.allowed_origins,
            has_secret: s.has_secret,
        })
    }

    /// Changes the chat configuration. Tile and bubble of the logged-in area cannot both be on.
    pub async fn set_chat_config(
        &self,
        actor: &str,
        institution: &str,
        c: &ChatConfig,
    ) -> Result<ChatConfig, Error> {
        self.require_institution(institution).await?;
        if c.registered.tile && c.registered.bubble {
            return Err(Error::invalid(
                "the chat tile and the chat bubble of the logged-in area cannot both be on",
            ));
        }
        if c.allowed_origins.len() > 50 {
            return Err(Error::invalid("at most 50 allowed_origins"));
        }
        for o in &c.allowed_origins {
            check_origin(o)?;
        }
        let forms = assisto_bridge::core::Forms { anonymous: c.anonymous, registered: c.registered };
        crate::features::embed::store::set_settings(&self.db, institution, &forms, &c.allowed_origins)
            .await?;
        audit::record(&self.db, actor, "institution.chat_config", institution, None).await?;
        self.setup_changed(institution).await;
        self.chat_config(institution).await
    }

    /// Creates a new signing secret for the logged-in area's tokens (the old one stops
    /// working) and returns it; it is shown only this once.
    pub async fn new_embed_secret(&self, actor: &str, institution: &str) -> Result<String, Error> {
        self.require_institution(institution).await?;
        let secret = crate::matrix::registration::random_token();
        crate::features::embed::store::set_secret(&self.db, institution, &secret).await?;
        audit::record(&self.db, actor, "institution.embed_secret", institution, None).await?;
        Ok(secret)
    }

    /// Changes them (1 second to 10 years each).
    pub async fn set_retention(
        &self,
        actor: &str,
        institution: &str,
        r: &Retention,
    ) -> Result<Retention, Error> {
        const MAX: i64 = 10 * 366 * 86_400;
        for (name, v) in
            [("deletion_period_secs", r.deletion_period_secs), ("live_retention_secs", r.live_retention_secs)]
        {
            if !(1..=MAX).contains(&v) {
                return Err(Error::invalid(format!("{name} must be between 1 and {MAX}")));
            }
        }
        if !crate::features::deletion::store::set_periods(
            &self.db,
            institution,
            r.deletion_period_secs,
            r.live_retention_secs,
        )
        .await?
        {
            return Err(Error::not_found(format!("no institution {institution}")));
        }
        let detail = format!(
            "deletion_period_secs={} live_retention_secs={}",
            r.deletion_period_secs, r.live_retention_secs
        );
        audit::record(&self.db, actor, "institution.retention", institution, Some(&detail)).await?;
        self.retention(institution).await
    }
}
