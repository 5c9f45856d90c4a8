//! Time as the model sees it: plain milliseconds handed in by a world.
//!
//! The model never reads a clock. Every reading (true time in the world, a node's
//! monotonic clock, a node's wall clock) is a [`Millis`] that the driver passes in, so the
//! same inputs always give the same outputs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in time or a duration, in milliseconds.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    /// Zero milliseconds.
    pub const ZERO: Millis = Millis(0);
    /// A duration of `s` seconds.
    pub const fn secs(s: u64) -> Millis {
        Millis(s * 1000)
    }
    /// A duration of `ms` milliseconds.
    pub const fn ms(ms: u64) -> Millis {
        Millis(ms)
    }
    /// Saturating subtraction: never below zero.
    pub fn saturating_sub(self, other: Millis) -> Millis {
        Millis(self.0.saturating_sub(other.0))
    }
    /// Checked addition: `None` on overflow.
    pub fn checked_add(self, other: Millis) -> Option<Millis> {
        self.0.checked_add(other.0).map(Millis)
    }
    /// This duration in seconds, as a float (for reports).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

// The operators saturate instead of wrapping. Every duration a format accepts is bounded
// (`crate::limits`), so sums of them stay far below `u64::MAX`; should one ever reach it,
// a time stuck at the far future is a timer that never fires, never one that fires at
// once, as a wrapped sum would.
impl std::ops::Add for Millis {
    type Output = Millis;
    fn add(self, rhs: Millis) -> Millis {
        Millis(self.0.saturating_add(rhs.0))
    }
}

impl std::ops::Sub for Millis {
    type Output = Millis;
    fn sub(self, rhs: Millis) -> Millis {
        Millis(self.0.saturating_sub(rhs.0))
    }
}

impl std::ops::Mul<u64> for Millis {
    type Output = Millis;
    fn mul(self, rhs: u64) -> Millis {
        Millis(self.0.saturating_mul(rhs))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        // Whole seconds read best as seconds; anything finer stays exact so that a
        // duration written into a scenario file parses back to the same value.
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// Parses a duration such as `250ms`, `10s`, `2m`, `1h` or `1m30s`.
///
/// A bare number is refused on purpose: a scenario that says `30` could mean seconds or
/// milliseconds, and guessing wrong silently changes a drill.
pub fn parse_duration(text: &str) -> Result<Millis, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("expected a duration such as 500ms, 10s, 2m or 1h, found nothing".into());
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "expected a duration such as 500ms, 10s, 2m or 1h, found `{text}`"
            ));
        }
        // Up to 38 digits fit a u128; more is too large whatever the unit.
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| crate::limits::check_duration(text, u128::MAX).unwrap_err())?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor: u128 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => {
                return Err(format!(
                    "duration `{text}` has no unit: write 500ms, 10s, 2m or 1h"
                ))
            }
            other => {
                return Err(format!(
                    "unknown unit `{other}` in duration `{text}`: use ms, s, m or h"
                ))
            }
        };
        // Checked after every part, so the sum cannot overflow either.
        total = total.saturating_add(n.saturating_mul(factor));
        crate::limits::check_duration(text, total)?;
    }
    crate::limits::check_duration(text, total)
}

/// Serde helpers so scenario files can write durations as strings (`"10s"`).
pub mod duration_str {
    use super::{parse_duration, Millis};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes a duration as its display string.
    pub fn serialize<S: Serializer>(m: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&m.to_string())
    }

    /// Reads a duration string such as `"10s"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }

    /// The same for an optional duration.
    pub mod option {
        use super::super::{parse_duration, Millis};
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes an optional duration.
        pub fn serialize<S: Serializer>(m: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
            match m {
                Some(m) => s.serialize_str(&m.to_string()),
                None => s.serialize_none(),
            }
        }

        /// Reads an optional duration string.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
            let text = Option::<String>::deserialize(d)?;
            text.map(|t| parse_duration(&t).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("250ms"), Ok(Millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Millis(10_000)));
        assert_eq!(parse_duration("2m"), Ok(Millis(120_000)));
        assert_eq!(parse_duration("1m30s"), Ok(Millis(90_000)));
        assert_eq!(parse_duration("1h"), Ok(Millis(3_600_000)));
    }

    #[test]
    fn refuses_ambiguous_or_bad_input() {
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn display_round_trips() {
        for ms in [0, 5, 999, 1000, 1500, 60_000, 123_456] {
            let m = Millis(ms);
            assert_eq!(parse_duration(&m.to_string()), Ok(m));
        }
        assert_eq!(Millis(1500).to_string(), "1500ms");
        assert_eq!(Millis(10_000).to_string(), "10s");
    }
}
