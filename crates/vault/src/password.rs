//! Passwords: kept only as a salted hash (argon2id, PHC string format), never in a form
//! that can be turned back into the password.
//!
//! argon2id works through 19 MiB of memory per password by design. That memory is
//! kept and reused (a few buffers, one per hash running at once) rather than allocated
//! and freed each time: freed buffers that size stay with the allocator, and under a
//! steady stream of sign-ups a process held a gigabyte it no longer used.

use std::sync::Mutex;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// A stored hash that is not an argon2id PHC string charter can check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored password hash is malformed: {0}")]
pub struct MalformedHash(&'static str);

/// Working memory kept for reuse, at most [`KEEP`] buffers.
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
/// Buffers kept: more hashes than this at once allocate their own and free them after.
const KEEP: usize = 4;
/// Buffers allocated since the process started.
static ALLOCATED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `f` with `blocks` blocks of working memory, reusing a kept buffer when one fits.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let lock = || MEMORY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let kept = lock().pop();
    let mut memory = match kept {
        Some(m) if m.len() == blocks => m,
        _ => {
            ALLOCATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            vec![Block::default(); blocks]
        }
    };
    let out = f(&mut memory);
    let mut kept = lock();
    if kept.len() < KEEP {
        kept.push(memory);
    }
    out
}

/// How many working-memory buffers were allocated since the process started.
pub fn buffers_allocated() -> usize {
    ALLOCATED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The raw argon2id output for `password` and `salt`, as long as `out`.
fn derive(version: Version, params: Params, password: &str, salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    let argon = Argon2::new(Algorithm::Argon2id, version, params.clone());
    with_memory(params.block_count(), |memory| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt, out, memory)
    })
}

/// The salted argon2id hash of `password` (a fresh random salt each time), as a PHC
/// string: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    let mut raw_salt = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut raw_salt).expect("a generated salt decodes");
    let params = Params::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    derive(Version::V0x13, params.clone(), password, salt_bytes, &mut out)
        .expect("argon2id with its default parameters hashes any password");
    let output = Output::new(&out).expect("32 bytes is a valid output length");
    format!(
        "$argon2id$v={}$m={},t={},p={}${}${output}",
        u32::from(Version::V0x13),
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str()
    )
}

/// Whether `password` matches `phc`, an argon2id hash in PHC string format (as
/// [`hash_password`] makes, with whatever parameters it names). A hash that does not
/// parse is an error, never a mismatch.
pub fn check_password(password: &str, phc: &str) -> Result<bool, MalformedHash> {
    let hash = PasswordHash::new(phc).map_err(|_| MalformedHash("not a PHC string"))?;
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return Err(MalformedHash("not argon2id"));
    }
    let version = match hash.version {
        Some(v) => Version::try_from(v).map_err(|_| MalformedHash("unknown argon2 version"))?,
        None => Version::V0x13,
    };
    let params = Params::try_from(&hash).map_err(|_| MalformedHash("bad parameters"))?;
    let expected = hash.hash.ok_or(MalformedHash("no hash"))?;
    let mut raw_salt = [0u8; 64];
    let salt = hash.salt.ok_or(MalformedHash("no salt"))?;
    let salt = salt.decode_b64(&mut raw_salt).map_err(|_| MalformedHash("bad salt"))?;
    let mut out = vec![0u8; expected.len()];
    derive(version, params, password, salt, &mut out).map_err(|_| MalformedHash("parameters out of range"))?;
    // `Output`'s comparison takes the same time wherever the first difference is.
    Ok(Output::new(&out).is_ok_and(|o| o == expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_four_working_buffers_are_kept() {
        // Six buffers in use at once; afterwards no more than four stay kept.
        fn nested(depth: usize) {
            if depth > 0 {
                with_memory(1, |_| nested(depth - 1));
            }
        }
        nested(6);
        assert!(MEMORY.lock().unwrap().len() <= KEEP, "{} kept", MEMORY.lock().unwrap().len());
    }
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    #[test]
    fn only_the_password_matches_its_salted_hash() {
        let a = hash_password("correct horse battery staple");
        let b = hash_password("correct horse battery staple");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("correct horse"), "the hash does not contain the password");
        assert_eq!(check_password("correct horse battery staple", &a), Ok(true));
        assert_eq!(check_password("correct horse battery staple", &b), Ok(true));
        assert_eq!(check_password("correct horse battery stapl", &a), Ok(false));
        assert_eq!(check_password("", &a), Ok(false));
    }

    #[test]
    fn hashes_are_standard_argon2id_either_way() {
        let ours = hash_password("pw-0123456789");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"pw-0123456789", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"pw-012345678", &parsed).is_err());
        // A hash made elsewhere, with other parameters, checks too.
        let params = Params::new(8 * 1024, 1, 1, Some(24)).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw-0123456789", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert_eq!(check_password("pw-0123456789", &theirs), Ok(true));
        assert_eq!(check_password("pw-01234567890", &theirs), Ok(false));
        // One that needs more memory than the buffers kept gets a buffer of its own size.
        let bigger = Params::new(24 * 1024, 1, 1, None).unwrap();
        let large = Argon2::new(Algorithm::Argon2id, Version::V0x13, bigger)
            .hash_password(b"pw", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert_eq!(check_password("pw", &large), Ok(true));
    }

    #[test]
    fn a_malformed_hash_is_an_error_not_a_mismatch() {
        let good = hash_password("pw");
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default())
            .hash_password(b"pw", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        let cases = [
            ("not a hash", "not a PHC string"),
            (argon2i.as_str(), "not argon2id"),
            ("$argon2id$v=17$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "unknown argon2 version"),
            ("$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "bad parameters"),
            ("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ", "no hash"),
        ];
        for (phc, why) in cases {
            assert_eq!(check_password("pw", phc), Err(MalformedHash(why)), "{phc}");
        }
        let cut = &good[..good.rfind('$').unwrap()];
        assert_eq!(check_password("pw", cut), Err(MalformedHash("no hash")));
    }
}
