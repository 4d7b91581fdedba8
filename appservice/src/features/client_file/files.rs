//! The file store: documents of the client file, on local disk.
//!
//! Layout under the configured directory:
//! - `documents/<client key>/<uuid>`: one file per document. The client key is a hash of the
//!   client's user ID, so deleting a client removes exactly one directory, and the deletion
//!   routine can check that nothing of the client is left.
//! - `tmp/<uuid>`: uploads being received; moved into place only once the whole upload is
//!   checked and recorded in the database, removed at start-up if a crash left any. So a
//!   file in `documents/` always has its entry (the entry may, after a crash, lack its file).
//!
//! Directories are created with mode 0700, files with 0600. Names, types and sizes live in
//! the database (`client_documents`); the store holds only bytes.

use std::{
    io,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};
use tokio::{fs, io::AsyncWriteExt};

/// The file store.
#[derive(Clone, Debug)]
pub struct FileStore {
    root: PathBuf,
}

/// A file being received into `tmp/`.
pub struct Staged {
    path: PathBuf,
    file: fs::File,
    size: u64,
    hash: Sha256,
    head: Vec<u8>,
}

/// How many leading bytes are kept to recognise a file's type.
const HEAD: usize = 8192;

impl Staged {
    /// Appends bytes.
    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.head.len() < HEAD {
            let take = (HEAD - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hash.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk).await
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The first bytes (up to 8 KiB), to recognise the type.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Flushes to disk and returns the SHA-256 (hex) of the content.
    pub async fn finish(&mut self) -> io::Result<String> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        Ok(hex::encode(self.hash.clone().finalize()))
    }

    /// Throws the upload away.
    pub async fn discard(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.path).await;
    }
}

impl FileStore {
    /// A store rooted at `root` (created if missing).
    pub async fn open(root: &Path) -> io::Result<Self> {
        let store = Self { root: root.to_owned() };
        for dir in [store.root.clone(), store.root.join("documents"), store.root.join("tmp")] {
            create_private_dir(&dir).await?;
        }
        // Uploads a crash interrupted are of no use to anyone.
        let mut tmp = fs::read_dir(store.root.join("tmp")).await?;
        while let Some(e) = tmp.next_entry().await? {
            let _ = fs::remove_file(e.path()).await;
        }
        Ok(store)
    }

    /// A handle on the store at `root` that touches nothing on disk (for the admin CLI,
    /// which runs beside the service and never reads or writes documents).
    pub fn at(root: &Path) -> Self {
        Self { root: root.to_owned() }
    }

    /// The store's directory of one client.
    fn client_dir(&self, client: &str) -> PathBuf {
        self.root.join("documents").join(client_key(client))
    }

    /// Starts receiving a file.
    pub async fn stage(&self) -> io::Result<Staged> {
        let path = self.root.join("tmp").join(uuid::Uuid::new_v4().simple().to_string());
        let file = private_file(&path).await?;
        Ok(Staged { path, file, size: 0, hash: Sha256::new(), head: Vec::new() })
    }

    /// A new storage key for a file of this client.
    pub fn new_key(&self, client: &str) -> String {
        format!("{}/{}", client_key(client), uuid::Uuid::new_v4().simple())
    }

    /// Moves a received file into place under a key from [`FileStore::new_key`].
    pub async fn commit(&self, staged: Staged, key: &str) -> io::Result<()> {
        let path = self.path_of(key).ok_or_else(|| io::Error::other("malformed storage key"))?;
        if let Some(dir) = path.parent() {
            create_private_dir(dir).await?;
        }
        drop(staged.file);
        fs::rename(&staged.path, path).await
    }

    /// The path of a stored file, if the key is well-formed.
    fn path_of(&self, key: &str) -> Option<PathBuf> {
        let (dir, name) = key.split_once('/')?;
        let hexish = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hexish(dir) && hexish(name)).then(|| self.root.join("documents").join(dir).join(name))
    }

    /// Opens a stored file.
    pub async fn open_file(&self, key: &str) -> io::Result<fs::File> {
        let path = self.path_of(key).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        fs::File::open(path).await
    }

    /// Removes a stored file; a file already gone is fine.
    pub async fn remove(&self, key: &str) -> io::Result<()> {
        let Some(path) = self.path_of(key) else { return Ok(()) };
        match fs::remove_file(path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes everything stored for a client; returns how many files were removed.
    pub async fn remove_client(&self, client: &str) -> io::Result<usize> {
        let dir = self.client_dir(client);
        let removed = self.count_client(client).await?;
        match fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        if fs::try_exists(&dir).await? {
            return Err(io::Error::other("the client's directory is still there after removing it"));
        }
        Ok(removed)
    }

    /// How many files are stored for a client.
    pub async fn count_client(&self, client: &str) -> io::Result<usize> {
        let mut n = 0;
        match fs::read_dir(self.client_dir(client)).await {
            Ok(mut entries) => {
                while entries.next_entry().await?.is_some() {
                    n += 1;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(n)
    }
}

/// The name of a client's directory: SHA-256 of the user ID, first 128 bits in hex.
fn client_key(client: &str) -> String {
    hex::encode(&Sha256::digest(client.as_bytes())[..16])
}

async fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(0o700);
    b.create(dir).await
}

async fn private_file(path: &Path) -> io::Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    o.open(path).await
}

/// The kinds of documents the client file accepts: extension, MIME type, and how the
/// content starts.
const KINDS: &[(&str, &str, Magic)] = &[
    ("pdf", "application/pdf", Magic::Prefix(b"%PDF-")),
    ("png", "image/png", Magic::Prefix(b"\x89PNG\r\n\x1a\n")),
    ("jpg", "image/jpeg", Magic::Prefix(b"\xff\xd8\xff")),
    ("jpeg", "image/jpeg", Magic::Prefix(b"\xff\xd8\xff")),
    ("gif", "image/gif", Magic::Prefix(b"GIF8")),
    ("webp", "image/webp", Magic::Webp),
    ("txt", "text/plain; charset=utf-8", Magic::Text),
    ("csv", "text/csv; charset=utf-8", Magic::Text),
    ("rtf", "application/rtf", Magic::Prefix(b"{\\rtf")),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", Magic::Zip),
    ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", Magic::Zip),
    ("pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation", Magic::Zip),
    ("odt", "application/vnd.oasis.opendocument.text", Magic::Zip),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet", Magic::Zip),
    ("odp", "application/vnd.oasis.opendocument.presentation", Magic::Zip),
    ("doc", "application/msword", Magic::Ole),
    ("xls", "application/vnd.ms-excel", Magic::Ole),
    ("ppt", "application/vnd.ms-powerpoint", Magic::Ole),
];

/// The German list of accepted kinds, for error messages and the widget.
pub const ACCEPTED: &str =
    "PDF, Bilder (PNG, JPEG, GIF, WebP), Text (TXT, CSV), Office-Dokumente (DOCX, XLSX, PPTX, ODT, ODS, ODP, DOC, XLS, PPT, RTF)";

#[derive(Clone, Copy)]
enum Magic {
    Prefix(&'static [u8]),
    Webp,
    Zip,
    Ole,
    Text,
}

impl Magic {
    fn matches(self, head: &[u8]) -> bool {
        match self {
            Magic::Prefix(p) => head.starts_with(p),
            Magic::Webp => head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP",
            Magic::Zip => head.starts_with(b"PK\x03\x04"),
            Magic::Ole => head.starts_with(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),
            Magic::Text => {
                // UTF-8 without NULs; the head may end inside a character.
                !head.contains(&0)
                    && match std::str::from_utf8(head) {
                        Ok(_) => true,
                        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
                    }
            }
        }
    }
}

/// A document's file name as shown and offered for download: the last path component,
/// 1 to 200 characters, no control characters.
pub fn check_file_name(raw: &str) -> Result<String, String> {
    let name = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    let n = name.chars().count();
    if n == 0 {
        return Err("Eine Datei hat keinen Namen.".into());
    }
    if n > 200 || name.chars().any(char::is_control) || name == "." || name == ".." {
        return Err(format!("Der Dateiname „{}…“ ist ungültig (höchstens 200 Zeichen).", prefix(name)));
    }
    Ok(name.to_owned())
}

fn prefix(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// The MIME type of a document, from its name and checked against its first bytes.
pub fn document_type(name: &str, head: &[u8]) -> Result<&'static str, String> {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let Some((_, mime, magic)) = KINDS.iter().find(|(e, _, _)| *e == ext) else {
        return Err(format!("Der Dateityp von „{name}“ ist nicht erlaubt. Erlaubt sind: {ACCEPTED}."));
    };
    if !magic.matches(head) {
        return Err(format!("Der Inhalt von „{name}“ passt nicht zur Dateiendung .{ext}."));
    }
    Ok(mime)
}

#[cfg(test)]
mod tests {
    use crate::features::client_file::files::*;

    #[test]
    fn types_are_recognised_by_name_and_content() {
        assert_eq!(document_type("Bericht.PDF", b"%PDF-1.7\n"), Ok("application/pdf"));
        assert_eq!(document_type("a.txt", "Grüße".as_bytes()), Ok("text/plain; charset=utf-8"));
        // A head cut inside a character is still text.
        assert!(document_type("a.txt", &"Grüße".as_bytes()[..3]).is_ok());
        assert!(document_type("a.txt", b"MZ\x90\x00").is_err());
        assert!(document_type("tool.exe", b"MZ\x90\x00").is_err());
        assert!(document_type("fake.pdf", b"<html>").is_err());
        assert!(document_type("no-extension", b"%PDF-").is_err());
        assert!(document_type("x.docx", b"PK\x03\x04rest").is_ok());
        assert!(document_type("x.webp", b"RIFF\0\0\0\0WEBPVP8 ").is_ok());
    }

    #[test]
    fn file_names_are_cleaned_and_checked() {
        assert_eq!(check_file_name("C:\\Users\\x\\Brief.pdf").as_deref(), Ok("Brief.pdf"));
        assert_eq!(check_file_name("../../etc/passwd").as_deref(), Ok("passwd"));
        assert!(check_file_name("  ").is_err());
        assert!(check_file_name("a\u{0}b.pdf").is_err());
        assert!(check_file_name(&"x".repeat(201)).is_err());
        assert!(check_file_name("..").is_err());
    }

    #[tokio::test]
    async fn files_are_stored_per_client_and_removed_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path()).await.expect("open");
        let mut s = store.stage().await.expect("stage");
        s.write(b"%PDF-1.4 hello").await.expect("write");
        let sha = s.finish().await.expect("finish");
        assert_eq!(sha.len(), 64);
        let key = store.new_key("@rs_a:x");
        store.commit(s, &key).await.expect("commit");
        let mut other = store.stage().await.expect("stage");
        other.write(b"x").await.expect("write");
        let other_key = store.new_key("@rs_b:x");
        store.commit(other, &other_key).await.expect("commit");
        assert_eq!(store.count_client("@rs_a:x").await.expect("count"), 1);
        assert!(store.open_file(&key).await.is_ok());
        assert!(store.open_file("../../etc/passwd").await.is_err());
        assert_eq!(store.remove_client("@rs_a:x").await.expect("remove"), 1);
        assert_eq!(store.count_client("@rs_a:x").await.expect("count"), 0);
        assert!(store.open_file(&key).await.is_err());
        assert!(store.open_file(&other_key).await.is_ok(), "other clients' files stay");
        // Again: nothing to do, no error.
        assert_eq!(store.remove_client("@rs_a:x").await.expect("remove again"), 0);
        store.remove(&other_key).await.expect("remove");
        store.remove(&other_key).await.expect("remove twice");
    }
}
