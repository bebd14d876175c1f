//! Person names and places: lists shipped with the crate (census first names and
//! surnames, GeoNames places, see `data/build.py`) combined with capitalisation,
//! position and context rules. No model is loaded at run time.
//!
//! The text is cut into runs of capitalised words ("Dr. Ada Lovelace", "North
//! Jennifer", "San Francisco"); each run is read left to right, and at each word
//! the first rule that matches wins:
//! - a street address: a house number, capitalised words and a street suffix,
//!   then optionally a unit, city, state and ZIP code;
//! - a title and a name ("Ms. Santos");
//! - a place of several words from the list ("New York", "United Kingdom");
//! - a known first name followed by a surname or another capitalised word;
//! - a place shape: a directional or water prefix ("North", "Lake", "Port") and a
//!   word, or one word with a place-name ending ("-ville", "-mouth", "-borough");
//! - one known place after a place word ("in", "to", "from", "near").
//!
//! US ZIP codes after a state code (", CA 94105", and the military "APO AE 09012")
//! anchor addresses whose street the rules above did not take.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use crate::entity::{EntityType, Finding};

/// A multiplicative hash for short lowercase words (the lists are fixed; no untrusted input chooses them).
#[derive(Default)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut v = [0u8; 8];
            v[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(v)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Hasher = std::hash::BuildHasherDefault<WordHasher>;

struct Lists {
    /// Every listed word (names, places, titles, suffixes, ...) with its flags.
    words: HashMap<&'static [u8], u16, Hasher>,
    /// Places of several words.
    places: HashSet<&'static [u8], Hasher>,
}

impl Lists {
    fn flags(&self, word: &[u8]) -> u16 {
        self.words.get(word).copied().unwrap_or(0)
    }
}

fn lists() -> &'static Lists {
    static LISTS: OnceLock<Lists> = OnceLock::new();
    LISTS.get_or_init(|| {
        let read =
            |text: &'static str| text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::as_bytes);
        let mut words: HashMap<&'static [u8], u16, Hasher> = HashMap::default();
        let mut places = HashSet::default();
        let mut add = |w: &'static [u8], flag: u16| *words.entry(w).or_default() |= flag;
        read(include_str!("../data/first_names.txt")).for_each(|w| add(w, FIRST));
        read(include_str!("../data/surnames.txt")).for_each(|w| add(w, LAST));
        for (file, flag) in [(include_str!("../data/places.txt"), PLACE), (include_str!("../data/regions.txt"), REGION)]
        {
            for p in read(file) {
                if p.contains(&b' ') {
                    places.insert(p);
                } else {
                    add(p, flag);
                }
            }
        }
        for (list, flag) in [
            (TITLES, TITLE),
            (NAME_SUFFIXES, NAME_SUFFIX),
            (STREET_SUFFIXES, STREET),
            (PLACE_PREFIXES, PREFIX),
            (NOT_NAMES, NOT_NAME),
            (TITLES, ABBREVIATION),
            (&["st", "mt", "ft", "apt", "ste", "jr", "sr"][..], ABBREVIATION),
        ] {
            list.iter().for_each(|w| add(w.as_bytes(), flag));
        }
        Lists { words, places }
    })
}

const TITLES: &[&str] = &["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "madam", "mister"];
const NAME_SUFFIXES: &[&str] = &["jr", "sr", "ii", "iii", "iv", "md", "phd", "dds", "dvm", "esq"];
const PLACE_PREFIXES: &[&str] = &[
    "north", "south", "east", "west", "new", "lake", "port", "fort", "mount", "saint", "st", "san", "santa", "los",
    "las", "el", "upper", "lower", "great", "little", "old",
];
const PLACE_ENDINGS: &[&str] = &[
    "ville", "ton", "town", "burgh", "burg", "borough", "bury", "field", "ford", "port", "mouth", "haven", "land",
    "side", "stad", "view", "berg", "chester", "caster", "fort", "furt", "shire", "stead", "dale", "wood", "worth",
    "bridge", "ham", "ington", "polis",
];
/// USPS street suffixes, long and abbreviated; plurals ("Mountains") are read from their singular.
const STREET_SUFFIXES: &[&str] = &[
    "street",
    "st",
    "avenue",
    "ave",
    "av",
    "road",
    "rd",
    "lane",
    "ln",
    "drive",
    "dr",
    "boulevard",
    "blvd",
    "court",
    "ct",
    "way",
    "place",
    "pl",
    "terrace",
    "ter",
    "circle",
    "cir",
    "parkway",
    "pkwy",
    "highway",
    "hwy",
    "square",
    "sq",
    "trail",
    "trl",
    "alley",
    "aly",
    "crossing",
    "xing",
    "crossroad",
    "plaza",
    "plz",
    "row",
    "path",
    "pike",
    "loop",
    "run",
    "walk",
    "mews",
    "close",
    "crescent",
    "cres",
    "grove",
    "heights",
    "hill",
    "park",
    "point",
    "pt",
    "ridge",
    "route",
    "rte",
    "view",
    "village",
    "ville",
    "vista",
    "well",
    "harbor",
    "haven",
    "island",
    "isle",
    "junction",
    "key",
    "knoll",
    "landing",
    "light",
    "manor",
    "meadow",
    "mill",
    "mission",
    "motorway",
    "mountain",
    "mount",
    "orchard",
    "oval",
    "overpass",
    "pass",
    "passage",
    "pines",
    "plain",
    "port",
    "prairie",
    "ramp",
    "ranch",
    "rapid",
    "rest",
    "river",
    "shoal",
    "shore",
    "skyway",
    "spring",
    "spur",
    "station",
    "stravenue",
    "stream",
    "summit",
    "throughway",
    "trace",
    "track",
    "trafficway",
    "tunnel",
    "turnpike",
    "underpass",
    "union",
    "valley",
    "viaduct",
    "brook",
    "burg",
    "bypass",
    "camp",
    "canyon",
    "cape",
    "causeway",
    "center",
    "cliff",
    "club",
    "common",
    "corner",
    "course",
    "cove",
    "creek",
    "crest",
    "curve",
    "dale",
    "dam",
    "divide",
    "estate",
    "expressway",
    "extension",
    "fall",
    "ferry",
    "field",
    "flat",
    "ford",
    "forest",
    "forge",
    "fork",
    "fort",
    "freeway",
    "garden",
    "gateway",
    "glen",
    "green",
    "harbour",
    "hollow",
    "inlet",
    "lake",
    "land",
    "loaf",
    "lock",
    "lodge",
    "mall",
    "neck",
    "radial",
    "bluff",
    "bottom",
    "branch",
    "bridge",
    "beach",
    "bend",
    "arcade",
    "anex",
    "grounds",
    "via",
    "centre",
    "wharf",
];
const UNIT_WORDS: &[&str] = &["apt", "apartment", "suite", "ste", "unit", "floor", "fl", "room", "box", "building"];
const PLACE_CONTEXT: &[&str] = &[
    "in", "to", "from", "near", "at", "into", "via", "outside", "around", "across", "visit", "visited", "address",
    "city", "town", "based", "lives", "live", "located", "moved", "born", "office", "ship", "shipped", "deliver",
    "country", "state",
];
const PERSON_CONTEXT: &[&str] = &[
    "dear",
    "hi",
    "hello",
    "thanks",
    "ask",
    "cc",
    "by",
    "with",
    "signed",
    "name",
    "patient",
    "contact",
    "customer",
    "employee",
    "mr",
    "mrs",
    "ms",
    "dr",
    "from",
    "met",
    "call",
    "tell",
    "per",
    "attn",
    "attention",
    "regards",
];
/// US state and territory codes, plus the military AA/AE/AP.
const STATE_CODES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME",
    "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA",
    "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC", "PR", "GU", "VI", "AS", "MP", "AA",
    "AE", "AP", "FM", "MH", "PW",
];

/// A word: letters (and non-ASCII bytes, so accented names hold together) with inner apostrophes and hyphens.
#[derive(Clone, Copy, Debug)]
struct Word {
    start: usize,
    end: usize,
    /// Followed directly by a full stop ("Dr.", "J.", "St.").
    dot: bool,
    /// What the word is, looked up once: the flags below.
    kind: u16,
}

const FIRST: u16 = 1;
const LAST: u16 = 1 << 1;
const PLACE: u16 = 1 << 2;
const TITLE: u16 = 1 << 3;
const NAME_SUFFIX: u16 = 1 << 4;
const STREET: u16 = 1 << 5;
const PREFIX: u16 = 1 << 6;
const NOT_NAME: u16 = 1 << 7;
const ABBREVIATION: u16 = 1 << 8;
/// Ends as place names do ("-ville", "-mouth").
const ENDING: u16 = 1 << 9;
/// … and what comes before the ending is a name ("Jackson|ville").
const ENDING_NAMED: u16 = 1 << 10;
/// A country or a US state.
const REGION: u16 = 1 << 11;

impl Word {
    fn is(self, flag: u16) -> bool {
        self.kind & flag != 0
    }

    /// A known first name or surname.
    fn named(self) -> bool {
        self.is(FIRST | LAST)
    }

    /// `Some(named)` when the word has a place-name ending.
    fn ending(self) -> Option<bool> {
        self.is(ENDING).then_some(self.is(ENDING_NAMED))
    }
}

/// The flags of a capitalised word, from its lowercase form.
fn classify(s: &[u8], lists: &Lists) -> u16 {
    let mut k = lists.flags(s);
    if s.len() == 1 {
        k |= ABBREVIATION;
    }
    if k & STREET == 0 && s.len() > 3 && s.ends_with(b"s") && lists.flags(&s[..s.len() - 1]) & STREET != 0 {
        k |= STREET; // "Mountains", "Groves": plurals of street suffixes
    }
    // Listed words are read by their lists; the ending matters for the others ("Jasonmouth").
    if s.len() >= 5 && k == 0 {
        let last = s[s.len() - 1];
        let ending = PLACE_ENDINGS
            .iter()
            .filter(|e| e.as_bytes()[e.len() - 1] == last && s.len() >= e.len() + 2 && s.ends_with(e.as_bytes()))
            .max_by_key(|e| e.len());
        if let Some(e) = ending {
            k |= ENDING;
            if lists.flags(&s[..s.len() - e.len()]) & (FIRST | LAST) != 0 {
                k |= ENDING_NAMED;
            }
        }
    }
    k
}

fn letter(b: u8) -> bool {
    b.is_ascii_alphabetic() || b >= 0x80
}

/// Whether the text from `start` to `end` is, lowercased, one of `list`.
fn in_list(text: &[u8], start: usize, end: usize, list: &[&str]) -> bool {
    list.iter().any(|w| w.len() == end - start && w.as_bytes().eq_ignore_ascii_case(&text[start..end]))
}

/// A capital then a lowercase letter ("Ada", "McDonald"), or a lone capital (an initial).
fn capitalised(text: &[u8], w: Word) -> bool {
    text[w.start].is_ascii_uppercase()
        && (w.end - w.start == 1 || text[w.start + 1].is_ascii_lowercase() || text[w.start + 1] >= 0x80)
}

/// Common words that start title-case headings ("How We Use Your Data") and are never part of a name.
const NOT_NAMES: &[&str] = &[
    "a",
    "an",
    "and",
    "are",
    "as",
    "at",
    "by",
    "can",
    "data",
    "do",
    "for",
    "from",
    "how",
    "if",
    "in",
    "information",
    "is",
    "it",
    "may",
    "more",
    "not",
    "of",
    "on",
    "or",
    "our",
    "personal",
    "policy",
    "privacy",
    "team",
    "that",
    "the",
    "this",
    "to",
    "us",
    "use",
    "we",
    "what",
    "when",
    "which",
    "who",
    "why",
    "with",
    "you",
    "your",
];

/// The position of the next ASCII capital letter at or after `from`.
fn next_capital(text: &[u8], from: usize) -> Option<usize> {
    crate::detect::next_in_range(text, from, b'A', b'Z')
}

/// The capitalised words of `text` in order, each looked up in the lists once.
fn words(text: &[u8], lists: &Lists) -> Vec<Word> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(start) = next_capital(text, i) {
        i = start + 1;
        if start > 0 && (letter(text[start - 1]) || text[start - 1] == b'\'') {
            continue; // inside a word ("McDonald", "iPhone")
        }
        let after_ident =
            start > 0 && (text[start - 1].is_ascii_digit() || text[start - 1] == b'_' || text[start - 1] == b'@');
        while i < text.len()
            && (letter(text[i]) || (b"'-".contains(&text[i]) && text.get(i + 1).is_some_and(|n| letter(*n))))
        {
            i += 1;
        }
        let w = Word { start, end: i, dot: text.get(i) == Some(&b'.'), kind: 0 };
        if after_ident || !capitalised(text, w) || i - start > 40 {
            continue;
        }
        // Words glued to digits, '@', '/', '_' or ':' ("host:8080") are identifiers, addresses or paths.
        let glued = text.get(i).is_some_and(|b| b.is_ascii_digit() || b"@_/".contains(b))
            || (text.get(i) == Some(&b':') && text.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()))
            || (start > 1 && b"/.:".contains(&text[start - 1]) && letter(text[start - 2]));
        if !glued {
            let mut low = [0u8; 40];
            let low = &mut low[..i - start];
            low.copy_from_slice(&text[start..i]);
            low.make_ascii_lowercase();
            out.push(Word { kind: classify(low, lists), ..w });
        }
    }
    out
}

/// Whether `a` and `b` are adjacent words of one name: one space between them, or ". " after an abbreviation.
fn joined(text: &[u8], a: Word, b: Word) -> bool {
    let gap = &text[a.end..b.start];
    // After an initial, a title or a street or unit abbreviation a full stop does not end the sentence.
    gap == b" " || (a.dot && gap == b". " && a.is(ABBREVIATION))
}

/// The lowercase word just before `at` (skipping spaces and one comma), if any.
fn word_before(text: &[u8], at: usize) -> Option<&[u8]> {
    let mut e = at;
    while e > 0 && (text[e - 1] == b' ' || text[e - 1] == b',' || text[e - 1] == b':') {
        e -= 1;
    }
    let mut s = e;
    while s > 0 && text[s - 1].is_ascii_alphabetic() {
        s -= 1;
    }
    (s < e && e - s <= 16).then(|| &text[s..e])
}

fn context(text: &[u8], at: usize, list: &[&str]) -> bool {
    word_before(text, at).is_some_and(|w| {
        let mut buf = [0u8; 16];
        let b = &mut buf[..w.len()];
        b.copy_from_slice(w);
        b.make_ascii_lowercase();
        list.iter().any(|c| c.as_bytes() == b)
    })
}

/// Whether `at` starts a sentence (or the text): only spaces after a full stop, '!', '?' or a line break before it.
fn sentence_start(text: &[u8], at: usize) -> bool {
    let mut e = at;
    while e > 0 && text[e - 1] == b' ' {
        e -= 1;
    }
    e == 0 || b".!?\n\r\t\"".contains(&text[e - 1])
}

/// Past ", " or " " at `at` (the separators inside an address), if one is there.
fn separator(t: &[u8], at: usize) -> Option<usize> {
    let at = if t.get(at) == Some(&b',') { at + 1 } else { at };
    (t.get(at) == Some(&b' ')).then_some(at + 1)
}

struct Reader<'t> {
    text: &'t [u8],
    lists: &'static Lists,
    out: &'t mut Vec<Finding>,
}

impl Reader<'_> {
    fn push(&mut self, kind: EntityType, start: usize, end: usize, confidence: f32) {
        self.out.push(Finding { kind, start, end, confidence });
    }

    /// A house number ending right before `at` ("1600 ", "12B "), if any: its start.
    fn house_number(&self, at: usize) -> Option<usize> {
        let t = self.text;
        if at < 2 || t[at - 1] != b' ' {
            return None;
        }
        let mut s = at - 1;
        if s > 0 && t[s - 1].is_ascii_uppercase() {
            s -= 1; // "12B"
        }
        let e = s;
        while s > 0 && t[s - 1].is_ascii_digit() {
            s -= 1;
        }
        let ok = (1..=6).contains(&(e - s))
            && (s == 0 || !(t[s - 1].is_ascii_alphanumeric() || b".-/:".contains(&t[s - 1])));
        ok.then_some(s)
    }

    /// The end of what follows a street: a unit ("Apt. 730", "Suite 12"), then ", City, ST 12345" or " City, ST 12345".
    fn address_tail(&self, mut end: usize) -> usize {
        let t = self.text;
        let unit = |from: usize| -> Option<usize> {
            let mut i = separator(t, from)?;
            let ws = i;
            while i < t.len() && t[i].is_ascii_alphabetic() {
                i += 1;
            }
            if i == ws || !in_list(t, ws, i, UNIT_WORDS) {
                return None;
            }
            if t.get(i) == Some(&b'.') {
                i += 1;
            }
            if t.get(i) == Some(&b' ') {
                i += 1;
            }
            let ds = i;
            while i < t.len() && (t[i].is_ascii_alphanumeric()) {
                i += 1;
            }
            (i > ds && t[ds..i].iter().any(u8::is_ascii_digit)).then_some(i)
        };
        if let Some(e) = unit(end) {
            end = e;
        }
        if let Some(e) = self.city_state_zip(end) {
            end = e;
        }
        end
    }

    /// ", City, ST 12345" (or " City, ST 12345") starting at `from`: its end.
    fn city_state_zip(&self, from: usize) -> Option<usize> {
        let t = self.text;
        let mut i = separator(t, from)?;
        // One to three capitalised words, then ", ".
        let mut words = 0;
        while words < 3 && t.get(i).is_some_and(u8::is_ascii_uppercase) {
            while i < t.len() && (t[i].is_ascii_alphabetic() || t[i] == b'.' || t[i] == b'\'') {
                i += 1;
            }
            words += 1;
            if t.get(i) == Some(&b' ') && t.get(i + 1).is_some_and(u8::is_ascii_uppercase) {
                i += 1;
            }
        }
        if words == 0 || t.get(i..i + 2) != Some(b", ") {
            return None;
        }
        self.state_zip(i + 2)
    }

    /// "ST 12345" or "ST 12345-6789" at `i`: its end.
    fn state_zip(&self, i: usize) -> Option<usize> {
        let t = self.text;
        let code = t.get(i..i + 2)?;
        if !STATE_CODES.iter().any(|c| c.as_bytes() == code) || t.get(i + 2) != Some(&b' ') {
            return None;
        }
        let z = i + 3;
        let digits = t.get(z..z + 5)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut end = z + 5;
        if t.get(end) == Some(&b'-') && t.get(end + 1..end + 5).is_some_and(|d| d.iter().all(u8::is_ascii_digit)) {
            end += 5;
        }
        (!t.get(end).is_some_and(u8::is_ascii_alphanumeric)).then_some(end)
    }

    /// Reads one run of capitalised words.
    fn run(&mut self, run: &[Word]) {
        let t = self.text;
        let mut k = 0;
        while k < run.len() {
            let w = run[k];
            let rest = &run[k..];
            // A street address: number, words, suffix.
            if let Some(num) = self.house_number(w.start) {
                if let Some(s) = (1..rest.len().min(5)).find(|&s| rest[s].is(STREET)) {
                    let mut end = rest[s].end + usize::from(rest[s].dot);
                    end = self.address_tail(end);
                    self.push(EntityType::Location, num, end, 0.85);
                    k += s + 1;
                    while k < run.len() && run[k].start < end {
                        k += 1;
                    }
                    continue;
                }
            }
            // A title and a name.
            if w.is(TITLE) && rest.len() >= 2 {
                let n = self.name_len(&rest[1..], true);
                if n > 0 {
                    let last = rest[n];
                    self.push(EntityType::Person, w.start, last.end, 0.85);
                    k += n + 1;
                    continue;
                }
            }
            // A place of several words.
            if let Some(end) = self.known_place(w.start) {
                let end = self.city_state_zip(end).or_else(|| self.comma_state_zip(end)).unwrap_or(end);
                self.push(EntityType::Location, w.start, end, 0.8);
                while k < run.len() && run[k].start < end {
                    k += 1;
                }
                continue;
            }
            let place_ctx = context(t, w.start, PLACE_CONTEXT);
            // First name (and middle names or initials) and a surname; a place name after a
            // place word ("shipped to Georgia") is read as the place.
            if w.is(FIRST) && !w.is(PREFIX) {
                let n = self.name_len(rest, false);
                if n > 0 && !(w.is(PLACE | REGION) && place_ctx && !rest[n].is(LAST)) {
                    let last = rest[n];
                    let known_last = last.is(LAST);
                    let place_like = last.ending() == Some(true) && !known_last;
                    let ctx = context(t, w.start, PERSON_CONTEXT);
                    if !place_like || ctx {
                        let c = if known_last {
                            0.85
                        } else if ctx {
                            0.7
                        } else {
                            0.6
                        };
                        self.push(EntityType::Person, w.start, last.end, c);
                        k += n + 1;
                        continue;
                    }
                }
            }
            // Place shapes.
            let placeish = |x: Word| x.is(FIRST | LAST | PLACE | ENDING);
            if w.is(PREFIX) && rest.len() >= 2 && !rest[1].dot && placeish(rest[1]) {
                let end = rest[1].end;
                let end = self.comma_state_zip(end).unwrap_or(end);
                self.push(EntityType::Location, w.start, end, 0.7);
                k += 2;
                continue;
            }
            let ending = w.ending();
            let named = w.named();
            if ending == Some(true) && (place_ctx || !named) || ending == Some(false) && place_ctx && !named {
                let end = self.comma_state_zip(w.end).unwrap_or(w.end);
                let c = if place_ctx { 0.7 } else { 0.6 };
                self.push(EntityType::Location, w.start, end, c);
                k += 1;
                continue;
            }
            if w.is(PLACE | REGION) {
                // Countries and states stand alone; a city needs a place word before it or
                // to sit mid-sentence, and neither may double as a name without a place word.
                let name = w.named();
                if place_ctx || (!name && (w.is(REGION) || !sentence_start(t, w.start))) {
                    let end = self.comma_state_zip(w.end).unwrap_or(w.end);
                    self.push(EntityType::Location, w.start, end, if place_ctx { 0.75 } else { 0.55 });
                }
            } else if rest.len() == 1 && w.named() && context(t, w.start, &["dear", "hi", "hello", "attn"]) {
                self.push(EntityType::Person, w.start, w.end, 0.6);
            }
            k += 1;
        }
    }

    /// ", ST 12345" right after a city: its end.
    fn comma_state_zip(&self, end: usize) -> Option<usize> {
        (self.text.get(end..end + 2) == Some(b", ")).then(|| self.state_zip(end + 2)).flatten()
    }

    /// How many words after the first one in `words` still belong to the name
    /// (middle names, initials, the surname, a suffix such as "Jr."), as an index
    /// of its last word; 0 when `words` does not start a name. With a title the
    /// first word may itself be the surname.
    fn name_len(&self, words: &[Word], titled: bool) -> usize {
        let initial = |w: Word| w.end - w.start == 1 && w.dot;
        let mut last = 0;
        let mut i = 1;
        if titled {
            // "Dr. Santos", "Ms. Ada Lovelace": the first word after the title counts.
            if words.is_empty() || initial(words[0]) {
                return 0;
            }
            last = 0;
        }
        while i < words.len() && i <= 3 {
            let w = words[i];
            if w.is(NAME_SUFFIX) || w.is(STREET) && i > 1 {
                break;
            }
            if initial(w) {
                i += 1;
                continue;
            }
            if w.is(NOT_NAME) {
                break;
            }
            if w.dot && !initial(w) && i < words.len() - 1 {
                break;
            }
            last = i;
            i += 1;
            if w.is(LAST) && !words.get(i).is_some_and(|n| n.is(LAST)) {
                break;
            }
        }
        if titled {
            // The title's run: `words` starts right after the title.
            return if last == 0 { 1 } else { last + 1 }.min(words.len());
        }
        last
    }

    /// The end of the longest place of several words in the list starting at `start`:
    /// capitalised words with single spaces, joined by "and", "of", "&", "upon", ...
    fn known_place(&self, start: usize) -> Option<usize> {
        const JOINERS: &[&str] = &["and", "of", "the", "upon", "on", "de", "del", "la", "da", "du", "es", "au"];
        let t = self.text;
        let mut buf = [0u8; 96];
        let mut len = 0;
        let mut best = None;
        let mut i = start;
        for n in 0..7 {
            let ws = i;
            if t.get(i) == Some(&b'&') {
                i += 1;
            }
            while i < t.len() && (t[i].is_ascii_alphabetic() || (b"'-".contains(&t[i]) && i > ws)) {
                i += 1;
            }
            if i == ws || len + (i - ws) + 5 > buf.len() {
                break;
            }
            let word = &t[ws..i];
            let capital = word[0].is_ascii_uppercase();
            if !(capital || word == b"&" || in_list(t, ws, i, JOINERS)) {
                break;
            }
            let word: &[u8] = if word == b"&" { b"and" } else { word };
            buf[len..len + word.len()].copy_from_slice(word);
            buf[len..len + word.len()].make_ascii_lowercase();
            len += word.len();
            let abbreviation = t.get(i) == Some(&b'.') && (word.len() <= 2 || word.eq_ignore_ascii_case(b"st"));
            if abbreviation {
                buf[len] = b'.';
                len += 1;
                i += 1;
            }
            if capital && n > 0 && self.lists.places.contains(&buf[..len]) {
                best = Some(i);
            }
            if t.get(i) != Some(&b' ') {
                break;
            }
            buf[len] = b' ';
            len += 1;
            i += 1;
        }
        best
    }
}

/// Person names and locations in `text`.
#[inline(never)]
pub fn names_and_places(text: &[u8], out: &mut Vec<Finding>) {
    let lists = lists();
    let ws = words(text, lists);
    let mut found = Vec::new();
    let mut reader = Reader { text, lists, out: &mut found };
    let mut i = 0;
    while i < ws.len() {
        let mut j = i + 1;
        while j < ws.len() && joined(text, ws[j - 1], ws[j]) {
            j += 1;
        }
        // Words already inside an address read from an earlier run are skipped.
        let covered = reader.out.last().map_or(0, |f| f.end);
        let from = (i..j).find(|&k| ws[k].start >= covered).unwrap_or(j);
        reader.run(&ws[from..j]);
        i = j;
    }
    // Addresses anchored on ", ST 12345" (or ", APO AE 09012") whose street no rule took.
    let t = text;
    for p in memchr::memmem::find_iter(t, b", ") {
        let military = t.get(p + 2..p + 6).is_some_and(|m| [b"APO ", b"FPO ", b"DPO "].iter().any(|x| &x[..] == m));
        let Some(end) = reader.state_zip(p + if military { 6 } else { 2 }) else { continue };
        if reader.out.iter().rev().take(4).any(|f| f.start <= p && p < f.end + 2) {
            continue;
        }
        if let Some(start) = address_start(t, p) {
            reader.push(EntityType::Location, start, end, 0.75);
        }
    }
    out.append(&mut found);
}

/// Where the address ending at `p` (just before ", ST 12345") starts: back over up to three
/// comma-separated segments of capitalised words and numbers.
fn address_start(t: &[u8], p: usize) -> Option<usize> {
    let mut seg_end = p;
    let mut start = None;
    for _ in 0..3 {
        // Back over capitalised words and numbers separated by single spaces.
        let mut b = seg_end;
        loop {
            let e = if b < seg_end && t[b - 1] == b' ' { b - 1 } else { b };
            let mut ws = e;
            while ws > 0 && (t[ws - 1].is_ascii_alphanumeric() || t[ws - 1] == b'.' || t[ws - 1] == b'\'') {
                ws -= 1;
            }
            if ws == e || !(t[ws].is_ascii_uppercase() || t[ws].is_ascii_digit()) || seg_end - ws > 48 {
                break;
            }
            b = ws;
            if ws == 0 || t[ws - 1] != b' ' {
                break;
            }
        }
        if b == seg_end {
            break;
        }
        start = Some(b);
        if b >= 2 && t[b - 1] == b' ' && t[b - 2] == b',' {
            seg_end = b - 2;
        } else {
            break;
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(EntityType, &str)> {
        let mut out = Vec::new();
        names_and_places(text.as_bytes(), &mut out);
        out.sort_by_key(|f| f.start);
        out.into_iter().map(|f| (f.kind, &text[f.start..f.end])).collect()
    }

    use EntityType::{Location, Person};

    fn one(text: &str, kind: EntityType, value: &str) {
        assert_eq!(found(text), vec![(kind, value)], "in {text:?}");
    }

    #[test]
    fn person_names() {
        for (text, name) in [
            ("Justin Wilkinson signed the form.", "Justin Wilkinson"),
            ("Ask Ms. Santos about it.", "Ms. Santos"),
            ("Approved by Carmen J. Johnson yesterday.", "Carmen J. Johnson"),
            ("Dear Dr. Ada Lovelace, hello", "Dr. Ada Lovelace"),
            ("Hi Margaret, the report", "Margaret"),
            ("Notes from Andrea Spencer: all good.", "Andrea Spencer"),
            ("The ticket was assigned to Brandon N. Smith last night.", "Brandon N. Smith"),
        ] {
            one(text, Person, name);
        }
    }

    #[test]
    fn places() {
        for (text, place) in [
            ("Deliver to South Deniseport before noon.", "South Deniseport"),
            ("The office in Lake Michaelborough is closed.", "Lake Michaelborough"),
            ("shipped to Jasonmouth", "Jasonmouth"),
            ("She moved from San Francisco last year.", "San Francisco"),
            ("We met near Chicago in the spring.", "Chicago"),
            ("shipped to United Kingdom", "United Kingdom"),
            ("Indiana is where she grew up.", "Indiana"),
            ("The office in Bosnia and Herzegovina is closed.", "Bosnia and Herzegovina"),
            ("shipped to Georgia Order 12", "Georgia"),
        ] {
            one(text, Location, place);
        }
    }

    #[test]
    fn street_addresses() {
        assert_eq!(
            found("Address: 868 Sarah Ways Apt. 730, East Jenniferfurt, NV 28745"),
            vec![(Location, "868 Sarah Ways Apt. 730, East Jenniferfurt, NV 28745")]
        );
        one("Deliver to 12 Baker Street before noon.", Location, "12 Baker Street");
        one("Their new branch near 1420 William Mountains opens soon.", Location, "1420 William Mountains");
        assert_eq!(
            found("The office in USNS Avila, FPO AA 75249 is closed."),
            vec![(Location, "USNS Avila, FPO AA 75249")]
        );
        assert_eq!(
            found("Address: PSC 4115, Box 7815, APO AE 41903"),
            vec![(Location, "PSC 4115, Box 7815, APO AE 41903")]
        );
    }

    #[test]
    fn capitalised_words_that_are_not_names_or_places() {
        for text in [
            "The Python SDK ships on Monday.",
            "See the March release notes.",
            "Thank you, Support Team.",
            "Open the Settings page and choose Export.",
            "Federated Learning works across many devices.",
            "Happy New Year from everyone here.",
            "The Terms of Service changed in April.",
            "Price reach form whatever.",
            "Order 12 Widgets today",
            "user@Example.com and https://Paris.example/Lake",
            "How We Will Use Your Personal Information",
            "OLD NEW",
        ] {
            assert_eq!(found(text), vec![], "in {text:?}");
        }
    }
}
