//! The recognisers. Each walks the bytes once looking for its own anchor ('@',
//! a scheme, a digit run, two capitals and two digits, ...), then confirms with
//! a checksum, a structure rule or context words. [`scan`] merges their findings
//! so that overlapping matches keep only the most certain.

use crate::entity::{EntityType, Finding};

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn word_before(text: &[u8], at: usize) -> bool {
    at > 0 && (is_alnum(text[at - 1]) || text[at - 1] == b'_')
}

fn word_after(text: &[u8], at: usize) -> bool {
    at < text.len() && (is_alnum(text[at]) || text[at] == b'_')
}

/// The position of the next byte in `lo..=hi` (both ASCII, `lo` above 0) at or
/// after `from`, eight bytes at a time.
pub(crate) fn next_in_range(text: &[u8], mut from: usize, lo: u8, hi: u8) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    debug_assert!(lo > 0 && hi < 0x80 && lo <= hi);
    while from + 8 <= text.len() {
        let mut chunk = [0u8; 8];
        chunk.copy_from_slice(&text[from..from + 8]);
        let x = u64::from_le_bytes(chunk);
        // A byte in lo..=hi (and below 0x80) gets its high bit set; no lane carries into the next.
        let low7 = x & !HIGH;
        let above = low7.wrapping_add(ONES * (0x80 - u64::from(lo)));
        let below = (ONES * (0x80 + u64::from(hi))).wrapping_sub(low7);
        let hits = above & below & !x & HIGH;
        if hits != 0 {
            return Some(from + (hits.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    text.get(from..)?.iter().position(|b| (lo..=hi).contains(b)).map(|p| from + p)
}

/// The furthest [`context_before`] looks back for context words. No detector looks
/// further past a value, except over blanks alone (as `names::word_before` does),
/// which any number of blanks passes the same.
const MAX_CONTEXT: usize = 64;

/// Whether one of `words` occurs (case-insensitively) in the `window` bytes before `at`
/// (at most [`MAX_CONTEXT`]).
fn context_before(text: &[u8], at: usize, window: usize, words: &[&str]) -> bool {
    let src = &text[at.saturating_sub(window.min(MAX_CONTEXT))..at];
    let mut buf = [0u8; MAX_CONTEXT];
    let hay = &mut buf[..src.len()];
    hay.copy_from_slice(src);
    hay.make_ascii_lowercase();
    words.iter().any(|w| {
        let w = w.as_bytes();
        hay.windows(w.len()).any(|x| x[0] == w[0] && x == w)
    })
}

#[inline(never)]
fn email(text: &[u8], out: &mut Vec<Finding>) {
    // Non-ASCII bytes are allowed in the local part (internationalised addresses); the
    // scan stops only at ASCII, so spans always fall on character boundaries.
    let local = |b: u8| is_alnum(b) || b"._%+-".contains(&b) || b >= 0x80;
    let domain = |b: u8| is_alnum(b) || b == b'.' || b == b'-';
    for i in memchr::memchr_iter(b'@', text) {
        let mut l = i;
        while l > 0 && local(text[l - 1]) {
            l -= 1;
        }
        while l < i && b"._%+-".contains(&text[l]) {
            l += 1;
        }
        let mut r = i + 1;
        while r < text.len() && domain(text[r]) {
            r += 1;
        }
        while r > i + 1 && !is_alnum(text[r - 1]) {
            r -= 1;
        }
        if l == i || r <= i + 1 {
            continue;
        }
        let dom = &text[i + 1..r];
        let Some(dot) = dom.iter().rposition(|b| *b == b'.') else { continue };
        let tld = &dom[dot + 1..];
        if tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) || dom.windows(2).any(|w| w == b"..") {
            continue;
        }
        out.push(Finding { kind: EntityType::EmailAddress, start: l, end: r, confidence: 0.95 });
    }
}

#[inline(never)]
fn url(text: &[u8], out: &mut Vec<Finding>) {
    let stop = |b: u8| b.is_ascii_whitespace() || b"\"'<>()[]{}|\\^`".contains(&b) || !b.is_ascii();
    let mut anchors: Vec<(usize, usize, f32)> = Vec::new();
    for p in memchr::memmem::find_iter(text, b"://") {
        for (scheme, skip) in [(&b"https"[..], 8), (&b"http"[..], 7)] {
            if p >= scheme.len() && text[p - scheme.len()..p].eq_ignore_ascii_case(scheme) {
                anchors.push((p - scheme.len(), skip, 0.9));
                break;
            }
        }
    }
    for p in memchr::memmem::find_iter(text, b"www.").chain(memchr::memmem::find_iter(text, b"WWW.")) {
        anchors.push((p, 4, 0.7));
    }
    anchors.sort_unstable_by_key(|a| a.0);
    let mut covered = 0;
    for (i, skip, confidence) in anchors {
        if i < covered || word_before(text, i) {
            continue;
        }
        let mut r = i + skip;
        while r < text.len() && !stop(text[r]) {
            r += 1;
        }
        while r > i + skip && b".,;:!?".contains(&text[r - 1]) {
            r -= 1;
        }
        let host_end = text[i + skip..r].iter().position(|b| b"/?#:".contains(b)).map_or(r, |p| i + skip + p);
        let host = &text[i + skip..host_end];
        if host.contains(&b'.') && host.iter().all(|b| is_alnum(*b) || b"-.".contains(b)) && !host.ends_with(b".") {
            out.push(Finding { kind: EntityType::Url, start: i, end: r, confidence });
            covered = r;
        }
    }
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn ipv4(token: &[u8]) -> bool {
    let parts: Vec<&[u8]> = token.split(|b| *b == b'.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.iter().all(u8::is_ascii_digit)
                && (p.len() == 1 || p[0] != b'0')
                && std::str::from_utf8(p).ok().and_then(|s| s.parse::<u16>().ok()).is_some_and(|n| n <= 255)
        })
}

fn date_like(token: &[u8]) -> bool {
    // Three runs of digits split by one kind of separator, one of them a plausible year.
    let mut parts = [(0usize, 0u32); 3]; // (length, value)
    let mut k = 0;
    let mut sep = None;
    for &b in token {
        if b.is_ascii_digit() {
            let (len, val) = &mut parts[k];
            *len += 1;
            *val = val.saturating_mul(10).saturating_add(u32::from(b - b'0'));
        } else if matches!(b, b'-' | b'/' | b'.') && sep.is_none_or(|s| s == b) && k < 2 && parts[k].0 > 0 {
            sep = Some(b);
            k += 1;
        } else {
            return false;
        }
    }
    if k != 2 || parts[2].0 == 0 {
        return false;
    }
    let (y, a, b) = if parts[0].0 == 4 {
        (parts[0].1, parts[1].1, parts[2].1)
    } else if parts[2].0 == 4 {
        (parts[2].1, parts[0].1, parts[1].1)
    } else {
        return false;
    };
    (1900..=2100).contains(&y) && (1..=31).contains(&a) && (1..=31).contains(&b) && (a <= 12 || b <= 12)
}

fn ssn_valid(d: &[u8]) -> bool {
    let area = &d[..3];
    let group = &d[3..5];
    let serial = &d[5..];
    area != b"000" && area != b"666" && area[0] != b'9' && group != b"00" && serial != b"0000"
}

const PHONE_WORDS: &[&str] = &["phone", "tel", "call", "mobile", "cell", "fax", "whatsapp", "contact"];
const BIRTH_WORDS: &[&str] = &["born", "birth", "dob", "d.o.b", "birthday"];
const SSN_WORDS: &[&str] = &["ssn", "social security", "social-security"];

/// Digit runs: card numbers, phone numbers, SSNs, IPv4 addresses, dates of birth.
#[inline(never)]
fn numbers(text: &[u8], out: &mut Vec<Finding>) {
    let sep = |b: u8| b" -./()".contains(&b);
    let mut i = 0;
    while i < text.len() {
        // Every number has a digit: jump to the next one (or to the '+' or '(' right before it).
        let Some(d) = next_in_range(text, i, b'0', b'9') else { break };
        i = if d > i && (text[d - 1] == b'+' || text[d - 1] == b'(') { d - 1 } else { d };
        let b = text[i];
        let starts =
            b.is_ascii_digit() || ((b == b'+' || b == b'(') && text.get(i + 1).is_some_and(u8::is_ascii_digit));
        if !starts || word_before(text, i) || (i > 0 && (text[i - 1] == b'.' || text[i - 1] == b'-')) {
            i += 1;
            continue;
        }
        let start = i;
        let mut r = i + 1;
        while r < text.len() {
            let digit = text[r].is_ascii_digit() || (text[r] == b')' && r > start);
            // A separator continues the run only when a digit (or an opening bracket) follows it.
            let joins = sep(text[r]) && text.get(r + 1).is_some_and(|n| n.is_ascii_digit() || *n == b'(');
            if !(digit || joins) {
                break;
            }
            r += 1;
        }
        let mut end = r;
        i = end.max(i + 1);
        if word_after(text, end) || text.get(end) == Some(&b':') {
            // Part of an identifier, or a time or port ("12:00", "host:8080").
            if text.get(end) != Some(&b':') || end - start < 10 || !date_like(&text[start..start + 10]) {
                continue;
            }
        }
        // A date followed by a time: only the date part counts.
        if end - start > 10 && date_like(&text[start..start + 10]) && text[start + 10] == b' ' {
            end = start + 10;
            i = end;
        }
        // A dash- or dot-formatted number (SSN, IPv4 address, date) then a space and another
        // number are two numbers: "874-80-6968 28279".
        if let Some(sp) = text[start..end].iter().position(|b| *b == b' ') {
            let first = &text[start..start + sp];
            let formatted =
                (first.len() == 11 && first[3] == b'-' && first[6] == b'-') || ipv4(first) || date_like(first);
            if formatted {
                end = start + sp;
                i = end;
            }
        }
        let token = &text[start..end];
        if token.len() > 40 {
            continue; // longer than any number charter recognises
        }
        let mut digit_buf = [0u8; 40];
        let mut sep_buf = [0u8; 40];
        let (mut n, mut m) = (0, 0);
        for &b in token {
            if b.is_ascii_digit() {
                digit_buf[n] = b;
                n += 1;
            } else {
                sep_buf[m] = b;
                m += 1;
            }
        }
        let (digits, seps) = (&digit_buf[..n], &sep_buf[..m]);
        let prefixed_v = || {
            (start > 0 && (text[start - 1] == b'v' || text[start - 1] == b'V'))
                || context_before(text, start, 12, &["version", "release", "build", "ver."])
        };
        // Numbers introduced as references are not card numbers, whatever their checksum says.
        let reference =
            || context_before(text, start, 16, &["order", "invoice", "reference", "ref.", "ref:", "tracking"]);
        if seps.iter().all(|b| *b == b'.') && ipv4(token) && !prefixed_v() {
            let c = if context_before(text, start, 24, &["ip", "address", "host", "from"]) { 0.95 } else { 0.85 };
            out.push(Finding { kind: EntityType::IpAddress, start, end, confidence: c });
            continue;
        }
        if date_like(token) {
            if context_before(text, start, 40, BIRTH_WORDS) {
                out.push(Finding { kind: EntityType::DateOfBirth, start, end, confidence: 0.85 });
            }
            continue;
        }
        if n == 9
            && (token.len() == 11 && token[3] == token[6] && (token[3] == b'-' || token[3] == b' '))
            && ssn_valid(digits)
        {
            let c = if context_before(text, start, 30, SSN_WORDS) { 0.95 } else { 0.8 };
            out.push(Finding { kind: EntityType::UsSsn, start, end, confidence: c });
            continue;
        }
        if n == 9 && token.len() == 9 && ssn_valid(digits) && context_before(text, start, 30, SSN_WORDS) {
            out.push(Finding { kind: EntityType::UsSsn, start, end, confidence: 0.7 });
            continue;
        }
        let card_seps = seps.iter().all(|b| *b == b' ' || *b == b'-');
        if (13..=19).contains(&n)
            && card_seps
            && token[0] != b'+'
            && (b'2'..=b'6').contains(&digits[0])
            && luhn(digits)
            && !reference()
        {
            out.push(Finding { kind: EntityType::CreditCard, start, end, confidence: 0.95 });
            continue;
        }
        let phone_context = || context_before(text, start, 30, PHONE_WORDS);
        if token[0] == b'+' && (8..=15).contains(&n) && !seps.contains(&b'/') {
            out.push(Finding { kind: EntityType::PhoneNumber, start, end, confidence: 0.9 });
        } else if (10..=11).contains(&n)
            && !seps.is_empty()
            && !seps.contains(&b'/')
            && seps.iter().filter(|b| **b != b'(' && **b != b')').count() >= 1
        {
            // National formats: (415) 555-0100, 415-555-0100, 415.555.0100, 020 7946 0018.
            let groups: Vec<usize> =
                token.split(|b| !b.is_ascii_digit()).filter(|g| !g.is_empty()).map(<[u8]>::len).collect();
            let plausible = groups.len() >= 2
                && groups.len() <= 4
                && groups.iter().all(|g| (2..=5).contains(g) || *g == 6 && groups.len() == 2);
            if plausible {
                out.push(Finding {
                    kind: EntityType::PhoneNumber,
                    start,
                    end,
                    confidence: if phone_context() { 0.9 } else { 0.7 },
                });
            }
        } else if (10..=11).contains(&n) && seps.is_empty() && phone_context() {
            out.push(Finding { kind: EntityType::PhoneNumber, start, end, confidence: 0.6 });
        }
    }
}

#[inline(never)]
fn iban(text: &[u8], out: &mut Vec<Finding>) {
    let mut i = 0;
    while i + 4 <= text.len() {
        match next_in_range(text, i, b'A', b'Z') {
            Some(p) if p + 4 <= text.len() => i = p,
            _ => break,
        }
        let t = &text[i..];
        let anchor =
            t[0].is_ascii_uppercase() && t[1].is_ascii_uppercase() && t[2].is_ascii_digit() && t[3].is_ascii_digit();
        if !anchor || word_before(text, i) {
            i += 1;
            continue;
        }
        let mut chars = Vec::with_capacity(34);
        let mut r = i;
        while r < text.len() && chars.len() < 34 {
            let b = text[r];
            if b.is_ascii_uppercase() || b.is_ascii_digit() {
                chars.push(b);
                r += 1;
            } else if b == b' '
                && text.get(r + 1).is_some_and(|n| n.is_ascii_uppercase() || n.is_ascii_digit())
                && chars.len() % 4 == 0
            {
                r += 1;
            } else {
                break;
            }
        }
        if (15..=34).contains(&chars.len()) && !word_after(text, r) && mod97(&chars) {
            out.push(Finding { kind: EntityType::IbanCode, start: i, end: r, confidence: 0.95 });
            i = r;
        } else {
            i += 1;
        }
    }
}

fn mod97(chars: &[u8]) -> bool {
    let mut rem: u32 = 0;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let v = if c.is_ascii_digit() { u32::from(c - b'0') } else { u32::from(c - b'A') + 10 };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

#[inline(never)]
fn ipv6(text: &[u8], out: &mut Vec<Finding>) {
    let part = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    let mut next = 0;
    // Every IPv6 address has colons: expand around each one not already covered.
    for c in memchr::memchr_iter(b':', text) {
        if c < next {
            continue;
        }
        let mut i = c;
        while i > 0 && part(text[i - 1]) {
            i -= 1;
        }
        let mut r = c;
        while r < text.len() && part(text[r]) {
            r += 1;
        }
        next = r;
        if word_before(text, i) || word_after(text, r) {
            continue;
        }
        let token = &text[i..r];
        if token.iter().filter(|b| **b == b':').count() < 2 {
            continue;
        }
        let trimmed = token.strip_suffix(b".").unwrap_or(token);
        if let Ok(s) = std::str::from_utf8(trimmed) {
            let colons = s.matches(':').count();
            if s.parse::<std::net::Ipv6Addr>().is_ok() && (colons >= 3 || s.contains("::")) {
                out.push(Finding { kind: EntityType::IpAddress, start: i, end: i + trimmed.len(), confidence: 0.85 });
            }
        }
    }
}

/// Shannon entropy in bits per byte.
fn entropy(s: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in s {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

const SECRET_PREFIXES: &[(&str, usize)] = &[
    ("AKIA", 16),
    ("ASIA", 16),
    ("ghp_", 36),
    ("gho_", 36),
    ("ghs_", 36),
    ("github_pat_", 40),
    ("sk_live_", 16),
    ("sk_test_", 16),
    ("rk_live_", 16),
    ("xoxb-", 20),
    ("xoxp-", 20),
    ("AIza", 35),
    ("glpat-", 20),
    ("chk_", 40),
];
const SECRET_WORDS: &[&str] = &["key", "secret", "token", "password", "passwd", "pwd", "credential", "auth"];

#[inline(never)]
fn secrets(text: &[u8], out: &mut Vec<Finding>) {
    let tok = |b: u8| TOKEN_BYTE[usize::from(b)];
    let mut i = 0;
    while i < text.len() {
        if !tok(text[i]) {
            i += 1;
            continue;
        }
        let mut r = i + 1;
        while r < text.len() && tok(text[r]) {
            r += 1;
        }
        while r < text.len() && text[r] == b'=' && r - i >= 16 && !text.get(r + 1).is_some_and(|b| tok(*b)) {
            r += 1; // base64 padding
        }
        let token = &text[i..r];
        let known =
            SECRET_PREFIXES.iter().any(|(p, min)| token.starts_with(p.as_bytes()) && token.len() >= p.len() + min);
        if known {
            out.push(Finding { kind: EntityType::Secret, start: i, end: r, confidence: 0.95 });
        } else if (20..=200).contains(&token.len())
            && !token.iter().all(u8::is_ascii_hexdigit)
            && token.iter().any(u8::is_ascii_digit)
            && token.iter().any(u8::is_ascii_uppercase)
            && token.iter().any(u8::is_ascii_lowercase)
            && entropy(token) >= 3.5
            && context_before(text, i, 32, SECRET_WORDS)
            && text[i.saturating_sub(4)..i].iter().any(|b| *b == b'=' || *b == b':' || *b == b'"')
        {
            out.push(Finding { kind: EntityType::Secret, start: i, end: r, confidence: 0.8 });
        }
        i = r.max(i + 1);
    }
    // PEM private keys, whole block.
    let begin = b"-----BEGIN ";
    let mut from = 0;
    while let Some(p) = find(&text[from..], begin) {
        let s = from + p;
        let header_end = find(&text[s..], b"-----\n").or_else(|| find(&text[s..], b"-----\r\n"));
        let is_private = header_end.is_some_and(|h| find(&text[s..s + h], b"PRIVATE KEY").is_some());
        if is_private {
            if let Some(e) = find(&text[s..], b"-----END ") {
                let close = find(&text[s + e + 9..], b"-----").map_or(text.len(), |c| s + e + 9 + c + 5);
                out.push(Finding { kind: EntityType::Secret, start: s, end: close, confidence: 0.99 });
                from = close;
                continue;
            }
        }
        from = s + begin.len();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Bytes that can belong to a secret token.
const TOKEN_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'+' || c == b'/';
        b += 1;
    }
    t
};

/// Text runs shorter than this inside binary data are not read.
const MIN_RUN: usize = 6;

/// Every finding in `text`, ordered by position; where two overlap, the more
/// certain (then the longer) is kept.
///
/// Text (valid UTF-8, allowing a character cut at either edge, or at least 90 %
/// printable ASCII, as text in an 8-bit encoding is) is read whole.
/// Binary data is read as `strings` would: only its runs of at least
/// [`MIN_RUN`] printable characters, the bytes between them read as blanks, so
/// the noise never forms a finding; offsets point into the input.
pub fn scan(text: &[u8]) -> Vec<Finding> {
    let lead = text.iter().take(3).take_while(|b| (0x80..0xC0).contains(*b)).count();
    match std::str::from_utf8(&text[lead..]) {
        Ok(_) => scan_text(text),
        Err(e) if e.error_len().is_none() => scan_text(text),
        Err(_) => {
            let masks = printable_masks(text);
            let printable: u32 = masks.iter().map(|m| m.count_ones()).sum();
            // Text in a legacy 8-bit encoding (Latin-1, Windows-1252), at least 90 %
            // printable ASCII or whitespace, is still text.
            if printable as usize * 10 >= text.len() * 9 {
                scan_text(text)
            } else {
                TextRuns::of(text, &masks).scan()
            }
        }
    }
}

/// One bit per byte of `data` (bit `i % 64` of word `i / 64`), set where the byte is
/// printable ASCII or the usual whitespace, as in [`PRINTABLE`]; eight bytes at a time.
fn printable_masks(data: &[u8]) -> Vec<u64> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let each = |b: u8| u64::from(b) * 0x0101_0101_0101_0101;
    // Bit 7 of each byte of the result: whether that byte of `w` is printable.
    let classify = |w: u64| {
        let x = w & LOW7;
        // No carry leaves a byte: x is at most 0x7f.
        let at_least_space = (x + each(0x60)) & HIGH;
        let delete = (x + each(0x01)) & HIGH;
        let equals = |c: u8| !((x ^ each(c)) + LOW7) & HIGH;
        let whitespace = equals(b'\t') | equals(b'\n') | equals(b'\r');
        ((at_least_space & !delete) | whitespace) & !(w & HIGH)
    };
    // Bit 7 of byte j to bit j (no two partial products meet, so nothing carries).
    let gather = |high: u64| ((high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8;
    let mut masks = vec![0u64; data.len().div_ceil(64)];
    let mut eights = data.chunks_exact(8);
    for (i, eight) in eights.by_ref().enumerate() {
        let word = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
        masks[i / 8] |= u64::from(gather(classify(word))) << (8 * (i % 8));
    }
    let rest = eights.remainder();
    if !rest.is_empty() {
        // Padded with zero bytes, which are not printable.
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        let i = data.len() / 8;
        masks[i / 8] |= u64::from(gather(classify(u64::from_le_bytes(word)))) << (8 * (i % 8));
    }
    masks
}

/// Printable ASCII and the usual whitespace: all ones; anything else: zero. (What
/// [`printable_masks`] computes eight bytes at a time, checked against this table.)
#[cfg(test)]
const PRINTABLE: [usize; 256] = {
    let mut t = [0usize; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = usize::MAX;
        b += 1;
    }
    t[b'\t' as usize] = usize::MAX;
    t[b'\n' as usize] = usize::MAX;
    t[b'\r' as usize] = usize::MAX;
    t
};

/// Blanks kept on each side of a run (see [`MAX_CONTEXT`]).
const KEPT_BLANKS: usize = MAX_CONTEXT;

/// Binary data as the detectors read it: its runs of at least [`MIN_RUN`]
/// printable ASCII bytes, the bytes between them blanked to spaces, and every
/// stretch of more than `2 * KEPT_BLANKS` blanks shortened to that many. In
/// random bytes about one byte in a hundred is in a run, so the detectors read a
/// fraction of the data and find what they would find in all of it. (Non-ASCII
/// text inside binary data breaks a run: what binary formats embed as text is
/// overwhelmingly ASCII, and random bytes would otherwise pass for it.)
struct TextRuns {
    packed: Vec<u8>,
    /// Where each stretch of `packed` starts, there and in the data; in order,
    /// each stretch going on to the next one's start (the last to the end).
    pieces: Vec<(usize, usize)>,
}

impl TextRuns {
    /// The runs in `data`, found from its [`printable_masks`]: a word of 64 bytes in
    /// which no run of [`MIN_RUN`] starts (most of them, in binary data) is passed over whole.
    fn of(data: &[u8], masks: &[u64]) -> Self {
        let mut runs = Self { packed: Vec::new(), pieces: Vec::new() };
        let mut open: Option<usize> = None;
        for (w, &bits) in masks.iter().enumerate() {
            if open.is_none() {
                // Bit k of `starts`: bytes k..k + MIN_RUN are all printable (looking into the next word).
                let both = u128::from(bits) | u128::from(masks.get(w + 1).copied().unwrap_or(0)) << 64;
                let starts = (1..MIN_RUN).fold(both, |acc, k| acc & both >> k) as u64;
                if starts == 0 {
                    continue;
                }
            }
            let base = w * 64;
            let mut pos = 0u32;
            while pos < 64 {
                let start = match open {
                    Some(start) => start,
                    None => {
                        let rest = bits >> pos;
                        if rest == 0 {
                            break;
                        }
                        pos += rest.trailing_zeros();
                        base + pos as usize
                    }
                };
                let gap = !bits >> pos;
                if gap == 0 {
                    // The run goes on into the next word.
                    open = Some(start);
                    break;
                }
                pos += gap.trailing_zeros();
                open = None;
                runs.keep(data, start, base + pos as usize);
            }
        }
        if let Some(start) = open {
            runs.keep(data, start, data.len());
        }
        if !runs.pieces.is_empty() {
            runs.blanks(runs.covered(), data.len());
        }
        runs
    }

    /// How far into the data `packed` reaches.
    fn covered(&self) -> usize {
        self.pieces.last().map_or(0, |&(p, d)| d + (self.packed.len() - p))
    }

    /// Adds the run `data[start..end]`, if long enough, after the blanks before it.
    fn keep(&mut self, data: &[u8], start: usize, end: usize) {
        if end - start < MIN_RUN {
            return;
        }
        self.blanks(self.covered(), start);
        self.pieces.push((self.packed.len(), start));
        self.packed.extend_from_slice(&data[start..end]);
    }

    /// Adds the blanks standing for `data[from..to]`: all of them, or the first and last
    /// [`KEPT_BLANKS`].
    fn blanks(&mut self, from: usize, to: usize) {
        let stretches = if to - from <= 2 * KEPT_BLANKS {
            [(from, to - from), (to, 0)]
        } else {
            [(from, KEPT_BLANKS), (to - KEPT_BLANKS, KEPT_BLANKS)]
        };
        for (at, len) in stretches {
            if len > 0 {
                self.pieces.push((self.packed.len(), at));
                self.packed.resize(self.packed.len() + len, b' ');
            }
        }
    }

    /// Where `at` in `packed` is in the data.
    fn offset(&self, at: usize) -> usize {
        let (p, d) = self.pieces[self.pieces.partition_point(|&(p, _)| p <= at).saturating_sub(1)];
        d + (at - p)
    }

    /// The findings in the runs, at their offsets in the data.
    fn scan(&self) -> Vec<Finding> {
        if self.pieces.is_empty() {
            return Vec::new();
        }
        let mut found = scan_text(&self.packed);
        for f in &mut found {
            // The end is just past the last byte, which may end its stretch.
            let end = if f.end > f.start { self.offset(f.end - 1) + 1 } else { self.offset(f.start) };
            (f.start, f.end) = (self.offset(f.start), end);
        }
        found
    }
}

fn scan_text(text: &[u8]) -> Vec<Finding> {
    let mut all = Vec::new();
    email(text, &mut all);
    url(text, &mut all);
    numbers(text, &mut all);
    iban(text, &mut all);
    ipv6(text, &mut all);
    secrets(text, &mut all);
    crate::names::names_and_places(text, &mut all);
    // One sweep in position order: of two overlapping findings, the more certain
    // (then the longer) stays.
    all.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    let better = |a: &Finding, b: &Finding| {
        a.confidence.total_cmp(&b.confidence).then((a.end - a.start).cmp(&(b.end - b.start))).is_gt()
    };
    let mut kept: Vec<Finding> = Vec::with_capacity(all.len());
    for f in all {
        match kept.last_mut() {
            Some(last) if f.start < last.end => {
                if better(&f, last) {
                    *last = f;
                }
            }
            _ => kept.push(f),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use EntityType::*;

    fn found(text: &str) -> Vec<(EntityType, &str)> {
        scan(text.as_bytes()).into_iter().map(|f| (f.kind, &text[f.start..f.end])).collect()
    }

    fn only(text: &str, kind: EntityType, value: &str) {
        assert_eq!(found(text), vec![(kind, value)], "in {text:?}");
    }

    fn nothing(text: &str) {
        assert_eq!(found(text), vec![], "in {text:?}");
    }

    #[test]
    fn emails() {
        only(
            "write to ada.lovelace+x@analytical-engines.co.uk.",
            EmailAddress,
            "ada.lovelace+x@analytical-engines.co.uk",
        );
        nothing("user@localhost and @handle and a@b.c and x@@y.com");
    }

    #[test]
    fn urls() {
        only("see https://example.com/a?b=c, then", Url, "https://example.com/a?b=c");
        only("(www.tensoropera.ai)", Url, "www.tensoropera.ai");
        nothing("the http:// prefix alone, or https://nohost");
    }

    #[test]
    fn cards_are_luhn_checked() {
        only("card 4111 1111 1111 1111 exp", CreditCard, "4111 1111 1111 1111");
        only("5500-0000-0000-0004", CreditCard, "5500-0000-0000-0004");
        nothing("order 4111 1111 1111 1112 shipped");
        nothing("order number 1234567890123456");
        nothing("Order 4111111111111111 shipped.");
    }

    #[test]
    fn ibans_are_mod97_checked() {
        only("pay to GB82 WEST 1234 5698 7654 32 today", IbanCode, "GB82 WEST 1234 5698 7654 32");
        only("DE89370400440532013000", IbanCode, "DE89370400440532013000");
        nothing("GB82 WEST 1234 5698 7654 33");
    }

    #[test]
    fn ip_addresses() {
        only("from 192.168.1.20 at", IpAddress, "192.168.1.20");
        only("host 2001:db8::8a2e:370:7334 up", IpAddress, "2001:db8::8a2e:370:7334");
        nothing("version v1.2.3.4 and 1.2.3.4.5 and 300.1.1.1 and 12:30:45");
        nothing("Upgraded to version 3.0.17.5 today");
    }

    #[test]
    fn ssns() {
        only("SSN: 123-45-6789", UsSsn, "123-45-6789");
        only("ssn 123-45-6789 4431", UsSsn, "123-45-6789");
        only("from 10.1.2.3 8080", IpAddress, "10.1.2.3");
        nothing("000-12-3456 and 666-12-3456 and 900-12-3456 and 123-00-4567");
    }

    #[test]
    fn phones() {
        only("call +44 20 7946 0018 now", PhoneNumber, "+44 20 7946 0018");
        only("tel (415) 555-0100", PhoneNumber, "(415) 555-0100");
        only("415-555-0100", PhoneNumber, "415-555-0100");
        nothing("order 4155550100 shipped");
        nothing("at 2024-03-29 12:00:00 UTC");
    }

    #[test]
    fn dates_of_birth_need_context() {
        assert_eq!(found("born on 1984-07-13 in Leeds"), vec![(DateOfBirth, "1984-07-13"), (Location, "Leeds")]);
        only("DOB: 13/07/1984", DateOfBirth, "13/07/1984");
        nothing("shipped on 2024-03-29, invoice dated 29/03/2024");
    }

    #[test]
    fn secrets_by_prefix_and_entropy() {
        only("aws AKIAIOSFODNN7EXAMPLE here", Secret, "AKIAIOSFODNN7EXAMPLE");
        only("token=ghp_0123456789abcdefghijABCDEFGHIJ012345", Secret, "ghp_0123456789abcdefghijABCDEFGHIJ012345");
        only("api_key: \"Zx8Qw2Lp9Rt4Vb7Nm1Kc6Hs3Jd5\"", Secret, "Zx8Qw2Lp9Rt4Vb7Nm1Kc6Hs3Jd5");
        nothing("sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        nothing("id 550e8400-e29b-41d4-a716-446655440000 ok");
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
        only(pem, Secret, pem);
    }

    fn well_formed(text: &[u8]) {
        let f = scan(text);
        for w in f.windows(2) {
            assert!(w[0].end <= w[1].start, "findings overlap: {f:?}");
        }
        for x in &f {
            assert!(x.start < x.end && x.end <= text.len(), "{x:?} outside 0..{}", text.len());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn any_bytes_scan_without_panicking(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            well_formed(&data);
        }

        #[test]
        fn text_shaped_like_personal_data_scans_without_panicking(
            text in "([A-Z][a-z]{0,8}|[0-9]{1,6}|Dr\\.|St\\.|Apt\\.|, [A-Z]{2} [0-9]{5}|[ .,:@/-]|APO|and|é){0,40}"
        ) {
            well_formed(text.as_bytes());
        }
    }

    #[test]
    fn range_search_matches_a_plain_search() {
        let text: Vec<u8> = (0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        for (lo, hi) in [(b'0', b'9'), (b'A', b'Z'), (b' ', b'~'), (1, 0x7f)] {
            let mut at = Vec::new();
            let mut from = 0;
            while let Some(p) = next_in_range(&text, from, lo, hi) {
                at.push(p);
                from = p + 1;
            }
            let expected: Vec<usize> = (0..text.len()).filter(|&i| (lo..=hi).contains(&text[i])).collect();
            assert_eq!(at, expected, "{lo}..={hi}");
        }
    }

    #[test]
    fn binary_data_is_read_by_its_text_runs() {
        let mut data: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let email = b"ada@example.com";
        data[1000..1000 + email.len()].copy_from_slice(email);
        data[999] = 0;
        data[1000 + email.len()] = 0xff;
        let f = scan(&data);
        assert!(
            f.iter().any(|f| f.kind == EmailAddress && &data[f.start..f.end] == email),
            "the email inside binary data is found in place: {f:?}"
        );
        // Short printable runs between binary bytes never form findings.
        assert!(f.iter().all(|f| f.end - f.start >= MIN_RUN), "{f:?}");
        // Text in an 8-bit encoding is read as text: "Ms. Nuñez" in Windows-1252 stays whole.
        let latin1 = b"Please ask Ms. Nu\xf1ez, who wrote to ada@example.com from Madrid.";
        let f = scan(latin1);
        assert!(f.iter().any(|f| f.kind == Person && &latin1[f.start..f.end] == b"Ms. Nu\xf1ez"), "{f:?}");
        // A character cut by a window edge does not make text binary.
        let text = "José Lovelace wrote to ada@example.com".as_bytes();
        assert_eq!(scan(&text[4..]).len(), scan(&text[5..]).len());
    }

    #[test]
    fn printable_masks_agree_with_the_table() {
        for len in [1, 7, 8, 9, 63, 64, 65, 130] {
            for b in 0..=255u8 {
                for at in [0, len / 2, len - 1] {
                    let mut data = vec![b'a'; len];
                    data[at] = b;
                    let masks = printable_masks(&data);
                    assert_eq!(masks.len(), len.div_ceil(64));
                    for (i, &byte) in data.iter().enumerate() {
                        let bit = masks[i / 64] >> (i % 64) & 1 == 1;
                        assert_eq!(bit, PRINTABLE[usize::from(byte)] != 0, "byte {byte:#04x} at {i} of {len}");
                    }
                    // Nothing is set past the end.
                    if len % 64 != 0 {
                        assert_eq!(masks[len / 64] >> (len % 64), 0);
                    }
                }
            }
        }
    }

    /// Binary data blanked byte by byte: every byte outside a run of at least
    /// [`MIN_RUN`] printable bytes turned into a space, in place.
    fn blanked_one_byte_at_a_time(data: &[u8]) -> Vec<u8> {
        let mut out = vec![b' '; data.len()];
        let mut start = 0;
        for i in 0..=data.len() {
            if i == data.len() || PRINTABLE[usize::from(data[i])] == 0 {
                if i - start >= MIN_RUN {
                    out[start..i].copy_from_slice(&data[start..i]);
                }
                start = i + 1;
            }
        }
        out
    }

    /// Noise and personal data, in pieces of every length, for the binary reader.
    fn binary_with_text() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::strategy::Strategy as _;
        let piece = proptest::prop_oneof![
            proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            proptest::collection::vec(0x20u8..0x7f, 0..12),
            proptest::sample::select(vec![
                &b"ada.lovelace@example.com"[..],
                b"+44 20 7946 0958",
                b"4111 1111 1111 1111",
                b"Ada Lovelace",
                b"born 1815-12-10",
                b"12 Baker Street, Springfield, IL 62704",
                b"order 4111111111111111",
                b"192.168.1.20",
                b"GB82 WEST 1234 5698 7654 32",
                b"Dear Dr. Justin Wilkinson,",
                b"  2024 ",
                b"order:",
                b"date of birth:",
                b"phone: ",
                b"host=",
                b"1815-12-10",
                b"4111111111111111",
                b"123-45-6789",
                b"ssn #",
            ])
            .prop_map(<[u8]>::to_vec),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    #[test]
    fn context_in_another_run_counts_as_it_does_in_place() {
        // "order" a few noise bytes before a number: the number is an order number, not a card.
        let mut data = b"order:".to_vec();
        data.extend_from_slice(&[0, 1, 2, 3, 0xff, 0xfe, 4, 5]);
        data.extend_from_slice(b"4111111111111111");
        data.extend_from_slice(&[0; 300]);
        data.extend_from_slice(b"4111111111111111");
        data.extend_from_slice(&[0xff; 3]);
        let found = TextRuns::of(&data, &printable_masks(&data)).scan();
        assert_eq!(found, scan_text(&blanked_one_byte_at_a_time(&data)));
        let cards: Vec<usize> = found.iter().filter(|f| f.kind == CreditCard).map(|f| f.start).collect();
        assert_eq!(cards, [330], "only the number far from \"order\" is a card: {found:?}");
    }

    proptest::proptest! {
        #[test]
        fn binary_data_yields_the_findings_of_its_text_blanked_in_place(data in binary_with_text()) {
            let masks = printable_masks(&data);
            let runs = TextRuns::of(&data, &masks);
            let expected = scan_text(&blanked_one_byte_at_a_time(&data));
            proptest::prop_assert_eq!(runs.scan(), expected);
        }
    }

    #[test]
    fn offsets_are_byte_offsets_in_non_ascii_text() {
        let text = "Grüße — mail: jürgen@example.de";
        let f = scan(text.as_bytes());
        assert_eq!(f.len(), 1);
        assert_eq!(&text[f[0].start..f[0].end], "jürgen@example.de");
    }
}
