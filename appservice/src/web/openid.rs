//! Who is asking: the counsellor behind a request of the client file (and its documents),
//! from a Matrix OpenID token the homeserver vouches for, with a short cache.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, StatusCode};

use crate::app::router::AppState;
use crate::features::people::store as people;
use crate::web::error::MatrixError;
use assisto_core::rules::Role;

/// How long a verified OpenID token is trusted without asking the homeserver again.
const TOKEN_CACHE: Duration = Duration::from_secs(300);

/// Verified OpenID tokens (by SHA-256), with their user and when to ask again.
#[derive(Default)]
pub struct OpenIdCache(std::sync::Mutex<HashMap<[u8; 32], (String, Instant)>>);

/// The counsellor behind the request, allowed to see this client's file.
pub(crate) async fn counsellor_for(
    s: &AppState,
    h: &HeaderMap,
    client: &str,
) -> Result<(String, people::Client), MatrixError> {
    let token = h
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(MatrixError::unauthorized)?;
    let key = crate::web::auth::digest(token);
    let cached = {
        let cache = s.openid.0.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&key).filter(|(_, until)| *until > Instant::now()).map(|(u, _)| u.clone())
    };
    let user = match cached {
        Some(u) => u,
        None => {
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
            let mut cache = s.openid.0.lock().unwrap_or_else(|p| p.into_inner());
            cache.retain(|_, (_, until)| *until > Instant::now());
            cache.insert(key, (user.clone(), Instant::now() + TOKEN_CACHE));
            user
        }
    };
    let ours = user.rsplit_once(':').is_some_and(|(_, server)| server == s.config.homeserver.server_name);
    if !ours {
        return Err(MatrixError::forbidden("Nur Beratende dieses Servers haben Zugriff."));
    }
    let c = people::client_by_id(&s.db, client)
        .await?
        .ok_or_else(|| MatrixError::not_found("Diese ratsuchende Person gibt es nicht."))?;
    match s.checker.role(&user).await? {
        Role::Counsellor { institution } if institution == c.institution_id => Ok((user, c)),
        _ => Err(MatrixError::forbidden(
            "Nur Beratende der Einrichtung dieser Person haben Zugriff auf ihre Mappe.",
        )),
    }
}
