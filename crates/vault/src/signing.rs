//! Ed25519 signatures over audit checkpoints.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// Signs checkpoint messages with the data directory's key.
pub struct CheckpointSigner {
    key: SigningKey,
}

impl CheckpointSigner {
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(seed) }
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The verifier for this signer's signatures.
    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier { key: self.key.verifying_key() }
    }

    /// The public key, hex, as an identifier recorded with each checkpoint.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }
}

/// Checks checkpoint signatures.
#[derive(Clone)]
pub struct CheckpointVerifier {
    key: VerifyingKey,
}

impl CheckpointVerifier {
    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(signature) else { return false };
        self.key.verify(message, &Signature::from_bytes(&sig)).is_ok()
    }

    /// The public key, hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let s = CheckpointSigner::from_seed(&[7; 32]);
        let other = CheckpointSigner::from_seed(&[8; 32]);
        let sig = s.sign(b"checkpoint 10");
        assert!(s.verifier().verify(b"checkpoint 10", &sig));
        assert!(!s.verifier().verify(b"checkpoint 11", &sig));
        assert!(!other.verifier().verify(b"checkpoint 10", &sig));
        assert!(!s.verifier().verify(b"checkpoint 10", &sig[..63]));
        let key = s.verifier().public_key_hex();
        assert_eq!((key.len(), key.as_str()), (64, s.public_key_hex().as_str()), "the same key, 32 bytes in hex");
        assert_ne!(key, other.public_key_hex());
    }
}
