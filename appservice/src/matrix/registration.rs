//! The application-service registration shared with the homeserver
//! (spec: `application-service/definitions/registration.yaml`).

use std::path::Path;

use rand::{distributions::Alphanumeric, Rng};
use serde::{Deserialize, Serialize};

use crate::app::config::Config;

/// A registration file, as Synapse reads it.
#[derive(Clone, Deserialize, Serialize)]
pub struct Registration {
    /// Unique ID of this application service on the homeserver.
    pub id: String,
    /// Where the homeserver reaches us; `null` disables pushing.
    pub url: Option<String>,
    /// Token we use towards the homeserver.
    pub as_token: String,
    /// Token the homeserver uses towards us.
    pub hs_token: String,
    /// Localpart of the bot user.
    pub sender_localpart: String,
    /// The namespaces we are interested in.
    pub namespaces: Namespaces,
    /// Whether our requests are rate-limited (they are not: we act for many people).
    #[serde(default)]
    pub rate_limited: bool,
    /// Ask for typing notifications, receipts and presence (stable key).
    #[serde(default)]
    pub receive_ephemeral: bool,
    /// The same, under the unstable MSC2409 key older homeservers read.
    #[serde(default, rename = "de.sorunome.msc2409.push_ephemeral")]
    pub push_ephemeral_unstable: bool,
    /// Third-party protocols (none).
    #[serde(default)]
    pub protocols: Vec<String>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("sender_localpart", &self.sender_localpart)
            .finish_non_exhaustive()
    }
}

/// The three namespace lists.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Namespaces {
    /// User-ID namespaces.
    #[serde(default)]
    pub users: Vec<Namespace>,
    /// Room-alias namespaces.
    #[serde(default)]
    pub aliases: Vec<Namespace>,
    /// Room-ID namespaces.
    #[serde(default)]
    pub rooms: Vec<Namespace>,
}

/// One namespace.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Namespace {
    /// Whether only we may use IDs of this namespace.
    pub exclusive: bool,
    /// The regular expression.
    pub regex: String,
}

/// Why a registration could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The file could not be read or written.
    #[error("registration file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not a valid registration.
    #[error("registration file {path} is invalid: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What went wrong.
        source: serde_norway::Error,
    },
}

/// A random token of 64 alphanumeric characters (~380 bits).
pub fn random_token() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(64).map(char::from).collect()
}

impl Registration {
    /// A new registration with fresh random tokens and the namespaces of the design:
    /// exclusive for guest puppets and the bot; non-exclusive for counsellors and for client
    /// puppets.
    ///
    /// Client puppets are listed non-exclusively because Synapse leaves users of exclusive
    /// namespaces out of its user directory, and counsellors must find their institution's
    /// clients there by name. Nobody else can register or log in as them all the same:
    /// registration is closed, and the Synapse module refuses registrations and logins of
    /// puppet IDs (only the application service registers them).
    pub fn generate(config: &Config, id: &str, url: &str) -> Self {
        let server = regex_escape(&config.homeserver.server_name);
        let ns = &config.namespaces;
        let user =
            |exclusive: bool, local: String| Namespace { exclusive, regex: format!("@{local}:{server}") };
        Registration {
            id: id.to_owned(),
            url: Some(url.to_owned()),
            as_token: random_token(),
            hs_token: random_token(),
            sender_localpart: config.bot.localpart.clone(),
            namespaces: Namespaces {
                users: vec![
                    user(false, format!("{}.+", regex_escape(&ns.client_prefix))),
                    user(true, format!("{}.+", regex_escape(&ns.guest_prefix))),
                    user(true, regex_escape(&config.bot.localpart)),
                    user(false, ns.counsellor_regex.clone()),
                ],
                aliases: vec![],
                rooms: vec![],
            },
            rate_limited: false,
            receive_ephemeral: true,
            push_ephemeral_unstable: true,
            protocols: vec![],
        }
    }

    /// Reads a registration file.
    pub fn load(path: &Path) -> Result<Self, RegistrationError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| RegistrationError::Io { path: p.clone(), source })?;
        serde_norway::from_str(&text).map_err(|source| RegistrationError::Parse { path: p, source })
    }

    /// The registration as YAML, with a header comment.
    pub fn to_yaml(&self, header: &str) -> String {
        let body = serde_norway::to_string(self).unwrap_or_default();
        let mut out = String::new();
        for line in header.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&body);
        out
    }
}

/// Escapes the characters that have a meaning in a regular expression.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::matrix::registration::*;

    #[test]
    fn generated_registration_has_fresh_tokens_and_design_namespaces() {
        let mut cfg = Config::default();
        cfg.homeserver.server_name = "beratung.example.org".into();
        let a = Registration::generate(&cfg, "assisto", "http://localhost:8009");
        let b = Registration::generate(&cfg, "assisto", "http://localhost:8009");
        assert_ne!(a.as_token, b.as_token);
        assert_ne!(a.hs_token, a.as_token);
        assert_eq!(a.as_token.len(), 64);
        let users = &a.namespaces.users;
        assert!(users.iter().any(|n| !n.exclusive && n.regex == "@rs_.+:beratung\\.example\\.org"));
        assert!(users.iter().any(|n| n.exclusive && n.regex == "@guest_.+:beratung\\.example\\.org"));
        assert!(users.iter().any(|n| n.exclusive && n.regex == "@assisto:beratung\\.example\\.org"));
        assert!(users.iter().any(|n| !n.exclusive));
        assert!(a.receive_ephemeral && a.push_ephemeral_unstable);
        let yaml = a.to_yaml("generated");
        assert!(yaml.contains("de.sorunome.msc2409.push_ephemeral: true"), "{yaml}");
        let back: Registration = serde_norway::from_str(&yaml).expect("round trip");
        assert_eq!(back.hs_token, a.hs_token);
        assert!(!format!("{a:?}").contains(&a.hs_token));
    }
}
