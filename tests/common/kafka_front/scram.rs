//! The server side of SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677)
//! as Kafka runs it: two SaslAuthenticate round trips, no channel binding.
//!
//! ```text
//! client-first  n,,n=user,r=cnonce
//! server-first  r=cnonce+snonce,s=base64(salt),i=4096
//! client-final  c=biws,r=cnonce+snonce,p=base64(proof)
//! server-final  v=base64(ServerSignature)
//! ```
//!
//! The proof is checked for real: the password is salted and stretched
//! (PBKDF2), and the client's proof must recover the stored key.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

/// Kafka's default iteration count (and librdkafka accepts up to 1,000,000).
const ITERATIONS: u32 = 4096;

/// Which SHA-2 hash the mechanism uses.
#[derive(Clone, Copy)]
pub struct Hash {
    pbkdf2: pbkdf2::Algorithm,
    hmac: hmac::Algorithm,
}

/// SCRAM-SHA-256.
pub const SHA_256: Hash = Hash {
    pbkdf2: pbkdf2::PBKDF2_HMAC_SHA256,
    hmac: hmac::HMAC_SHA256,
};

/// SCRAM-SHA-512.
pub const SHA_512: Hash = Hash {
    pbkdf2: pbkdf2::PBKDF2_HMAC_SHA512,
    hmac: hmac::HMAC_SHA512,
};

/// What the server keeps between the two round trips.
pub struct Pending {
    user: String,
    nonce: String,
    auth_message_start: String,
    salted_password: Vec<u8>,
}

/// Answers the client-first message: the server-first message and what
/// the second round trip needs. `None` if the message is malformed.
///
/// An unknown user gets a challenge too (and fails at the proof), as a
/// broker that does not reveal which users exist would.
pub fn first(hash: Hash, password: &str, client_first: &[u8]) -> Option<(String, Pending)> {
    let client_first = std::str::from_utf8(client_first).ok()?;
    // gs2-header "n,," : no channel binding, no authorization identity.
    let bare = client_first.strip_prefix("n,,")?;
    let user = attribute(bare, 'n')?
        .replace("=2C", ",")
        .replace("=3D", "=");
    let client_nonce = attribute(bare, 'r')?;
    let random = SystemRandom::new();
    let mut salt = [0u8; 16];
    let mut server_nonce = [0u8; 18];
    random.fill(&mut salt).ok()?;
    random.fill(&mut server_nonce).ok()?;
    let nonce = format!("{client_nonce}{}", STANDARD.encode(server_nonce));
    let server_first = format!("r={nonce},s={},i={ITERATIONS}", STANDARD.encode(salt));
    let mut salted_password = vec![0u8; hash.hmac.digest_algorithm().output_len()];
    pbkdf2::derive(
        hash.pbkdf2,
        // A non-zero constant.
        NonZeroU32::new(ITERATIONS).unwrap(),
        &salt,
        password.as_bytes(),
        &mut salted_password,
    );
    let pending = Pending {
        user,
        nonce,
        auth_message_start: format!("{bare},{server_first}"),
        salted_password,
    };
    Some((server_first, pending))
}

/// Checks the client-final message of `expected_user`: the server-final
/// message if the proof is right, `None` otherwise.
pub fn last(
    hash: Hash,
    expected_user: &str,
    pending: &Pending,
    client_final: &[u8],
) -> Option<String> {
    let client_final = std::str::from_utf8(client_final).ok()?;
    let (without_proof, proof) = client_final.rsplit_once(",p=")?;
    // "biws" is base64("n,,"): the gs2 header the client sent first.
    if attribute(without_proof, 'c')? != "biws" || attribute(without_proof, 'r')? != pending.nonce {
        return None;
    }
    let proof = STANDARD.decode(proof).ok()?;
    let auth_message = format!("{},{without_proof}", pending.auth_message_start);
    let client_key = sign(hash, &pending.salted_password, b"Client Key");
    let stored_key = digest::digest(hash.hmac.digest_algorithm(), &client_key);
    let client_signature = sign(hash, stored_key.as_ref(), auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return None;
    }
    let recovered_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let recovered_stored_key = digest::digest(hash.hmac.digest_algorithm(), &recovered_key);
    if pending.user != expected_user || recovered_stored_key.as_ref() != stored_key.as_ref() {
        return None;
    }
    let server_key = sign(hash, &pending.salted_password, b"Server Key");
    let server_signature = sign(hash, &server_key, auth_message.as_bytes());
    Some(format!("v={}", STANDARD.encode(server_signature)))
}

fn sign(hash: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hash.hmac, key), data)
        .as_ref()
        .to_vec()
}

/// The value of `name=` in a comma-separated SCRAM message.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        part.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
    })
}
