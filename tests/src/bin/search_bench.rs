//! `search-bench`: the embedded search index at a million messages, and the same queries
//! against Synapse's `/search` on the same data in the same run.
//!
//! 1. **Generated messages.** `BENCH_MESSAGES` (default 1,000,000) German chat messages,
//!    deterministic (seeded): words drawn Zipf-like from a vocabulary of a few thousand
//!    counselling words (inflected forms, compounds, umlauts and ß; function words most
//!    often), mostly 5–40 words long, some one-word answers, some long letters; spread
//!    over `BENCH_ROOMS` rooms (default 2,000; some busier than others) of one institution
//!    in four categories, their times over a year.
//! 2. **Indexing** into an on-disk [`SearchIndex`] in a temporary directory, committed every
//!    `BENCH_COMMIT_EVERY` messages (default 10,000) as a rebuild would, the trash emptied
//!    every 20 commits as the service's commit job does: messages per second (generating
//!    them is not counted), the index's size on disk, the process's peak resident memory.
//! 3. **Queries**, each `BENCH_RUNS` times (default 200): one word, two words, a prefix
//!    while typing, two words with the second still being typed, a rare word, a
//!    three-letter prefix and a very common word (the last two are worst cases), within a counsellor's `BENCH_COUNSELLOR_ROOMS` rooms (default
//!    50) and within all rooms: p50 and p99.
//! 4. **Synapse, the same run.** The harness's real Synapse and the release `assisto`
//!    binary; a counsellor with `BENCH_SYNAPSE_ROOMS` client chats (default 10) gets the
//!    first `BENCH_SYNAPSE_MESSAGES` (default 20,000) of the same generated messages, sent
//!    through the homeserver `BENCH_SYNAPSE_IN_FLIGHT` at a time (default 4), for at most
//!    `BENCH_SYNAPSE_SECONDS` (default 240). Then the same queries as the counsellor:
//!    Synapse's `POST /search` (at most `BENCH_SYNAPSE_RUNS` times, default 100, and at
//!    most 60 s per query), assisto's `GET /_assisto/search/v1/search` (HTTP, end to end,
//!    on the index assisto built from the events Synapse pushed it), and a separate
//!    in-process index of exactly the messages Synapse accepted. `BENCH_SYNAPSE_MESSAGES=0` skips this part.
//!
//! Run it with `make bench-search` (`scripts/bench-search.sh`), which builds in release
//! mode and writes the tables into `docs/benchmarks.md`.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use assisto_appservice::features::search::index::{Doc, DocKind, Scope, SearchIndex};
use assisto_core::search::{parse_query, Query};
use assisto_tests::{
    bench::{env_usize, percentile},
    eventually,
    matrix::{enc, rid},
    TestService,
};
use futures::StreamExt;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};

/// The generator's seed: the same messages in every run.
const SEED: u64 = 20_261_205;
/// 2025-01-01 00:00 UTC (ms): the first message.
const START_MS: i64 = 1_735_689_600_000;
/// A year (ms): the messages' span; searches run at its end.
const YEAR_MS: i64 = 365 * 86_400_000;
/// Hits asked for per search (the route's default).
const LIMIT: usize = 20;
/// The institution of the generated rooms.
const INSTITUTION: &str = "inst-bench";

/// The queries: what the table calls them, and what is typed (a trailing space: the word
/// is complete; none: the last word is still being typed, a prefix).
const CASES: [(&str, &str); 7] = [
    ("one word", "Beratung "),
    ("two words", "Schulden Beratung "),
    ("prefix while typing", "Berat"),
    ("two words, the second typed", "Schulden Berat"),
    ("rare word", "Zwangsräumung "),
    ("three-letter prefix (worst case)", "Sch"),
    ("very common word (worst case)", "und "),
];

// ---- the vocabulary ----------------------------------------------------------------------

/// Function and chat words, roughly most frequent first (they take the first ranks).
const FUNCTION: &str =
    "ich und die nicht das ist der es zu sie mit ein mir du auf in was habe eine mich aber \
    den so auch wie wir sich dass mal noch im wenn für bin schon hat von dann hab einen mein meine meinen \
    meinem meiner kann weil oder sind war jetzt nur man da hier ja nein bei nach dem des einer einem doch \
    immer wieder sehr gar ganz kein keine keinen viel mehr etwas nichts alles oft heute morgen gestern bald \
    gerade eigentlich vielleicht einfach wirklich also halt eben denn ob als um über vor seit ohne gegen zum \
    zur am aus an unter zwischen wo warum wann wer weiß dich dir uns euch ihr ihm ihn ihnen sein seine \
    seinen ihre ihren unser unsere dein deine werde wird werden würde würden könnte könnten möchte muss \
    musst müssen soll sollte sollen darf will wollte hatte hätte wäre waren gibt geht gut danke bitte okay \
    ok genau klar hallo liebe grüße viele vielen dank tschüss wegen trotzdem damit dafür darüber deshalb \
    sonst erst nie manchmal selten jeden jede jeder andere anderen beide paar wenig weniger bisschen dieser \
    diese diesen diesem dieses welche welcher solche selbst allein zusammen weiter lange früher später \
    danach vorher bereits trotz während bis durch ins beim vom zurück leider hoffentlich natürlich eher \
    ziemlich total echt ständig plötzlich endlich sofort nochmal irgendwie irgendwann niemand jemand";

/// Nouns, `singular|plural` (or one form).
const NOUNS: &str = "Beratung|Beratungen Termin|Termine Gespräch|Gespräche Schule|Schulen \
    Familie|Familien Mutter|Mütter Vater|Väter Kind|Kinder Sohn|Söhne Tochter|Töchter Bruder|Brüder \
    Schwester|Schwestern Freund|Freunde Freundin|Freundinnen Partner Partnerin|Partnerinnen Mann|Männer \
    Frau|Frauen Eltern Oma|Omas Opa|Opas Lehrer Lehrerin|Lehrerinnen Klasse|Klassen Note|Noten \
    Prüfung|Prüfungen Ausbildung|Ausbildungen Studium Arbeit Job|Jobs Chef|Chefs Chefin Kollege|Kollegen \
    Kollegin|Kolleginnen Geld Schulden Schuld Miete|Mieten Wohnung|Wohnungen Vermieter Nachbar|Nachbarn \
    Haus|Häuser Zimmer Küche Straße|Straßen Stadt|Städte Amt|Ämter Jobcenter Antrag|Anträge \
    Formular|Formulare Brief|Briefe Rechnung|Rechnungen Mahnung|Mahnungen Konto|Konten Bank|Banken \
    Kredit|Kredite Rate|Raten Vertrag|Verträge Versicherung|Versicherungen Handy|Handys \
    Nachricht|Nachrichten Anruf|Anrufe Mail|Mails Angst|Ängste Sorge|Sorgen Problem|Probleme Stress Druck \
    Woche|Wochen Tag|Tage Nacht|Nächte Monat|Monate Jahr|Jahre Zeit|Zeiten Stunde|Stunden Minute|Minuten \
    Wochenende|Wochenenden Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag Hilfe Unterstützung \
    Gefühl|Gefühle Streit Trennung|Trennungen Scheidung Sucht Alkohol Drogen Therapie|Therapien \
    Therapeut|Therapeuten Therapeutin Arzt|Ärzte Ärztin|Ärztinnen Krankenhaus|Krankenhäuser \
    Klinik|Kliniken Medikament|Medikamente Schlaf Traum|Träume Depression|Depressionen Panik Gewalt Polizei \
    Gericht|Gerichte Anwalt|Anwälte Anwältin Ausländerbehörde Aufenthalt Pass|Pässe Visum Sprache|Sprachen \
    Deutschkurs|Deutschkurse Integration Kita|Kitas Kindergarten Erzieherin Betreuung Pflege \
    Krankheit|Krankheiten Schmerz|Schmerzen Kopf Bauch Herz Fuß|Füße Körper Gewicht Essen Größe \
    Schwangerschaft|Schwangerschaften Baby|Babys Geburt Hebamme Verhütung Beziehung|Beziehungen Ehe \
    Hochzeit Kontakt|Kontakte Besuch|Besuche Wut Trauer Tod Verlust Einsamkeit Mut Hoffnung Zukunft \
    Vergangenheit Leben Alltag Ruhe Pause|Pausen Urlaub Ferien Geburtstag|Geburtstage Weihnachten Ostern \
    Sport Spaziergang|Spaziergänge Musik Buch|Bücher Film|Filme Spiel|Spiele Computer Internet Chat|Chats \
    Video|Videos Foto|Fotos Frage|Fragen Antwort|Antworten Idee|Ideen Lösung|Lösungen \
    Möglichkeit|Möglichkeiten Ziel|Ziele Plan|Pläne Schritt|Schritte Weg|Wege Entscheidung|Entscheidungen \
    Situation|Situationen Grund|Gründe Ergebnis|Ergebnisse Bescheid|Bescheide Unterlagen \
    Nachweis|Nachweise Kopie|Kopien Unterschrift Frist|Fristen Widerspruch|Widersprüche \
    Kündigung|Kündigungen Räumung Strom Heizung Nebenkosten Einkommen Lohn Gehalt Bürgergeld Kindergeld \
    Elterngeld Wohngeld Unterhalt Rente Zuschuss Beratungsstelle|Beratungsstellen Schuldnerberatung \
    Suchtberatung Erziehungsberatung Onlineberatung Beratungsgespräch|Beratungsgespräche \
    Beratungstermin|Beratungstermine Berater|Beraterin Erstgespräch Hilfeplan Schulsozialarbeit \
    Sozialarbeiterin|Sozialarbeiterinnen Sozialarbeiter Selbsthilfegruppe|Selbsthilfegruppen \
    Notfall|Notfälle Notruf Krisendienst Wartezeit Warteliste Kostenübernahme Krankenkasse Krankmeldung \
    Arbeitsplatz Arbeitslosigkeit Ausbildungsplatz Praktikum Bewerbung|Bewerbungen Vorstellungsgespräch \
    Zeugnis|Zeugnisse Mobbing Schulangst Prüfungsangst Leistungsdruck Selbstwert Selbstvertrauen Zuhause \
    Umzug Obdachlosigkeit Notunterkunft Frauenhaus Kinderschutz Sorgerecht Umgangsrecht Großeltern \
    Geschwister Stiefvater Stiefmutter Pflegefamilie Wohngruppe Haushalt Einkauf Supermarkt Bus Bahn \
    Fahrkarte Führerschein Auto Fahrrad Schwiegermutter Jugendliche|Jugendlichen Mädchen Junge|Jungen \
    Erfahrung|Erfahrungen Verständnis Vertrauen Geduld Gedanke|Gedanken Kraft Nerven Schuldgefühle \
    Ausrede|Ausreden Verabredung Entschuldigung Fehler Erfolg Rückfall|Rückfälle Abstinenz Entzug \
    Entgiftung Spielsucht Essstörung Magersucht Selbstverletzung Suizidgedanken Grenze|Grenzen";

/// Modifiers and heads of generated compounds (`head|plural`).
const COMPOUND_MODIFIERS: &str = "Schulden Sucht Familien Erziehungs Lebens Paar Jugend Krisen Eltern \
    Trennungs Schul Mädchen Frauen Männer Sozial Wohnungs Arbeits Gesundheits Migrations Straßen";
const COMPOUND_HEADS: &str = "beratung|beratungen hilfe gespräch|gespräche gruppe|gruppen \
    termin|termine problem|probleme angebot|angebote situation stelle|stellen frage|fragen kosten zeit";

/// Regular verbs' stems (forms: -en, -e, -st, -t, ge-…-t; `be`/`ver`/`er`/`ent` without ge-).
const VERB_STEMS: &str = "mach sag frag brauch hoff glaub kauf wohn lern spiel hör such zahl bezahl \
    erzähl fühl wünsch leb lieb hol stell zeig teil meld schick koch putz wart arbeit red antwort \
    beantrag beruhig besuch versuch verdien erklär klär plan sorg träum tröst lach wein schütz stör \
    stimm kost bedank entschuldig überleg vermiss bestell verpass übernacht";

/// Irregular verbs, all their forms.
const VERBS_IRREGULAR: &str = "gehen gehe gehst geht ging gingen gegangen | kommen komme kommst kommt kam \
    kamen gekommen | sehen sehe siehst sieht sah gesehen | schlafen schlafe schläfst schläft schlief \
    geschlafen | schreiben schreibe schreibst schreibt schrieb geschrieben | sprechen spreche sprichst \
    spricht sprach gesprochen | helfen helfe hilfst hilft half geholfen | treffen treffe triffst trifft \
    traf getroffen | verstehen verstehe verstehst versteht verstand verstanden | denken denke denkst denkt \
    dachte gedacht | wissen weißt wusste gewusst | finden finde findest findet fand gefunden | bleiben \
    bleibe bleibst bleibt blieb geblieben | nehmen nehme nimmst nimmt nahm genommen | geben gebe gibst gab \
    gegeben | lassen lasse lässt ließ gelassen | fahren fahre fährst fährt fuhr gefahren | bekommen \
    bekomme bekommst bekommt bekam | anrufen rufe rufst ruft rief angerufen | essen esse isst aß gegessen \
    | trinken trinke trinkst trinkt trank getrunken | tun tue tust tut tat getan | fallen falle fällt fiel \
    gefallen | halten halte hältst hält hielt gehalten | liegen liege liegt lag gelegen | sitzen sitze \
    sitzt saß gesessen | stehen stehe stehst steht stand gestanden | laufen laufe läufst läuft lief \
    gelaufen | lesen lese liest las gelesen | vergessen vergesse vergisst vergaß | beginnen beginne \
    beginnt begann begonnen | entscheiden entscheide entscheidet entschied entschieden | streiten streite \
    streitest streitet stritt gestritten | schaffen schaffe schaffst schafft geschafft | beraten berate \
    berätst berät beriet | bist seid gewesen | hast habt gehabt | wirst wurde wurden geworden | kannst \
    konnte konnten gekonnt | musste mussten | durfte dürfen | willst wollen | mag magst mochte mögen \
    möchten | sollst";

/// Adjectives (forms: the base and -e, -en, -er, -es, -em).
const ADJECTIVES: &str = "schwierig schwer leicht gut schlecht müde traurig wütend glücklich froh einsam \
    krank gesund neu alt jung klein groß wichtig dringend schön ruhig unsicher überfordert ängstlich offen \
    ehrlich freundlich schnell langsam spät früh nächst letzt nervös stressig anstrengend peinlich komisch \
    seltsam normal schlimm furchtbar schrecklich toll super hilfreich nett lieb streng gemein laut leise \
    kalt warm teuer billig arm reich eigen fremd sicher gefährlich möglich unmöglich richtig falsch wahr \
    deutlich verzweifelt hoffnungslos zuversichtlich dankbar enttäuscht verletzt erschöpft gestresst \
    verliebt schwanger arbeitslos obdachlos psychisch körperlich finanziell rechtlich schulisch beruflich \
    persönlich vertraulich anonym kostenlos digital sozial zuständig verantwortlich regelmäßig heftig \
    kompliziert übel";

/// Places and names, as chat messages mention them.
const NAMES: &str = "Köln Düsseldorf München Berlin Hamburg Essen Dortmund Bonn Aachen Münster Hauptstraße \
    Bahnhofstraße Gartenweg Schillerstraße Goethestraße Marktplatz Jürgen Müller Schmidt Weiß Schäfer \
    Özdemir Yılmaz Nowak Jörg Günther Björn Anja Sören Zoë Jana Mehmet Aylin Lukas Mia Emma Noah";

/// The vocabulary: every form once, with the weights to draw them by.
struct Vocabulary {
    words: Vec<String>,
    /// Cumulative weights (Zipf, s = 1), for drawing by rank.
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new(rng: &mut StdRng) -> Self {
        let mut content: Vec<String> = Vec::new();
        for n in NOUNS.split_whitespace() {
            content.extend(n.split('|').map(str::to_owned));
        }
        let heads: Vec<&str> = COMPOUND_HEADS.split_whitespace().collect();
        for m in COMPOUND_MODIFIERS.split_whitespace() {
            for h in &heads {
                content.extend(h.split('|').map(|h| format!("{m}{h}")));
            }
        }
        for s in VERB_STEMS.split_whitespace() {
            let e = if s.ends_with('t') || s.ends_with('d') { "e" } else { "" };
            let ge = ["be", "ver", "er", "ent", "über"].iter().any(|p| s.starts_with(p));
            let participle = if ge { format!("{s}{e}t") } else { format!("ge{s}{e}t") };
            content.extend([
                format!("{s}en"),
                format!("{s}e"),
                format!("{s}{e}st"),
                format!("{s}{e}t"),
                participle,
            ]);
        }
        content.extend(VERBS_IRREGULAR.split_whitespace().filter(|w| *w != "|").map(str::to_owned));
        for a in ADJECTIVES.split_whitespace() {
            content.extend(["", "e", "en", "er", "es", "em"].iter().map(|end| format!("{a}{end}")));
        }
        content.extend(NAMES.split_whitespace().map(str::to_owned));
        // Which content word is frequent is the seed's choice, except for the words queried:
        // "Beratung" and "Schulden" among the frequent ones (a counselling service), the rare
        // word last.
        for i in (1..content.len()).rev() {
            content.swap(i, rng.gen_range(0..=i));
        }
        let pinned = [("Beratung", 40), ("Schulden", 80)];
        content.retain(|w| w != "Zwangsräumung" && pinned.iter().all(|(p, _)| w != p));
        for (w, at) in pinned {
            content.insert(at, w.to_owned());
        }
        content.push("Zwangsräumung".to_owned());

        let mut seen = HashSet::new();
        let words: Vec<String> = FUNCTION
            .split_whitespace()
            .map(str::to_owned)
            .chain(content)
            .filter(|w| seen.insert(w.to_lowercase()))
            .collect();
        let mut total = 0.0;
        let cumulative = (0..words.len())
            .map(|r| {
                total += 1.0 / (r as f64 + 1.0);
                total
            })
            .collect();
        Vocabulary { words, cumulative }
    }

    fn draw(&self, rng: &mut StdRng) -> usize {
        let total = self.cumulative[self.cumulative.len() - 1];
        let x = rng.gen::<f64>() * total;
        self.cumulative.partition_point(|&c| c < x).min(self.words.len() - 1)
    }
}

// ---- the messages ------------------------------------------------------------------------

/// A generated message.
struct Message {
    room: usize,
    /// Written by the client (else by the counsellor).
    by_client: bool,
    ts: i64,
    body: String,
    /// The vocabulary's words in it.
    words: Vec<u32>,
}

/// The deterministic stream of messages.
struct Generator {
    rng: StdRng,
    vocab: Vocabulary,
    rooms: usize,
    total: usize,
    next: usize,
}

const EMOJI: [&str; 8] = ["🙂", "😊", "😔", "👍", "❤️", "😢", "🙏", "😅"];

impl Generator {
    fn new(rooms: usize, total: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(SEED);
        let vocab = Vocabulary::new(&mut rng);
        Generator { rng, vocab, rooms, total, next: 0 }
    }

    fn message(&mut self) -> Message {
        let i = self.next;
        self.next += 1;
        let rng = &mut self.rng;
        // Some rooms are much busier than others.
        let room = ((self.rooms as f64) * rng.gen::<f64>().powf(1.5)) as usize;
        let room = room.min(self.rooms - 1);
        let span = YEAR_MS / self.total.max(1) as i64;
        let ts = START_MS + i as i64 * span + rng.gen_range(0..span.max(1));
        let n = match rng.gen_range(0..100) {
            0..=6 => rng.gen_range(1..=4),
            7..=96 => 5 + (35.0 * rng.gen::<f64>().powi(2)) as usize,
            _ => rng.gen_range(60..=250),
        };
        let lower = rng.gen_bool(0.2);
        let mut body = String::with_capacity(n * 8);
        let mut words = Vec::with_capacity(n);
        let mut sentence = 0;
        for k in 0..n {
            if k > 0 {
                body.push(' ');
            }
            if rng.gen_bool(0.03) {
                match rng.gen_range(0..4) {
                    0 => body.push_str(&format!("{}:{:02}", rng.gen_range(8..19), rng.gen_range(0..4) * 15)),
                    1 => body.push_str(&rng.gen_range(1..31).to_string()),
                    2 => body.push_str(&format!("{}.{:03}", rng.gen_range(1..20), rng.gen_range(0..1000))),
                    _ => body.push_str("Uhr"),
                }
            } else {
                let w = self.vocab.draw(rng);
                words.push(w as u32);
                let word = &self.vocab.words[w];
                let mut chars = word.chars();
                match (sentence == 0 && !lower, chars.next()) {
                    (true, Some(c)) => {
                        body.extend(c.to_uppercase());
                        body.push_str(chars.as_str());
                    }
                    _ if lower => body.push_str(&word.to_lowercase()),
                    _ => body.push_str(word),
                }
            }
            sentence += 1;
            let last = k + 1 == n;
            if last || (sentence >= 4 && rng.gen_bool(0.15)) {
                body.push(match rng.gen_range(0..10) {
                    0..=5 => '.',
                    6..=8 => '?',
                    _ => '!',
                });
                if rng.gen_bool(0.06) {
                    body.push(' ');
                    body.push_str(EMOJI[rng.gen_range(0..EMOJI.len())]);
                }
                sentence = 0;
            } else if rng.gen_bool(0.06) {
                body.push(',');
            }
        }
        Message { room, by_client: rng.gen_bool(0.55), ts, body, words }
    }
}

/// An ID as Synapse's look: 43 characters of URL-safe base64 from a hash of `n`.
fn pseudo_id(mut n: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(len);
    for _ in 0..len {
        // splitmix64
        n = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = n;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.push(ALPHABET[((z ^ (z >> 31)) % 64) as usize] as char);
    }
    out
}

fn room_id(room: usize) -> String {
    format!("!{}:localhost", pseudo_id(room as u64 + (1 << 40), 18))
}

fn category(room: usize) -> &'static str {
    match room % 10 {
        0..=6 => "clients",
        7 => "live",
        8 => "colleagues",
        _ => "groups",
    }
}

/// For each query and each of its words: which words of the vocabulary it matches (as the
/// index matches them), to count the matching messages.
struct Matcher {
    queries: Vec<Vec<Vec<bool>>>,
}

impl Matcher {
    fn new(vocab: &Vocabulary, queries: &[Query]) -> Self {
        let queries = queries
            .iter()
            .map(|q| q.words.iter().map(|w| vocab.words.iter().map(|v| w.matches(v)).collect()).collect())
            .collect();
        Matcher { queries }
    }

    fn matches(&self, q: usize, words: &[u32]) -> bool {
        self.queries[q].iter().all(|flags| words.iter().any(|&w| flags[w as usize]))
    }
}

// ---- measuring ---------------------------------------------------------------------------

fn rss_kib(field: &str) -> u64 {
    assisto_tests::bench::status_kib(std::process::id(), field)
}

/// The size of the files under `dir`, and how many segments (`.store` files) are among them.
fn disk_usage(dir: &Path) -> (u64, usize) {
    let (mut bytes, mut segments) = (0, 0);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            let (b, s) = disk_usage(&p);
            bytes += b;
            segments += s;
        } else {
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            segments += usize::from(p.extension().is_some_and(|x| x == "store"));
        }
    }
    (bytes, segments)
}

/// p50 and p99 (ms) of samples in seconds.
struct Timing {
    p50: f64,
    p99: f64,
    first: f64,
    n: usize,
}

impl Timing {
    fn of(mut samples: Vec<f64>) -> Self {
        let first = samples.first().copied().unwrap_or(f64::NAN) * 1000.0;
        samples.sort_by(f64::total_cmp);
        let ms = |p| percentile(&samples, p) * 1000.0;
        Timing { p50: ms(0.5), p99: ms(0.99), first, n: samples.len() }
    }

    fn cell(&self) -> String {
        format!("{:.1} / {:.1}", self.p50, self.p99)
    }
}

fn time_search(ix: &SearchIndex, inst: &str, rooms: &[String], q: &Query, runs: usize, now: i64) -> Timing {
    let samples = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let scope = Scope { institution: inst, rooms, category: None, kind: DocKind::Message };
            let hits = ix.search(&scope, q, LIMIT, now).expect("search");
            std::hint::black_box(hits);
            t.elapsed().as_secs_f64()
        })
        .collect();
    Timing::of(samples)
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn quoted(typed: &str) -> String {
    format!("`\"{typed}\"`")
}

/// What the first part measured, for the aims.
struct Large {
    rate: f64,
    /// The slowest p99 (ms) and its query: within the counsellor's rooms, within all.
    worst_p99: [(f64, &'static str); 2],
    mine: usize,
    rooms: usize,
}

// ---- 1. and 2.: a million messages in the index -------------------------------------------

fn large(table: &mut String, queries: &[Query]) -> Large {
    let total = env_usize("BENCH_MESSAGES", 1_000_000);
    let rooms = env_usize("BENCH_ROOMS", 2_000).max(1);
    let mine = env_usize("BENCH_COUNSELLOR_ROOMS", 50).clamp(1, rooms);
    let every = env_usize("BENCH_COMMIT_EVERY", 10_000).max(1);
    let runs = env_usize("BENCH_RUNS", 200).max(1);
    let all_rooms: Vec<String> = (0..rooms).map(room_id).collect();
    // The counsellor's rooms: every (rooms / mine)-th, busy and quiet ones alike.
    let step = rooms / mine;
    let my_rooms: Vec<usize> = (0..mine).map(|k| k * step).collect();
    let my_room_ids: Vec<String> = my_rooms.iter().map(|&r| all_rooms[r].clone()).collect();
    let is_mine: HashSet<usize> = my_rooms.iter().copied().collect();

    let dir = tempfile::Builder::new().prefix("search-bench-").tempdir().expect("tempdir");
    let ix = SearchIndex::open(dir.path()).expect("open the index");
    let mut generator = Generator::new(rooms, total);
    let matcher = Matcher::new(&generator.vocab, queries);
    eprintln!("vocabulary: {} words", generator.vocab.words.len());
    let mut matching = vec![(0usize, 0usize); queries.len()];
    let (mut in_mine, mut words, mut bytes) = (0usize, 0usize, 0usize);
    let (mut generating, mut indexing) = (Duration::ZERO, Duration::ZERO);
    let (mut done, mut commits, mut anon_peak) = (0, 0, 0);
    let mut last_report = Instant::now();
    while done < total {
        let t = Instant::now();
        let batch: Vec<Message> = (0..every.min(total - done)).map(|_| generator.message()).collect();
        let docs: Vec<Doc> = batch
            .into_iter()
            .enumerate()
            .map(|(k, m)| {
                let mine = is_mine.contains(&m.room);
                in_mine += usize::from(mine);
                words += m.body.split_whitespace().count();
                bytes += m.body.len();
                for (q, count) in matching.iter_mut().enumerate() {
                    if matcher.matches(q, &m.words) {
                        count.1 += 1;
                        count.0 += usize::from(mine);
                    }
                }
                let sender = if m.by_client {
                    format!("@rs_klient{}:localhost", m.room)
                } else {
                    format!("@c_beratung{}:localhost", m.room % 300)
                };
                Doc {
                    event_id: format!("${}", pseudo_id((done + k) as u64, 43)),
                    room_id: all_rooms[m.room].clone(),
                    institution: INSTITUTION.into(),
                    category: category(m.room).into(),
                    sender,
                    ts: m.ts,
                    body: m.body,
                    kind: DocKind::Message,
                }
            })
            .collect();
        generating += t.elapsed();

        let t = Instant::now();
        let n = docs.len();
        let last_ts = docs.last().map_or(0, |d| d.ts);
        for d in docs {
            ix.put(d, 1).expect("put");
        }
        ix.commit(last_ts).expect("commit");
        commits += 1;
        anon_peak = anon_peak.max(rss_kib("RssAnon:"));
        // The service's commit job empties the trash every 20 commits.
        if commits % 20 == 0 {
            ix.empty_trash().expect("empty the trash");
        }
        indexing += t.elapsed();
        done += n;
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("{done} indexed, {:.0} /s", done as f64 / indexing.as_secs_f64());
            last_report = Instant::now();
        }
    }
    let t = Instant::now();
    ix.empty_trash().expect("empty the trash");
    indexing += t.elapsed();
    let rate = total as f64 / indexing.as_secs_f64();
    let (size, segments) = disk_usage(dir.path());
    let peak_indexing = rss_kib("VmHWM:");
    assert_eq!(ix.count().expect("count"), total, "every message is in the index");
    eprintln!(
        "indexed {total} in {:.1} s ({rate:.0} /s), {} MiB on disk in {segments} segments, VmHWM {} MiB",
        indexing.as_secs_f64(),
        size >> 20,
        peak_indexing >> 10
    );

    let now = START_MS + YEAR_MS;
    table.push_str(&format!(
        "**{} messages** ({} words, {} MiB of text; vocabulary of {} forms) in {rooms} rooms of 4 \
         categories, one institution; the counsellor's {mine} rooms hold {} of them.\n\n",
        thousands(total),
        thousands(words),
        bytes >> 20,
        thousands(generator.vocab.words.len()),
        thousands(in_mine),
    ));
    table.push_str("| indexing | value |\n|---|---:|\n");
    table.push_str(&format!(
        "| messages per second (put + commit every {}; generating them not counted) | {} |\n",
        thousands(every),
        thousands(rate as usize)
    ));
    table.push_str(&format!(
        "| time to index all | {:.1} s (generating them: {:.1} s more) |\n",
        indexing.as_secs_f64(),
        generating.as_secs_f64()
    ));
    table.push_str(&format!(
        "| index on disk | {} MiB in {segments} segments ({:.1}× the text; {} bytes a message) |\n",
        size >> 20,
        size as f64 / bytes.max(1) as f64,
        size / total.max(1) as u64
    ));
    table.push_str(&format!(
        "| peak resident memory while indexing (VmHWM; the index's mapped files count) | {} MiB |\n",
        peak_indexing >> 10
    ));
    table.push_str(&format!(
        "| of it anonymous memory, the most after a commit (RssAnon) | {} MiB |\n\n",
        anon_peak >> 10
    ));

    table.push_str(&format!(
        "| query | typed | matching messages: {mine} rooms / all | {mine} rooms: p50 / p99 (ms) | all \
         {rooms} rooms: p50 / p99 (ms) | first search, {mine} / all (ms) |\n|---|---|---:|---:|---:|---:|\n"
    ));
    let mut worst = [(0.0, ""); 2];
    for (k, ((label, typed), q)) in CASES.iter().zip(queries).enumerate() {
        let a = time_search(&ix, INSTITUTION, &my_room_ids, q, runs, now);
        let b = time_search(&ix, INSTITUTION, &all_rooms, q, runs, now);
        eprintln!("{label}: {mine} rooms {} ms, all rooms {} ms", a.cell(), b.cell());
        for (w, t) in worst.iter_mut().zip([&a, &b]) {
            if t.p99 > w.0 {
                *w = (t.p99, *label);
            }
        }
        table.push_str(&format!(
            "| {label} | {} | {} / {} | {} | {} | {:.1} / {:.1} |\n",
            quoted(typed),
            thousands(matching[k].0),
            thousands(matching[k].1),
            a.cell(),
            b.cell(),
            a.first,
            b.first
        ));
    }
    table.push_str(&format!(
        "\n{runs} runs of each query, {LIMIT} hits asked for (the route's default), each hit loaded with \
         its snippet; resident memory after the queries {} MiB (VmRSS: {} MiB anonymous, {} MiB of \
         the index's mapped files), peak {} MiB (VmHWM).\n\n",
        rss_kib("VmRSS:") >> 10,
        rss_kib("RssAnon:") >> 10,
        rss_kib("RssFile:") >> 10,
        rss_kib("VmHWM:") >> 10
    ));
    Large { rate, worst_p99: worst, mine, rooms }
}

// ---- 4.: the same queries against Synapse ----------------------------------------------------

/// What the Synapse part measured, for the aims.
struct Small {
    accepted_rate: f64,
}

async fn against_synapse(table: &mut String, queries: &[Query]) -> Option<Small> {
    let wanted = env_usize("BENCH_SYNAPSE_MESSAGES", 20_000);
    if wanted == 0 {
        return None;
    }
    let seconds = env_usize("BENCH_SYNAPSE_SECONDS", 240) as u64;
    let room_count = env_usize("BENCH_SYNAPSE_ROOMS", 10).max(1);
    let synapse_runs = env_usize("BENCH_SYNAPSE_RUNS", 100).max(1);
    let runs = env_usize("BENCH_RUNS", 200).max(1);
    let in_flight = env_usize("BENCH_SYNAPSE_IN_FLIGHT", 4).max(1);

    let svc = TestService::prepare(|c| c.logging.level = "warn".into()).await;
    let child = svc.spawn_binary().await;
    let inst = svc.institution("Suchbank").await;
    let anna = svc.counsellor(&inst, "Anna Suche").await;
    let mut rooms = Vec::new();
    let mut clients = Vec::new();
    for k in 0..room_count {
        let client = svc.client(&inst, &format!("Klientin {k}")).await;
        let (s, v) = anna.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
        assert_eq!(s, 200, "{v}");
        let room = v["room_id"].as_str().expect("room").to_owned();
        eventually("the client in the chat", Duration::from_secs(30), || async {
            anna.joined_members(&rid(&room)).await.contains(&client).then_some(())
        })
        .await;
        rooms.push(room);
        clients.push(client);
    }

    // The first messages of the same stream, each into the chat its room maps to.
    let mut generator =
        Generator::new(env_usize("BENCH_ROOMS", 2_000).max(1), env_usize("BENCH_MESSAGES", 1_000_000));
    let messages: Vec<Message> = (0..wanted).map(|_| generator.message()).collect();
    let hs = svc.hs_client();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut sent: Vec<(usize, String)> = futures::stream::iter(messages.iter().enumerate())
        .take_while(|_| futures::future::ready(Instant::now() < deadline))
        .map(|(i, m)| {
            let (hs, room) = (hs.clone(), rooms[m.room % room_count].clone());
            let who = if m.by_client { clients[m.room % room_count].clone() } else { anna.user_id.clone() };
            let content = json!({"msgtype": "m.text", "body": m.body});
            async move {
                let txn =
                    assisto_appservice::matrix::homeserver::TxnId::derived(&format!("{room}/{i}"), "search");
                let r = hs.send_event(&room, &who, "m.room.message", &txn, &content).await.expect("send");
                (i, r.event_id)
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let feeding = started.elapsed().as_secs_f64();
    sent.sort();
    let accepted = sent.len();
    let accepted_rate = accepted as f64 / feeding;
    eprintln!("Synapse accepted {accepted} messages in {feeding:.0} s ({accepted_rate:.0} /s)");

    // A word no generated message has, once per chat, last: when assisto's search finds
    // all of them, it has every message before them.
    let marker = format!("suchmarke{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    for (k, room) in rooms.iter().enumerate() {
        let txn = assisto_appservice::matrix::homeserver::TxnId::derived(&format!("{room}/marker"), "search");
        hs.send_event(
            room,
            &anna.user_id,
            "m.room.message",
            &txn,
            &json!({"msgtype": "m.text", "body": format!("{marker} {k}")}),
        )
        .await
        .expect("send the marker");
    }
    let markers_sent = Instant::now();
    let token = anna.openid_token().await;
    let http = reqwest::Client::new();
    let ours = |q: String| {
        let req = http
            .get(format!("{}/_assisto/search/v1/search?q={}&limit={LIMIT}", svc.url(), enc(&q)))
            .bearer_auth(&token)
            .send();
        async move {
            let r = req.await.expect("search");
            assert_eq!(r.status(), 200, "assisto's search");
            r.json::<Value>().await.expect("json")
        }
    };
    eventually("assisto to have indexed every message", Duration::from_secs(600), || {
        let found = ours(format!("{marker} "));
        async move { (found.await["messages"].as_array().map_or(0, Vec::len) >= room_count).then_some(()) }
    })
    .await;
    let searchable_after = markers_sent.elapsed().as_secs_f64();

    // Our index of exactly the messages Synapse accepted.
    let dir = tempfile::Builder::new().prefix("search-bench-small-").tempdir().expect("tempdir");
    let ix = SearchIndex::open(dir.path()).expect("open the index");
    let t = Instant::now();
    for chunk in sent.chunks(10_000) {
        for (i, event_id) in chunk {
            let m = &messages[*i];
            let k = m.room % room_count;
            let sender = if m.by_client { clients[k].clone() } else { anna.user_id.clone() };
            let doc = Doc {
                event_id: event_id.clone(),
                room_id: rooms[k].clone(),
                institution: inst.id.clone(),
                category: "clients".into(),
                sender,
                ts: m.ts,
                body: m.body.clone(),
                kind: DocKind::Message,
            };
            ix.put(doc, 1).expect("put");
        }
        ix.commit(chunk.last().map_or(0, |(i, _)| messages[*i].ts)).expect("commit");
    }
    let small_rate = accepted as f64 / t.elapsed().as_secs_f64();
    let matcher = Matcher::new(&generator.vocab, queries);

    let access = anna.client.access_token().expect("logged in");
    let search_url = format!("{}/_matrix/client/v3/search", assisto_tests::synapse().url);
    table.push_str(&format!(
        "**The same queries against Synapse**, on the first {} of the same messages (as many as \
         Synapse accepted within {seconds} s, of {} asked for), in {room_count} client chats of one \
         counsellor, who searches them all.\n\n",
        thousands(accepted),
        thousands(wanted)
    ));
    table.push_str(
        "| query | typed | matching messages (ours) / Synapse's count | Synapse `POST /search`: \
         p50 / p99 (ms) | assisto `GET /search` (HTTP): p50 / p99 (ms) | our index in-process: \
         p50 / p99 (ms) |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    let now = START_MS + YEAR_MS;
    let mut synapse_n = usize::MAX;
    for (k, ((label, typed), q)) in CASES.iter().zip(queries).enumerate() {
        let matching = sent.iter().filter(|(i, _)| matcher.matches(k, &messages[*i].words)).count();
        let body = json!({"search_categories": {"room_events": {
            "search_term": typed, "order_by": "rank", "filter": {"limit": LIMIT, "rooms": rooms},
        }}});
        let mut samples = Vec::new();
        let mut count = Value::Null;
        let until = Instant::now() + Duration::from_secs(60);
        while samples.len() < synapse_runs && Instant::now() < until {
            let t = Instant::now();
            let r = http.post(&search_url).bearer_auth(&access).json(&body).send().await.expect("search");
            assert_eq!(r.status(), 200, "Synapse's search");
            let v: Value = r.json().await.expect("json");
            samples.push(t.elapsed().as_secs_f64());
            count = v["search_categories"]["room_events"]["count"].clone();
        }
        let synapse = Timing::of(samples);
        synapse_n = synapse_n.min(synapse.n);
        let mut samples = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            std::hint::black_box(ours(typed.to_string()).await);
            samples.push(t.elapsed().as_secs_f64());
        }
        let http_ours = Timing::of(samples);
        let inproc = time_search(&ix, &inst.id, &rooms, q, runs, now);
        eprintln!(
            "{label}: Synapse {} ms ({} runs), assisto HTTP {} ms, in-process {} ms",
            synapse.cell(),
            synapse.n,
            http_ours.cell(),
            inproc.cell()
        );
        table.push_str(&format!(
            "| {label} | {} | {} / {} | {} | {} | {} |\n",
            quoted(typed),
            thousands(matching),
            count.as_u64().map_or_else(|| count.to_string(), |c| thousands(c as usize)),
            synapse.cell(),
            http_ours.cell(),
            inproc.cell()
        ));
    }
    table.push_str(&format!(
        "\nSynapse: at least {synapse_n} runs per query (at most {synapse_runs}, and at most 60 s per \
         query); assisto: {runs}. Synapse on SQLite (FTS4) matches whole words only: no stemming, no \
         compounds, no prefixes (\"Sch\" finds nothing), so its counts are lower than ours.\n\n"
    ));
    table.push_str("| delivery and indexing | messages per second |\n|---|---:|\n");
    table.push_str(&format!(
        "| Synapse accepting messages (appservice `PUT /send`, {in_flight} in flight; assisto receiving and \
         processing them meanwhile) | {} ({} in {feeding:.0} s) |\n",
        thousands(accepted_rate as usize),
        thousands(accepted)
    ));
    table.push_str(&format!(
        "| our index, the same {} messages (put + commit every 10,000) | {} |\n\n",
        thousands(accepted),
        thousands(small_rate as usize)
    ));
    table.push_str(&format!(
        "assisto had every message searchable {searchable_after:.1} s after the last was accepted.\n\n"
    ));
    drop(child);
    Some(Small { accepted_rate })
}

fn main() {
    let queries: Vec<Query> = CASES.iter().map(|(_, typed)| parse_query(typed).expect("a query")).collect();
    let mut table = String::new();
    let large = large(&mut table, &queries);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let small = runtime.block_on(against_synapse(&mut table, &queries));

    let met = |ok: bool| if ok { "met" } else { "**not met**" };
    table.push_str("The aims, in this run:\n\n");
    let total = thousands(env_usize("BENCH_MESSAGES", 1_000_000));
    for ((p99, label), within) in large
        .worst_p99
        .iter()
        .zip([format!("a counsellor's {} rooms", large.mine), format!("all {} rooms", large.rooms)])
    {
        table.push_str(&format!(
            "- {}: query p99 under 50 ms at {total} messages, within {within} (the slowest p99: {p99:.1} ms, \
             {label})\n",
            met(*p99 < 50.0),
        ));
    }
    match small {
        Some(s) => table.push_str(&format!(
            "- {}: indexing faster than Synapse delivers events ({} messages/s against Synapse's {} \
             accepted/s, {:.0}×)\n",
            met(large.rate > s.accepted_rate),
            thousands(large.rate as usize),
            thousands(s.accepted_rate as usize),
            large.rate / s.accepted_rate
        )),
        None => table
            .push_str("- indexing against Synapse's delivery: not measured (`BENCH_SYNAPSE_MESSAGES=0`)\n"),
    }
    print!("{table}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(out, table).expect("write the table");
    }
}
