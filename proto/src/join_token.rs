//! The one rule both sides compute for join tokens: the agent's proof that it holds a token
//! on this TLS channel is `HMAC-SHA256(key = the token, message = the DER
//! SubjectPublicKeyInfo of the certificate the agent serves)`. The coordinator recomputes it
//! over the key it saw in the handshake, so a token replayed on another channel (or by a
//! relay with its own key) does not verify.

/// The common name of the self-signed certificate an agent serves until it is enrolled (the
/// coordinator recognises it and says the host needs `brickyard enroll`).
pub const PROVISIONAL_CN: &str = "brickyard provisional (not enrolled)";

fn key(token: &str) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes())
}

/// The binding of `token` to the served key `spki_der`.
pub fn binding(token: &str, spki_der: &[u8]) -> Vec<u8> {
    ring::hmac::sign(&key(token), spki_der).as_ref().to_vec()
}

/// Whether `proof` is `token`'s binding to `spki_der` (constant-time comparison).
pub fn verify_binding(token: &str, spki_der: &[u8], proof: &[u8]) -> bool {
    ring::hmac::verify(&key(token), spki_der, proof).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn binds_to_the_key() {
        let proof = super::binding("byt1.a.b", b"key one");
        assert!(super::verify_binding("byt1.a.b", b"key one", &proof));
        assert!(!super::verify_binding("byt1.a.b", b"key two", &proof));
        assert!(!super::verify_binding("byt1.a.c", b"key one", &proof));
    }
}
