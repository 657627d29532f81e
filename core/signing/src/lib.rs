//! Signatures of industry modules: a vendor signs a module's `manifest.toml` (its exact
//! bytes — the manifest names the wasm's SHA-256, id, version, ABI and capabilities) with
//! an Ed25519 key; the signatures sit beside it in `manifest.sig`.
//!
//! Formats, all readable by other tools:
//! - a private key is a PKCS#8 v1 document in PEM (`-----BEGIN PRIVATE KEY-----`, as
//!   `openssl genpkey -algorithm ed25519` writes it), preceded by a `# key id: …` line
//!   (OpenSSL reads the file as it is);
//! - a public key is `ed25519:` and the base64 of its 32 bytes (RFC 8032);
//! - a signature is the base64 of the 64 bytes of Ed25519 over `manifest.toml`.
//!
//! Whether a signature is *trusted* (which keys, for which modules, until when) is the
//! plugin host's business; this crate only makes and checks signatures.

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use ring::{
    rand::SystemRandom,
    signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey},
};
use serde::{Deserialize, Serialize};

/// The file beside `manifest.toml` that holds its signatures.
pub const SIGNATURE_FILE: &str = "manifest.sig";

/// What can go wrong with keys and signature files.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    /// A private key file that is not an Ed25519 key in PKCS#8 PEM.
    #[error("not an Ed25519 private key in PKCS#8 PEM: {0}")]
    BadPrivateKey(String),
    /// A public key that is not `ed25519:` and the base64 of 32 bytes.
    #[error("not an Ed25519 public key (`ed25519:` and the base64 of 32 bytes): {0}")]
    BadPublicKey(String),
    /// A `manifest.sig` that does not parse, or holds no signature.
    #[error("{SIGNATURE_FILE} is not valid: {0}")]
    BadSignatureFile(String),
}

/// A signing key with the id the trust store knows it by.
#[derive(Debug)]
pub struct SigningKey {
    /// The id signatures name; the trust store lists the public key under it.
    pub id: String,
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A new random key; returns it and its private key file (PEM, with the id).
    pub fn generate(id: &str) -> Result<(SigningKey, String), SigningError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| SigningError::BadPrivateKey("the random generator failed".into()))?;
        // ring writes PKCS#8 v2 (RFC 5958, with the public key), which OpenSSL 3.0 cannot
        // read; the file holds v1 (RFC 8410), as `openssl genpkey` writes it: the same seed
        let der = document.as_ref();
        let seed = der
            .windows(SEED_TAG.len())
            .position(|w| w == SEED_TAG)
            .and_then(|at| der.get(at + SEED_TAG.len()..at + SEED_TAG.len() + 32))
            .ok_or_else(|| SigningError::BadPrivateKey("unexpected PKCS#8 layout".into()))?;
        let mut v1 = V1_PREFIX.to_vec();
        v1.extend_from_slice(seed);
        let pem = pem_encode(id, &v1);
        Ok((SigningKey::from_pem(&pem)?, pem))
    }

    /// Reads a private key file (PKCS#8 v1 or v2 in PEM, any line endings); the id comes
    /// from its `# key id:` line, and is empty without one.
    pub fn from_pem(text: &str) -> Result<SigningKey, SigningError> {
        let id = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("# key id:"))
            .map(|id| id.trim().to_owned())
            .unwrap_or_default();
        let body: String = text
            .lines()
            .map(str::trim)
            .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        if body.is_empty() {
            return Err(SigningError::BadPrivateKey(
                "no `-----BEGIN PRIVATE KEY-----` block".into(),
            ));
        }
        let der = B64
            .decode(body.trim())
            .map_err(|e| SigningError::BadPrivateKey(e.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| SigningError::BadPrivateKey(e.to_string()))?;
        Ok(SigningKey { id, pair })
    }

    /// `ed25519:<base64>`, for the trust store.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(
            self.pair
                .public_key()
                .as_ref()
                .try_into()
                .expect("Ed25519 public keys are 32 bytes"),
        )
    }

    /// The signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature {
            key: self.id.clone(),
            signature: B64.encode(self.pair.sign(message).as_ref()),
        }
    }
}

/// PKCS#8 v1 of an Ed25519 seed (RFC 8410, section 10.3): this prefix, then 32 bytes.
const V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// In either version, the private key: an OCTET STRING holding the 32-byte seed.
const SEED_TAG: [u8; 4] = [0x04, 0x22, 0x04, 0x20];

fn pem_encode(id: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("# key id: {id}\n-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// An Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Reads `ed25519:<base64 of 32 bytes>`.
    pub fn parse(text: &str) -> Result<PublicKey, SigningError> {
        let b64 = text
            .trim()
            .strip_prefix("ed25519:")
            .ok_or_else(|| SigningError::BadPublicKey(format!("`{text}`")))?;
        let bytes = B64
            .decode(b64)
            .map_err(|e| SigningError::BadPublicKey(e.to_string()))?;
        Ok(PublicKey(bytes.try_into().map_err(|b: Vec<u8>| {
            SigningError::BadPublicKey(format!("{} bytes, not 32", b.len()))
        })?))
    }

    /// Whether `signature` (base64) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(raw) = B64.decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, &raw)
            .is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ed25519:{}", B64.encode(self.0))
    }
}

/// One signature: the key's id and the base64 signature.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The id of the key that made it.
    pub key: String,
    /// The base64 of the 64-byte Ed25519 signature of `manifest.toml`.
    pub signature: String,
}

/// The contents of `manifest.sig`: one signature or several (during a key rotation a
/// vendor may sign with both keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// One per key.
    #[serde(default)]
    pub signatures: Vec<Signature>,
}

impl SignatureFile {
    /// Reads `manifest.sig`; a file without a signature is an error.
    pub fn parse(text: &str) -> Result<SignatureFile, SigningError> {
        let file: SignatureFile =
            toml::from_str(text).map_err(|e| SigningError::BadSignatureFile(e.to_string()))?;
        if file.signatures.is_empty() {
            return Err(SigningError::BadSignatureFile("no [[signatures]]".into()));
        }
        Ok(file)
    }

    /// The file's text, with a header saying what it is.
    pub fn render(&self) -> String {
        let body = toml::to_string(self).expect("signatures serialise");
        format!(
            "# Ed25519 signatures of manifest.toml (its exact bytes), by `shoal plugin sign`.\n{body}"
        )
    }

    /// Adds `signature`, replacing an earlier one by the same key.
    pub fn add(&mut self, signature: Signature) {
        self.signatures.retain(|s| s.key != signature.key);
        self.signatures.push(signature);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032, section 7.1, TEST 2: a published key, message and signature.
    #[test]
    fn verification_agrees_with_the_rfc_8032_test_vector() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let public = PublicKey(
            hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
                .try_into()
                .unwrap(),
        );
        let signature = B64.encode(hex(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ));
        assert!(public.verifies(&[0x72], &signature));
        assert!(!public.verifies(&[0x73], &signature));
    }

    #[test]
    fn a_generated_key_signs_what_its_public_key_verifies_and_nothing_else() {
        let (key, pem) = SigningKey::generate("acme-2026").unwrap();
        let again = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(again.id, "acme-2026");
        assert_eq!(again.public_key(), key.public_key());
        let s = key.sign(b"id = \"retail\"\n");
        assert!(
            key.public_key()
                .verifies(b"id = \"retail\"\n", &s.signature)
        );
        assert!(
            !key.public_key()
                .verifies(b"id = \"retai1\"\n", &s.signature)
        );
        let text = key.public_key().to_string();
        assert_eq!(PublicKey::parse(&text).unwrap(), key.public_key());
        let (other, _) = SigningKey::generate("other").unwrap();
        assert!(
            !other
                .public_key()
                .verifies(b"id = \"retail\"\n", &s.signature)
        );
    }

    #[test]
    fn key_files_with_windows_line_endings_are_read() {
        let (key, pem) = SigningKey::generate("crlf").unwrap();
        let again = SigningKey::from_pem(&pem.replace('\n', "\r\n")).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(again.id, "crlf");
    }

    #[test]
    fn a_signature_file_round_trips_and_keeps_one_signature_per_key() {
        let mut file = SignatureFile::default();
        for (key, sig) in [("a", "x"), ("b", "y"), ("a", "z")] {
            file.add(Signature {
                key: key.into(),
                signature: sig.into(),
            });
        }
        let parsed = SignatureFile::parse(&file.render()).unwrap();
        assert_eq!(parsed, file);
        assert_eq!(parsed.signatures.len(), 2);
        assert!(SignatureFile::parse("").is_err());
        assert!(PublicKey::parse("ed25519:AAAA").is_err());
    }
}
