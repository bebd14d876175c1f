//! Passwords: kept only as a salted hash (argon2id, PHC string format), never in a form
//! that can be turned back into the password.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;

/// The salted argon2id hash of `password` (a fresh random salt each time), as a PHC
/// string: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .expect("argon2id with its default parameters hashes any password")
}

/// Whether `password` matches `phc`, a hash made by [`hash_password`]. A malformed hash
/// never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_password_matches_its_salted_hash() {
        let a = hash_password("correct horse battery staple");
        let b = hash_password("correct horse battery staple");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("correct horse"), "the hash does not contain the password");
        assert!(verify_password("correct horse battery staple", &a));
        assert!(verify_password("correct horse battery staple", &b));
        assert!(!verify_password("correct horse battery stapl", &a));
        assert!(!verify_password("correct horse battery staple", "not a hash"));
    }
}
