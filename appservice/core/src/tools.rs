//! The counsellor tools' pure parts: text snippets (their scopes, who may read and change
//! them, their limits and placeholders), phone numbers (normalised, never truncated),
//! pushed links (http(s) only, shown with their host) and the video service (its base URL,
//! unguessable conference names).
//!
//! German error texts: the widget and the bot show them as they are.

use crate::DomainError;

/// Where a text snippet is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SnippetScope {
    /// "Meine Textbausteine": only its author sees it.
    Own,
    /// The counsellors of one department.
    Department,
    /// "Alle Textbausteine": every counsellor of the institution.
    Institution,
}

impl SnippetScope {
    /// All scopes.
    pub const ALL: [SnippetScope; 3] =
        [SnippetScope::Own, SnippetScope::Department, SnippetScope::Institution];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SnippetScope::Own => "own",
            SnippetScope::Department => "department",
            SnippetScope::Institution => "institution",
        }
    }

    /// Parses the stored and wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The German label.
    pub fn label_de(self) -> &'static str {
        match self {
            SnippetScope::Own => "Meine Textbausteine",
            SnippetScope::Department => "Abteilung",
            SnippetScope::Institution => "Alle Textbausteine",
        }
    }
}

/// What decides who may see and change a snippet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnippetFacts<'a> {
    /// Its scope.
    pub scope: SnippetScope,
    /// Who wrote it (`None`: created by the institution through the admin API).
    pub owner: Option<&'a str>,
    /// Its department (department scope only).
    pub department: Option<&'a str>,
}

/// Who is asking, within the snippet's institution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reader<'a> {
    /// The counsellor's user ID.
    pub user_id: &'a str,
    /// The departments they belong to.
    pub departments: &'a [String],
    /// Whether they administer the institution (they may change every shared snippet).
    pub institution_admin: bool,
}

/// Whether `r` (a counsellor of the snippet's institution) may see and use the snippet.
pub fn may_read_snippet(r: &Reader<'_>, s: &SnippetFacts<'_>) -> bool {
    match s.scope {
        SnippetScope::Own => s.owner == Some(r.user_id),
        SnippetScope::Department => {
            s.owner == Some(r.user_id)
                || r.institution_admin
                || s.department.is_some_and(|d| r.departments.iter().any(|m| m == d))
        }
        SnippetScope::Institution => true,
    }
}

/// Whether `r` may change or delete the snippet: their own ones; shared ones also the
/// institution's admins. Nobody changes another counsellor's own snippets.
pub fn may_edit_snippet(r: &Reader<'_>, s: &SnippetFacts<'_>) -> bool {
    s.owner == Some(r.user_id) || (s.scope != SnippetScope::Own && r.institution_admin)
}

/// A snippet's name: 1 to 80 characters.
pub const SNIPPET_NAME_MAX: usize = 80;
/// A snippet's text: 1 to 4,000 characters.
pub const SNIPPET_TEXT_MAX: usize = 4000;
/// At most this many snippets are combined into one message.
pub const SNIPPETS_PER_MESSAGE: usize = 10;
/// A message made of snippets has at most this many characters (Matrix events end at 64 KiB).
pub const MESSAGE_MAX: usize = 16_000;

/// The placeholders a snippet may contain, with what they stand for (German).
pub const PLACEHOLDERS: [(&str, &str); 3] = [
    ("klient.name", "der Name der ratsuchenden Person, wie Beratende ihn sehen"),
    ("berater.name", "Ihr Name"),
    ("einrichtung", "der Name der Einrichtung"),
];

/// Checks a snippet's name (trimmed; no control characters).
pub fn check_snippet_name(name: &str) -> Result<String, DomainError> {
    let t = name.trim();
    let n = t.chars().count();
    if n == 0 || n > SNIPPET_NAME_MAX || t.chars().any(char::is_control) {
        return Err(DomainError::Invalid(format!(
            "Der Name eines Textbausteins hat 1 bis {SNIPPET_NAME_MAX} Zeichen (ohne Steuerzeichen)."
        )));
    }
    Ok(t.to_owned())
}

/// Checks a snippet's text: 1 to 4,000 characters (line breaks and tabs allowed), only
/// known placeholders.
pub fn check_snippet_text(text: &str) -> Result<String, DomainError> {
    let t = text.trim_end();
    let t = t.trim_start_matches(['\n', '\r']);
    let n = t.chars().count();
    if t.trim().is_empty() || n > SNIPPET_TEXT_MAX {
        return Err(DomainError::Invalid(format!(
            "Der Text eines Textbausteins hat 1 bis {SNIPPET_TEXT_MAX} Zeichen (dieser hat {n})."
        )));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(DomainError::Invalid("Der Text enthält Steuerzeichen.".into()));
    }
    placeholders(t)?;
    Ok(t.to_owned())
}

/// The placeholders `{{ … }}` in `text`, in order; an unknown one is an error naming it.
/// A `{{` without a closing `}}` is text.
pub fn placeholders(text: &str) -> Result<Vec<&'static str>, DomainError> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        match PLACEHOLDERS.iter().find(|(p, _)| *p == name) {
            Some((p, _)) => found.push(*p),
            None => {
                let known: Vec<String> = PLACEHOLDERS.iter().map(|(p, _)| format!("{{{{{p}}}}}")).collect();
                return Err(DomainError::Invalid(format!(
                    "Unbekannter Platzhalter „{{{{{}}}}}“. Möglich sind: {}.",
                    name.chars().take(40).collect::<String>(),
                    known.join(", ")
                )));
            }
        }
        rest = &after[end + 2..];
    }
    Ok(found)
}

/// What the placeholders stand for in one chat; `None` where there is nothing to put in
/// (e.g. `klient.name` in a group chat with several clients).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values {
    /// `{{klient.name}}`.
    pub client_name: Option<String>,
    /// `{{berater.name}}`.
    pub counsellor_name: Option<String>,
    /// `{{einrichtung}}`.
    pub institution: Option<String>,
}

impl Values {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "klient.name" => self.client_name.as_deref(),
            "berater.name" => self.counsellor_name.as_deref(),
            "einrichtung" => self.institution.as_deref(),
            _ => None,
        }
    }
}

/// Fills in the placeholders. A placeholder with nothing to put in is an error (the
/// message is not sent with a gap).
pub fn render(text: &str, values: &Values) -> Result<String, DomainError> {
    placeholders(text)?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        let value = values.get(name).ok_or_else(|| {
            DomainError::Invalid(match name {
                "klient.name" => {
                    "„{{klient.name}}“ geht nur in einem Chat mit genau einer ratsuchenden Person.".into()
                }
                other => format!("Für „{{{{{other}}}}}“ ist hier kein Wert bekannt."),
            })
        })?;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Several filled-in snippets as one message: separated by an empty line, within the
/// message limits.
pub fn combine(texts: &[String]) -> Result<String, DomainError> {
    if texts.is_empty() {
        return Err(DomainError::Invalid("Bitte wählen Sie mindestens einen Textbaustein.".into()));
    }
    if texts.len() > SNIPPETS_PER_MESSAGE {
        return Err(DomainError::Invalid(format!(
            "Höchstens {SNIPPETS_PER_MESSAGE} Textbausteine in einer Nachricht."
        )));
    }
    let message = texts.join("\n\n");
    if message.chars().count() > MESSAGE_MAX {
        return Err(DomainError::Invalid(format!(
            "Die Nachricht wäre länger als {MESSAGE_MAX} Zeichen; bitte weniger Textbausteine wählen."
        )));
    }
    Ok(message)
}

/// A phone number as it is dialled: `+` and the country code with the number, or a
/// national number starting with 0, or a European service number (116 …); digits only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// The number as dialled (`+49221123456`, `08001110111`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `tel:` link.
    pub fn href(&self) -> String {
        format!("tel:{}", self.0)
    }
}

/// Normalises a phone number: spaces (also non-breaking), dashes, slashes, dots and
/// brackets go, `0049` becomes `+49`, a `(0)` after the country code goes. Nothing is cut
/// off: what is not a number is an error.
pub fn normalise_phone(input: &str) -> Result<Phone, DomainError> {
    let t = input.trim();
    let invalid = || {
        DomainError::Invalid(
            "Die Telefonnummer darf nur Ziffern, Leerzeichen, „+“ am Anfang, „-“, „/“, „.“ und Klammern enthalten."
                .into(),
        )
    };
    if t.is_empty() {
        return Err(DomainError::Invalid("Bitte geben Sie eine Telefonnummer ein.".into()));
    }
    if t.chars().count() > 40 {
        return Err(DomainError::Invalid("Die Telefonnummer ist zu lang.".into()));
    }
    if !t.chars().all(|c| c.is_ascii_digit() || c.is_whitespace() || "+-/.()".contains(c)) {
        return Err(invalid());
    }
    if t.chars().skip(1).any(|c| c == '+') {
        return Err(invalid());
    }
    let compact: String = t.chars().filter(|c| !c.is_whitespace() && !"-/.".contains(*c)).collect();
    // "+49 (0)221 …": the trunk prefix in brackets is not dialled after a country code.
    let international = compact.starts_with('+') || compact.starts_with("00");
    let compact = if international { compact.replacen("(0)", "", 1) } else { compact };
    let digits: String = compact.chars().filter(char::is_ascii_digit).collect();
    let number = if let Some(rest) = compact.strip_prefix('+') {
        rest.chars().filter(char::is_ascii_digit).collect::<String>()
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else {
        String::new()
    };
    if international {
        // E.164: at most 15 digits with the country code, which never starts with 0.
        if !(7..=15).contains(&number.len()) || number.starts_with('0') {
            return Err(DomainError::Invalid(
                "Eine internationale Nummer hat nach „+“ die Landesvorwahl und 7 bis 15 Ziffern (z. B. +49 221 123456)."
                    .into(),
            ));
        }
        return Ok(Phone(format!("+{number}")));
    }
    let service = digits.starts_with("116") && digits.len() == 6;
    let national = digits.starts_with('0') && (6..=15).contains(&digits.len());
    if !(national || service) {
        return Err(DomainError::Invalid(
            "Bitte geben Sie die Nummer mit Vorwahl an (z. B. 0221 123456 oder +49 221 123456).".into(),
        ));
    }
    Ok(Phone(digits))
}

/// A web address a counsellor pushes to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The address as it is opened.
    pub url: String,
    /// Its host, shown with it (so nobody is misled by a link text).
    pub host: String,
}

/// The longest address that is pushed.
pub const LINK_MAX: usize = 2000;

/// Checks a pushed link: http or https, with a host, without user name or password, no
/// spaces, at most 2,000 characters.
pub fn check_link(input: &str) -> Result<Link, DomainError> {
    let t = input.trim();
    if t.is_empty() {
        return Err(DomainError::Invalid("Bitte geben Sie eine Webadresse ein.".into()));
    }
    if t.len() > LINK_MAX {
        return Err(DomainError::Invalid(format!("Eine Webadresse hat höchstens {LINK_MAX} Zeichen.")));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DomainError::Invalid("Eine Webadresse enthält keine Leerzeichen.".into()));
    }
    let url = url::Url::parse(t).map_err(|_| {
        DomainError::Invalid(
            "Das ist keine gültige Webadresse; sie beginnt mit https:// (z. B. https://www.beispiel.de/seite)."
                .into(),
        )
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(DomainError::Invalid(
            "Nur Webadressen mit https:// oder http:// können gesendet werden.".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DomainError::Invalid(
            "Webadressen mit Benutzername oder Passwort werden nicht gesendet.".into(),
        ));
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| {
        DomainError::Invalid("Die Webadresse hat keinen Server (z. B. https://www.beispiel.de).".into())
    })?;
    Ok(Link { host: host.to_ascii_lowercase(), url: url.to_string() })
}

/// The video service an institution uses for video chats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoService {
    /// A Jitsi Meet server (optionally protected with JWTs of an app ID and secret).
    Jitsi,
    /// An Element Call deployment.
    ElementCall,
}

impl VideoService {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoService::Jitsi => "jitsi",
            VideoService::ElementCall => "element_call",
        }
    }

    /// Parses the stored and wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [VideoService::Jitsi, VideoService::ElementCall].into_iter().find(|k| k.as_str() == s)
    }
}

/// Checks a video service's base URL: https, a host, no user name, query or fragment; the
/// answer has no trailing slash.
pub fn check_video_base(input: &str) -> Result<String, DomainError> {
    let bad = || {
        DomainError::Invalid(
            "base_url must be an https URL with a host and no query or fragment, e.g. https://meet.example.org".into(),
        )
    };
    let url = url::Url::parse(input.trim()).map_err(|_| bad())?;
    if url.scheme() != "https"
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || input.len() > 500
    {
        return Err(bad());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A conference's name from 16 random bytes: `assisto-` and 32 hex digits (128 bits: not
/// guessable).
pub fn conference_name(random: [u8; 16]) -> String {
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("assisto-{hex}")
}

/// Where a conference is opened (without a JWT).
pub fn conference_url(service: VideoService, base: &str, name: &str) -> String {
    match service {
        VideoService::Jitsi => format!("{base}/{name}"),
        VideoService::ElementCall => format!("{base}/room/#/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reader<'a>(user: &'a str, departments: &'a [String], admin: bool) -> Reader<'a> {
        Reader { user_id: user, departments, institution_admin: admin }
    }

    #[test]
    fn scopes_decide_who_reads_and_who_edits() {
        let deps = vec!["d1".to_owned()];
        let none: Vec<String> = vec![];
        let own = SnippetFacts { scope: SnippetScope::Own, owner: Some("@a:x"), department: None };
        let dep =
            SnippetFacts { scope: SnippetScope::Department, owner: Some("@a:x"), department: Some("d1") };
        let all = SnippetFacts { scope: SnippetScope::Institution, owner: Some("@a:x"), department: None };
        let by_institution = SnippetFacts { scope: SnippetScope::Institution, owner: None, department: None };
        let a = reader("@a:x", &none, false);
        let b_in = reader("@b:x", &deps, false);
        let b_out = reader("@b:x", &none, false);
        let admin = reader("@c:x", &none, true);
        assert!(may_read_snippet(&a, &own) && may_edit_snippet(&a, &own));
        assert!(!may_read_snippet(&b_in, &own) && !may_edit_snippet(&b_in, &own));
        assert!(!may_read_snippet(&admin, &own) && !may_edit_snippet(&admin, &own), "own stays own");
        assert!(may_read_snippet(&b_in, &dep) && !may_read_snippet(&b_out, &dep));
        assert!(!may_edit_snippet(&b_in, &dep) && may_edit_snippet(&admin, &dep));
        assert!(may_read_snippet(&b_out, &all) && !may_edit_snippet(&b_out, &all));
        assert!(may_edit_snippet(&admin, &by_institution) && !may_edit_snippet(&a, &by_institution));
        for s in SnippetScope::ALL {
            assert_eq!(SnippetScope::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn names_and_texts_have_limits() {
        assert_eq!(check_snippet_name("  Begrüßung ").expect("ok"), "Begrüßung");
        assert!(check_snippet_name("").is_err() && check_snippet_name(&"x".repeat(81)).is_err());
        assert!(check_snippet_name("a\u{7}b").is_err());
        assert!(check_snippet_text("Zeile 1\nZeile 2\t!").is_ok());
        assert!(check_snippet_text("   \n").is_err());
        assert!(check_snippet_text(&"ä".repeat(4000)).is_ok());
        assert!(check_snippet_text(&"ä".repeat(4001)).is_err());
        let e = check_snippet_text("Hallo {{klient.vorname}}").expect_err("unknown");
        assert!(e.to_string().contains("{{klient.vorname}}"), "{e}");
    }

    #[test]
    fn placeholders_are_filled_in_or_refused() {
        let v = Values {
            client_name: Some("Maria".into()),
            counsellor_name: Some("Anna Beispiel".into()),
            institution: Some("Beratung Köln".into()),
        };
        let t = "Hallo {{klient.name}}, ich bin {{ berater.name }} von {{einrichtung}}. {{ offen";
        assert_eq!(
            render(t, &v).expect("ok"),
            "Hallo Maria, ich bin Anna Beispiel von Beratung Köln. {{ offen"
        );
        let group = Values { client_name: None, ..v.clone() };
        assert!(render("Hallo {{klient.name}}", &group).is_err());
        assert_eq!(render("Hallo {{berater.name}}", &group).expect("ok"), "Hallo Anna Beispiel");
        // A value that looks like a placeholder is not filled in again.
        let tricky = Values { client_name: Some("{{einrichtung}}".into()), ..v };
        assert_eq!(render("{{klient.name}}!", &tricky).expect("ok"), "{{einrichtung}}!");
    }

    #[test]
    fn snippets_combine_within_limits() {
        assert_eq!(combine(&["a".into(), "b".into()]).expect("ok"), "a\n\nb");
        assert!(combine(&[]).is_err());
        assert!(combine(&vec!["a".to_owned(); 11]).is_err());
        assert!(combine(&vec!["x".repeat(4000); 5]).is_err(), "over 16,000 characters");
    }

    #[test]
    fn phone_numbers_are_normalised_not_cut_off() {
        let n = |s: &str| normalise_phone(s).map(|p| p.as_str().to_owned());
        assert_eq!(n("+49 221 123 456").expect("ok"), "+49221123456");
        assert_eq!(n("0049 (0)221 / 123-456").expect("ok"), "+49221123456");
        assert_eq!(n("+49 (0) 221 123456").expect("ok"), "+49221123456");
        assert_eq!(n("0800 111 0 111").expect("ok"), "08001110111");
        assert_eq!(n("0221/12.34.56").expect("ok"), "0221123456");
        assert_eq!(n("116 111").expect("ok"), "116111");
        assert_eq!(n("0221\u{a0}123456").expect("ok"), "0221123456", "non-breaking space");
        assert_eq!(normalise_phone("+49 221 123456").expect("ok").href(), "tel:+49221123456");
        for bad in ["", "abc", "0221 123 456 ext 5", "221 123456", "+0 221 12345", "+49 22+1", "12", "+4912"]
        {
            assert!(n(bad).is_err(), "{bad:?}");
        }
        assert!(n(&"1".repeat(41)).is_err());
    }

    #[test]
    fn links_are_http_with_a_host() {
        let l = check_link(" https://www.Beispiel.de/hilfe?x=1 ").expect("ok");
        assert_eq!(
            (l.url.as_str(), l.host.as_str()),
            ("https://www.beispiel.de/hilfe?x=1", "www.beispiel.de")
        );
        assert_eq!(check_link("http://beispiel.de").expect("ok").host, "beispiel.de");
        for bad in [
            "",
            "javascript:alert(1)",
            "data:text/html,hi",
            "ftp://beispiel.de",
            "https://user:pw@beispiel.de",
            "https://bei spiel.de",
            "www.beispiel.de",
            "file:///etc/passwd",
        ] {
            assert!(check_link(bad).is_err(), "{bad:?}");
        }
        assert!(check_link(&format!("https://b.de/{}", "x".repeat(2000))).is_err());
    }

    #[test]
    fn video_services_have_https_bases_and_unguessable_conferences() {
        assert_eq!(check_video_base("https://meet.example.org/").expect("ok"), "https://meet.example.org");
        assert_eq!(check_video_base("https://example.org/jitsi").expect("ok"), "https://example.org/jitsi");
        for bad in [
            "http://meet.example.org",
            "https://meet.example.org/?x=1",
            "https://a:b@meet.example.org",
            "meet",
            "",
        ] {
            assert!(check_video_base(bad).is_err(), "{bad:?}");
        }
        let name = conference_name([0xab; 16]);
        assert_eq!(name.len(), "assisto-".len() + 32);
        assert_ne!(conference_name([1; 16]), conference_name([2; 16]));
        assert_eq!(conference_url(VideoService::Jitsi, "https://m.de", "c"), "https://m.de/c");
        assert_eq!(
            conference_url(VideoService::ElementCall, "https://call.de", "c"),
            "https://call.de/room/#/c"
        );
        for s in [VideoService::Jitsi, VideoService::ElementCall] {
            assert_eq!(VideoService::parse(s.as_str()), Some(s));
        }
    }

    proptest! {
        /// Whatever is typed, normalising never panics and never cuts a number off: the
        /// digits it gives are the typed digits, less at most a leading "00" and one "0"
        /// (the bracketed trunk prefix), with a leading "+" at most.
        #[test]
        fn normalising_keeps_the_typed_digits(s in "[0-9 +()/.\\-]{0,30}") {
            if let Ok(p) = normalise_phone(&s) {
                let out = p.as_str();
                let digits = out.trim_start_matches('+');
                prop_assert!(digits.chars().all(|c| c.is_ascii_digit()));
                let typed: String = s.chars().filter(char::is_ascii_digit).collect();
                let mut candidates = vec![typed.clone()];
                if let Some(rest) = typed.strip_prefix("00") {
                    candidates.push(rest.to_owned());
                }
                let kept = candidates.iter().any(|c| {
                    c == digits
                        || c.char_indices().any(|(i, ch)| {
                            ch == '0' && format!("{}{}", &c[..i], &c[i + 1..]) == digits
                        })
                });
                prop_assert!(kept, "{:?} gave {:?}", s, out);
            }
        }

        /// Rendering never panics and leaves text without placeholders as it is.
        #[test]
        fn rendering_plain_text_changes_nothing(s in "[^{}]{0,200}") {
            prop_assert_eq!(render(&s, &Values::default()).expect("no placeholders"), s);
        }
    }
}
