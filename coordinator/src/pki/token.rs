//! Join tokens: single-use, expiring secrets that let a new host enrol without a private key
//! in its user-data. State lives in the pki directory, never the token itself:
//!
//! ```text
//! DIR/tokens/ID.toml   host, expiry (unix seconds), SHA-256 of the whole token   (0600)
//! DIR/tokens/ID.used   created (create_new) when the token is redeemed: single use
//! ```
//!
//! A token reads `byt1.ID.SECRET` (ID 16 hex digits, SECRET 64). The agent proves it holds the
//! token *on this TLS channel* ([`brickyard_proto::join_token`]: an HMAC keyed by the token
//! over the public key it presented in the handshake).

use std::path::{Path, PathBuf};

use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use super::{create_private_dir, io_err, write_file, PkiError};

const PREFIX: &str = "byt1";
/// Default lifetime of a join token.
pub const DEFAULT_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Why a join token was refused (each says what was found).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("not a Brickyard join token (expected byt1.ID.SECRET)")]
    Malformed,
    #[error("join token {id} is unknown to this pool")]
    Unknown { id: String },
    #[error("join token {id} was issued for host {issued_for}, not {host}")]
    OtherHost { id: String, issued_for: String, host: String },
    #[error("join token {id} for host {host} expired at unix time {expired_at}")]
    Expired { id: String, host: String, expired_at: u64 },
    #[error("join token {id} for host {host} was already used (single use); make a new one with `brickyard pki token --host {host}`")]
    Used { id: String, host: String },
    #[error("join token {id}: the secret does not match")]
    WrongSecret { id: String },
    #[error("join token {id}: the proof is not bound to this TLS channel (made for another key)")]
    Unbound { id: String },
}

/// What `DIR/tokens/ID.toml` holds.
#[derive(Debug, Serialize, Deserialize)]
struct TokenState {
    host: String,
    expires_unix: u64,
    sha256: String,
}

fn tokens_dir(dir: &Path) -> PathBuf {
    dir.join("tokens")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(text: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The token's id, when it has the `byt1.ID.SECRET` shape.
fn token_id(token: &str) -> Option<&str> {
    let mut parts = token.split('.');
    let (prefix, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let hex_of = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (prefix == PREFIX && hex_of(id, 16) && hex_of(secret, 64) && parts.next().is_none()).then_some(id)
}

/// Makes a join token for `host` valid for `ttl`; stores only its hash. Returns the token.
pub fn create(dir: &Path, host: &str, ttl: std::time::Duration) -> Result<String, PkiError> {
    let host = super::agent_name(host)?;
    let random = |len: usize| {
        let mut bytes = vec![0u8; len];
        ring::rand::SystemRandom::new().fill(&mut bytes).map(|_| hex(&bytes)).map_err(|_| PkiError::Random)
    };
    let id = random(8)?;
    let token = format!("{PREFIX}.{id}.{}", random(32)?);
    let state =
        TokenState { host: host.to_string(), expires_unix: unix_now() + ttl.as_secs(), sha256: sha256_hex(&token) };
    let tokens = tokens_dir(dir);
    create_private_dir(&tokens)?;
    let text = toml::to_string(&state).expect("token state serializes");
    write_file(&tokens.join(format!("{id}.toml")), text.as_bytes(), 0o600, true)?;
    Ok(token)
}

pub use brickyard_proto::join_token::binding;

/// Redeems `token` for `host`: it must be this pool's, for this host, unexpired and unused,
/// and `proof` must be its binding over `observed_spki` (the key the coordinator saw in the
/// handshake). On success the token is marked used, atomically, so it never verifies again.
pub fn redeem(
    dir: &Path,
    host: &str,
    token: &str,
    proof: &[u8],
    observed_spki: &[u8],
) -> Result<Result<(), TokenRefusal>, PkiError> {
    let Some(id) = token_id(token) else { return Ok(Err(TokenRefusal::Malformed)) };
    let id = id.to_owned();
    let state_path = tokens_dir(dir).join(format!("{id}.toml"));
    let text = match std::fs::read_to_string(&state_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Err(TokenRefusal::Unknown { id })),
        Err(e) => return Err(io_err(&state_path)(e)),
    };
    let state: TokenState = toml::from_str(&text)
        .map_err(|e| io_err(&state_path)(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())))?;
    let refusal = if state.sha256 != sha256_hex(token) {
        Some(TokenRefusal::WrongSecret { id: id.clone() })
    } else if state.host != host {
        Some(TokenRefusal::OtherHost { id: id.clone(), issued_for: state.host.clone(), host: host.to_owned() })
    } else if unix_now() >= state.expires_unix {
        Some(TokenRefusal::Expired { id: id.clone(), host: state.host.clone(), expired_at: state.expires_unix })
    } else if !brickyard_proto::join_token::verify_binding(token, observed_spki, proof) {
        Some(TokenRefusal::Unbound { id: id.clone() })
    } else {
        None
    };
    if let Some(refusal) = refusal {
        return Ok(Err(refusal));
    }
    let used = tokens_dir(dir).join(format!("{id}.used"));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&used) {
        Ok(_) => Ok(Ok(())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Err(TokenRefusal::Used { id, host: state.host })),
        Err(e) => Err(io_err(&used)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPKI: &[u8] = b"the agent's public key as seen in the handshake";

    fn pki() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        super::super::init(&dir, None).unwrap();
        (tmp, dir)
    }

    fn redeem_for(dir: &Path, host: &str, token: &str) -> Result<(), TokenRefusal> {
        redeem(dir, host, token, &binding(token, SPKI), SPKI).unwrap()
    }

    #[test]
    fn single_use_and_hashed() {
        let (_tmp, dir) = pki();
        let token = create(&dir, "glu1", DEFAULT_TOKEN_TTL).unwrap();
        let id = token_id(&token).unwrap().to_owned();
        let stored = std::fs::read_to_string(tokens_dir(&dir).join(format!("{id}.toml"))).unwrap();
        assert!(!stored.contains(token.rsplit('.').next().unwrap()), "the secret is stored: {stored}");
        assert_eq!(redeem_for(&dir, "glu1", &token), Ok(()));
        let replay = redeem_for(&dir, "glu1", &token).unwrap_err();
        assert_eq!(replay, TokenRefusal::Used { id, host: "glu1".into() });
        assert!(replay.to_string().contains("already used"), "{replay}");
    }

    #[test]
    fn expired_other_host_forged_and_unbound_are_refused() {
        let (_tmp, dir) = pki();
        let expired = create(&dir, "glu1", std::time::Duration::ZERO).unwrap();
        let err = redeem_for(&dir, "glu1", &expired).unwrap_err();
        assert!(matches!(err, TokenRefusal::Expired { .. }) && err.to_string().contains("expired at"), "{err}");

        let other = create(&dir, "glu2", DEFAULT_TOKEN_TTL).unwrap();
        let err = redeem_for(&dir, "glu1", &other).unwrap_err();
        assert!(err.to_string().contains("issued for host glu2, not glu1"), "{err}");

        let forged = format!("{}{}", &other[..other.len() - 1], if other.ends_with('0') { '1' } else { '0' });
        assert!(matches!(redeem_for(&dir, "glu2", &forged), Err(TokenRefusal::WrongSecret { .. })));
        let err = redeem(&dir, "glu2", &other, &binding(&other, b"a relay's key"), SPKI).unwrap().unwrap_err();
        assert!(err.to_string().contains("not bound to this TLS channel"), "{err}");
        assert_eq!(redeem_for(&dir, "glu2", "hunter2"), Err(TokenRefusal::Malformed));
        // The refusals above did not spend the token.
        assert_eq!(redeem_for(&dir, "glu2", &other), Ok(()));
        let unknown = format!("{PREFIX}.{}.{}", "0".repeat(16), "0".repeat(64));
        assert!(matches!(redeem_for(&dir, "glu2", &unknown), Err(TokenRefusal::Unknown { .. })));
    }
}
