//! Rebuilds when a migration is added: `sqlx::migrate!` embeds `../migrations` at compile
//! time, and cargo does not otherwise know that a new file there changes the crate.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
