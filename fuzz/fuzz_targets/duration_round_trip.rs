//! Fuzzes the duration grammar: `parse_duration` agrees with a plain reading of the API's regex
//! `^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?)$` (empty
//! refused, totals over u64 seconds refused), and `format_duration` round-trips through it.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokend_api::duration::{format_duration, parse_duration};

const UNITS: [(u8, u128); 6] = [
    (b'y', 365 * 86_400),
    (b'w', 7 * 86_400),
    (b'd', 86_400),
    (b'h', 3_600),
    (b'm', 60),
    (b's', 1),
];

/// The grammar read straight off the regex: `Some(seconds)` when the text matches and the total
/// fits in a u64, `None` otherwise.
fn reference(text: &str) -> Option<u64> {
    if text == "0" {
        return Some(0);
    }
    if text.is_empty() {
        return None;
    }
    let bytes = text.as_bytes();
    let (mut i, mut next_unit, mut total) = (0, 0, 0u128);
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i == bytes.len() {
            return None;
        }
        let position = UNITS[next_unit..]
            .iter()
            .position(|(unit, _)| *unit == bytes[i])?;
        let (_, seconds) = UNITS[next_unit + position];
        next_unit += position + 1;
        // Leading zeros are allowed; more digits than any u64 count means overflow anyway.
        let digits = text[start..i].trim_start_matches('0');
        let count: u128 = if digits.is_empty() {
            0
        } else if digits.len() > 20 {
            return None;
        } else {
            digits.parse().ok()?
        };
        total = total.checked_add(count.checked_mul(seconds)?)?;
        i += 1;
    }
    u64::try_from(total).ok()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let parsed = parse_duration(text);
        assert_eq!(
            parsed.as_ref().ok().map(Duration::as_secs),
            reference(text),
            "{text:?} parsed as {parsed:?}"
        );
        if let Ok(duration) = parsed {
            let canonical = format_duration(duration);
            assert_eq!(
                parse_duration(&canonical),
                Ok(duration),
                "{text:?} -> {canonical:?}"
            );
            assert_eq!(
                format_duration(parse_duration(&canonical).unwrap()),
                canonical
            );
        }
    }
    if let Some(bytes) = data.get(..8) {
        let seconds = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        let duration = Duration::from_secs(seconds);
        let text = format_duration(duration);
        assert_eq!(
            parse_duration(&text),
            Ok(duration),
            "{seconds} s -> {text:?}"
        );
    }
});
