//! How search reads German: words, their folded and stemmed keys, the parts of compounds,
//! the query a counsellor types, and the highlighted snippet of a hit.
//!
//! Pure: the index (tantivy, in the service) runs every text and every query through the
//! same functions here, so that what is indexed and what is asked always agree.
//!
//! - A **word** is a run of letters and digits (Unicode); everything else separates.
//! - [`fold`]: lower case, `ae`/`oe`/`ue` as `ä`/`ö`/`ü` (not after `q`: "Quelle"), `ß` as
//!   `ss` — the Snowball "german2" convention, so that "Maedchen" and "Mädchen" agree.
//! - [`key`]: the folded word stemmed with Snowball German, its umlauts then removed:
//!   "Beratungen", "Beratung" → `berat`; "Häuser", "Haeuser", "Haus" → `haus`.
//! - [`parts`]: the endings of a key that are at least [`PART_MIN`] letters long, so that a
//!   word finds the compounds it ends or sits in ("Beratung" finds "Schuldnerberatung",
//!   German's compounds put the head last) without a dictionary.
//! - [`plain`]: the folded word without umlauts and unstemmed, for prefixes while typing.

use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

use crate::DomainError;

/// Longest query, in characters.
pub const QUERY_MAX_CHARS: usize = 200;
/// Most words in one query.
pub const QUERY_MAX_WORDS: usize = 8;
/// Shortest part of a compound that is indexed (and shortest prefix searched as one).
pub const PART_MIN: usize = 4;
/// Longest word indexed, in characters (longer runs are cut, never dropped).
pub const WORD_MAX_CHARS: usize = 40;
/// Characters of a snippet around its first highlight.
pub const SNIPPET_CHARS: usize = 160;

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::German))
}

/// A word of a text: its byte range and its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word<'a> {
    /// Byte offset of its first character.
    pub start: usize,
    /// Byte offset after its last character.
    pub end: usize,
    /// The word as written.
    pub text: &'a str,
}

/// The words of `text`, in order.
pub fn words(text: &str) -> impl Iterator<Item = Word<'_>> {
    let mut rest = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, _) = loop {
            let (i, c) = rest.next()?;
            if c.is_alphanumeric() {
                break (i, c);
            }
        };
        let mut end = text.len();
        while let Some(&(i, c)) = rest.peek() {
            if !c.is_alphanumeric() {
                end = i;
                break;
            }
            rest.next();
        }
        Some(Word { start, end, text: &text[start..end] })
    })
}

/// The word in lower case, `ae`/`oe`/`ue` as umlauts (not `ue` after `q`), `ß` as `ss`,
/// cut to [`WORD_MAX_CHARS`].
pub fn fold(word: &str) -> String {
    let lower: Vec<char> = word.chars().flat_map(char::to_lowercase).take(WORD_MAX_CHARS).collect();
    let mut out = String::with_capacity(lower.len() + 2);
    let mut i = 0;
    while i < lower.len() {
        let c = lower[i];
        let next = lower.get(i + 1).copied();
        let umlaut = match (c, next) {
            ('a', Some('e')) => Some('ä'),
            ('o', Some('e')) => Some('ö'),
            ('u', Some('e')) if i == 0 || lower[i - 1] != 'q' => Some('ü'),
            _ => None,
        };
        match (umlaut, c) {
            (Some(u), _) => {
                out.push(u);
                i += 2;
                continue;
            }
            (None, 'ß') => out.push_str("ss"),
            (None, c) => out.push(c),
        }
        i += 1;
    }
    out
}

fn strip_umlauts(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ä' | 'à' | 'á' | 'â' => 'a',
            'ö' | 'ò' | 'ó' | 'ô' => 'o',
            'ü' | 'ù' | 'ú' | 'û' => 'u',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'ç' => 'c',
            c => c,
        })
        .collect()
}

/// The word folded, without umlauts and accents, unstemmed: what a prefix is matched on.
pub fn plain(word: &str) -> String {
    strip_umlauts(&fold(word))
}

/// The word's search key: folded, stemmed (Snowball German), without umlauts.
pub fn key(word: &str) -> String {
    let folded = fold(word);
    strip_umlauts(&stemmer().stem(&folded))
}

/// The endings of `key` with at least [`PART_MIN`] characters, the key itself excluded,
/// longest first.
pub fn parts(key: &str) -> impl Iterator<Item = &str> {
    let n = key.chars().count();
    key.char_indices().skip(1).take(n.saturating_sub(PART_MIN)).map(move |(i, _)| &key[i..])
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// One entry per word, in the order typed.
    pub words: Vec<QueryWord>,
}

/// A word of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryWord {
    /// Its key ([`key`]).
    pub key: String,
    /// Its plain form ([`plain`]).
    pub plain: String,
    /// Whether it is also matched as the start of a word: the last word while it is still
    /// being typed (no space after it), or any word followed by `*`; at least two letters.
    pub prefix: bool,
}

/// Parses what a counsellor typed. Quotes, `*`, `:`, emoji and other signs only separate
/// words; a word followed by `*`, or the last word while no space follows it, also matches
/// words it begins ("Berat" finds "Beratungsstelle"). Errors are German.
pub fn parse_query(q: &str) -> Result<Query, DomainError> {
    if q.chars().count() > QUERY_MAX_CHARS {
        return Err(DomainError::Invalid(format!(
            "Die Suche ist zu lang: höchstens {QUERY_MAX_CHARS} Zeichen."
        )));
    }
    let typing = q.chars().last().is_some_and(char::is_alphanumeric);
    let found: Vec<Word<'_>> = words(q).collect();
    if found.is_empty() {
        return Err(DomainError::Invalid(
            "Bitte geben Sie mindestens ein Wort (Buchstaben oder Ziffern) ein.".into(),
        ));
    }
    if found.len() > QUERY_MAX_WORDS {
        return Err(DomainError::Invalid(format!(
            "Bitte suchen Sie nach höchstens {QUERY_MAX_WORDS} Wörtern auf einmal."
        )));
    }
    let last = found.len() - 1;
    let mut out: Vec<QueryWord> = Vec::with_capacity(found.len());
    for (i, w) in found.iter().enumerate() {
        let starred = q[w.end..].starts_with('*');
        let plain = plain(w.text);
        let prefix = (starred || (i == last && typing)) && plain.chars().count() >= 2;
        let word = QueryWord { key: key(w.text), plain, prefix };
        if !out.contains(&word) {
            out.push(word);
        }
    }
    Ok(Query { words: out })
}

impl QueryWord {
    /// Whether a word of a text matches this query word (as the index matches it).
    pub fn matches(&self, word: &str) -> bool {
        let k = key(word);
        if k == self.key || (self.key.chars().count() >= PART_MIN && k.ends_with(&self.key)) {
            return true;
        }
        // A prefix matches the start of a word, or of a compound's part (as the index
        // matches it on the parts).
        self.prefix
            && (plain(word).starts_with(&self.plain)
                || (self.plain.chars().count() >= PART_MIN && parts(&k).any(|p| p.starts_with(&self.plain))))
    }
}

/// A snippet of a text with the ranges to highlight (byte offsets into `text`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snippet {
    /// The excerpt, with "…" where it was cut.
    pub text: String,
    /// Byte ranges of `text` that matched.
    pub highlights: Vec<(usize, usize)>,
}

/// The excerpt of `body` around the first word that matches `query`, at most about
/// [`SNIPPET_CHARS`] characters, cut at word boundaries, with every matching word marked.
pub fn snippet(body: &str, query: &Query) -> Snippet {
    let all: Vec<Word<'_>> = words(body).collect();
    let hit = |w: &Word<'_>| query.words.iter().any(|q| q.matches(w.text));
    let first = all.iter().find(|w| hit(w)).map_or(0, |w| w.start);
    // Start about a third of the window before the first hit, at a word's start.
    let lead = SNIPPET_CHARS / 3;
    let mut start = 0;
    if body[..first].chars().count() > lead {
        let back = body[..first].char_indices().rev().nth(lead - 1).map_or(0, |(i, _)| i);
        start = all.iter().map(|w| w.start).find(|&s| s >= back).unwrap_or(first).min(first);
    }
    let mut end = body.len();
    if body[start..].chars().count() > SNIPPET_CHARS {
        let limit = body[start..].char_indices().nth(SNIPPET_CHARS).map_or(body.len(), |(i, _)| start + i);
        end = all
            .iter()
            .filter(|w| w.end <= limit && w.start >= start)
            .map(|w| w.end)
            .next_back()
            .unwrap_or(limit);
    }
    let mut text = String::new();
    let offset = if start > 0 {
        text.push('…');
        '…'.len_utf8()
    } else {
        0
    };
    text.push_str(&body[start..end]);
    if end < body.len() {
        text.push('…');
    }
    let highlights = all
        .iter()
        .filter(|w| w.start >= start && w.end <= end && hit(w))
        .map(|w| (w.start - start + offset, w.end - start + offset))
        .collect();
    Snippet { text, highlights }
}

/// Whether a name (a client's, a colleague's, a group's) matches every word of `query`,
/// each as a whole word or as its start.
pub fn name_matches(name: &str, query: &Query) -> bool {
    let names: Vec<String> = words(name).map(|w| plain(w.text)).collect();
    query.words.iter().all(|q| names.iter().any(|n| n.starts_with(&q.plain) || key(n) == q.key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn german_inflections_share_a_key() {
        assert_eq!(key("Beratungen"), key("Beratung"));
        assert_eq!(key("Häuser"), key("Haus"));
        assert_eq!(key("Haeuser"), key("Häuser"));
        assert_eq!(key("Straße"), key("Strasse"));
        assert_eq!(key("Mädchen"), key("Maedchen"));
        assert_eq!(key("Gesprächen"), key("Gespräch"));
        assert_eq!(key("Schulden"), key("Schuld"));
        assert_ne!(key("Quelle"), key("Qülle"), "no umlaut after q");
    }

    #[test]
    fn plain_folds_umlauts_and_sharp_s() {
        assert_eq!(plain("Müller"), "muller");
        assert_eq!(plain("Mueller"), "muller");
        assert_eq!(plain("Fuß"), "fuss");
        assert_eq!(plain("ÄRGER"), "arger");
    }

    #[test]
    fn words_split_on_signs_and_keep_offsets() {
        let text = "Hallo, Frau Müller! 🙂 Termin: 12.03.";
        let w: Vec<&str> = words(text).map(|w| w.text).collect();
        assert_eq!(w, ["Hallo", "Frau", "Müller", "Termin", "12", "03"]);
        for w in words(text) {
            assert_eq!(&text[w.start..w.end], w.text);
        }
    }

    #[test]
    fn compound_parts_are_the_endings() {
        let k = key("Schuldnerberatung");
        assert!(parts(&k).any(|p| p == key("Beratung")), "{k}: {:?}", parts(&k).collect::<Vec<_>>());
        assert_eq!(parts("haus").count(), 0);
        assert_eq!(parts("häuse").collect::<Vec<_>>(), ["äuse"]);
    }

    #[test]
    fn queries_are_validated_in_german() {
        assert!(matches!(parse_query(""), Err(DomainError::Invalid(m)) if m.contains("Wort")));
        assert!(parse_query("\"*:\" 🙂").is_err());
        assert!(parse_query(&"a".repeat(QUERY_MAX_CHARS + 1)).is_err());
        assert!(parse_query("a b c d e f g h i").is_err());
        let q = parse_query("\"Beratungen\" Ter*").expect("a query");
        assert_eq!(q.words.len(), 2);
        assert!(!q.words[0].prefix);
        assert!(q.words[1].prefix);
        let typing = parse_query("Schuldnerbera").expect("a query");
        assert!(typing.words[0].prefix);
        let done = parse_query("Schuldnerbera ").expect("a query");
        assert!(!done.words[0].prefix);
    }

    #[test]
    fn a_snippet_marks_every_match() {
        let q = parse_query("Beratungen ").expect("a query");
        let body = "Die Schuldnerberatung hat morgen offen; die Beratung dauert eine Stunde.";
        let s = snippet(body, &q);
        let marked: Vec<&str> = s.highlights.iter().map(|&(a, b)| &s.text[a..b]).collect();
        assert_eq!(marked, ["Schuldnerberatung", "Beratung"]);
    }

    #[test]
    fn a_long_snippet_is_cut_around_the_hit() {
        let body = format!("{} Beratung {}", "Vorher ".repeat(60), "Nachher ".repeat(60));
        let s = snippet(&body, &parse_query("Beratung ").expect("a query"));
        assert!(s.text.starts_with('…') && s.text.ends_with('…'), "{}", s.text);
        assert!(s.text.chars().count() <= SNIPPET_CHARS + 2);
        assert_eq!(s.highlights.len(), 1);
        let (a, b) = s.highlights[0];
        assert_eq!(&s.text[a..b], "Beratung");
    }

    #[test]
    fn names_match_by_word_start() {
        let q = parse_query("mue").expect("a query");
        assert!(name_matches("Anna Müller", &q));
        assert!(!name_matches("Anna Schmidt", &q));
        assert!(name_matches("Jörg Weiß", &parse_query("weiss joerg").expect("a query")));
    }

    proptest! {
        #[test]
        fn any_text_gives_a_snippet_within_bounds(body in "\\PC{0,400}", q in "[a-zA-Zäöüß ]{1,30}") {
            if let Ok(q) = parse_query(&q) {
                let s = snippet(&body, &q);
                for (a, b) in s.highlights {
                    prop_assert!(a < b && b <= s.text.len());
                    prop_assert!(s.text.is_char_boundary(a) && s.text.is_char_boundary(b));
                }
            }
        }

        #[test]
        fn any_query_parses_or_says_why(q in "\\PC{0,300}") {
            match parse_query(&q) {
                Ok(parsed) => prop_assert!(!parsed.words.is_empty() && parsed.words.len() <= QUERY_MAX_WORDS),
                Err(DomainError::Invalid(m)) => prop_assert!(!m.is_empty()),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }

        #[test]
        fn a_word_matches_itself(w in "[A-Za-zÄÖÜäöüß]{1,30}") {
            let q = parse_query(&format!("{w} ")).expect("a query");
            prop_assert!(q.words[0].matches(&w));
        }
    }
}
