//! Verifying the JSON Web Tokens clients present at the WebSocket handshake (`[gateway.auth]`):
//! one key, one algorithm, built once per process from the configuration and read by every
//! shard; and finding the token in an upgrade request.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value as Json;

/// A verifier for one key.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// Where a verifier's key comes from.
#[derive(Debug, Clone, Copy)]
pub enum TokenKey<'a> {
    /// An HS256 shared secret.
    Secret(&'a str),
    /// A PEM file holding an RSA (RS256) or P-256 (ES256) public key.
    PublicKey(&'a Path),
}

/// Why a client's token was refused; the label is the metric's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token in the request.
    Missing,
    /// Not a JWT, or a signature that does not verify, or an algorithm other than the one set.
    Invalid,
    /// `exp` is past.
    Expired,
    /// `iss`, `aud` or `nbf` do not hold, or a claim gatewire reads has the wrong type.
    Claims,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::Missing,
        Refusal::Invalid,
        Refusal::Expired,
        Refusal::Claims,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Invalid => "invalid",
            Refusal::Expired => "expired",
            Refusal::Claims => "claims",
        }
    }
}

/// The claims of a verified token that gatewire acts on, and all of them for the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// `sub`: the uid the client is bound to.
    pub sub: Option<String>,
    /// `groups`: joined before the worker hears of the client.
    pub groups: Vec<String>,
    /// `info`: the client's first session.
    pub info: Option<Json>,
    /// `exp`, seconds since the epoch.
    pub exp: Option<u64>,
    /// Every claim, as the token carried them.
    pub all: Json,
}

impl TokenVerifier {
    /// A verifier for `algorithm` (`HS256`, `RS256`, `ES256`; `None`: what the key is) with
    /// `key`; `issuer` and `audience`, when set, must match; `leeway` seconds for `exp`/`nbf`.
    /// Errors name the problem with the key (the caller names the configuration key).
    pub fn new(
        algorithm: Option<&str>,
        key: TokenKey<'_>,
        issuer: Option<&str>,
        audience: Option<&str>,
        leeway: u64,
    ) -> Result<TokenVerifier, String> {
        let (algorithm, key) = match key {
            TokenKey::Secret(secret) => (
                Algorithm::HS256,
                DecodingKey::from_secret(secret.as_bytes()).map_err(|e| e.to_string())?,
            ),
            TokenKey::PublicKey(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let rsa = || DecodingKey::from_rsa_pem(&pem).map(|k| (Algorithm::RS256, k));
                let ec = || DecodingKey::from_ec_pem(&pem).map(|k| (Algorithm::ES256, k));
                let parsed = match algorithm {
                    Some("RS256") => rsa(),
                    Some("ES256") => ec(),
                    _ => rsa().or_else(|_| ec()),
                };
                parsed.map_err(|e| {
                    format!(
                        "{} holds no {} public key in PEM form ({e})",
                        path.display(),
                        algorithm.unwrap_or("RSA or P-256")
                    )
                })?
            }
        };
        let mut validation = Validation::new(algorithm);
        // A token without `exp` does not expire; one with it is closed when it does.
        validation.required_spec_claims.clear();
        validation.leeway = leeway;
        validation.validate_nbf = true;
        validation.validate_aud = audience.is_some();
        if let Some(aud) = audience {
            validation.set_audience(&[aud]);
        }
        if let Some(iss) = issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(TokenVerifier { key, validation })
    }

    /// The token's claims if it verifies now.
    pub fn verify(&self, token: &str) -> Result<Claims, Refusal> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Json>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => Refusal::Expired,
                ErrorKind::InvalidIssuer
                | ErrorKind::InvalidAudience
                | ErrorKind::ImmatureSignature
                | ErrorKind::MissingRequiredClaim(_)
                | ErrorKind::InvalidClaimFormat(_) => Refusal::Claims,
                _ => Refusal::Invalid,
            },
        )?;
        claims(data.claims).ok_or(Refusal::Claims)
    }
}

/// The claims gatewire reads, checked for type: `sub` a string or a number, `groups` an array of
/// them, `exp` a number.
fn claims(all: Json) -> Option<Claims> {
    let key = |v: &Json| match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let sub = match all.get("sub") {
        None | Some(Json::Null) => None,
        Some(v) => Some(key(v)?),
    };
    let groups = match all.get("groups") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items.iter().map(key).collect::<Option<_>>()?,
        Some(_) => return None,
    };
    let exp = match all.get("exp") {
        None | Some(Json::Null) => None,
        Some(v) => Some(v.as_u64().or_else(|| v.as_f64().map(|f| f as u64))?),
    };
    let info = all.get("info").filter(|v| !v.is_null()).cloned();
    Some(Claims {
        sub,
        groups,
        info,
        exp,
        all,
    })
}

/// The token a WebSocket upgrade request carries, looked for in this order: the
/// `Authorization: Bearer` header, a `bearer.<token>` entry of `Sec-WebSocket-Protocol` (what a
/// browser can send), the `token` query parameter. `header` looks a header up by name.
pub fn token_in_request<'a>(
    header: impl Fn(&str) -> Option<&'a [u8]>,
    query_token: Option<String>,
) -> Option<String> {
    if let Some(value) = header("authorization") {
        let value = std::str::from_utf8(value).ok()?.trim();
        if let Some((scheme, token)) = value.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(token.trim().to_owned());
        }
    }
    if let Some(value) = header("sec-websocket-protocol")
        && let Ok(value) = std::str::from_utf8(value)
        && let Some(token) = value
            .split(',')
            .find_map(|entry| entry.trim().strip_prefix("bearer."))
    {
        return Some(token.to_owned());
    }
    query_token.filter(|t| !t.is_empty())
}

/// The subprotocol a 101 selects when the client offered some: the first entry that is not a
/// token (a browser fails a handshake that selects none of the protocols it offered).
pub fn selected_protocol(offered: Option<&[u8]>) -> Option<&str> {
    std::str::from_utf8(offered?)
        .ok()?
        .split(',')
        .map(str::trim)
        .find(|entry| !entry.is_empty() && !entry.starts_with("bearer."))
}

/// An HS256 token for `claims` (what `gatewire token` prints, and tests sign with).
pub fn sign_hs256(secret: &str, claims: &Json) -> Result<String, String> {
    let key =
        jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).map_err(|e| e.to_string())?;
    jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), claims, &key)
        .map_err(|e| e.to_string())
}

/// An RS256 or ES256 token for `claims`, signed with the PEM private key `pem` (which of the two
/// follows from the key).
pub fn sign_with_private_key(pem: &[u8], claims: &Json) -> Result<String, String> {
    use jsonwebtoken::EncodingKey;
    let (algorithm, key) = EncodingKey::from_rsa_pem(pem)
        .map(|k| (Algorithm::RS256, k))
        .or_else(|_| EncodingKey::from_ec_pem(pem).map(|k| (Algorithm::ES256, k)))
        .map_err(|e| format!("not an RSA or P-256 private key in PEM form ({e})"))?;
    jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), claims, &key)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn hs(issuer: Option<&str>) -> TokenVerifier {
        TokenVerifier::new(None, TokenKey::Secret("s3cret"), issuer, None, 0).unwrap()
    }

    #[test]
    fn a_good_token_gives_its_claims_and_each_bad_one_its_reason() {
        let v = hs(Some("me"));
        let good = json!({"sub": 42, "groups": ["a", 7], "info": {"name": "ann"},
                          "exp": now() + 60, "iss": "me", "extra": true});
        let claims = v.verify(&sign_hs256("s3cret", &good).unwrap()).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("42"));
        assert_eq!(claims.groups, ["a", "7"]);
        assert_eq!(claims.info, Some(json!({"name": "ann"})));
        assert_eq!(claims.all["extra"], json!(true));
        let token = |c: Json, secret: &str| sign_hs256(secret, &c).unwrap();
        assert_eq!(
            v.verify(&token(json!({"sub": "x", "iss": "me"}), "other")),
            Err(Refusal::Invalid)
        );
        assert_eq!(v.verify("not.a.jwt"), Err(Refusal::Invalid));
        assert_eq!(
            v.verify(&token(json!({"iss": "me", "exp": now() - 5}), "s3cret")),
            Err(Refusal::Expired)
        );
        assert_eq!(
            v.verify(&token(json!({"iss": "you"}), "s3cret")),
            Err(Refusal::Claims)
        );
        assert_eq!(
            v.verify(&token(json!({"iss": "me", "groups": "a"}), "s3cret")),
            Err(Refusal::Claims),
            "groups must be a list"
        );
        let no_exp = v.verify(&token(json!({"iss": "me"}), "s3cret")).unwrap();
        assert_eq!(
            no_exp.exp, None,
            "a token without exp is accepted and never expires"
        );
    }

    #[test]
    fn the_token_is_found_in_header_then_protocol_then_query() {
        let headers = |auth: Option<&'static str>, proto: Option<&'static str>| {
            move |name: &str| match name {
                "authorization" => auth.map(str::as_bytes),
                "sec-websocket-protocol" => proto.map(str::as_bytes),
                _ => None,
            }
        };
        let q = || Some("q".to_owned());
        assert_eq!(
            token_in_request(headers(Some("Bearer h"), Some("chat, bearer.p")), q()).as_deref(),
            Some("h")
        );
        assert_eq!(
            token_in_request(headers(Some("Basic x"), Some("chat, bearer.p")), q()).as_deref(),
            Some("p")
        );
        assert_eq!(
            token_in_request(headers(None, None), q()).as_deref(),
            Some("q")
        );
        assert_eq!(token_in_request(headers(None, Some("chat")), None), None);
        assert_eq!(selected_protocol(Some(b"bearer.p, chat")), Some("chat"));
        assert_eq!(selected_protocol(Some(b"bearer.p")), None);
    }
}
