//! The audit chain (P32): an append-only sequence of events, each entry
//! carrying the hash of its predecessor, with signed checkpoints.
//!
//! Events hold no personal data: subjects appear only by their opaque id, and
//! `detail` carries names (fields, purposes, versions), never values.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The predecessor of the first entry.
pub const GENESIS: Hash = [0; 32];

/// Something that happened and must be provable later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Who acted: `system`, an API key's name, an admin's id.
    pub actor: String,
    /// What was done, dotted: `server.start`, `data.read`, `data.denied`.
    pub action: String,
    /// The subject's opaque id, when the event concerns one person.
    pub subject: Option<String>,
    /// The purpose the action was taken for.
    pub purpose: Option<String>,
    /// The outcome: `ok`, `denied`, `error`, or a reason code.
    pub result: String,
    /// Context as JSON, without personal data (field names, versions, counts).
    pub detail: String,
}

impl AuditEvent {
    /// An event with no subject or purpose and an empty detail.
    pub fn new(actor: impl Into<String>, action: impl Into<String>, result: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            subject: None,
            purpose: None,
            result: result.into(),
            detail: "{}".to_owned(),
        }
    }

    /// Sets the detail JSON.
    pub fn with_detail(mut self, detail: &serde_json::Value) -> Self {
        self.detail = detail.to_string();
        self
    }
}

/// An event at its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position, from 1 without gaps.
    pub seq: i64,
    /// When, in microseconds since the Unix epoch.
    pub at_us: i64,
    /// The event.
    pub event: AuditEvent,
    /// The predecessor's hash ([`GENESIS`] for the first entry).
    pub prev_hash: Hash,
    /// This entry's hash.
    pub hash: Hash,
}

fn put(h: &mut Sha256, field: &[u8]) {
    h.update((field.len() as u64).to_be_bytes());
    h.update(field);
}

fn put_opt(h: &mut Sha256, field: Option<&str>) {
    match field {
        None => h.update([0u8]),
        Some(v) => {
            h.update([1u8]);
            put(h, v.as_bytes());
        }
    }
}

/// The hash of an entry: every field, length-prefixed so no two different
/// entries encode alike, then the predecessor's hash.
pub fn entry_hash(seq: i64, at_us: i64, event: &AuditEvent, prev_hash: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(b"charter.audit.v1\0");
    h.update(seq.to_be_bytes());
    h.update(at_us.to_be_bytes());
    put(&mut h, event.actor.as_bytes());
    put(&mut h, event.action.as_bytes());
    put_opt(&mut h, event.subject.as_deref());
    put_opt(&mut h, event.purpose.as_deref());
    put(&mut h, event.result.as_bytes());
    put(&mut h, event.detail.as_bytes());
    h.update(prev_hash);
    h.finalize().into()
}

/// Places `event` after the entry `(seq, hash)` (or first, when `head` is `None`).
pub fn chain(head: Option<(i64, Hash)>, at_us: i64, event: AuditEvent) -> Entry {
    let mut entry = Entry { seq: 0, at_us, event, prev_hash: GENESIS, hash: GENESIS };
    place(head, at_us, std::slice::from_mut(&mut entry));
    entry
}

/// Places `entries`, in order, after the entry `(seq, hash)` (or first, when `head` is
/// `None`), all stamped `at_us`: sets each one's sequence number, time, predecessor's
/// hash and hash, whatever they held. Returns the new head (`head` when there are none).
pub fn place(head: Option<(i64, Hash)>, at_us: i64, entries: &mut [Entry]) -> Option<(i64, Hash)> {
    let (mut seq, mut prev_hash) = head.map_or((1, GENESIS), |(s, h)| (s + 1, h));
    for e in entries.iter_mut() {
        (e.seq, e.at_us, e.prev_hash) = (seq, at_us, prev_hash);
        e.hash = entry_hash(seq, at_us, &e.event, &prev_hash);
        (seq, prev_hash) = (seq + 1, e.hash);
    }
    entries.last().map_or(head, |e| Some((e.seq, e.hash)))
}

/// The bytes a checkpoint's signature covers.
pub fn checkpoint_message(seq: i64, hash: &Hash) -> Vec<u8> {
    let mut m = b"charter.checkpoint.v1\0".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {seq}: {reason}")]
pub struct ChainBreak {
    /// The first entry that does not fit.
    pub seq: i64,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks stored entries one by one, in `seq` order.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev: Hash,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { expected_seq: 1, prev: GENESIS }
    }
}

impl ChainVerifier {
    /// Checks the next stored entry. The stored `hash` must be the recomputed
    /// one, `prev_hash` the previous entry's hash, and `seq` one more than the
    /// previous, so edits, deletions, reorderings and insertions all show.
    pub fn push(&mut self, e: &Entry) -> Result<(), ChainBreak> {
        let gap = match e.seq.cmp(&self.expected_seq) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some("entries are missing"),
            std::cmp::Ordering::Less => Some("entries are out of order"),
        };
        if let Some(gap) = gap {
            let reason = format!("expected entry {} next, found {}: {gap}", self.expected_seq, e.seq);
            return Err(ChainBreak { seq: self.expected_seq.min(e.seq), reason });
        }
        if e.prev_hash != self.prev {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "its predecessor hash does not match the previous entry: an entry was removed, inserted or replaced before it".to_owned(),
            });
        }
        if entry_hash(e.seq, e.at_us, &e.event, &e.prev_hash) != e.hash {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "its content does not match its hash: the entry was edited".to_owned(),
            });
        }
        self.prev = e.hash;
        self.expected_seq += 1;
        Ok(())
    }

    /// How many entries have been checked.
    pub fn checked(&self) -> i64 {
        self.expected_seq - 1
    }

    /// The hash of the last entry checked.
    pub fn head(&self) -> Hash {
        self.prev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(i: u32) -> AuditEvent {
        AuditEvent {
            actor: format!("key-{}", i % 3),
            action: "data.read".into(),
            subject: i.is_multiple_of(2).then(|| format!("subject-{i}")),
            purpose: Some("analytics".into()),
            result: "ok".into(),
            detail: format!("{{\"n\":{i}}}"),
        }
    }

    fn build(n: u32) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for i in 0..n {
            let head = out.last().map(|e| (e.seq, e.hash));
            out.push(chain(head, 1_000 + i64::from(i), event(i)));
        }
        out
    }

    fn verify(entries: &[Entry]) -> Result<(), ChainBreak> {
        let mut v = ChainVerifier::default();
        entries.iter().try_for_each(|e| v.push(e))
    }

    #[test]
    fn untouched_chain_verifies() {
        assert_eq!(verify(&build(50)), Ok(()));
    }

    #[test]
    fn entries_follow_the_head_they_are_placed_after() {
        let head = (41, [7u8; 32]);
        let e = chain(Some(head), 5, event(1));
        assert_eq!((e.seq, e.at_us, e.prev_hash), (42, 5, [7u8; 32]));
        assert_eq!(e.hash, entry_hash(42, 5, &e.event, &[7u8; 32]));
        let mut two = vec![chain(None, 0, event(2)), chain(None, 0, event(3))];
        assert_eq!(place(Some(head), 9, &mut two), Some((43, two[1].hash)));
        assert_eq!((two[0].seq, two[1].seq, two[1].prev_hash), (42, 43, two[0].hash));
        assert_eq!(place(Some(head), 9, &mut []), Some(head), "nothing placed: the head stays");
        assert_eq!(chain(None, 0, event(1)).seq, 1);
    }

    #[test]
    fn a_checkpoint_signs_the_sequence_number_and_hash() {
        let m = checkpoint_message(258, &[9u8; 32]);
        let mut expected = b"charter.checkpoint.v1\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
        expected.extend_from_slice(&[9u8; 32]);
        assert_eq!(m, expected);
        assert_ne!(checkpoint_message(259, &[9u8; 32]), m);
    }

    #[test]
    fn the_verifier_counts_entries_and_keeps_the_head() {
        let entries = build(5);
        let mut v = ChainVerifier::default();
        assert_eq!((v.checked(), v.head()), (0, GENESIS));
        for e in &entries {
            v.push(e).unwrap();
        }
        assert_eq!((v.checked(), v.head()), (5, entries[4].hash));
        let mut gap = ChainVerifier::default();
        let missing = gap.push(&entries[2]).unwrap_err();
        assert_eq!(missing.seq, 1);
        assert!(missing.reason.contains("entries are missing"), "{}", missing.reason);
        let mut back = ChainVerifier::default();
        back.push(&entries[0]).unwrap();
        back.push(&entries[1]).unwrap();
        let reordered = back.push(&entries[0]).unwrap_err();
        assert_eq!(reordered.seq, 1);
        assert!(reordered.reason.contains("out of order"), "{}", reordered.reason);
    }

    #[test]
    fn optional_fields_are_not_confused() {
        let mut a = AuditEvent::new("x", "y", "z");
        let mut b = a.clone();
        a.subject = Some(String::new());
        b.purpose = Some(String::new());
        assert_ne!(entry_hash(1, 1, &a, &GENESIS), entry_hash(1, 1, &b, &GENESIS));
    }

    proptest! {
        #[test]
        fn any_edit_is_detected_at_its_entry(n in 2u32..40, pick in 0usize..40, field in 0u8..6) {
            let mut entries = build(n);
            let i = pick % entries.len();
            let e = &mut entries[i];
            match field {
                0 => e.event.actor.push('!'),
                1 => e.event.action.push('!'),
                2 => e.event.subject = Some("someone-else".into()),
                3 => e.event.result = "denied".into(),
                4 => e.event.detail.push(' '),
                _ => e.at_us += 1,
            }
            let err = verify(&entries).unwrap_err();
            prop_assert_eq!(err.seq, entries[i].seq);
        }

        #[test]
        fn deletion_is_detected(n in 3u32..40, pick in 0usize..38) {
            let mut entries = build(n);
            let i = pick % (entries.len() - 1);
            let removed = entries.remove(i);
            let err = verify(&entries).unwrap_err();
            prop_assert_eq!(err.seq, removed.seq);
        }

        #[test]
        fn swapping_two_entries_is_detected(n in 3u32..40, a in 0usize..40, b in 0usize..40) {
            let mut entries = build(n);
            let (a, b) = (a % entries.len(), b % entries.len());
            prop_assume!(a != b);
            entries.swap(a, b);
            let err = verify(&entries).unwrap_err();
            prop_assert_eq!(err.seq, i64::try_from(a.min(b)).unwrap() + 1);
        }

        #[test]
        fn renumbered_swap_is_detected(n in 3u32..40, a in 0usize..39) {
            // Swap the content of two neighbours but keep seq order, as an UPDATE would.
            let mut entries = build(n);
            let a = a % (entries.len() - 1);
            let (sa, sb) = (entries[a].seq, entries[a + 1].seq);
            entries.swap(a, a + 1);
            entries[a].seq = sa;
            entries[a + 1].seq = sb;
            let err = verify(&entries).unwrap_err();
            prop_assert_eq!(err.seq, sa);
        }

        #[test]
        fn forged_insertion_is_detected(n in 2u32..40, at in 0usize..40) {
            let mut entries = build(n);
            let at = at % entries.len();
            // A forger who recomputes the inserted entry's own hash still breaks its successor.
            let head = (at > 0).then(|| (entries[at - 1].seq, entries[at - 1].hash));
            let forged = chain(head, 5, event(999));
            entries.insert(at, forged);
            for (i, e) in entries.iter_mut().enumerate().skip(at + 1) {
                e.seq = i64::try_from(i).unwrap() + 1;
            }
            let err = verify(&entries).unwrap_err();
            prop_assert_eq!(err.seq, i64::try_from(at).unwrap() + 2);
        }
    }
}
