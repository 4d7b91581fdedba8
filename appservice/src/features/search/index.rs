//! The embedded full-text index (tantivy): one document per message (and per group name),
//! analysed German-aware by [`assisto_core::search`], searched within the rooms a
//! counsellor may see.
//!
//! Fields: `text` (the words' keys: folded and stemmed), `parts` (the keys' endings, for
//! compounds), `exact` (the plain words, for prefixes), and for filtering and display the
//! event, room, institution, category, sender, time and the body itself (stored without
//! compression, so that what is there can be checked for — see below).
//!
//! **Deletion leaves nothing.** A deleted document stays in its segment until the segment is
//! merged, and a merged segment's files are deleted by tantivy while a search may still read
//! them. So [`ScrubbingDirectory`] never unlinks a segment file at once: it moves it to
//! `trash/`, and [`SearchIndex::empty_trash`] overwrites each with zeros before unlinking it,
//! once no searcher can still read it (after a reload, with no search running).
//! [`SearchIndex::scrub`] merges every segment that holds deleted documents and empties the
//! trash: after it, the deleted texts are in no file of the index.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use assisto_core::search::{self as text, Query as TextQuery};
use std::collections::HashSet;
use tantivy::collector::{Count, FilterCollector, TopDocs};
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, RamDirectory, WatchCallback, WatchHandle,
    WritePtr,
};
use tantivy::query::{
    BooleanQuery, BoostQuery, Occur, Query, RangeQuery, RegexQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED, STRING,
};
use tantivy::store::Compressor;
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{
    DocAddress, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, TantivyDocument, Term,
};

/// What the index keeps of a message (or of a group's name: `kind` = [`DocKind::Room`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doc {
    /// The event (for a group's name: the room ID).
    pub event_id: String,
    /// The room.
    pub room_id: String,
    /// The room's institution.
    pub institution: String,
    /// The room's category (`live`, `clients`, `colleagues`, `groups`).
    pub category: String,
    /// Who wrote it (for a name: who set it).
    pub sender: String,
    /// When (ms).
    pub ts: i64,
    /// The text.
    pub body: String,
    /// Message or name.
    pub kind: DocKind,
}

/// What a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    /// A message.
    Message,
    /// A room's name.
    Room,
}

impl DocKind {
    fn as_str(self) -> &'static str {
        match self {
            DocKind::Message => "message",
            DocKind::Room => "room",
        }
    }
}

/// Where a search looks: documents of `kind` in `rooms` of `institution`, optionally of one
/// category.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// The institution (every document's institution is checked too).
    pub institution: &'a str,
    /// The rooms the searcher may see.
    pub rooms: &'a [String],
    /// Only this category (`live`, `clients`, `colleagues`, `groups`).
    pub category: Option<&'a str>,
    /// Messages or names.
    pub kind: DocKind,
}

/// A hit: the document, its score and its snippet.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The document.
    pub doc: Doc,
    /// Relevance, recency included.
    pub score: f32,
    /// The excerpt with its highlights.
    pub snippet: text::Snippet,
}

/// Index errors (tantivy's, or the directory's).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Another process holds the index for writing.
    #[error("the search index at {0} is in use by another process (is the service running?)")]
    Busy(PathBuf),
    /// The index was written by an older version (its fields differ): it is rebuilt.
    #[error("the search index was written by an older version")]
    OldSchema,
    /// Anything else.
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// The file system.
    #[error("search index: {0}")]
    Io(#[from] io::Error),
}

#[derive(Clone, Copy)]
struct Fields {
    event_id: Field,
    room_id: Field,
    institution: Field,
    category: Field,
    kind: Field,
    sender: Field,
    ts: Field,
    room_key: Field,
    generation: Field,
    body: Field,
    text: Field,
    parts: Field,
    exact: Field,
}

const KEY_TOKENIZER: &str = "assisto_de_key";
const PARTS_TOKENIZER: &str = "assisto_de_parts";
const PLAIN_TOKENIZER: &str = "assisto_de_plain";

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let analysed = |tokenizer: &str, record: IndexRecordOption| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default().set_tokenizer(tokenizer).set_index_option(record),
        )
    };
    let fields = Fields {
        event_id: b.add_text_field("event_id", STRING | STORED),
        room_id: b.add_text_field("room_id", STRING | STORED),
        institution: b.add_text_field("institution", STRING | STORED),
        category: b.add_text_field("category", STRING | STORED),
        kind: b.add_text_field("kind", STRING | STORED),
        sender: b.add_text_field("sender", STRING | STORED),
        ts: b.add_i64_field("ts", FAST | STORED),
        room_key: b.add_u64_field("room_key", FAST),
        generation: b.add_i64_field("generation", INDEXED | FAST),
        body: b.add_text_field("body", STORED),
        text: b.add_text_field("text", analysed(KEY_TOKENIZER, IndexRecordOption::WithFreqs)),
        parts: b.add_text_field("parts", analysed(PARTS_TOKENIZER, IndexRecordOption::WithFreqs)),
        exact: b.add_text_field("exact", analysed(PLAIN_TOKENIZER, IndexRecordOption::Basic)),
    };
    (b.build(), fields)
}

/// The German analysis as a tantivy tokenizer: every word of the text as its key, its
/// parts, or its plain form.
#[derive(Clone, Copy)]
struct German(Mode);

#[derive(Clone, Copy)]
enum Mode {
    Key,
    Parts,
    Plain,
}

struct Tokens {
    tokens: Vec<Token>,
    at: usize,
}

impl TokenStream for Tokens {
    fn advance(&mut self) -> bool {
        self.at += 1;
        self.at <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.at - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.at - 1]
    }
}

impl Tokenizer for German {
    type TokenStream<'a> = Tokens;

    fn token_stream<'a>(&'a mut self, s: &'a str) -> Tokens {
        let mut tokens = Vec::new();
        for (position, w) in text::words(s).enumerate() {
            let token = |t: String| Token {
                offset_from: w.start,
                offset_to: w.end,
                position,
                text: t,
                position_length: 1,
            };
            match self.0 {
                Mode::Key => tokens.push(token(text::key(w.text))),
                Mode::Plain => tokens.push(token(text::plain(w.text))),
                Mode::Parts => {
                    let k = text::key(w.text);
                    tokens.extend(text::parts(&k).map(|p| token(p.to_owned())));
                }
            }
        }
        Tokens { tokens, at: 0 }
    }
}

/// How long a commit's payload says the index is complete for: every event handed to the
/// index before this time (ms) is in it.
fn payload(indexed_before: i64) -> String {
    serde_json::json!({ "indexed_before": indexed_before }).to_string()
}

/// The index.
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Inner>,
}

struct Inner {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    fields: Fields,
    /// Searches read under it; [`SearchIndex::empty_trash`] takes it for writing to know no
    /// searcher of an older generation is still reading.
    gate: RwLock<()>,
    /// Documents added since the last commit (edits of them find them here).
    pending: Mutex<HashMap<String, Doc>>,
    dirty: AtomicBool,
    trash: Option<PathBuf>,
}

/// Heap of the writer.
const WRITER_HEAP: usize = 50_000_000;

impl SearchIndex {
    /// Opens (or creates) the index in `dir` (mode 0700).
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        fs::create_dir_all(dir.join("trash"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let mmap = MmapDirectory::open(dir).map_err(|e| IndexError::Io(io::Error::other(e.to_string())))?;
        let scrubbing = ScrubbingDirectory { inner: mmap, root: dir.to_owned() };
        // Leftovers of a crash: nothing reads them.
        scrub_files(&trash_files(&dir.join("trash"))?)?;
        match Self::build(Box::new(scrubbing.clone()), Some(dir.join("trash")), dir) {
            Err(IndexError::OldSchema) | Err(IndexError::Tantivy(tantivy::TantivyError::SchemaError(_))) => {
                // Derived data: an index of an older version is scrubbed away and built
                // again from the homeserver (the service does that at start for a new one).
                tracing::warn!("the search index was written by an older version: it is rebuilt");
                let files: Vec<PathBuf> = fs::read_dir(dir)?
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.path())
                    .collect();
                scrub_files(&files)?;
                Self::build(Box::new(scrubbing), Some(dir.join("trash")), dir)
            }
            other => other,
        }
    }

    /// An index in memory (tests).
    pub fn in_memory() -> Result<Self, IndexError> {
        Self::build(Box::new(RamDirectory::create()), None, Path::new("memory"))
    }

    fn build(dir: Box<dyn Directory>, trash: Option<PathBuf>, at: &Path) -> Result<Self, IndexError> {
        let (schema, fields) = schema();
        let settings = IndexSettings { docstore_compression: Compressor::None, ..Default::default() };
        let index = Index::builder().schema(schema).settings(settings).open_or_create(dir)?;
        if index.schema() != self::schema().0 {
            return Err(IndexError::OldSchema);
        }
        let tokenizers = index.tokenizers();
        tokenizers.register(KEY_TOKENIZER, German(Mode::Key));
        tokenizers.register(PARTS_TOKENIZER, German(Mode::Parts));
        tokenizers.register(PLAIN_TOKENIZER, German(Mode::Plain));
        let writer = match index.writer_with_num_threads(1, WRITER_HEAP) {
            Ok(w) => w,
            Err(tantivy::TantivyError::LockFailure(LockError::LockBusy, _)) => {
                return Err(IndexError::Busy(at.to_owned()))
            }
            Err(e) => return Err(e.into()),
        };
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self {
            inner: Arc::new(Inner {
                index,
                reader,
                writer: Mutex::new(writer),
                fields,
                gate: RwLock::new(()),
                pending: Mutex::new(HashMap::new()),
                dirty: AtomicBool::new(false),
                trash,
            }),
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, IndexWriter<TantivyDocument>> {
        self.inner.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Doc>> {
        self.inner.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Until when (ms) the last commit holds every event handed to the index; `None` for an
    /// index never committed.
    pub fn indexed_before(&self) -> Option<i64> {
        let meta = self.inner.index.load_metas().ok()?;
        let p: serde_json::Value = serde_json::from_str(meta.payload.as_deref()?).ok()?;
        p["indexed_before"].as_i64()
    }

    /// Adds a document, or replaces the one with its event ID. `generation`: see
    /// [`Self::drop_older`].
    pub fn put(&self, doc: Doc, generation: i64) -> Result<(), IndexError> {
        let f = self.inner.fields;
        let mut d = TantivyDocument::default();
        d.add_text(f.event_id, &doc.event_id);
        d.add_text(f.room_id, &doc.room_id);
        d.add_text(f.institution, &doc.institution);
        d.add_text(f.category, &doc.category);
        d.add_text(f.kind, doc.kind.as_str());
        d.add_text(f.sender, &doc.sender);
        d.add_i64(f.ts, doc.ts);
        d.add_u64(f.room_key, room_key(&doc.room_id));
        d.add_i64(f.generation, generation);
        d.add_text(f.body, &doc.body);
        d.add_text(f.text, &doc.body);
        d.add_text(f.parts, &doc.body);
        d.add_text(f.exact, &doc.body);
        {
            let w = self.writer();
            w.delete_term(Term::from_field_text(f.event_id, &doc.event_id));
            w.add_document(d)?;
        }
        self.pending().insert(doc.event_id.clone(), doc);
        self.inner.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// The document of an event (pending or committed).
    pub fn get(&self, event_id: &str) -> Result<Option<Doc>, IndexError> {
        if let Some(d) = self.pending().get(event_id) {
            return Ok(Some(d.clone()));
        }
        let _g = self.inner.gate.read().unwrap_or_else(|p| p.into_inner());
        let searcher = self.inner.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.inner.fields.event_id, event_id),
            IndexRecordOption::Basic,
        );
        let top = searcher.search(&q, &TopDocs::with_limit(1).order_by_score())?;
        match top.first() {
            Some((_, addr)) => Ok(Some(self.doc(&searcher, *addr)?)),
            None => Ok(None),
        }
    }

    fn remove(&self, field: Field, value: &str) {
        self.writer().delete_term(Term::from_field_text(field, value));
        self.pending().retain(|_, d| match field {
            f if f == self.inner.fields.event_id => d.event_id != value,
            f if f == self.inner.fields.room_id => d.room_id != value,
            _ => d.sender != value,
        });
        self.inner.dirty.store(true, Ordering::Release);
    }

    /// Removes an event's document.
    pub fn remove_event(&self, event_id: &str) {
        self.remove(self.inner.fields.event_id, event_id);
    }

    /// Removes every document of a room.
    pub fn remove_room(&self, room_id: &str) {
        self.remove(self.inner.fields.room_id, room_id);
    }

    /// Removes every document a user wrote.
    pub fn remove_sender(&self, user_id: &str) {
        self.remove(self.inner.fields.sender, user_id);
    }

    /// Removes every document put with a generation before `generation` (what a rebuild
    /// did not put again).
    pub fn drop_older(&self, generation: i64) -> Result<(), IndexError> {
        let q = RangeQuery::new(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(Term::from_field_i64(self.inner.fields.generation, generation)),
        );
        self.writer().delete_query(Box::new(q))?;
        self.pending().clear();
        self.inner.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether something changed since the last commit.
    pub fn is_dirty(&self) -> bool {
        self.inner.dirty.load(Ordering::Acquire)
    }

    /// Commits what was put and removed, and lets searches see it. `indexed_before`: every
    /// event handed to the index before this time (ms) is in the commit.
    pub fn commit(&self, indexed_before: i64) -> Result<(), IndexError> {
        {
            let mut w = self.writer();
            self.inner.dirty.store(false, Ordering::Release);
            let mut prepared = w.prepare_commit()?;
            prepared.set_payload(&payload(indexed_before));
            prepared.commit()?;
            self.pending().clear();
        }
        self.inner.reader.reload()?;
        Ok(())
    }

    /// Merges every segment that holds deleted documents and overwrites the files they were
    /// in: after it, nothing removed is in any file of the index.
    pub fn scrub(&self, indexed_before: i64) -> Result<(), IndexError> {
        self.commit(indexed_before)?;
        for _ in 0..50 {
            self.inner.reader.reload()?;
            let searcher = self.inner.reader.searcher();
            let with_deletes: Vec<_> = searcher
                .segment_readers()
                .iter()
                .filter(|s| s.num_deleted_docs() > 0)
                .map(|s| s.segment_id())
                .collect();
            drop(searcher);
            if with_deletes.is_empty() {
                break;
            }
            // A merge tantivy started itself may hold a segment: wait and look again.
            let merged = self.writer().merge(&with_deletes).wait();
            if merged.is_err() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        self.writer().garbage_collect_files().wait()?;
        self.empty_trash()
    }

    /// Overwrites and unlinks the files tantivy deleted, once no searcher can read them.
    pub fn empty_trash(&self) -> Result<(), IndexError> {
        let Some(trash) = &self.inner.trash else { return Ok(()) };
        // Listed before the reload: every file listed was deleted after a commit that no
        // longer names it, which the reload then reads.
        let files = trash_files(trash)?;
        if files.is_empty() {
            return Ok(());
        }
        {
            let _g = self.inner.gate.write().unwrap_or_else(|p| p.into_inner());
            self.inner.reader.reload()?;
        }
        scrub_files(&files)?;
        Ok(())
    }

    /// How many documents searches see.
    pub fn count(&self) -> Result<usize, IndexError> {
        let _g = self.inner.gate.read().unwrap_or_else(|p| p.into_inner());
        Ok(self.inner.reader.searcher().search(&tantivy::query::AllQuery, &Count)?)
    }

    fn doc(&self, searcher: &tantivy::Searcher, addr: DocAddress) -> Result<Doc, IndexError> {
        let f = self.inner.fields;
        let d: TantivyDocument = searcher.doc(addr)?;
        let s = |field: Field| d.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        Ok(Doc {
            event_id: s(f.event_id),
            room_id: s(f.room_id),
            institution: s(f.institution),
            category: s(f.category),
            sender: s(f.sender),
            ts: d.get_first(f.ts).and_then(|v| v.as_i64()).unwrap_or_default(),
            body: s(f.body),
            kind: if s(f.kind) == "room" { DocKind::Room } else { DocKind::Message },
        })
    }

    /// Whether `rooms` hold less than an eighth of the index's documents (counted only for up
    /// to [`FEW_ROOMS`] rooms; more are taken as a large part).
    fn rooms_are_a_small_part(
        &self,
        searcher: &tantivy::Searcher,
        rooms: &[String],
    ) -> Result<bool, IndexError> {
        if rooms.len() > FEW_ROOMS {
            return Ok(false);
        }
        let mut docs = 0u64;
        for r in rooms {
            docs += searcher.doc_freq(&Term::from_field_text(self.inner.fields.room_id, r))?;
        }
        Ok(docs.saturating_mul(8) < searcher.num_docs())
    }

    /// The best `limit` documents within `scope` that match every word of `query`, by
    /// relevance and recency (`now`, ms).
    pub fn search(
        &self,
        scope: &Scope<'_>,
        query: &TextQuery,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Hit>, IndexError> {
        let Scope { institution, rooms, category, kind } = *scope;
        if rooms.is_empty() || query.words.is_empty() {
            return Ok(Vec::new());
        }
        let f = self.inner.fields;
        let term = |field: Field, v: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_text(field, v), IndexRecordOption::WithFreqs))
        };
        let boost = |q: Box<dyn Query>, b: f32| -> (Occur, Box<dyn Query>) {
            (Occur::Should, Box::new(BoostQuery::new(q, b)))
        };
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for w in &query.words {
            let mut any = vec![boost(term(f.text, &w.key), 3.0), boost(term(f.exact, &w.plain), 1.0)];
            if w.key.chars().count() >= text::PART_MIN {
                any.push(boost(term(f.parts, &w.key), 1.0));
            }
            if w.prefix && w.plain.chars().count() >= PREFIX_MIN {
                let pattern = format!("{}.*", regex_escape(&w.plain));
                any.push(boost(Box::new(RegexQuery::from_pattern(&pattern, f.exact)?), 1.5));
                if w.plain.chars().count() >= text::PART_MIN {
                    any.push(boost(Box::new(RegexQuery::from_pattern(&pattern, f.parts)?), 0.5));
                }
            }
            must.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        must.push((Occur::Must, term(f.institution, institution)));
        must.push((Occur::Must, term(f.kind, kind.as_str())));
        if let Some(c) = category {
            must.push((Occur::Must, term(f.category, c)));
        }
        let _g = self.inner.gate.read().unwrap_or_else(|p| p.into_inner());
        let searcher = self.inner.reader.searcher();
        let top = TopDocs::with_limit(limit.max(1)).tweak_score(move |segment: &tantivy::SegmentReader| {
            let ts = segment.fast_fields().i64("ts").map(|c| c.first_or_default_col(0)).ok();
            move |doc: tantivy::DocId, score: tantivy::Score| {
                let at = ts.as_ref().map_or(now, |c| c.get_val(doc));
                score * recency(now, at)
            }
        });
        // Two ways to keep to the visible rooms, each best in its own case (measured in
        // docs/benchmarks.md): a term set over the rooms reads every posting of every
        // visible room, cheap while they hold a small part of the index (a counsellor's own
        // rooms); a fast-field check per matching document costs what the words match,
        // cheap when the rooms hold most of it.
        let top = if self.rooms_are_a_small_part(&searcher, rooms)? {
            let room_terms = rooms.iter().map(|r| Term::from_field_text(f.room_id, r));
            must.push((Occur::Must, Box::new(TermSetQuery::new(room_terms))));
            searcher.search(&BooleanQuery::new(must), &top)?
        } else {
            let keys: Arc<HashSet<u64>> = Arc::new(rooms.iter().map(|r| room_key(r)).collect());
            let collector = FilterCollector::new("room_key".to_owned(), move |k: u64| keys.contains(&k), top);
            searcher.search(&BooleanQuery::new(must), &collector)?
        };
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc = self.doc(&searcher, addr)?;
            // The key is a hash: the room itself decides (a collision drops a hit, never
            // shows another room's).
            if doc.institution != institution || !rooms.contains(&doc.room_id) {
                continue;
            }
            let snippet = text::snippet(&doc.body, query);
            hits.push(Hit { doc, score, snippet });
        }
        Ok(hits)
    }
}

/// A room's key in the `room_key` fast field: the first 8 bytes of its ID's SHA-256.
fn room_key(room_id: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(room_id.as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Up to how many visible rooms their size is counted (see `rooms_are_a_small_part`).
const FEW_ROOMS: usize = 200;

/// Shortest prefix searched as a prefix (shorter ones match too much to be of use).
pub const PREFIX_MIN: usize = 3;

/// Today's messages count twice, a month old one and a half, a year old about 1.1 times.
fn recency(now: i64, at: i64) -> f32 {
    let days = ((now - at).max(0) as f32) / 86_400_000.0;
    1.0 + 1.0 / (1.0 + days / 30.0)
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !c.is_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn trash_files(trash: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(trash)? {
        let e = e?;
        if e.file_type()?.is_file() {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// Overwrites each file with zeros, syncs it, and unlinks it.
fn scrub_files(files: &[PathBuf]) -> io::Result<()> {
    let zeros = vec![0u8; 64 * 1024];
    for p in files {
        let len = fs::metadata(p)?.len();
        let mut f = fs::OpenOptions::new().write(true).open(p)?;
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
        drop(f);
        fs::remove_file(p)?;
    }
    Ok(())
}

/// A memory-mapped directory whose deleted files go to `trash/` (see the module's text).
#[derive(Clone, Debug)]
struct ScrubbingDirectory {
    inner: MmapDirectory,
    root: PathBuf,
}

impl Directory for ScrubbingDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.inner.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        let from = self.root.join(path);
        let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
        if path.to_string_lossy().starts_with('.') || path.components().count() != 1 {
            return self.inner.delete(path);
        }
        match fs::rename(&from, self.root.join("trash").join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(DeleteError::FileDoesNotExist(path.to_owned()))
            }
            Err(e) => Err(DeleteError::IoError { io_error: Arc::new(e), filepath: path.to_owned() }),
        }
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        self.inner.open_write(path)
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.inner.atomic_write(path, data)
    }

    fn sync_directory(&self) -> io::Result<()> {
        self.inner.sync_directory()
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(watch_callback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(event: &str, room: &str, body: &str, ts: i64) -> Doc {
        Doc {
            event_id: event.into(),
            room_id: room.into(),
            institution: "inst".into(),
            category: "clients".into(),
            sender: "@anna:x".into(),
            ts,
            body: body.into(),
            kind: DocKind::Message,
        }
    }

    fn find(ix: &SearchIndex, rooms: &[&str], q: &str) -> Vec<String> {
        let rooms: Vec<String> = rooms.iter().map(|r| r.to_string()).collect();
        let q = text::parse_query(q).expect("in the test");
        let scope = Scope { institution: "inst", rooms: &rooms, category: None, kind: DocKind::Message };
        ix.search(&scope, &q, 10, 1_000_000)
            .expect("in the test")
            .into_iter()
            .map(|h| h.doc.event_id)
            .collect()
    }

    #[test]
    fn german_forms_compounds_and_prefixes_are_found_only_in_the_rooms_given() {
        let ix = SearchIndex::in_memory().expect("in the test");
        ix.put(doc("$1", "!a", "Ich brauche eine Beratung wegen meiner Schulden.", 1), 1)
            .expect("in the test");
        ix.put(doc("$2", "!a", "Die Schuldnerberatung hat morgen geöffnet.", 2), 1).expect("in the test");
        ix.put(doc("$3", "!b", "Beratungen gibt es auch im anderen Raum.", 3), 1).expect("in the test");
        ix.put(doc("$4", "!a", "Grüße an die Straße", 4), 1).expect("in the test");
        ix.commit(10).expect("in the test");
        let mut hits = find(&ix, &["!a"], "Beratungen ");
        hits.sort();
        assert_eq!(hits, ["$1", "$2"]);
        assert_eq!(find(&ix, &["!a", "!b"], "Beratungen ").len(), 3);
        assert_eq!(find(&ix, &["!a"], "Schuldnerber"), ["$2"]);
        assert_eq!(find(&ix, &["!a"], "strasse gruesse"), ["$4"]);
        assert!(find(&ix, &["!c"], "Beratung").is_empty());
        assert_eq!(ix.indexed_before(), Some(10));
    }

    #[test]
    fn edits_replace_and_removals_remove() {
        let ix = SearchIndex::in_memory().expect("in the test");
        ix.put(doc("$1", "!a", "Termin am Montag", 1), 1).expect("in the test");
        assert_eq!(ix.get("$1").expect("in the test").map(|d| d.ts), Some(1), "pending documents are found");
        ix.commit(5).expect("in the test");
        ix.put(doc("$1", "!a", "Termin am Dienstag", 1), 1).expect("in the test");
        ix.commit(6).expect("in the test");
        assert!(find(&ix, &["!a"], "Montag ").is_empty());
        assert_eq!(find(&ix, &["!a"], "Dienstag "), ["$1"]);
        assert_eq!(ix.count().expect("in the test"), 1);
        ix.remove_event("$1");
        ix.commit(7).expect("in the test");
        assert!(find(&ix, &["!a"], "Dienstag ").is_empty());
        ix.put(doc("$2", "!a", "alt", 1), 1).expect("in the test");
        ix.put(doc("$3", "!a", "neu", 1), 9).expect("in the test");
        ix.drop_older(5).expect("in the test");
        ix.commit(8).expect("in the test");
        assert!(find(&ix, &["!a"], "alt ").is_empty());
        assert_eq!(find(&ix, &["!a"], "neu "), ["$3"]);
    }

    #[test]
    fn a_scrub_leaves_no_removed_text_in_any_file() {
        let dir = tempfile::tempdir().expect("in the test");
        let ix = SearchIndex::open(dir.path()).expect("in the test");
        for i in 0..50 {
            ix.put(doc(&format!("$k{i}"), "!keep", "Bleibt stehen", i), 1).expect("in the test");
        }
        ix.commit(1).expect("in the test");
        ix.put(doc("$gone", "!gone", "Zwiebelkuchenrezept geheim", 60), 1).expect("in the test");
        ix.commit(2).expect("in the test");
        let contains = |needle: &[u8]| {
            walk(dir.path())
                .iter()
                .any(|p| fs::read(p).expect("in the test").windows(needle.len()).any(|w| w == needle))
        };
        assert!(contains(b"Zwiebelkuchenrezept"), "the test can see the text");
        ix.remove_room("!gone");
        ix.scrub(3).expect("in the test");
        assert!(!contains(b"Zwiebelkuchenrezept"), "the removed text is in no file");
        assert!(!contains(b"zwiebelkuchenrezept"), "nor its plain form");
        assert_eq!(find(&ix, &["!keep"], "bleibt ").len(), 10);
        drop(ix);
        let again = SearchIndex::open(dir.path()).expect("in the test");
        assert_eq!(again.count().expect("in the test"), 50);
        assert_eq!(again.indexed_before(), Some(3));
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).expect("in the test") {
            let p = e.expect("in the test").path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn an_index_of_an_older_version_is_scrubbed_and_made_anew() {
        let dir = tempfile::tempdir().expect("in the test");
        {
            let mut b = Schema::builder();
            let body = b.add_text_field("body", STORED);
            let old = Index::create_in_dir(dir.path(), b.build()).expect("in the test");
            let mut w: IndexWriter<TantivyDocument> =
                old.writer_with_num_threads(1, 15_000_000).expect("in the test");
            let mut d = TantivyDocument::default();
            d.add_text(body, "Altes Geheimnis");
            w.add_document(d).expect("in the test");
            w.commit().expect("in the test");
        }
        let ix = SearchIndex::open(dir.path()).expect("opened anew");
        assert_eq!(ix.count().expect("in the test"), 0);
        assert_eq!(ix.indexed_before(), None, "so the service rebuilds it");
        let old_text = walk(dir.path()).iter().any(|p| {
            fs::read(p).expect("in the test").windows(b"Geheimnis".len()).any(|w| w == b"Geheimnis")
        });
        assert!(!old_text, "the old index's text is in no file");
        ix.put(doc("$1", "!a", "neu", 1), 1).expect("in the test");
        ix.commit(1).expect("in the test");
        assert_eq!(find(&ix, &["!a"], "neu "), ["$1"]);
    }

    #[test]
    fn a_second_writer_is_refused_clearly() {
        let dir = tempfile::tempdir().expect("in the test");
        let _first = SearchIndex::open(dir.path()).expect("in the test");
        assert!(matches!(SearchIndex::open(dir.path()), Err(IndexError::Busy(_))));
    }
}
