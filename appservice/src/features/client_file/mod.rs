//! The client file (Klient:innen-Mappe): notes, monitorings and documents of a client, the
//! encrypted file store, the HTTP API and the Element widget page.

pub mod documents;
pub mod files;
pub mod routes;
pub mod store;
