//! Who is asking: the counsellor behind a request of the client file (and its documents),
//! from a Matrix OpenID token the homeserver vouches for, with a short cache.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::FromRequestParts,
    http::{request::Parts, HeaderMap, StatusCode},
};

use crate::app::services::Services;
use crate::features::people::store as people;
use crate::web::error::MatrixError;
use assisto_core::rules::Role;

/// How long a verified OpenID token is trusted without asking the homeserver again.
const TOKEN_CACHE: Duration = Duration::from_secs(300);

/// A user of this homeserver, from the Matrix OpenID token in `Authorization: Bearer`
/// (the widget obtains it from Element; the homeserver vouches for it). As a route's first
/// argument it refuses before anything else is read: 401 without or with a bad token, 403
/// for another homeserver's user, 502 when the homeserver cannot be asked.
pub struct Counsellor {
    /// The verified user ID.
    pub user_id: String,
}

impl FromRequestParts<Arc<Services>> for Counsellor {
    type Rejection = MatrixError;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<Services>) -> Result<Self, MatrixError> {
        let user = verified_user(s, &parts.headers).await?;
        let ours = user.rsplit_once(':').is_some_and(|(_, server)| server == s.config.homeserver.server_name);
        if !ours {
            return Err(MatrixError::forbidden("Nur Beratende dieses Servers haben Zugriff."));
        }
        Ok(Counsellor { user_id: user })
    }
}

impl Counsellor {
    /// The client whose file this caller may open: only counsellors of the client's
    /// institution may. Answers the caller's ID with the client.
    pub async fn file_of(&self, s: &Services, client: &str) -> Result<(String, people::Client), MatrixError> {
        let c = people::client_by_id(&s.db, client)
            .await?
            .ok_or_else(|| MatrixError::not_found("Diese ratsuchende Person gibt es nicht."))?;
        match s.checker.role(&self.user_id).await? {
            Role::Counsellor { institution } if institution == c.institution_id => {
                Ok((self.user_id.clone(), c))
            }
            _ => Err(MatrixError::forbidden(
                "Nur Beratende der Einrichtung dieser Person haben Zugriff auf ihre Mappe.",
            )),
        }
    }
}

/// The user behind the OpenID token, from the cache or else the homeserver.
async fn verified_user(s: &Services, h: &HeaderMap) -> Result<String, MatrixError> {
    let token = crate::web::auth::bearer(h).flatten().ok_or_else(MatrixError::unauthorized)?;
    let key = crate::web::auth::digest(token);
    let cached = {
        let cache = s.web.openid.0.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&key).filter(|(_, until)| *until > Instant::now()).map(|(u, _)| u.clone())
    };
    if let Some(u) = cached {
        return Ok(u);
    }
    let user =
        s.hs.openid_userinfo(token)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "checking an OpenID token failed");
                MatrixError::new(
                    StatusCode::BAD_GATEWAY,
                    "M_UNKNOWN",
                    "Die Anmeldung kann gerade nicht geprüft werden.",
                )
            })?
            .ok_or_else(|| {
                MatrixError::new(
                    StatusCode::UNAUTHORIZED,
                    "M_UNKNOWN_TOKEN",
                    "Die Anmeldung ist ungültig oder abgelaufen.",
                )
            })?;
    let mut cache = s.web.openid.0.lock().unwrap_or_else(|p| p.into_inner());
    cache.retain(|_, (_, until)| *until > Instant::now());
    cache.insert(key, (user.clone(), Instant::now() + TOKEN_CACHE));
    Ok(user)
}
