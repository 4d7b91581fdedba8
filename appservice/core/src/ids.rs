//! Who a user is, from the user ID alone: the service's bot, one of its puppets (a
//! registered client or an anonymous live-chat guest), or somebody else (a counsellor or a
//! stranger — the database tells which).
//!
//! The one place that knows the puppet namespaces; everything else asks [`Ids`].

/// The service's user-ID namespaces on one homeserver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    server_name: String,
    bot: String,
    client_prefix: String,
    guest_prefix: String,
}

/// What a user ID says about its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserClass {
    /// The service's bot.
    Bot,
    /// A registered client's puppet.
    Client,
    /// An anonymous live-chat guest's puppet.
    Guest,
    /// Anybody else on this homeserver (a counsellor, or nobody we know).
    Local,
    /// A user of another homeserver.
    Remote,
}

impl Ids {
    /// The namespaces: the homeserver's name, the bot's localpart and the puppets' localpart
    /// prefixes (`rs_`, `guest_`).
    pub fn new(server_name: &str, bot_localpart: &str, client_prefix: &str, guest_prefix: &str) -> Self {
        Self {
            server_name: server_name.to_owned(),
            bot: format!("@{bot_localpart}:{server_name}"),
            client_prefix: client_prefix.to_owned(),
            guest_prefix: guest_prefix.to_owned(),
        }
    }

    /// The homeserver's name.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The bot's user ID.
    pub fn bot(&self) -> &str {
        &self.bot
    }

    /// The full user ID of a localpart on this homeserver.
    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.server_name)
    }

    /// A new client puppet's localpart for an opaque, random suffix.
    pub fn client_localpart(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.client_prefix)
    }

    /// A new guest puppet's localpart for an opaque, random suffix.
    pub fn guest_localpart(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.guest_prefix)
    }

    /// Whether a localpart lies in a puppet namespace (nobody else may have it).
    pub fn is_puppet_localpart(&self, localpart: &str) -> bool {
        localpart.starts_with(&self.client_prefix) || localpart.starts_with(&self.guest_prefix)
    }

    /// What `user_id` says about its owner.
    pub fn classify(&self, user_id: &str) -> UserClass {
        if user_id == self.bot {
            return UserClass::Bot;
        }
        let Some((local, server)) = user_id.strip_prefix('@').and_then(|u| u.split_once(':')) else {
            return UserClass::Remote;
        };
        if server != self.server_name {
            UserClass::Remote
        } else if local.starts_with(&self.client_prefix) {
            UserClass::Client
        } else if local.starts_with(&self.guest_prefix) {
            UserClass::Guest
        } else {
            UserClass::Local
        }
    }

    /// Whether `user_id` is one of the service's puppets (a client or a guest).
    pub fn is_puppet(&self, user_id: &str) -> bool {
        matches!(self.classify(user_id), UserClass::Client | UserClass::Guest)
    }

    /// Whether `user_id` could be a counsellor: a local user who is neither the bot nor a
    /// puppet (the database says whether they are one).
    pub fn may_be_counsellor(&self, user_id: &str) -> bool {
        self.classify(user_id) == UserClass::Local
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ids() -> Ids {
        Ids::new("beratung.example", "assisto", "rs_", "guest_")
    }

    #[test]
    fn classifies() {
        let ids = ids();
        assert_eq!(ids.bot(), "@assisto:beratung.example");
        assert_eq!(ids.classify("@assisto:beratung.example"), UserClass::Bot);
        assert_eq!(ids.classify("@rs_ab12:beratung.example"), UserClass::Client);
        assert_eq!(ids.classify("@guest_7:beratung.example"), UserClass::Guest);
        assert_eq!(ids.classify("@anna:beratung.example"), UserClass::Local);
        assert_eq!(ids.classify("@rs_ab12:evil.example"), UserClass::Remote);
        assert_eq!(ids.classify("rs_ab12"), UserClass::Remote);
        assert!(ids.is_puppet("@guest_7:beratung.example"));
        assert!(!ids.is_puppet("@anna:beratung.example"));
        assert!(ids.may_be_counsellor("@anna:beratung.example"));
        assert!(!ids.may_be_counsellor("@assisto:beratung.example"));
        assert_eq!(ids.user_id(&ids.client_localpart("x1")), "@rs_x1:beratung.example");
        assert!(ids.is_puppet_localpart(&ids.guest_localpart("9")));
    }

    proptest! {
        /// Whatever the localpart, a puppet of another server is never ours, and every
        /// ID is exactly one class.
        #[test]
        fn puppets_are_ours_only_on_our_server(local in "[a-z0-9_.=-]{0,20}", server in "[a-z.]{1,20}") {
            let ids = ids();
            let id = format!("@{local}:{server}");
            let class = ids.classify(&id);
            if server != "beratung.example" {
                prop_assert_eq!(class, UserClass::Remote);
            }
            prop_assert_eq!(ids.is_puppet(&id), matches!(class, UserClass::Client | UserClass::Guest));
            prop_assert!(!(ids.is_puppet(&id) && ids.may_be_counsellor(&id)));
        }
    }
}
