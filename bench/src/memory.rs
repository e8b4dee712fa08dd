//! Resident memory of a process, from `/proc/PID/status` (Linux): the current RSS and its high-water mark.

use std::path::PathBuf;

/// Resident set sizes of one process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rss {
    /// `VmRSS`: resident now.
    pub current_kib: u64,
    /// `VmHWM`: the most ever resident.
    pub peak_kib: u64,
}

/// Reads the RSS of process `pid` (`None`: this process); `None` where /proc is not available.
pub fn rss(pid: Option<u32>) -> Option<Rss> {
    let path = match pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/status")),
        None => PathBuf::from("/proc/self/status"),
    };
    let status = std::fs::read_to_string(path).ok()?;
    Some(Rss {
        current_kib: field_kib(&status, "VmRSS:")?,
        peak_kib: field_kib(&status, "VmHWM:")?,
    })
}

fn field_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let text = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(field_kib(text, "VmHWM:"), Some(2048));
        assert_eq!(field_kib(text, "VmRSS:"), Some(1024));
        assert_eq!(field_kib(text, "VmSwap:"), None);
    }
}
