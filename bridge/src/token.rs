//! The signed token with which an institution's site vouches for a logged-in client:
//! `v1.<payload>.<signature>`, payload base64url(JSON `{inst, sub, name, exp}`), signature
//! base64url(HMAC-SHA256(secret, "v1." + payload)). See `docs/embed-protocol.md`.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What the site says about the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The institution (slug).
    pub inst: String,
    /// The site's stable ID of the client.
    pub sub: String,
    /// The display name.
    pub name: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// The longest a token may be valid ahead.
pub const MAX_LIFETIME_SECS: i64 = 24 * 3600;

/// Why a token was refused (German, shown to the client).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the form, or the signature does not match.
    #[error("Die Anmeldung ist ungültig.")]
    Invalid,
    /// Expired, or valid too far ahead.
    #[error("Die Anmeldung ist abgelaufen. Bitte lade die Seite neu.")]
    Expired,
    /// Issued for another institution.
    #[error("Die Anmeldung gilt für eine andere Beratungsstelle.")]
    WrongInstitution,
}

/// Signs claims (what the institution's site does; used by tests and `make run`'s demo).
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signed = format!("v1.{payload}");
    let sig = mac(secret, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn mac(secret: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// Checks a token against the institution's secret at `now` (Unix seconds).
pub fn verify(secret: &[u8], institution: &str, token: &str, now: i64) -> Result<Claims, TokenError> {
    let (signed, sig) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
    let payload = signed.strip_prefix("v1.").ok_or(TokenError::Invalid)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Invalid)?;
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|_| TokenError::Invalid)?;
    m.update(signed.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::Invalid)?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Invalid)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)?;
    if claims.exp <= now || claims.exp > now + MAX_LIFETIME_SECS + 60 {
        return Err(TokenError::Expired);
    }
    if claims.inst != institution {
        return Err(TokenError::WrongInstitution);
    }
    let name = claims.name.trim();
    let sub_ok =
        !claims.sub.is_empty() && claims.sub.len() <= 200 && !claims.sub.chars().any(char::is_control);
    let name_ok = !name.is_empty() && name.chars().count() <= 100 && !name.chars().any(char::is_control);
    if !sub_ok || !name_ok {
        return Err(TokenError::Invalid);
    }
    Ok(Claims { name: name.to_owned(), ..claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims { inst: "demo".into(), sub: "u-42".into(), name: "Maria".into(), exp }
    }

    #[test]
    fn a_signed_token_verifies_and_tampering_does_not() {
        let t = sign(b"geheim", &claims(1_000 + 3600));
        assert_eq!(verify(b"geheim", "demo", &t, 1_000), Ok(claims(4_600)));
        assert_eq!(verify(b"anders", "demo", &t, 1_000), Err(TokenError::Invalid));
        assert_eq!(verify(b"geheim", "andere", &t, 1_000), Err(TokenError::WrongInstitution));
        assert_eq!(verify(b"geheim", "demo", &t, 5_000), Err(TokenError::Expired));
        let (head, _) = t.rsplit_once('.').expect("dot");
        let forged_payload = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims(1_000 + 3600)).expect("json"))
            .replace('A', "B");
        assert_eq!(
            verify(b"geheim", "demo", &format!("v1.{forged_payload}.x"), 1_000),
            Err(TokenError::Invalid)
        );
        assert_eq!(verify(b"geheim", "demo", head, 1_000), Err(TokenError::Invalid));
        assert_eq!(verify(b"geheim", "demo", "", 1_000), Err(TokenError::Invalid));
        // Valid for more than a day ahead: refused.
        let long = sign(b"geheim", &claims(1_000 + 3 * 86_400));
        assert_eq!(verify(b"geheim", "demo", &long, 1_000), Err(TokenError::Expired));
    }
}
