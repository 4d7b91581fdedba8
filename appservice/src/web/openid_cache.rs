//! The cache of verified OpenID tokens (see `web::openid`), apart so that `Services` can
//! hold it without importing the routes' extractor.

use std::{collections::HashMap, time::Instant};

/// Verified OpenID tokens (by SHA-256), with their user and when to ask again.
#[derive(Default)]
pub struct OpenIdCache(pub(crate) std::sync::Mutex<HashMap<[u8; 32], (String, Instant)>>);
