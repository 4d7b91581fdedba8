//! The service's error: a domain refusal, or a failure of the homeserver or the database.
//! Only the web layer turns it into an HTTP answer (`web::error`).

/// Why an operation of the service failed: refused by the domain, or a failure of the
/// homeserver or the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused by the domain (invalid input, not found, conflict, forbidden).
    #[error(transparent)]
    Domain(#[from] assisto_core::DomainError),
    /// The homeserver failed or refused.
    #[error("homeserver: {0}")]
    Homeserver(#[from] crate::matrix::homeserver::HsError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A part of the service itself failed (the search index's files, say).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Invalid input; the text says which field and why.
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::Domain(assisto_core::DomainError::Invalid(m.into()))
    }

    /// The thing does not exist.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::Domain(assisto_core::DomainError::NotFound(m.into()))
    }

    /// It exists already.
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::Domain(assisto_core::DomainError::Conflict(m.into()))
    }

    /// Not allowed.
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::Domain(assisto_core::DomainError::Forbidden(m.into()))
    }
}
