//! A wrapper for personal data that cannot leak through formatting.

use std::fmt;

/// Personal data. `Debug` and `Display` print `[redacted]`; the value is
/// reached only through [`Personal::expose`], at the point of use.
#[derive(Clone, PartialEq, Eq)]
pub struct Personal<T>(T);

impl<T> Personal<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value, for the code that must use it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The value, consuming the wrapper.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Deserialises the value itself, so request types can hold personal data wrapped from
/// the moment it is read.
impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Personal<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let p = Personal::new("ada@example.com".to_owned());
        assert_eq!(format!("{p:?} {p} {:?}", Some(&p)), "[redacted] [redacted] Some([redacted])");
        assert_eq!(p.expose(), "ada@example.com");
    }

    #[test]
    fn deserialises_the_value_and_still_redacts_it() {
        let p: Option<Personal<String>> = serde_json::from_str("\"ada@example.com\"").unwrap();
        assert_eq!(format!("{p:?}"), "Some([redacted])");
        assert_eq!(p.unwrap().into_inner(), "ada@example.com");
    }
}
