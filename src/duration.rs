//! Durations as people and the apiserver write them: `500ms`, `10s`, `1m30s`.
//!
//! One parser serves the config file and the `?timeout=` query the apiserver sends (a Go
//! duration), so both accept the same spellings.

use std::time::Duration;

/// A text that is not a duration, as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected e.g. 500ms, 10s or 1m30s")]
pub struct DurationError(pub String);

/// Parses a Go-style duration: one or more `<number><unit>` parts, units `ms`, `s`, `m`, `h`.
/// Fractions are allowed (`1.5s`); signs, bare numbers and empty strings are not.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError(text.to_string());
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if number_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1.0e9 {
        return Err(invalid());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a config field that must lie in `min..=max`; a problem is added to `errors` (and
/// `min` returned) so that validation can go on and report everything at once.
pub fn field(errors: &mut Vec<String>, name: &str, text: &str, min: Duration, max: Duration) -> Duration {
    match parse(text) {
        Ok(d) if d >= min && d <= max => d,
        Ok(_) => {
            errors.push(format!(
                "{name}: {text:?} is out of range ({} to {})",
                format(min),
                format(max)
            ));
            min
        }
        Err(e) => {
            errors.push(format!("{name}: {e}"));
            min
        }
    }
}

/// Formats a duration the way [`parse`] reads it back, for messages and printed config.
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["", "10", "s", "-1s", "10x", "1..2s", "ms10", "10 s", "1e400s"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format(Duration::from_secs(10)), "10s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(
            parse(&format(Duration::from_millis(1250))),
            Ok(Duration::from_millis(1250))
        );
    }
}
