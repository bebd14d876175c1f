//! Time-based one-time passwords (RFC 6238, over HOTP of RFC 4226): six digits from
//! HMAC-SHA1 of the 30-second step, as every authenticator app computes them; and the
//! secret's base32 form (RFC 4648) those apps are given.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP: u64 = 30;

/// The HOTP value of `counter` under `secret`, as `digits` decimal digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let code = u32::from_be_bytes([h[offset] & 0x7f, h[offset + 1], h[offset + 2], h[offset + 3]]);
    code % 10u32.pow(digits)
}

/// The six-digit code for `unix_s`.
pub fn totp(secret: &[u8], unix_s: u64) -> u32 {
    hotp(secret, unix_s / STEP, 6)
}

/// Whether `code` is the code at `unix_s` or one step either side (clocks drift).
pub fn check(secret: &[u8], code: &str, unix_s: u64) -> bool {
    let Ok(n) = code.trim().parse::<u32>() else { return false };
    if code.trim().len() != 6 {
        return false;
    }
    let step = unix_s / STEP;
    [step.saturating_sub(1), step, step + 1].into_iter().any(|s| hotp(secret, s, 6) == n)
}

/// `bytes` in base32 (RFC 4648 alphabet, no padding).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_4226_and_6238_vectors() {
        let hotp6 = [755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871, 520_489];
        for (i, want) in hotp6.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, i as u64, 6), *want, "counter {i}");
        }
        // RFC 6238 appendix B (SHA-1, 8 digits).
        for (t, want) in
            [(59, 94_287_082), (1_111_111_109, 7_081_804), (1_234_567_890, 89_005_924), (2_000_000_000, 69_279_037)]
        {
            assert_eq!(hotp(RFC_SECRET, t / STEP, 8), want, "time {t}");
        }
        assert_eq!(totp(RFC_SECRET, 59), 287_082);
    }

    #[test]
    fn a_code_checks_within_one_step_either_side() {
        let now = 1_111_111_109;
        let code = format!("{:06}", totp(RFC_SECRET, now));
        assert!(check(RFC_SECRET, &code, now));
        assert!(check(RFC_SECRET, &code, now + STEP));
        assert!(check(RFC_SECRET, &code, now - STEP));
        assert!(!check(RFC_SECRET, &code, now + 2 * STEP), "two steps late");
        assert!(!check(RFC_SECRET, &code, now - 2 * STEP), "two steps early");
        assert!(!check(b"another secret", &code, now));
        for bad in ["", "12345", "1234567", "abcdef"] {
            assert!(!check(RFC_SECRET, bad, now), "{bad}");
        }
    }

    #[test]
    fn base32_follows_rfc_4648() {
        for (plain, want) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(plain.as_bytes()), want, "{plain}");
        }
    }
}
