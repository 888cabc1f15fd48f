//! OpenSSL's subject hash of an X.509 name (`openssl x509 -hash`, `openssl crl -hash`), the
//! file name OpenSSL's hashed-directory lookup uses: a CRL is found in a `CApath` directory as
//! `HASH.r0`, HASH being this of its issuer. The hash is the first 4 bytes (little-endian) of
//! the SHA-1 of the name's canonical encoding (OpenSSL's `x509_name_canon`): every string
//! value re-encoded as UTF8String, trimmed, inner whitespace runs collapsed to one space and
//! ASCII lowercased; the RDN SETs concatenated without the outer SEQUENCE. Pure.

use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::X509Name;

/// The subject hash of `name` as OpenSSL prints it (8 lowercase hex digits).
pub fn subject_hash(name: &X509Name<'_>) -> Result<String, String> {
    let canonical = canonical_encoding(name)?;
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &canonical);
    let bytes = digest.as_ref();
    Ok(format!("{:08x}", u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])))
}

fn canonical_encoding(name: &X509Name<'_>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for rdn in name.iter() {
        let mut entries: Vec<Vec<u8>> = Vec::new();
        for ava in rdn.iter() {
            let oid = tlv(0x06, ava.attr_type().as_bytes());
            let value = ava.attr_value();
            let value = match utf8_of(value.tag(), value.data)? {
                Some(text) => tlv(0x0c, canonical_text(&text).as_bytes()),
                None => tlv(value.tag().0 as u8, value.data),
            };
            entries.push(tlv(0x30, &[oid, value].concat()));
        }
        // DER orders the members of a SET OF by their encodings.
        entries.sort();
        out.extend(tlv(0x31, &entries.concat()));
    }
    Ok(out)
}

/// The text of a string value OpenSSL canonicalises, or `None` for other types (kept as-is).
fn utf8_of(tag: Tag, data: &[u8]) -> Result<Option<String>, String> {
    let bad = |what: &str| format!("a name holds an invalid {what}");
    Ok(Some(match tag {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            String::from_utf8(data.to_vec()).map_err(|_| bad("string"))?
        }
        // T61 as OpenSSL reads it: one byte per character (Latin-1).
        Tag::T61String => data.iter().map(|&b| char::from(b)).collect(),
        Tag::BmpString => {
            let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).map_err(|_| bad("BMPString"))?
        }
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).ok_or_else(|| bad("UniversalString")))
            .collect::<Result<String, String>>()?,
        _ => return Ok(None),
    }))
}

/// Trimmed, inner whitespace runs as one space, ASCII lowercased (`asn1_string_canon`).
fn canonical_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split(|c: char| c.is_ascii_whitespace() || c == '\x0b').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word.to_ascii_lowercase());
    }
    out
}

/// A DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool CA made by `brickyard pki init` and what `openssl x509 -hash -noout` says of it.
    const POOL_CA: &str = include_str!("../fixtures/x509/pool-ca.pem");
    const POOL_CA_HASH: &str = include_str!("../fixtures/x509/pool-ca.hash");
    /// A CA whose subject has several RDNs, mixed case, extra spaces and a PrintableString.
    const MIXED_CA: &str = include_str!("../fixtures/x509/mixed-name-ca.pem");
    const MIXED_CA_HASH: &str = include_str!("../fixtures/x509/mixed-name-ca.hash");

    fn hash_of(pem: &str) -> String {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        subject_hash(cert.subject()).unwrap()
    }

    #[test]
    fn matches_openssl() {
        assert_eq!(hash_of(POOL_CA), POOL_CA_HASH.trim());
        assert_eq!(hash_of(MIXED_CA), MIXED_CA_HASH.trim());
    }

    #[test]
    fn text_is_canonicalised() {
        assert_eq!(canonical_text("  Brickyard \t Pool  CA  "), "brickyard pool ca");
    }
}
