//! Wall-clock time in the forms the Kubernetes API uses: Unix seconds and RFC 3339 strings.

use jiff::Timestamp;

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    Timestamp::now().as_second()
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp with second precision (`2026-11-22T20:20:24Z`).
pub fn rfc3339(unix: i64) -> String {
    match Timestamp::from_second(unix) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        // Outside jiff's range (years -9999..=9999): clamp to the epoch rather than panic.
        Err(_) => "1970-01-01T00:00:00Z".to_owned(),
    }
}

/// The current time as an RFC 3339 UTC timestamp.
pub fn now_rfc3339() -> String {
    rfc3339(now_unix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_382_423), "2026-11-22T21:20:23Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
