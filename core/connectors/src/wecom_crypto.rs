//! WeCom's callback encryption (「加解密方案」), as the official libraries (`WXBizMsgCrypt`)
//! implement it:
//!
//! - the signature is the hex SHA-1 of the callback Token, the timestamp, the nonce and the
//!   encrypted message, sorted as byte strings and concatenated;
//! - the AES key is the base64 of the 43-character EncodingAESKey with `=` appended (32
//!   bytes); messages are AES-256-CBC with the key's first 16 bytes as IV, padded PKCS#7
//!   style to a multiple of 32 bytes;
//! - the plaintext is 16 random bytes, the message's length (4 bytes, big-endian), the
//!   message and the receiver id (the corp id, or a suite id), which must be ours.
//!
//! Tested with WeCom's published vectors and with messages encrypted by Python's
//! `cryptography` package (`tests/fixtures/wecom/`), never with an encryptor of ours.

use aes::{
    Aes256,
    cipher::{BlockDecrypt, KeyInit, generic_array::GenericArray},
};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use sha1::{Digest, Sha1};

/// Why a callback is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 characters of base64.
    #[error("the EncodingAESKey is not 43 characters of base64")]
    BadKey,
    /// `msg_signature` does not match.
    #[error("the signature does not match")]
    BadSignature,
    /// The encrypted message does not decrypt to a well-formed plaintext.
    #[error("the message does not decrypt: {0}")]
    Malformed(&'static str),
    /// The plaintext names another receiver.
    #[error("the message is for another receiver")]
    OtherReceiver,
}

/// One WeCom app's callback keys.
pub struct Crypt {
    token: String,
    key: [u8; 32],
    receiver_id: String,
}

impl std::fmt::Debug for Crypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crypt")
            .field("receiver_id", &self.receiver_id)
            .finish_non_exhaustive()
    }
}

impl Crypt {
    /// The keys of an app: its Token, EncodingAESKey and receiver id.
    pub fn new(
        token: &str,
        encoding_aes_key: &str,
        receiver_id: &str,
    ) -> Result<Crypt, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::BadKey);
        }
        // WeCom's keys end in bits a strict decoder refuses (its own libraries ignore them)
        const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let bytes = LENIENT
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Crypt {
            token: token.to_owned(),
            key,
            receiver_id: receiver_id.to_owned(),
        })
    }

    /// The signature WeCom sends as `msg_signature` for `encrypted`.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypted];
        parts.sort_unstable();
        let digest = Sha1::digest(parts.concat().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Checks `signature` and decrypts `encrypted` (the `echostr` of the URL check, or the
    /// `Encrypt` element of a message): answers the message.
    pub fn open(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let expected = self.signature(timestamp, nonce, encrypted);
        if !equal(
            expected.as_bytes(),
            signature.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(CryptoError::BadSignature);
        }
        self.decrypt(encrypted)
    }

    /// Decrypts a message (its signature checked by the caller).
    fn decrypt(&self, encrypted: &str) -> Result<Vec<u8>, CryptoError> {
        let mut data = B64
            .decode(encrypted.trim())
            .map_err(|_| CryptoError::Malformed("not base64"))?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(CryptoError::Malformed("not whole AES blocks"));
        }
        let cipher = Aes256::new(GenericArray::from_slice(&self.key));
        // CBC: each plaintext block is the decrypted block XOR the ciphertext block before
        let mut previous: [u8; 16] = self.key[..16].try_into().expect("16 bytes");
        for block in data.chunks_exact_mut(16) {
            let saved: [u8; 16] = (&*block).try_into().expect("16 bytes");
            cipher.decrypt_block(GenericArray::from_mut_slice(block));
            for (b, p) in block.iter_mut().zip(previous) {
                *b ^= p;
            }
            previous = saved;
        }
        let pad = *data.last().expect("not empty") as usize;
        if pad == 0
            || pad > 32
            || pad > data.len()
            || !data[data.len() - pad..].iter().all(|b| *b as usize == pad)
        {
            return Err(CryptoError::Malformed("bad padding"));
        }
        data.truncate(data.len() - pad);
        if data.len() < 20 {
            return Err(CryptoError::Malformed("too short"));
        }
        let len = u32::from_be_bytes(data[16..20].try_into().expect("4 bytes")) as usize;
        let Some(rest) = data.get(20..).filter(|r| r.len() >= len) else {
            return Err(CryptoError::Malformed("the length runs past the end"));
        };
        let (message, receiver) = rest.split_at(len);
        if receiver != self.receiver_id.as_bytes() {
            return Err(CryptoError::OtherReceiver);
        }
        Ok(message.to_vec())
    }
}

/// Compares in time independent of where the inputs differ.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WeCom's published example (加解密方案说明 and the `WXBizMsgCrypt` samples).
    fn official() -> Crypt {
        Crypt::new(
            "QDG6eK",
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            "wx5823bf96d3bd56c7",
        )
        .unwrap()
    }

    #[test]
    fn the_official_url_check_answers_its_echostr() {
        let echo = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
        let plain = official()
            .open(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                "1409659589",
                "263014780",
                echo,
            )
            .unwrap();
        assert_eq!(plain, b"1616140317555161061");
    }

    const MESSAGE: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";

    #[test]
    fn the_official_message_decrypts_to_its_xml() {
        let plain = official()
            .open(
                "477715d11cdb4164915debcba66cb864d751f3e6",
                "1409659813",
                "1372623149",
                MESSAGE,
            )
            .unwrap();
        let text = String::from_utf8(plain).unwrap();
        assert!(text.starts_with("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"));
        assert!(text.contains("<Content><![CDATA[hello]]></Content>"));
        assert!(text.ends_with("<AgentID>218</AgentID>\n</xml>"));
    }

    #[test]
    fn a_changed_signature_timestamp_or_message_is_refused() {
        let c = official();
        let sig = "477715d11cdb4164915debcba66cb864d751f3e6";
        assert_eq!(
            c.open(sig, "1409659814", "1372623149", MESSAGE),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            c.open(
                "477715d11cdb4164915debcba66cb864d751f3e7",
                "1409659813",
                "1372623149",
                MESSAGE
            ),
            Err(CryptoError::BadSignature)
        );
        let other = Crypt::new(
            "QDG6eK",
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            "ww-other",
        )
        .unwrap();
        assert_eq!(
            other.open(sig, "1409659813", "1372623149", MESSAGE),
            Err(CryptoError::OtherReceiver)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let c = official();
        for junk in [
            "",
            "AAAA",
            "%%%",
            "AAAAAAAAAAAAAAAAAAAAAA==",
            &"A".repeat(44),
        ] {
            let sig = c.signature("1", "2", junk);
            assert!(c.open(&sig, "1", "2", junk).is_err(), "{junk}");
        }
        assert_eq!(
            Crypt::new("t", "short", "r").err(),
            Some(CryptoError::BadKey)
        );
    }
}
