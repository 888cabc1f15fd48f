//! The handshake-signature checks of a rustls certificate verifier, written once: the agent's
//! verifier of client (coordinator) certificates and the coordinator's verifier of agent
//! certificates each check the certificate their own way, but a handshake signature the same
//! way, by the algorithms of the crypto provider the TLS config was built with. The crates
//! that use it depend on rustls themselves; this crate does not.

/// Writes, inside an `impl` of rustls's `ServerCertVerifier` or `ClientCertVerifier`, the
/// methods `verify_tls12_signature`, `verify_tls13_signature` and `supported_verify_schemes`
/// by the signature algorithms of `self.$provider` (an `Arc<rustls::crypto::CryptoProvider>`).
#[macro_export]
macro_rules! signature_checks_by_provider {
    ($provider:ident) => {
        $crate::signature_checks_by_provider!(@check $provider, verify_tls12_signature);
        $crate::signature_checks_by_provider!(@check $provider, verify_tls13_signature);

        fn supported_verify_schemes(&self) -> Vec<::rustls::SignatureScheme> {
            self.$provider.signature_verification_algorithms.supported_schemes()
        }
    };
    // The trait method and the rustls function that does its work have the same name.
    (@check $provider:ident, $check:ident) => {
        fn $check(
            &self,
            message: &[u8],
            cert: &::rustls::pki_types::CertificateDer<'_>,
            dss: &::rustls::DigitallySignedStruct,
        ) -> Result<::rustls::client::danger::HandshakeSignatureValid, ::rustls::Error> {
            ::rustls::crypto::$check(message, cert, dss, &self.$provider.signature_verification_algorithms)
        }
    };
}
