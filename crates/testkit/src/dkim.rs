//! Checks a DKIM signature (RFC 6376) made with Ed25519 (RFC 8463) on a message as an
//! SMTP server received it, the way a receiving mail server would: the body hash over
//! the canonical body, then the signature over the signed header fields and the
//! signature's own field with its `b=` value removed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// The names of the header fields the signature covers, when it verifies with `key`.
pub fn verify_ed25519(message: &str, key: &VerifyingKey) -> Result<Vec<String>, String> {
    let (head, body) = message.split_once("\r\n\r\n").ok_or("the message has no body")?;
    let fields = fields(head);
    let signature = fields
        .iter()
        .rev()
        .find(|f| name(f).eq_ignore_ascii_case("DKIM-Signature"))
        .ok_or("no DKIM-Signature header")?;
    let tags = tags(value(signature));
    let tag = |t: &str| tags.iter().find(|(k, _)| k == t).map(|(_, v)| v.as_str()).ok_or(format!("no {t}= tag"));
    if tag("a")? != "ed25519-sha256" {
        return Err(format!("algorithm {} is not ed25519-sha256", tag("a")?));
    }
    let (header_canon, body_canon) = tag("c")?.split_once('/').unwrap_or((tag("c")?, "simple"));
    let hashed_body = STANDARD.encode(Sha256::digest(canonical_body(body, body_canon == "relaxed")));
    if hashed_body != tag("bh")? {
        return Err("the body hash does not match: the body was changed".into());
    }
    let relaxed = header_canon == "relaxed";
    let signed: Vec<String> = tag("h")?.split(':').map(|n| n.trim().to_owned()).collect();
    let mut data = String::new();
    for name_signed in &signed {
        if let Some(f) = fields.iter().rev().find(|f| name(f).eq_ignore_ascii_case(name_signed)) {
            data.push_str(&canonical_field(f, relaxed));
            data.push_str("\r\n");
        }
    }
    data.push_str(&canonical_field(&without_b(signature), relaxed));
    let b = STANDARD.decode(tag("b")?).map_err(|_| "b= is not base64")?;
    let sig = Signature::from_slice(&b).map_err(|_| "b= is not an Ed25519 signature")?;
    key.verify_strict(&Sha256::digest(data.as_bytes()), &sig)
        .map_err(|_| "the signature does not verify".to_owned())?;
    Ok(signed)
}

/// Header fields, each with its continuation lines.
fn fields(head: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match out.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push_str("\r\n");
                last.push_str(line);
            }
            _ => out.push(line.to_owned()),
        }
    }
    out
}

fn name(field: &str) -> &str {
    field.split(':').next().unwrap_or("").trim()
}

fn value(field: &str) -> &str {
    field.split_once(':').map_or("", |(_, v)| v)
}

/// `tag=value` pairs, with folding white space removed from values.
fn tags(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.chars().filter(|c| !c.is_whitespace()).collect()))
        .collect()
}

/// The signature field with the value of its `b=` tag deleted.
fn without_b(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(at) = rest.find("b=") {
        let starts_tag = at == 0 || rest[..at].ends_with([';', ' ', '\t', '\n', ':']);
        out.push_str(&rest[..at + 2]);
        rest = &rest[at + 2..];
        if starts_tag {
            rest = &rest[rest.find(';').unwrap_or(rest.len())..];
        }
    }
    out.push_str(rest);
    out
}

/// One header field as the signature saw it.
fn canonical_field(field: &str, relaxed: bool) -> String {
    if !relaxed {
        return field.to_owned();
    }
    let unfolded = field.replace("\r\n", "");
    let (n, v) = unfolded.split_once(':').unwrap_or((&unfolded, ""));
    format!("{}:{}", n.trim().to_ascii_lowercase(), squeeze(v).trim())
}

fn squeeze(s: &str) -> String {
    let mut out = String::new();
    for word in s.split([' ', '\t']).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if s.starts_with([' ', '\t']) {
        format!(" {out}")
    } else {
        out
    }
}

/// The body as the signature saw it (RFC 6376 §3.4.3 and §3.4.4).
fn canonical_body(body: &str, relaxed: bool) -> Vec<u8> {
    let mut lines: Vec<String> = body.split("\r\n").map(str::to_owned).collect();
    if body.ends_with("\r\n") {
        lines.pop();
    }
    if relaxed {
        for line in &mut lines {
            *line = squeeze(line).trim_end().to_owned();
        }
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    if lines.is_empty() {
        return if relaxed { Vec::new() } else { b"\r\n".to_vec() };
    }
    lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_canonical_as_the_rfc_says() {
        assert_eq!(canonical_body(" C \r\nD \t E\r\n\r\n\r\n", true), b" C\r\nD E\r\n");
        assert_eq!(canonical_body(" C \r\nD \t E\r\n\r\n\r\n", false), b" C \r\nD \t E\r\n");
        assert_eq!(canonical_body("", true), b"");
        assert_eq!(canonical_body("", false), b"\r\n");
    }

    #[test]
    fn the_signature_value_is_removed_and_nothing_else() {
        let f = "DKIM-Signature: v=1; bh=abc; b=xy\r\n z; h=from";
        assert_eq!(without_b(f), "DKIM-Signature: v=1; bh=abc; b=; h=from");
        assert_eq!(canonical_field("A: b \r\n  c ", true), "a:b c");
    }
}
