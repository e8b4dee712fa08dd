//! tokend's duration strings (`1h`, `2h45m`, `3w`) parsed into and rendered from [`std::time::Duration`].
//!
//! The grammar is the API's:
//! `^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?)$`,
//! where a year is 365 days and a week 7 days. Units come in that order, each at most once; there
//! is no sign, no fraction and no whitespace. The empty string is rejected here: where the API
//! gives it a meaning ("the server's default") the caller decides that before parsing.
//!
//! ```
//! use std::time::Duration;
//! use tokend_api::duration::{format_duration, parse_duration};
//!
//! assert_eq!(parse_duration("2h45m")?, Duration::from_secs(9900));
//! assert_eq!(format_duration(Duration::from_secs(9900)), "2h45m");
//! assert!(parse_duration("45m2h").is_err());
//! # Ok::<(), tokend_api::duration::DurationError>(())
//! ```

use std::time::Duration;

/// Seconds in one minute.
const MINUTE: u64 = 60;
/// Seconds in one hour.
const HOUR: u64 = 60 * MINUTE;
/// Seconds in one day.
const DAY: u64 = 24 * HOUR;
/// Seconds in one week (7 days).
const WEEK: u64 = 7 * DAY;
/// Seconds in one year (365 days).
const YEAR: u64 = 365 * DAY;

/// The units in the order the grammar requires them, with their length in seconds.
const UNITS: [(char, u64); 6] = [
    ('y', YEAR),
    ('w', WEEK),
    ('d', DAY),
    ('h', HOUR),
    ('m', MINUTE),
    ('s', 1),
];

/// The unit letters, for error messages.
const UNIT_LIST: &str = "y, w, d, h, m, s";

/// Why a string is not a duration in tokend's grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error(
        "duration is empty: write a number with a unit ({UNIT_LIST}), e.g. \"1h\" or \"2h45m\""
    )]
    Empty,
    /// A character that is neither a digit nor a unit letter (whitespace, a sign, a decimal point...).
    #[error(
        "unexpected character {character:?} at position {position}: a duration is digits and unit letters ({UNIT_LIST}) only, e.g. \"2h45m\""
    )]
    UnexpectedCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// A letter that is not one of the units y, w, d, h, m, s.
    #[error("unknown unit {unit:?} at position {position}: the units are {UNIT_LIST}")]
    UnknownUnit {
        /// The letter found.
        unit: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// A unit letter with no digits before it, e.g. `"h"` or `"1hm"`.
    #[error("unit {unit:?} at position {position} has no number before it")]
    MissingNumber {
        /// The unit letter.
        unit: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// Digits at the end with no unit after them, e.g. `"90"` or `"1h30"` (only `"0"` may stand alone).
    #[error("number {number:?} at the end has no unit: add one of {UNIT_LIST}, e.g. \"{number}s\"")]
    MissingUnit {
        /// The trailing digits.
        number: String,
    },
    /// A unit appeared twice, e.g. `"1h1h"`.
    #[error("unit {unit:?} appears more than once: each unit may be used once")]
    RepeatedUnit {
        /// The repeated unit letter.
        unit: char,
    },
    /// Units out of order, e.g. `"30m1h"`: they must come as y, w, d, h, m, s.
    #[error("unit {unit:?} comes after {previous:?}: units must come in the order {UNIT_LIST}")]
    UnitOutOfOrder {
        /// The unit that came too late.
        unit: char,
        /// The unit before it that should have come after it.
        previous: char,
    },
    /// The total does not fit in 2^64 − 1 seconds.
    #[error("duration {input:?} is too long: the total must fit in {max} seconds", max = u64::MAX)]
    Overflow {
        /// The whole input.
        input: String,
    },
}

/// Parses a duration in tokend's grammar (`"0"`, `"90s"`, `"2h45m"`, `"1y2w"`) into a [`Duration`].
///
/// # Errors
///
/// Returns a [`DurationError`] naming the rule the input broke: empty input, a character that is not
/// a digit or unit, a unit without a number, a number without a unit, units repeated or out of
/// order, or a total too large for a `u64` number of seconds.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    if input == "0" {
        return Ok(Duration::ZERO);
    }
    let overflow = || DurationError::Overflow {
        input: input.to_owned(),
    };
    let mut total: u64 = 0;
    // Index into UNITS of the last unit seen, so the next must have a greater index.
    let mut last_unit: Option<usize> = None;
    let mut number: Option<u64> = None;
    let mut digits_start = 0;
    for (position, character) in input.char_indices() {
        if let Some(digit) = character
            .to_digit(10)
            .filter(|_| character.is_ascii_digit())
        {
            if number.is_none() {
                digits_start = position;
            }
            let value = number
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(digit)))
                .ok_or_else(overflow)?;
            number = Some(value);
            continue;
        }
        if !character.is_ascii_alphabetic() {
            return Err(DurationError::UnexpectedCharacter {
                character,
                position,
            });
        }
        let Some(index) = UNITS.iter().position(|(unit, _)| *unit == character) else {
            return Err(DurationError::UnknownUnit {
                unit: character,
                position,
            });
        };
        let Some(count) = number.take() else {
            return Err(DurationError::MissingNumber {
                unit: character,
                position,
            });
        };
        if let Some(previous) = last_unit {
            if previous == index {
                return Err(DurationError::RepeatedUnit { unit: character });
            }
            if previous > index {
                return Err(DurationError::UnitOutOfOrder {
                    unit: character,
                    previous: UNITS[previous].0,
                });
            }
        }
        last_unit = Some(index);
        let seconds = count.checked_mul(UNITS[index].1).ok_or_else(overflow)?;
        total = total.checked_add(seconds).ok_or_else(overflow)?;
    }
    if number.is_some() {
        return Err(DurationError::MissingUnit {
            number: input[digits_start..].to_owned(),
        });
    }
    Ok(Duration::from_secs(total))
}

/// Renders a [`Duration`] in tokend's grammar, in canonical form: `"0"` for zero, otherwise each
/// non-zero unit once, largest first, each as large as it can be (9900 s → `"2h45m"`, 8760 h →
/// `"1y"`, 1000 h → `"5w6d16h"`).
///
/// Sub-second parts are dropped (truncated), so `parse_duration(&format_duration(d))` equals `d`
/// for every whole number of seconds.
pub fn format_duration(duration: Duration) -> String {
    let mut remaining = duration.as_secs();
    if remaining == 0 {
        return "0".to_owned();
    }
    let mut out = String::new();
    for (unit, seconds) in UNITS {
        let count = remaining / seconds;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push(unit);
            remaining %= seconds;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("1s"), Ok(secs(1)));
        assert_eq!(parse_duration("1m"), Ok(secs(60)));
        assert_eq!(parse_duration("1h"), Ok(secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(secs(86_400)));
        assert_eq!(parse_duration("1w"), Ok(secs(7 * 86_400)));
        assert_eq!(parse_duration("1y"), Ok(secs(365 * 86_400)));
    }

    #[test]
    fn parses_combinations_in_order() {
        assert_eq!(parse_duration("2h45m"), Ok(secs(9900)));
        assert_eq!(parse_duration("3w"), Ok(secs(21 * 86_400)));
        assert_eq!(
            parse_duration("1y2w3d4h5m6s"),
            Ok(secs(
                365 * 86_400 + 14 * 86_400 + 3 * 86_400 + 4 * 3600 + 5 * 60 + 6
            ))
        );
        assert_eq!(parse_duration("1y1s"), Ok(secs(365 * 86_400 + 1)));
        assert_eq!(parse_duration("8760h"), Ok(secs(8760 * 3600)));
        assert_eq!(parse_duration("1000h"), Ok(secs(1000 * 3600)));
    }

    #[test]
    fn parses_zero_forms() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0h0m"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("00"),
            Err(DurationError::MissingUnit {
                number: "00".into()
            })
        );
    }

    #[test]
    fn accepts_leading_zeros_and_large_counts() {
        assert_eq!(parse_duration("01h"), Ok(secs(3600)));
        assert_eq!(parse_duration("0090m"), Ok(secs(5400)));
        assert_eq!(parse_duration("100000s"), Ok(secs(100_000)));
        assert_eq!(parse_duration("18446744073709551615s"), Ok(secs(u64::MAX)));
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
    }

    #[test]
    fn rejects_whitespace_signs_and_decimals() {
        for (input, character, position) in [
            (" 1h", ' ', 0),
            ("1h ", ' ', 2),
            ("1h 30m", ' ', 2),
            ("-1h", '-', 0),
            ("+1h", '+', 0),
            ("1.5h", '.', 1),
            ("1h\n", '\n', 2),
            ("1h,30m", ',', 2),
        ] {
            assert_eq!(
                parse_duration(input),
                Err(DurationError::UnexpectedCharacter {
                    character,
                    position
                }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn rejects_non_ascii_digits() {
        assert_eq!(
            parse_duration("١h"),
            Err(DurationError::UnexpectedCharacter {
                character: '١',
                position: 0
            })
        );
    }

    #[test]
    fn rejects_unknown_and_uppercase_units() {
        assert_eq!(
            parse_duration("1x"),
            Err(DurationError::UnknownUnit {
                unit: 'x',
                position: 1
            })
        );
        assert_eq!(
            parse_duration("1H"),
            Err(DurationError::UnknownUnit {
                unit: 'H',
                position: 1
            })
        );
        assert_eq!(
            parse_duration("1ms"),
            Err(DurationError::MissingNumber {
                unit: 's',
                position: 2
            })
        );
        assert_eq!(
            parse_duration("1min"),
            Err(DurationError::UnknownUnit {
                unit: 'i',
                position: 2
            })
        );
    }

    #[test]
    fn rejects_unit_without_number() {
        assert_eq!(
            parse_duration("h"),
            Err(DurationError::MissingNumber {
                unit: 'h',
                position: 0
            })
        );
        assert_eq!(
            parse_duration("1hm"),
            Err(DurationError::MissingNumber {
                unit: 'm',
                position: 2
            })
        );
    }

    #[test]
    fn rejects_number_without_unit() {
        assert_eq!(
            parse_duration("90"),
            Err(DurationError::MissingUnit {
                number: "90".into()
            })
        );
        assert_eq!(
            parse_duration("1h30"),
            Err(DurationError::MissingUnit {
                number: "30".into()
            })
        );
        assert_eq!(
            parse_duration("1"),
            Err(DurationError::MissingUnit { number: "1".into() })
        );
    }

    #[test]
    fn rejects_repeated_units() {
        assert_eq!(
            parse_duration("1h1h"),
            Err(DurationError::RepeatedUnit { unit: 'h' })
        );
        assert_eq!(
            parse_duration("1s2s"),
            Err(DurationError::RepeatedUnit { unit: 's' })
        );
    }

    #[test]
    fn rejects_units_out_of_order() {
        assert_eq!(
            parse_duration("30m1h"),
            Err(DurationError::UnitOutOfOrder {
                unit: 'h',
                previous: 'm'
            })
        );
        assert_eq!(
            parse_duration("1d1w"),
            Err(DurationError::UnitOutOfOrder {
                unit: 'w',
                previous: 'd'
            })
        );
        assert_eq!(
            parse_duration("1s1y"),
            Err(DurationError::UnitOutOfOrder {
                unit: 'y',
                previous: 's'
            })
        );
    }

    #[test]
    fn rejects_overflow_instead_of_wrapping() {
        let too_long = [
            "18446744073709551616s",
            "99999999999999999999999s",
            "584942417356y",
            "1m18446744073709551615s",
            "1y18446744073709551615s",
            "30500568904944w",
        ];
        for input in too_long {
            assert_eq!(
                parse_duration(input),
                Err(DurationError::Overflow {
                    input: input.to_owned()
                }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_duration(Duration::ZERO), "0");
        assert_eq!(format_duration(secs(1)), "1s");
        assert_eq!(format_duration(secs(60)), "1m");
        assert_eq!(format_duration(secs(9900)), "2h45m");
        assert_eq!(format_duration(secs(3601)), "1h1s");
        assert_eq!(format_duration(secs(86_400)), "1d");
        assert_eq!(format_duration(secs(7 * 86_400)), "1w");
        assert_eq!(format_duration(secs(8760 * 3600)), "1y");
        assert_eq!(format_duration(secs(1000 * 3600)), "5w6d16h");
        assert_eq!(format_duration(secs(371 * 86_400)), "1y6d");
        assert_eq!(format_duration(secs(u64::MAX)), "584942417355y3w5d7h15s");
    }

    #[test]
    fn format_drops_subsecond_parts() {
        assert_eq!(format_duration(Duration::from_millis(999)), "0");
        assert_eq!(format_duration(Duration::from_millis(61_500)), "1m1s");
    }

    #[test]
    fn round_trips_format_then_parse() {
        let mut samples: Vec<u64> =
            vec![0, 1, 59, 60, 61, 3599, 3600, 9900, 86_399, 86_400, 604_800];
        samples.extend([
            YEAR - 1,
            YEAR,
            YEAR + WEEK + DAY + HOUR + MINUTE + 1,
            u64::MAX,
            u64::MAX - 1,
        ]);
        // A deterministic spread over many magnitudes.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(x >> (x % 64));
        }
        for n in samples {
            let text = format_duration(secs(n));
            assert_eq!(parse_duration(&text), Ok(secs(n)), "{n} -> {text:?}");
        }
    }

    #[test]
    fn round_trips_canonical_strings() {
        for text in [
            "0",
            "1s",
            "2h45m",
            "3w",
            "1y",
            "1y1w1d1h1m1s",
            "10m",
            "5w6d16h",
        ] {
            let parsed = parse_duration(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(format_duration(parsed), text);
        }
    }

    #[test]
    fn non_canonical_strings_normalise() {
        for (text, canonical) in [
            ("90m", "1h30m"),
            ("0s", "0"),
            ("7d", "1w"),
            ("01h", "1h"),
            ("365d", "1y"),
        ] {
            let parsed = parse_duration(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(format_duration(parsed), canonical);
        }
    }

    #[test]
    fn error_messages_say_what_rule_was_broken() {
        let message = |input: &str| parse_duration(input).map(|_| ()).unwrap_err().to_string();
        assert!(message("").contains("empty"));
        assert!(message("1.5h").contains("'.'"));
        assert!(message("1x").contains("unknown unit 'x'"));
        assert!(message("h").contains("no number"));
        assert!(message("90").contains("no unit"));
        assert!(message("1h1h").contains("more than once"));
        assert!(message("30m1h").contains("order"));
        assert!(message("99999999999999999999s").contains("too long"));
    }
}
